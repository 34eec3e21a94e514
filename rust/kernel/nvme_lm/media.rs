// SPDX-License-Identifier: GPL-2.0

//! Media migration: I/O on a namespace of the VF through the parent PF's
//! block device for it, claimed exclusively for the migration.
//!
//! C header: [`include/linux/nvme-lm.h`](srctree/include/linux/nvme-lm.h)

use super::Handle;
use crate::{
    alloc::{KVVec, KVec},
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

/// The longest read or write of one [`MediaIo`], in bytes.
pub const MAX_BYTES: usize = 1 << 20;

/// The most I/Os one [`Media::run`] or [`Media::start_reads`] takes.
pub const MAX_BATCH: usize = 256;

// The C service's limits are these, and its operation codes fit `u8`.
const _: () = {
    assert!(MAX_BYTES as u64 == bindings::NVME_LM_MEDIA_MAX_BYTES as u64);
    assert!(MAX_BATCH as u64 == bindings::NVME_LM_MEDIA_MAX_BATCH as u64);
    assert!(
        (bindings::nvme_lm_media_op_NVME_LM_MEDIA_READ
            | bindings::nvme_lm_media_op_NVME_LM_MEDIA_WRITE
            | bindings::nvme_lm_media_op_NVME_LM_MEDIA_WRITE_ZEROES)
            >> u8::BITS
            == 0
    );
    // A batch's length converts to the C `unsigned int` losslessly.
    assert!(MAX_BATCH <= u32::MAX as usize);
};

/// The operation of a [`MediaIo`] and its buffer.
///
/// Buffers are kernel heap memory (the slices of a [`KVVec`](crate::alloc::KVVec),
/// kmalloc or vmalloc), never the stack: the PF transfers them by DMA.
pub enum MediaOp<'a> {
    /// Read the blocks into the buffer.
    Read(&'a mut [u8]),
    /// Write the buffer to the blocks.
    Write(&'a [u8]),
    /// Zero the blocks (no length limit: split by the service).
    WriteZeroes,
}

/// One I/O of a [`Media::run`] batch.
pub struct MediaIo<'a> {
    /// First logical block.
    pub slba: u64,
    /// Number of logical blocks (1-based); a buffer must hold exactly these.
    pub nlb: u32,
    /// The operation.
    pub op: MediaOp<'a>,
}

/// A claim on a namespace of the VF: the PF's block device for it, held
/// exclusively (nothing else on the host writes it) while this lives.
///
/// # Invariants
///
/// `ptr` was returned by `nvme_lm_media_open()` for `handle`'s C handle and
/// is closed only by [`Drop`], before `handle` is released.
pub struct Media {
    handle: Arc<Handle>,
    ptr: NonNull<bindings::nvme_lm_media>,
}

// SAFETY: A claim is not tied to the thread that made it; the C service
// keeps no per-call state in it.
unsafe impl Send for Media {}

// SAFETY: Concurrent `nvme_lm_media_rw()` and `nvme_lm_media_flush()` calls
// on one claim only read it; each batch has its own state.
unsafe impl Sync for Media {}

impl Media {
    /// Claims namespace `nsid` of `handle`'s VF: `ENOENT` if it is not
    /// attached to the VF's controller, `ENODEV` if the PF cannot reach it,
    /// `EBUSY` if its block device is open for writing or claimed,
    /// `EOPNOTSUPP` for a format with metadata.
    #[inline]
    pub fn open(handle: &Arc<Handle>, nsid: u32) -> Result<Self> {
        // SAFETY: `handle.ptr` is a live handle (its type invariant), and
        // stays so while the claim lives: the claim holds an `Arc` of it.
        let ptr = from_err_ptr(unsafe { bindings::nvme_lm_media_open(handle.ptr.as_ptr(), nsid) })?;
        let ptr = NonNull::new(ptr).ok_or(EINVAL)?;
        // INVARIANT: `ptr` is a claim just opened on `handle`.
        Ok(Self {
            handle: handle.clone(),
            ptr,
        })
    }

    /// The handle the claim was made on.
    #[inline]
    pub fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// The namespace's capacity in logical blocks (the PF's view).
    #[inline]
    pub fn nsze(&self) -> u64 {
        // SAFETY: By the type invariant `ptr` is an open claim.
        unsafe { bindings::nvme_lm_media_nsze(self.ptr.as_ptr()) }
    }

    /// Log2 of the logical block size.
    #[inline]
    pub fn lbads(&self) -> u8 {
        // SAFETY: By the type invariant `ptr` is an open claim.
        unsafe { bindings::nvme_lm_media_lbads(self.ptr.as_ptr()) }
    }

    /// Runs the batch concurrently (at most [`MAX_BATCH`]) and waits for
    /// all of it; `Err` is the first failure (`ERANGE` for blocks beyond
    /// the namespace, `EINVAL` for a bad size, nothing submitted then).
    #[inline]
    pub fn run(&self, ios: &mut [MediaIo<'_>]) -> Result {
        let mut raw = self.raw_ios(ios)?;
        let n = u32::try_from(raw.len()).map_err(|_| EINVAL)?;
        // SAFETY: `ptr` is an open claim; `raw` holds `n` I/Os whose buffers
        // are borrowed from `ios` for the call (exclusively for reads, which
        // the service writes; shared for writes, which it only reads), each
        // exactly `nlb << lbads` bytes (`raw_ios` checked).
        to_result(unsafe { bindings::nvme_lm_media_rw(self.ptr.as_ptr(), raw.as_mut_ptr(), n) })
    }

    /// Starts the reads `reads` (sorted by [`ReadAt::at`], not
    /// overlapping, at most [`MAX_BATCH`]) into `buf`'s memory, which
    /// becomes `len` bytes long, and returns without waiting: `buf` (its
    /// contents cleared; its capacity at least `len`, else `EINVAL`)
    /// belongs to the reads until [`MediaReads::wait`] gives it back. Once
    /// the reads succeed, each filled its range and every other byte below
    /// `len` is zero. A refused batch (a range beyond the namespace, a read
    /// beyond `len`) reports its error there, with `buf` empty.
    #[inline]
    pub fn start_reads(&self, mut buf: KVVec<u8>, len: usize, reads: &[ReadAt]) -> MediaReads {
        buf.clear();
        let mut filled = KVec::new();
        let (batch, submitted) = match self.submit_reads(&mut buf, len, reads, &mut filled) {
            Ok(b) => (Some(b), Ok(())),
            Err(e) => (None, Err(e)),
        };
        // INVARIANT: `buf` is empty; `batch` (if any) is a batch just
        // submitted whose reads fill the ranges `filled` of `buf`'s spare
        // capacity, all below `len`, which the capacity holds.
        MediaReads {
            batch,
            submitted,
            buf,
            len,
            filled,
        }
    }

    #[inline]
    fn submit_reads(
        &self,
        buf: &mut KVVec<u8>,
        len: usize,
        reads: &[ReadAt],
        filled: &mut KVec<(usize, usize)>,
    ) -> Result<NonNull<bindings::nvme_lm_media_batch>> {
        let spare = buf.spare_capacity_mut();
        if len > spare.len() || reads.len() > MAX_BATCH {
            return Err(EINVAL);
        }
        let base = spare.as_mut_ptr().cast::<u8>();
        let lbads = u32::from(self.lbads());
        let read =
            u8::try_from(bindings::nvme_lm_media_op_NVME_LM_MEDIA_READ).map_err(|_| EINVAL)?;
        let mut raw = KVec::with_capacity(reads.len(), GFP_KERNEL)?;
        filled.reserve(reads.len(), GFP_KERNEL)?;
        let mut end = 0usize;
        for r in reads {
            let bytes = u64::from(r.nlb).checked_shl(lbads).ok_or(EINVAL)?;
            let bytes = usize::try_from(bytes).map_err(|_| EINVAL)?;
            let to = r.at.checked_add(bytes).ok_or(EINVAL)?;
            if r.at < end || to > len || bytes > MAX_BYTES {
                return Err(EINVAL);
            }
            end = to;
            // SAFETY: `r.at + bytes <= len`: within the spare capacity.
            let p = unsafe { base.add(r.at) };
            raw.push(
                bindings::nvme_lm_media_io {
                    op: read,
                    slba: r.slba,
                    nlb: r.nlb,
                    buf: p.cast::<c_void>(),
                    status: 0,
                },
                GFP_KERNEL,
            )?;
            filled.push((r.at, to), GFP_KERNEL)?;
        }
        let n = u32::try_from(raw.len()).map_err(|_| EINVAL)?;
        // SAFETY: `ptr` is an open claim; `raw` holds `n` reads into
        // disjoint ranges of `buf`'s spare capacity, each exactly
        // `nlb << lbads` bytes (checked above). The caller gives `buf` to
        // the batch until it is waited for (`MediaReads`), and the claim
        // waits for the batch's bios before it closes.
        let b = from_err_ptr(unsafe {
            bindings::nvme_lm_media_submit(self.ptr.as_ptr(), raw.as_mut_ptr(), n)
        })?;
        NonNull::new(b).ok_or(EINVAL)
    }

    /// The C form of `ios`, each buffer checked to hold exactly its blocks.
    #[inline]
    fn raw_ios(&self, ios: &mut [MediaIo<'_>]) -> Result<KVec<bindings::nvme_lm_media_io>> {
        if ios.len() > MAX_BATCH {
            return Err(EINVAL);
        }
        let lbads = u32::from(self.lbads());
        let mut raw = KVec::with_capacity(ios.len(), GFP_KERNEL)?;
        for io in ios.iter_mut() {
            let bytes = u64::from(io.nlb).checked_shl(lbads).ok_or(EINVAL)?;
            let (op, buf, len) = match &mut io.op {
                MediaOp::Read(b) => (
                    bindings::nvme_lm_media_op_NVME_LM_MEDIA_READ,
                    b.as_mut_ptr().cast::<c_void>(),
                    b.len(),
                ),
                // The service only reads the buffer of a write.
                MediaOp::Write(b) => (
                    bindings::nvme_lm_media_op_NVME_LM_MEDIA_WRITE,
                    b.as_ptr().cast_mut().cast::<c_void>(),
                    b.len(),
                ),
                MediaOp::WriteZeroes => (
                    bindings::nvme_lm_media_op_NVME_LM_MEDIA_WRITE_ZEROES,
                    core::ptr::null_mut(),
                    0,
                ),
            };
            if !buf.is_null() && (u64::try_from(len).ok() != Some(bytes) || len > MAX_BYTES) {
                return Err(EINVAL);
            }
            raw.push(
                bindings::nvme_lm_media_io {
                    // The const assertions above: every op fits `u8`.
                    op: u8::try_from(op).map_err(|_| EINVAL)?,
                    slba: io.slba,
                    nlb: io.nlb,
                    buf,
                    status: 0,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(raw)
    }

    /// Makes every write through the claim durable.
    #[inline]
    pub fn flush(&self) -> Result {
        // SAFETY: By the type invariant `ptr` is an open claim.
        to_result(unsafe { bindings::nvme_lm_media_flush(self.ptr.as_ptr()) })
    }
}

impl Drop for Media {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` is an open claim, closed
        // exactly once, here, while `self.handle` (dropped after this) keeps
        // its handle alive; `&mut self` means no `run` is running on it, and
        // the close waits for the bios of started reads still in flight.
        unsafe { bindings::nvme_lm_media_close(self.ptr.as_ptr()) };
    }
}

/// One read of [`Media::start_reads`]: `nlb` blocks from `slba` into the
/// buffer at byte `at`.
#[derive(Clone, Copy, Debug)]
pub struct ReadAt {
    /// Offset in the buffer.
    pub at: usize,
    /// First logical block.
    pub slba: u64,
    /// Number of logical blocks (1-based), at most [`MAX_BYTES`] of them.
    pub nlb: u32,
}

/// Reads started by [`Media::start_reads`], with the buffer they fill.
///
/// Dropping it waits for the reads; forgetting it leaks the buffer, which
/// the device may still write.
///
/// # Invariants
///
/// `buf` is empty and its capacity holds `len` bytes. `batch`, if any, was
/// returned by `nvme_lm_media_submit()` for reads that fill exactly the
/// ranges `filled` (sorted, disjoint, below `len`) of `buf`'s memory, and
/// is not waited for yet; `buf` is not accessed while it is there.
pub struct MediaReads {
    batch: Option<NonNull<bindings::nvme_lm_media_batch>>,
    submitted: Result,
    buf: KVVec<u8>,
    len: usize,
    filled: KVec<(usize, usize)>,
}

// SAFETY: A batch may be waited for on any thread; the buffer is owned.
unsafe impl Send for MediaReads {}

// SAFETY: `&MediaReads` gives access to nothing.
unsafe impl Sync for MediaReads {}

impl MediaReads {
    /// Waits for the reads; gives back the buffer (`len` bytes: the data
    /// read, zeroes elsewhere; empty if the batch failed) and the first
    /// failure.
    #[inline]
    pub fn wait(mut self) -> (KVVec<u8>, Result) {
        let submitted = self.batch.is_some();
        let r = self.complete();
        if submitted && r.is_ok() {
            let len = self.len;
            let base = self.buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
            let mut from = 0;
            for &(at, to) in self.filled.iter() {
                // SAFETY: `from <= at <= len` (the ranges are sorted and
                // below `len`): within the spare capacity, which nothing
                // else writes now that the batch is over.
                unsafe { core::ptr::write_bytes(base.add(from), 0, at - from) };
                from = to;
            }
            // SAFETY: As above, `from <= len`.
            unsafe { core::ptr::write_bytes(base.add(from), 0, len - from) };
            // SAFETY: Every byte below `len` is initialized: the reads
            // succeeded, so each filled its range, and the rest was zeroed
            // above; the capacity holds `len` bytes (the type invariant).
            unsafe { self.buf.inc_len(len) };
        }
        (core::mem::take(&mut self.buf), r)
    }

    #[inline]
    fn complete(&mut self) -> Result {
        let Some(b) = self.batch.take() else {
            return core::mem::replace(&mut self.submitted, Ok(()));
        };
        // SAFETY: By the type invariant `b` is a submitted batch not waited
        // for; it is taken out, so it is waited for (and freed) only here.
        to_result(unsafe { bindings::nvme_lm_media_wait(b.as_ptr(), core::ptr::null_mut()) })
    }
}

impl Drop for MediaReads {
    #[inline]
    fn drop(&mut self) {
        // The buffer is freed after this: the reads must be over.
        let _ = self.complete();
    }
}
