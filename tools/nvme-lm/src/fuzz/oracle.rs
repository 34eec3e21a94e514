// SPDX-License-Identifier: GPL-2.0

//! What `nvme_vfio_pci` must do with an input, computed in userspace with
//! the driver's own codec: which write it refuses and with which errno
//! (the checks of the resuming session's write: its length limit and the
//! stream's header and compatibility record as soon as they are complete),
//! or else what RESUMING -> STOP does (the whole stream, the source's
//! compatibility with this destination, the controller state against its
//! limits). A stream that passes every check of the driver reaches the
//! device, which loads it or refuses it itself.
//!
//! The rules are those of `drivers/vfio/pci/nvme/session.rs`
//! (`check_prefix`, `write`) and `migration.rs` (`load`,
//! `device_state::check_state`); the checks themselves are the codec's.
//! A destination with media migration on takes its stream record by
//! record instead (`media_sink.rs`, [`Sink`] here): each record checked
//! ([`Checker`]) and applied as it completes, the first refusal ends the
//! session, and RESUMING -> STOP checks that the stream ended and its
//! controller state.

use crate::codec::state::{
    ControllerState,
    QueueLimits,
    QueueStateV0, //
};
use crate::codec::stream::{
    self,
    parse_record,
    record_need,
    Checker,
    Compat,
    Record,
    Stream,
    HEADER_LEN,
    MAX_STATE_LEN,
    PREFIX_LEN,
    RECORD_HEADER_LEN, //
};
use crate::codec::Error;

/// The destination the driver checks a stream against.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The destination's own compatibility record.
    pub compat: Compat,
    /// What a controller state loaded into it must respect.
    pub limits: QueueLimits,
}

impl Target {
    /// The target described by `compat` (as the destination's own stream
    /// carries it) and its controller's CAP.CQR; queue base addresses are
    /// checked against 4 KiB, as the driver does.
    pub fn new(compat: Compat, contiguous_only: bool) -> Self {
        Self {
            compat,
            limits: QueueLimits {
                max_qid: compat.io_queues,
                mqes: compat.mqes,
                vectors: compat.vectors,
                contiguous_only,
                page_size: 4096,
            },
        }
    }
}

/// The errno the driver returns for a codec error.
pub fn errno(e: &Error) -> i32 {
    match e {
        Error::Overflow => libc::EOVERFLOW,
        Error::OutOfLimits(_) => libc::ERANGE,
        _ => libc::EINVAL,
    }
}

/// A refusal the driver must make: the errno and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The errno.
    pub errno: i32,
    /// The rule (the driver logs the same words).
    pub why: &'static str,
}

impl Refusal {
    fn of(e: Error) -> Self {
        Self {
            errno: errno(&e),
            why: e.reason(),
        }
    }
}

/// What must happen to an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Write number `chunk` fails (the earlier ones succeed).
    Write {
        /// Index of the write.
        chunk: usize,
        /// The refusal.
        refusal: Refusal,
        /// Bytes the session holds afterwards (the writes before).
        kept: usize,
    },
    /// Every write succeeds; RESUMING -> STOP fails.
    Load(Refusal),
    /// Every check of the driver passes: the device decides.
    Device,
}

/// The session's checks of what is written so far
/// (`Session::check_prefix`).
pub fn check_prefix(t: &Target, rx: &[u8]) -> Result<(), Error> {
    if rx.len() >= HEADER_LEN {
        stream::parse_header(rx)?;
    }
    let Some(rec) = rx.get(HEADER_LEN..PREFIX_LEN) else {
        return Ok(());
    };
    let (size, _, tag) = stream::record_header(rec, 0)?;
    if tag != stream::tag::COMPAT || size != stream::COMPAT_LEN as u64 {
        return Err(Error::InvalidField(
            "the first record is not the compatibility record",
        ));
    }
    let src = Compat::parse(&rec[RECORD_HEADER_LEN..])?;
    t.compat.accepts(&src)
}

/// The checks of RESUMING -> STOP on the bytes written.
pub fn check_load(t: &Target, rx: &[u8]) -> Result<(), Error> {
    let s = Stream::parse(rx)?;
    t.compat.accepts(&s.compat)?;
    check_state(t, s.state)
}

/// A controller state against the destination's limits
/// (`device_state::check_state`).
fn check_state(t: &Target, state: &[u8]) -> Result<(), Error> {
    let cs = ControllerState::parse(state)?;
    QueueStateV0::parse(cs.nvme)?.validate(&t.limits)
}

/// A media destination's session (`SinkIo`): the stream header, then
/// records framed by their headers, each checked and applied once whole.
pub struct Sink {
    checker: Checker,
    dest: Compat,
    started: bool,
    /// The header or record being received.
    rx: Vec<u8>,
    state: Option<Vec<u8>>,
}

impl Sink {
    /// A session of the destination `dest`.
    pub fn new(dest: &Compat) -> Self {
        Self {
            checker: Checker::new(dest),
            dest: *dest,
            started: false,
            rx: Vec::new(),
            state: None,
        }
    }

    /// One write (`SinkIo::take`).
    pub fn take(&mut self, mut inp: &[u8]) -> Result<(), Error> {
        while !inp.is_empty() {
            let want = if self.started {
                record_need(&self.rx)?.unwrap_or(RECORD_HEADER_LEN)
            } else {
                HEADER_LEN
            };
            let n = want.saturating_sub(self.rx.len()).min(inp.len());
            self.rx.extend_from_slice(&inp[..n]);
            inp = &inp[n..];
            if !self.started {
                if self.rx.len() == HEADER_LEN {
                    self.checker.header(&self.rx)?;
                    self.started = true;
                    self.rx.clear();
                }
                continue;
            }
            if self.rx.len() >= RECORD_HEADER_LEN && Some(self.rx.len()) == record_need(&self.rx)? {
                self.apply()?;
            }
        }
        Ok(())
    }

    fn apply(&mut self) -> Result<(), Error> {
        let rx = std::mem::take(&mut self.rx);
        let (rec, _) = parse_record(&rx)?;
        self.checker.check(&rec, &rx)?;
        // The sink writes a range only to a namespace of this VF.
        let mine = |nsid: u32| {
            self.dest
                .namespaces
                .as_slice()
                .iter()
                .any(|n| n.nsid == nsid)
        };
        match rec {
            Record::Data { header, .. } if !mine(header.nsid) => Err(NOT_MINE),
            Record::Zero(z) if !mine(z.nsid) => Err(NOT_MINE),
            Record::CtrlState(st) => {
                self.state = Some(st.to_vec());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// RESUMING -> STOP (`SinkIo::finish`): the controller state to load.
    pub fn finish(&mut self) -> Result<Vec<u8>, Error> {
        if !self.checker.ended() || !self.rx.is_empty() {
            return Err(Error::InvalidField("the stream ended early"));
        }
        self.state
            .take()
            .ok_or(Error::InvalidField("no controller state"))
    }
}

/// A media record of a namespace the destination VF does not have (the
/// driver's `EINVAL`, not logged).
const NOT_MINE: Error = Error::InvalidField("media record of a namespace this VF does not have");

/// The most bytes a resuming session takes.
pub fn max_len() -> usize {
    stream::stream_len(MAX_STATE_LEN).unwrap_or(usize::MAX)
}

/// What must happen to `input` written in `chunks`.
pub fn expect(t: &Target, input: &[u8], chunks: &[usize]) -> Expect {
    if t.compat.media {
        return expect_media(t, input, chunks);
    }
    let max = max_len();
    let mut held = 0;
    for (i, &n) in chunks.iter().enumerate() {
        if held + n > max {
            return Expect::Write {
                chunk: i,
                refusal: Refusal {
                    errno: libc::EFBIG,
                    why: "longer than the largest stream",
                },
                kept: held,
            };
        }
        if let Err(e) = check_prefix(t, &input[..held + n]) {
            return Expect::Write {
                chunk: i,
                refusal: Refusal::of(e),
                kept: held,
            };
        }
        held += n;
    }
    match check_load(t, &input[..held]) {
        Ok(()) => Expect::Device,
        Err(e) => Expect::Load(Refusal::of(e)),
    }
}

/// [`expect`] for a destination with media migration on: no length limit,
/// every record checked when it completes, the first refusal final.
fn expect_media(t: &Target, input: &[u8], chunks: &[usize]) -> Expect {
    let mut s = Sink::new(&t.compat);
    let mut held = 0;
    for (i, &n) in chunks.iter().enumerate() {
        if let Err(e) = s.take(&input[held..held + n]) {
            return Expect::Write {
                chunk: i,
                refusal: Refusal::of(e),
                kept: held,
            };
        }
        held += n;
    }
    match s.finish().and_then(|st| check_state(t, &st)) {
        Ok(()) => Expect::Device,
        Err(e) => Expect::Load(Refusal::of(e)),
    }
}

/// The errno's name.
pub fn errno_name(e: i32) -> String {
    let s = match e {
        libc::EINVAL => "EINVAL",
        libc::ERANGE => "ERANGE",
        libc::EFBIG => "EFBIG",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EBUSY => "EBUSY",
        libc::EIO => "EIO",
        libc::ENOMEM => "ENOMEM",
        libc::ENODEV => "ENODEV",
        libc::ENOSPC => "ENOSPC",
        libc::E2BIG => "E2BIG",
        libc::EFAULT => "EFAULT",
        libc::EAGAIN => "EAGAIN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("errno {e}"),
    };
    s.to_string()
}
