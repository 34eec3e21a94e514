// SPDX-License-Identifier: GPL-2.0

//! The VF's User Data Migration Queue: a kernel-owned Controller Data Queue
//! of the PF that logs the LBA ranges the VF's controller changes.
//!
//! A [`Cdq`] holds an [`Arc`] of its [`Handle`], so that the owner may keep
//! both side by side (for example in one migration session) and drop them
//! in any order. Events reach the owner through [`CdqEvents`].
//!
//! C header: [`include/linux/nvme-lm.h`](srctree/include/linux/nvme-lm.h)

use super::{
    Handle,
    CDQ_ENTRY_SIZE, //
};
use crate::{
    alloc::KVVec,
    bindings,
    error::{
        from_err_ptr,
        to_result,
        Result, //
    },
    prelude::*,
    sync::Arc, //
};
use core::ptr::NonNull;

/// An event of a [`Cdq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CdqEvent {
    /// The entries asked for with [`Cdq::arm`] have been posted. One event
    /// per arming.
    TailTrigger,
    /// The queue is full: the controller stopped logging. [`Cdq::read`]
    /// reports it as overflow; the owner treats the namespace as entirely
    /// changed, and restarts logging with [`Cdq::log`] once it has read
    /// the queue.
    Full,
}

/// The owner's receiver of the events of a [`Cdq`].
pub trait CdqEvents: Send + Sync {
    /// Called from a work item of the service (process context): may sleep
    /// and use the [`Cdq`] it is for, but must not drop it (dropping waits
    /// for this call). Never concurrently with itself for one queue, nor
    /// after the queue is dropped; events that come meanwhile are merged.
    fn event(&self, ev: CdqEvent);
}

/// The `nvme_lm_cdq_notify_t` of a [`Cdq`] whose receiver is a `T`.
///
/// # Safety
///
/// `data` must point to a live `T` for the duration of the call.
unsafe extern "C" fn notify<T: CdqEvents>(data: *mut c_void, event: bindings::nvme_lm_cdq_event) {
    let ev = match event {
        bindings::nvme_lm_cdq_event_NVME_LM_CDQ_TAIL_TRIGGER => CdqEvent::TailTrigger,
        bindings::nvme_lm_cdq_event_NVME_LM_CDQ_FULL => CdqEvent::Full,
        _ => return,
    };
    // SAFETY: By the function's safety requirement `data` points to a live
    // `T`; only shared references to it exist (it is inside an `Arc`).
    let events = unsafe { &*data.cast_const().cast::<T>() };
    events.event(ev);
}

/// The VF's User Data Migration Queue.
///
/// # Invariants
///
/// `ptr` was returned by `nvme_lm_cdq_create()` for the handle `handle`
/// holds, with a callback whose `data` points to the receiver `_events`
/// holds (or with no callback when `_events` is `None`), and is destroyed
/// only by [`Drop`], before either is released.
pub struct Cdq {
    ptr: NonNull<bindings::nvme_lm_cdq>,
    handle: Arc<Handle>,
    _events: Option<Arc<dyn CdqEvents>>,
}

// SAFETY: The C service serializes the operations on a queue with its
// handle's mutex, and a queue is not tied to the thread that created it;
// the handle and the receiver are `Send + Sync`.
unsafe impl Send for Cdq {}

// SAFETY: As for `Send`: concurrent operations through `&Cdq` are serialized
// by the C service.
unsafe impl Sync for Cdq {}

impl Cdq {
    /// Creates the queue of `handle`'s VF, with a ring of `entries` entries
    /// of [`CDQ_ENTRY_SIZE`] bytes. `events`, if any, receives the queue's
    /// events until the queue is dropped; without it, [`Cdq::read`] still
    /// reports a full queue as overflow.
    ///
    /// Fails with `EINVAL` for a size the PF cannot take, `EBUSY` if the VF
    /// has a queue already, `EOPNOTSUPP` if the PF posts entries of a format
    /// other than LBA Migration Queue Entry Type 0, or a command's error.
    #[inline]
    pub fn create<T: CdqEvents + 'static>(
        handle: &Arc<Handle>,
        entries: u32,
        events: Option<Arc<T>>,
    ) -> Result<Self> {
        let (callback, data): (bindings::nvme_lm_cdq_notify_t, *mut c_void) = match &events {
            Some(e) => (
                Some(notify::<T>),
                Arc::as_ptr(e).cast_mut().cast::<c_void>(),
            ),
            None => (None, core::ptr::null_mut()),
        };
        // SAFETY: `handle.ptr` is a live handle. `data` points to the `T`
        // inside `events`, which the returned `Cdq` keeps alive until
        // `nvme_lm_cdq_destroy()` has returned, after which no callback
        // runs; `notify::<T>` reads a `T` from exactly that pointer.
        let ptr = from_err_ptr(unsafe {
            bindings::nvme_lm_cdq_create(handle.ptr.as_ptr(), entries, callback, data)
        })?;
        let ptr = NonNull::new(ptr).ok_or(EINVAL)?;
        // INVARIANT: `ptr` was created for `handle` with `data` pointing into
        // `events`, both kept until `Drop` has destroyed `ptr`.
        Ok(Self {
            ptr,
            handle: Arc::clone(handle),
            _events: events.map(|e| -> Arc<dyn CdqEvents> { e }),
        })
    }

    /// The handle this queue logs for.
    #[inline]
    pub fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// Starts (`true`) or stops logging. Starting again after the queue was
    /// full works once it has been read. `EALREADY` while the VF's
    /// controller is suspended; `ENOSPC` while the queue is still full;
    /// `ENOENT` once a reset of the PF controller has deleted the queue.
    #[inline]
    pub fn log(&self, start: bool) -> Result {
        // SAFETY: By the type invariant `ptr` is a live queue.
        to_result(unsafe { bindings::nvme_lm_cdq_log(self.ptr.as_ptr(), start) })
    }

    /// Asks for one [`CdqEvent::TailTrigger`] once `entries_ahead` new
    /// entries have been posted (entries already waiting do not count; with
    /// fewer free slots, when the queue fills). Reading keeps the trigger.
    ///
    /// `EINVAL` unless `entries_ahead` is 1 to the ring size - 1; `ENOSPC`
    /// if the queue is full (read it first); `ENOENT` once a reset of the
    /// PF controller has deleted the queue.
    #[inline]
    pub fn arm(&self, entries_ahead: u32) -> Result {
        // SAFETY: By the type invariant `ptr` is a live queue.
        to_result(unsafe { bindings::nvme_lm_cdq_arm(self.ptr.as_ptr(), entries_ahead) })
    }

    /// Consumes up to `buf.len() / CDQ_ENTRY_SIZE` entries into `buf`;
    /// returns how many, and whether the queue was full since the last read
    /// (then every LBA of the namespace must be treated as changed, and
    /// logging restarted). A full queue is reported once, from its
    /// queue-full entry or its event, whichever is seen first. `ENOENT`
    /// once a reset of the PF controller has deleted the queue: writes
    /// from then on are logged nowhere.
    #[inline]
    pub fn read(&self, buf: &mut KVVec<u8>) -> Result<(usize, bool)> {
        let max = u32::try_from(buf.len() / CDQ_ENTRY_SIZE).map_err(|_| EOVERFLOW)?;
        let mut overflow = false;
        // SAFETY: `ptr` is a live queue; `buf` has room for `max` entries of
        // kernel heap memory, borrowed mutably for the call.
        let n = unsafe {
            bindings::nvme_lm_cdq_read(
                self.ptr.as_ptr(),
                buf.as_mut_ptr().cast(),
                max,
                &mut overflow,
            )
        };
        to_result(n.min(0))?;
        Ok((usize::try_from(n).map_err(|_| EINVAL)?, overflow))
    }
}

impl Drop for Cdq {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` is a live queue, destroyed
        // exactly once, here, while `handle` and `_events` are still held
        // (fields are dropped after this returns). No callback runs after
        // `nvme_lm_cdq_destroy()` returns, so `_events` may go then.
        unsafe { bindings::nvme_lm_cdq_destroy(self.ptr.as_ptr()) };
    }
}
