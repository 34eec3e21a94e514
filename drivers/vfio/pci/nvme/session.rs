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
use crate::media_sink::SinkIo;
use crate::media_source::{Harvest, Source};
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
    /// Saving: the readable bytes (immutable once published: a plain
    /// session's prefix never changes, so a reader's position stays valid;
    /// a media session replaces it by the next records once it is read).
    out: Option<Arc<KVVec<u8>>>,
    /// Resuming, plain: the bytes written so far.
    rx: KVVec<u8>,
    /// Saving: bytes of `out` read so far.
    pos: usize,
}

/// What the `io` lock owns: how a media session makes or takes records.
pub(crate) enum Io {
    /// The whole stream is built at once (no media): nothing.
    Plain,
    /// Saving with media: the namespaces' records are made as they are read.
    Source(KBox<SourceIo>),
    /// Resuming with media: records are checked and applied as they come.
    Sink(KBox<SinkIo>),
}

/// Bytes of the end record.
const END_RECORD_LEN: usize = RECORD_HEADER_LEN + 8;

/// A media source's stream, past its prefix.
pub(crate) struct SourceIo {
    src: Source,
    /// CRC32C of every byte so far but the data of data records.
    crc: u32,
    /// STOP_COPY: the controller state to send after the namespaces.
    state: Option<KVVec<u8>>,
    /// The state and end records are out.
    done: bool,
}

impl SourceIo {
    /// The next readable bytes; `None` when none are there now.
    fn next(&mut self, phase: Phase, errors: &UserErrors) -> Result<Option<KVVec<u8>>> {
        let mut out = KVVec::new();
        match phase {
            Phase::PreCopy => {
                self.src
                    .produce(&mut out, &mut self.crc, true, &errors.request)?;
            }
            Phase::StopCopy if !self.done => {
                self.src
                    .produce(&mut out, &mut self.crc, false, &errors.request)?;
                if out.is_empty() {
                    let state = self.state.as_deref().ok_or(EINVAL)?;
                    let rec = RECORD_HEADER_LEN + state.len().next_multiple_of(8);
                    out.resize(rec + END_RECORD_LEN, 0, GFP_KERNEL)?;
                    let end = stream::write_record(&mut out, 0, stream::tag::CTRL_STATE, 0, state)
                        .map_err(errno)?;
                    self.crc = stream::crc_record(self.crc, &out[..end]).map_err(errno)?;
                    let end = stream::write_end_crc(&mut out, end, self.crc).map_err(errno)?;
                    out.truncate(end);
                    self.done = true;
                }
            }
            _ => {}
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }
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
    /// The namespaces travel in the stream.
    media: bool,
    /// Saving with media: the harvest work of the queue's events.
    harvest: Option<Arc<Harvest>>,
    #[pin]
    io: Mutex<Io>,
    #[pin]
    inner: Mutex<Inner>,
    #[pin]
    wait: PollCondVar,
}

impl Session {
    /// A saving session that starts in PRE_COPY (`whole == None`, only
    /// `prefix` is readable) or in STOP_COPY with the whole stream; with
    /// `media`, the namespaces' records follow the prefix.
    pub(crate) fn new_save(
        dev: &device::Device,
        errors: Arc<UserErrors>,
        prefix: KVVec<u8>,
        whole: Option<KVVec<u8>>,
        media: Option<(Source, Option<KVVec<u8>>, Arc<Harvest>)>,
        flags_are_output: bool,
    ) -> Result<Arc<Self>> {
        let is_media = media.is_some();
        let mut stopped = whole.is_some();
        let mut harvest = None;
        let io = match media {
            Some((src, state, h)) => {
                stopped = state.is_some();
                harvest = Some(h);
                Io::Source(KBox::new(
                    SourceIo {
                        src,
                        crc: stream::crc32c(0, &prefix),
                        state,
                        done: false,
                    },
                    GFP_KERNEL,
                )?)
            }
            None => Io::Plain,
        };
        let out = whole.unwrap_or(prefix);
        let phase = if stopped {
            Phase::StopCopy
        } else {
            Phase::PreCopy
        };
        let out = Arc::new(out, GFP_KERNEL)?;
        let harvest_ref = harvest.clone();
        let session = Arc::pin_init(
            pin_init!(Self {
                dev: dev.into(),
                errors,
                dir: Direction::Save,
                flags_are_output,
                dest: None,
                media: is_media,
                harvest,
                io <- new_mutex!(io),
                inner <- new_mutex!(Inner {
                    phase,
                    out: Some(out),
                    rx: KVVec::new(),
                    pos: 0,
                }),
                wait <- new_poll_condvar!(),
            }),
            GFP_KERNEL,
        )?;
        if let Some(h) = harvest_ref {
            h.attach(session.clone());
        }
        Ok(session)
    }

    /// A resuming session of a destination described by `dest`; with
    /// `sink`, records are applied as they arrive.
    pub(crate) fn new_resume(
        dev: &device::Device,
        errors: Arc<UserErrors>,
        dest: Compat,
        sink: Option<SinkIo>,
    ) -> Result<Arc<Self>> {
        let is_media = sink.is_some();
        let io = match sink {
            Some(s) => Io::Sink(KBox::new(s, GFP_KERNEL)?),
            None => Io::Plain,
        };
        Arc::pin_init(
            pin_init!(Self {
                dev: dev.into(),
                errors,
                dir: Direction::Resume,
                flags_are_output: false,
                dest: Some(dest),
                media: is_media,
                harvest: None,
                io <- new_mutex!(io),
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

    /// Whether the namespaces travel in this session's stream.
    pub(crate) fn is_media(&self) -> bool {
        self.media
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

    /// Media saving, the controller suspended: drains the dirty-LBA queue
    /// to the suspend marker. The dirty set is final afterwards.
    pub(crate) fn media_drain(&self) -> Result {
        match &mut *self.io.lock() {
            Io::Source(s) => {
                s.src.drain(&self.errors.request)?;
                s.src.rewind();
                Ok(())
            }
            _ => Err(EINVAL),
        }
    }

    /// Media saving: the stop failed and the controller runs again.
    pub(crate) fn media_undrain(&self) {
        if let Io::Source(s) = &mut *self.io.lock() {
            s.src.undrain();
        }
    }

    /// Media saving, PRE_COPY → STOP_COPY: what is left of the namespaces,
    /// then `state`, then the end, become readable.
    pub(crate) fn publish_media(&self, state: KVVec<u8>) -> Result {
        let mut io = self.io.lock();
        let Io::Source(s) = &mut *io else {
            return Err(EINVAL);
        };
        let mut inner = self.inner.lock();
        if inner.phase != Phase::PreCopy {
            return Err(EINVAL);
        }
        s.state = Some(state);
        inner.phase = Phase::StopCopy;
        drop(inner);
        drop(io);
        self.wait.notify_all();
        Ok(())
    }

    /// Media saving: the bytes still to read if the device stopped now
    /// with a controller state of `state_len` bytes (exact once drained).
    pub(crate) fn media_stop_copy_len(&self, state_len: usize) -> Result<Option<usize>> {
        let mut io = self.io.lock();
        let Io::Source(s) = &mut *io else {
            return Ok(None);
        };
        let unread = {
            let inner = self.inner.lock();
            inner
                .out
                .as_ref()
                .map_or(0, |d| d.len())
                .saturating_sub(inner.pos)
        };
        if s.done {
            return Ok(Some(unread));
        }
        if !s.src.is_drained() {
            s.src.harvest(&self.errors.request)?;
        }
        let state = state_len
            .checked_next_multiple_of(8)
            .and_then(|n| n.checked_add(RECORD_HEADER_LEN))
            .ok_or(EOVERFLOW)?;
        let total = unread
            .checked_add(s.src.exact_len()?)
            .and_then(|n| n.checked_add(state))
            .and_then(|n| n.checked_add(END_RECORD_LEN))
            .ok_or(EOVERFLOW)?;
        Ok(Some(total))
    }

    /// Resuming: the bytes written so far.
    pub(crate) fn with_written<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.inner.lock().rx)
    }

    /// Resuming with media: the controller state of a complete, checked
    /// stream (the namespaces' data is on the media, flushed).
    pub(crate) fn media_finish(&self) -> Result<KVVec<u8>> {
        match &mut *self.io.lock() {
            Io::Sink(s) => s.finish(&self.dev, &self.errors.stream),
            _ => Err(EINVAL),
        }
    }

    /// Ends the session: every later operation fails with `ENODEV`, and
    /// the buffers are freed. Never waits for a reader or writer (a
    /// function reset calls it): the namespaces and the queue of a media
    /// session are let go by [`Self::release`] or when the session goes.
    pub(crate) fn end(&self) {
        let mut inner = self.inner.lock();
        inner.phase = Phase::Ended;
        inner.out = None;
        inner.rx = KVVec::new();
        drop(inner);
        self.wait.notify_all();
    }

    /// Ends the session and lets the namespaces and the queue of a media
    /// session go now, once a reader or writer in progress is done.
    pub(crate) fn release(&self) {
        self.end();
        if let Some(h) = self.harvest.as_ref() {
            h.detach();
        }
        // Dropped with the lock released: destroying the queue waits for
        // an event callback, which may be waiting for the lock.
        let io = core::mem::replace(&mut *self.io.lock(), Io::Plain);
        drop(io);
    }

    /// The queue's tail trigger fired: consumes it while in PRE_COPY.
    pub(crate) fn harvest_event(&self) {
        let mut io = self.io.lock();
        if self.inner.lock().phase != Phase::PreCopy {
            return;
        }
        if let Io::Source(s) = &mut *io {
            match s.src.harvest_and_arm(&self.errors.request) {
                // The refusal or failure was logged with its reason; the
                // next read or query fails with it.
                Err(_) if s.src.has_failed() => {}
                Err(e) => dev_err_ratelimited!(
                    self.errors.request,
                    self.dev,
                    "media migration: harvesting the dirty-LBA queue failed: {:?}\n",
                    e
                ),
                Ok(()) => {}
            }
        }
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

    fn write_plain(&self, inp: &mut UserSliceReader) -> Result<usize> {
        let n = inp.len();
        let max = stream::stream_len(stream::MAX_STATE_LEN).map_err(errno)?;
        if self.inner.lock().rx.len().saturating_add(n) > max {
            dev_err_ratelimited!(
                self.errors.stream,
                self.dev,
                "migration stream rejected: longer than {} bytes (EFBIG)\n",
                max
            );
            return Err(EFBIG);
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
}

impl DataFileOps for Session {
    type OwnerModule = crate::NvmeVfioPciModule;

    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        let mut io = self.io.lock();
        loop {
            let (data, pos, phase) = {
                let inner = self.inner.lock();
                match (&inner.out, inner.phase) {
                    (Some(d), p @ (Phase::PreCopy | Phase::StopCopy)) => (d.clone(), inner.pos, p),
                    (_, Phase::Ended) => return Err(ENODEV),
                    _ => return Err(EINVAL),
                }
            };
            if let (Io::Source(s), Phase::PreCopy) = (&mut *io, phase) {
                s.src.harvest_running(&self.errors.request)?;
            }
            let avail = data.len().saturating_sub(pos);
            if avail == 0 {
                let next = match &mut *io {
                    Io::Source(s) => s.next(phase, &self.errors)?,
                    _ => None,
                };
                if let Some(next) = next {
                    let next = Arc::new(next, GFP_KERNEL)?;
                    let mut inner = self.inner.lock();
                    if inner.phase != phase {
                        // Ended, or published meanwhile: look again.
                        continue;
                    }
                    inner.out = Some(next);
                    inner.pos = 0;
                    continue;
                }
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
            return Ok(n);
        }
    }

    fn write(&self, inp: &mut UserSliceReader) -> Result<usize> {
        let mut io = self.io.lock();
        match self.inner.lock().phase {
            Phase::Resuming => {}
            Phase::Ended => return Err(ENODEV),
            _ => return Err(EINVAL),
        }
        match &mut *io {
            Io::Sink(s) => s.write(inp, &self.dev, &self.errors.stream),
            _ => self.write_plain(inp),
        }
    }

    fn poll(&self, file: &File, table: PollTable<'_>) -> u32 {
        table.register_wait(file, &self.wait);
        let inner = self.inner.lock();
        match (self.dir, inner.phase) {
            (_, Phase::Ended) => bindings::POLLERR | bindings::POLLHUP,
            (Direction::Resume, _) => bindings::POLLOUT | bindings::POLLWRNORM,
            // A media session's read makes the next records (or ends
            // temporarily) and waits only for the device.
            (Direction::Save, Phase::PreCopy) => {
                let left = inner.out.as_ref().map_or(0, |d| d.len()) > inner.pos;
                if left || self.media {
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
        let mut io = self.io.lock();
        let unread = {
            let inner = self.inner.lock();
            match inner.phase {
                Phase::PreCopy => {}
                Phase::Ended => return Err(ENODEV),
                _ => return Err(EINVAL),
            }
            // CAST: a buffer length fits a `u64`.
            inner
                .out
                .as_ref()
                .map_or(0, |d| d.len())
                .saturating_sub(inner.pos) as u64
        };
        let info = match &mut *io {
            Io::Source(s) => {
                s.src.harvest(&self.errors.request)?;
                let bulk = s.src.bulk_bytes();
                let dirty = s.src.dirty_bytes();
                // The bulk copy is the initial data; once it is read,
                // what is unread or dirty is dirty data.
                if bulk > 0 {
                    PrecopyInfo {
                        initial_bytes: bulk.saturating_add(unread),
                        dirty_bytes: dirty,
                    }
                } else {
                    PrecopyInfo {
                        initial_bytes: 0,
                        dirty_bytes: dirty.saturating_add(unread),
                    }
                }
            }
            _ => PrecopyInfo {
                initial_bytes: unread,
                dirty_bytes: 0,
            },
        };
        Ok((info, self.flags_are_output))
    }
}
