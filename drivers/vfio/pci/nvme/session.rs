// SPDX-License-Identifier: GPL-2.0

//! A migration session: what the `data_fd` of a saving or resuming
//! transition reads or writes.
//!
//! Locking: `io` serializes the callers of read and write and is the only
//! lock held while user memory is copied; `inner` (buffers, position,
//! phase) is never held across a user copy, so a reset that takes the
//! driver's state lock and then `inner` can never wait on a page fault.
//! Order: state lock, then `inner`; `io`, then `inner`.
//!
//! The session holds no reference to the VFIO device (only to the PCI
//! function's `struct device`, to name it in messages): after it ends
//! (the FSM left the transfer states, the device was reset or closed), every
//! operation fails with `ENODEV`.

use crate::codec::{
    self,
    stream::{self, Compat, HEADER_LEN, PREFIX_LEN, RECORD_HEADER_LEN},
};
use crate::device_state::{errno, reject};
use crate::user_errors::UserErrors;
use kernel::{
    alloc::KVVec,
    bindings, dev_err_ratelimited, device,
    fs::File,
    new_mutex, new_poll_condvar,
    prelude::*,
    sync::{aref::ARef, poll::PollCondVar, poll::PollTable, Arc, Mutex},
    uaccess::{UserSliceReader, UserSliceWriter},
    vfio::{DataFileOps, Direction, PrecopyInfo},
};

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Saving, device running: only the compatibility record is readable,
    /// then reads end temporarily (`ENOMSG`).
    PreCopy,
    /// Saving, device stopped: the whole stream, then a permanent end.
    StopCopy,
    /// Resuming: writes are collected.
    Resuming,
    /// Over: `ENODEV`.
    Ended,
}

struct Inner {
    phase: Phase,
    /// Saving: the stream so far (immutable once published; the prefix
    /// never changes, so a reader's position stays valid).
    out: Option<Arc<KVVec<u8>>>,
    /// Resuming: the bytes written so far.
    rx: KVVec<u8>,
    /// Saving: bytes read so far.
    pos: usize,
}

/// A migration session, shared by the driver and its data file.
#[pin_data]
pub(crate) struct Session {
    dev: ARef<device::Device>,
    errors: Arc<UserErrors>,
    dir: Direction,
    flags_are_output: bool,
    /// Resuming: this destination's compatibility record.
    dest: Option<Compat>,
    #[pin]
    io: Mutex<()>,
    #[pin]
    inner: Mutex<Inner>,
    #[pin]
    wait: PollCondVar,
}

impl Session {
    /// A saving session that starts in PRE_COPY (`whole == None`, only
    /// `prefix` is readable) or in STOP_COPY with the whole stream.
    pub(crate) fn new_save(
        dev: &device::Device,
        errors: Arc<UserErrors>,
        prefix: KVVec<u8>,
        whole: Option<KVVec<u8>>,
        flags_are_output: bool,
    ) -> Result<Arc<Self>> {
        let (phase, out) = match whole {
            Some(w) => (Phase::StopCopy, w),
            None => (Phase::PreCopy, prefix),
        };
        let out = Arc::new(out, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                dev: dev.into(),
                errors,
                dir: Direction::Save,
                flags_are_output,
                dest: None,
                io <- new_mutex!(()),
                inner <- new_mutex!(Inner {
                    phase,
                    out: Some(out),
                    rx: KVVec::new(),
                    pos: 0,
                }),
                wait <- new_poll_condvar!(),
            }),
            GFP_KERNEL,
        )
    }

    /// A resuming session of a destination described by `dest`.
    pub(crate) fn new_resume(
        dev: &device::Device,
        errors: Arc<UserErrors>,
        dest: Compat,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                dev: dev.into(),
                errors,
                dir: Direction::Resume,
                flags_are_output: false,
                dest: Some(dest),
                io <- new_mutex!(()),
                inner <- new_mutex!(Inner {
                    phase: Phase::Resuming,
                    out: None,
                    rx: KVVec::new(),
                    pos: 0,
                }),
                wait <- new_poll_condvar!(),
            }),
            GFP_KERNEL,
        )
    }

    /// The direction of the data file.
    pub(crate) fn direction(&self) -> Direction {
        self.dir
    }

    /// Saving, PRE_COPY → STOP_COPY: publishes the whole stream, whose
    /// start is the prefix already readable.
    pub(crate) fn publish(&self, whole: KVVec<u8>) -> Result {
        let whole = Arc::new(whole, GFP_KERNEL)?;
        let mut inner = self.inner.lock();
        if inner.phase != Phase::PreCopy {
            return Err(EINVAL);
        }
        inner.out = Some(whole);
        inner.phase = Phase::StopCopy;
        drop(inner);
        self.wait.notify_all();
        Ok(())
    }

    /// Resuming: the bytes written so far.
    pub(crate) fn with_written<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.inner.lock().rx)
    }

    /// Ends the session: every later operation fails with `ENODEV`, and
    /// the buffers are freed.
    pub(crate) fn end(&self) {
        let mut inner = self.inner.lock();
        inner.phase = Phase::Ended;
        inner.out = None;
        inner.rx = KVVec::new();
        drop(inner);
        self.wait.notify_all();
    }

    /// Resuming: checks what is complete of the stream so far, so that a
    /// foreign or incompatible stream fails at the first write that shows
    /// it, before the source stops.
    fn check_prefix(&self, rx: &[u8]) -> core::result::Result<(), (&'static str, codec::Error)> {
        if rx.len() >= HEADER_LEN {
            stream::parse_header(rx).map_err(|e| ("stream", e))?;
        }
        let (Some(dest), Some(rec)) = (self.dest.as_ref(), rx.get(HEADER_LEN..PREFIX_LEN)) else {
            return Ok(());
        };
        let bad = codec::Error::InvalidField("the first record is not the compatibility record");
        let (size, _, tag) = stream::record_header(rec, 0).map_err(|e| ("stream", e))?;
        // CAST: the compatibility record's length is a small constant.
        if tag != stream::tag::COMPAT || size != stream::COMPAT_LEN as u64 {
            return Err(("stream", bad));
        }
        let src = Compat::parse(&rec[RECORD_HEADER_LEN..]).map_err(|e| ("stream", e))?;
        dest.accepts(&src).map_err(|e| ("incompatible source", e))
    }
}

impl DataFileOps for Session {
    type OwnerModule = crate::NvmeVfioPciModule;

    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        let _io = self.io.lock();
        let (data, pos, phase) = {
            let inner = self.inner.lock();
            match (&inner.out, inner.phase) {
                (Some(d), p @ (Phase::PreCopy | Phase::StopCopy)) => (d.clone(), inner.pos, p),
                (_, Phase::Ended) => return Err(ENODEV),
                _ => return Err(EINVAL),
            }
        };
        let avail = data.len().saturating_sub(pos);
        if avail == 0 {
            // PRE_COPY's end is temporary; STOP_COPY's is the stream's.
            return if phase == Phase::PreCopy {
                Err(ENOMSG)
            } else {
                Ok(0)
            };
        }
        let n = avail.min(out.len());
        out.write_slice(&data[pos..pos + n])?;
        let mut inner = self.inner.lock();
        if inner.phase == Phase::Ended {
            return Err(ENODEV);
        }
        inner.pos = pos + n;
        Ok(n)
    }

    fn write(&self, inp: &mut UserSliceReader) -> Result<usize> {
        let _io = self.io.lock();
        let n = inp.len();
        let max = stream::stream_len(stream::MAX_STATE_LEN).map_err(errno)?;
        {
            let inner = self.inner.lock();
            match inner.phase {
                Phase::Resuming => {}
                Phase::Ended => return Err(ENODEV),
                _ => return Err(EINVAL),
            }
            if inner.rx.len().saturating_add(n) > max {
                dev_err_ratelimited!(
                    self.errors.stream,
                    self.dev,
                    "migration stream rejected: longer than {} bytes (EFBIG)\n",
                    max
                );
                return Err(EFBIG);
            }
        }
        // Sized by the user: charged to its memory cgroup.
        let mut chunk = KVVec::from_elem(0u8, n, GFP_KERNEL_ACCOUNT)?;
        inp.read_slice(&mut chunk)?;
        let mut inner = self.inner.lock();
        if inner.phase == Phase::Ended {
            return Err(ENODEV);
        }
        let before = inner.rx.len();
        inner.rx.extend_from_slice(&chunk, GFP_KERNEL_ACCOUNT)?;
        if let Err((what, e)) = self.check_prefix(&inner.rx) {
            inner.rx.truncate(before);
            return Err(reject(&self.dev, &self.errors.stream, what, e));
        }
        Ok(n)
    }

    fn poll(&self, file: &File, table: PollTable<'_>) -> u32 {
        table.register_wait(file, &self.wait);
        let inner = self.inner.lock();
        match (self.dir, inner.phase) {
            (_, Phase::Ended) => bindings::POLLERR | bindings::POLLHUP,
            (Direction::Resume, _) => bindings::POLLOUT | bindings::POLLWRNORM,
            (Direction::Save, Phase::PreCopy) => {
                let left = inner.out.as_ref().map_or(0, |d| d.len()) > inner.pos;
                if left {
                    bindings::POLLIN | bindings::POLLRDNORM
                } else {
                    0
                }
            }
            // Data, or the permanent end: either way a read won't block.
            (Direction::Save, _) => bindings::POLLIN | bindings::POLLRDNORM,
        }
    }

    fn precopy_info(&self) -> Result<(PrecopyInfo, bool)> {
        let inner = self.inner.lock();
        match inner.phase {
            Phase::PreCopy => {}
            Phase::Ended => return Err(ENODEV),
            _ => return Err(EINVAL),
        }
        let len = inner.out.as_ref().map_or(0, |d| d.len());
        // CAST: a buffer length fits a `u64`.
        let initial_bytes = len.saturating_sub(inner.pos) as u64;
        Ok((
            PrecopyInfo {
                initial_bytes,
                dirty_bytes: 0,
            },
            self.flags_are_output,
        ))
    }
}
