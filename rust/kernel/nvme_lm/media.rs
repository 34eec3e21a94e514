// SPDX-License-Identifier: GPL-2.0

//! Media migration: I/O on a namespace of the VF through the parent PF's
//! block device for it, claimed exclusively for the migration.
//!
//! C header: [`include/linux/nvme-lm.h`](srctree/include/linux/nvme-lm.h)

use super::Handle;
use crate::{
    alloc::KVec,
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

/// The most I/Os one [`Media::run`] takes.
pub const MAX_BATCH: usize = 32;

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
        let n = u32::try_from(raw.len()).map_err(|_| EINVAL)?;
        // SAFETY: `ptr` is an open claim; `raw` holds `n` I/Os whose buffers
        // are borrowed from `ios` for the call (exclusively for reads, which
        // the service writes; shared for writes, which it only reads), each
        // exactly `nlb << lbads` bytes as checked above.
        to_result(unsafe { bindings::nvme_lm_media_rw(self.ptr.as_ptr(), raw.as_mut_ptr(), n) })
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
        // its handle alive; `&mut self` means no batch is running on it.
        unsafe { bindings::nvme_lm_media_close(self.ptr.as_ptr()) };
    }
}
