// SPDX-License-Identifier: GPL-2.0

//! NVMe Host Managed Live Migration service of nvme-pci, for the VFIO
//! variant driver of an NVMe SR-IOV virtual function.
//!
//! Every operation is one admin command on the parent PF's admin queue,
//! aimed at the VF's own secondary controller, which the C service resolves
//! itself. Buffers are kernel memory ([`KVVec`]): the PF maps them for DMA.
//!
//! nvme-pci, and so the service, may be a module while this crate is built
//! into vmlinux: every function that calls the service is `#[inline]` or
//! generic, so it is compiled only into the modules that use it.
//!
//! C header: [`include/linux/nvme-lm.h`](srctree/include/linux/nvme-lm.h)

use crate::{
    alloc::KVVec,
    bindings,
    device,
    error::{
        from_err_ptr,
        to_result,
        Result, //
    },
    pci,
    prelude::*, //
};
use core::ptr::NonNull;

mod media;
pub use media::*;

/// Length of one User Data Migration Queue entry.
pub const CDQ_ENTRY_SIZE: usize = 32;

/// Suspend type (Migration Send, Suspend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendType {
    /// A notification: the controller keeps running.
    Notify,
    /// Stop fetching, finish fetched commands, then no DMA and no interrupts.
    Full,
}

/// Which piece of a controller state a Set Controller State carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sequence {
    /// A piece between the first and the last.
    Middle,
    /// The first piece.
    First,
    /// The last piece.
    Last,
    /// The whole state.
    Only,
}

impl Sequence {
    fn raw(self) -> bindings::nvme_lm_seq {
        match self {
            Sequence::Middle => bindings::nvme_lm_seq_NVME_LM_SEQ_MIDDLE,
            Sequence::First => bindings::nvme_lm_seq_NVME_LM_SEQ_FIRST,
            Sequence::Last => bindings::nvme_lm_seq_NVME_LM_SEQ_LAST,
            Sequence::Only => bindings::nvme_lm_seq_NVME_LM_SEQ_ONLY,
        }
    }
}

/// What a migration destination must match, and the limits a controller
/// state is checked against (`struct nvme_lm_identity`).
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    /// Model Number (space padded).
    pub model: [u8; 40],
    /// Firmware Revision (space padded).
    pub firmware: [u8; 8],
    /// NVM Subsystem NQN, NUL terminated.
    pub subnqn: [u8; 256],
    /// I/O queue pairs the VF's secondary controller has resources for.
    pub io_queues: u16,
    /// Interrupt vectors the secondary controller has resources for.
    pub vectors: u16,
    /// CAP.MQES of the VF's controller (0's based).
    pub mqes: u16,
    /// CAP.CQR: the controller requires physically contiguous queues.
    pub contiguous_only: bool,
}

impl Identity {
    /// The subsystem NQN up to its NUL terminator.
    pub fn subnqn(&self) -> &[u8] {
        let end = self
            .subnqn
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.subnqn.len());
        &self.subnqn[..end]
    }
}

/// A namespace attached to the VF's controller (`struct nvme_lm_ns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    /// Namespace ID.
    pub nsid: u32,
    /// Size in logical blocks (NSZE).
    pub nsze: u64,
    /// LBA data size of the format in use, as a power of two.
    pub lbads: u8,
    /// Metadata bytes per LBA of the format in use.
    pub ms: u16,
    /// Namespace Globally Unique Identifier (zero if none).
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier (zero if none).
    pub eui64: [u8; 8],
}

/// The migration handle of one VF.
///
/// # Invariants
///
/// `ptr` was returned by `nvme_lm_get()` and is released only by [`Drop`].
pub struct Handle {
    ptr: NonNull<bindings::nvme_lm>,
}

// SAFETY: The C service serializes every operation on a handle with the
// handle's mutex, and a handle is not tied to the thread that acquired it.
unsafe impl Send for Handle {}

// SAFETY: As for `Send`: concurrent operations through `&Handle` are
// serialized by the C service.
unsafe impl Sync for Handle {}

fn check_len(len: usize, buf: usize) -> Result<u32> {
    if len == 0 || len % 4 != 0 || len > buf {
        return Err(EINVAL);
    }
    u32::try_from(len).map_err(|_| EOVERFLOW)
}

impl Handle {
    /// Acquires the handle of `vf`, whose driver the caller is (a `Core`
    /// context exists only in that driver's probe and remove).
    ///
    /// Fails with `EOPNOTSUPP` when the PF lacks Host Managed Live
    /// Migration: the caller then serves the VF without migration.
    #[inline]
    pub fn get(vf: &pci::Device<device::Core<'_>>) -> Result<Self> {
        // SAFETY: `vf.as_raw()` is a valid, bound `struct pci_dev` for the
        // duration of the call.
        let ptr = from_err_ptr(unsafe { bindings::nvme_lm_get(vf.as_raw()) })?;
        NonNull::new(ptr).map(|ptr| Self { ptr }).ok_or(EINVAL)
    }

    /// The VF's secondary controller ID.
    #[inline]
    pub fn cntlid(&self) -> u16 {
        // SAFETY: By the type invariant `ptr` is a live handle.
        unsafe { bindings::nvme_lm_cntlid(self.ptr.as_ptr()) }
    }

    /// The longest data transfer of one command on the PF's admin queue,
    /// in bytes (from the PF's MDTS; at least one controller page).
    #[inline]
    pub fn max_transfer(&self) -> usize {
        // SAFETY: By the type invariant `ptr` is a live handle.
        let bytes = unsafe { bindings::nvme_lm_max_transfer(self.ptr.as_ptr()) };
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// Reads Supported Controller State Formats (Identify CNS 20h) into
    /// `buf`, which is resized to 4096 bytes.
    #[inline]
    pub fn state_formats(&self, buf: &mut KVVec<u8>) -> Result {
        buf.resize(4096, 0, GFP_KERNEL)?;
        // SAFETY: `ptr` is a live handle; `buf` is kernel heap memory of
        // `buf.len()` bytes, borrowed mutably for the call.
        to_result(unsafe {
            bindings::nvme_lm_state_formats(self.ptr.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        })
    }

    /// Reads the PF's Identify Controller data into `buf`, which is resized
    /// to 4096 bytes: it holds the Track Memory Changes limits.
    #[inline]
    pub fn identify_ctrl(&self, buf: &mut KVVec<u8>) -> Result {
        buf.resize(4096, 0, GFP_KERNEL)?;
        // SAFETY: `ptr` is a live handle; `buf` is kernel heap memory of
        // `buf.len()` bytes, borrowed mutably for the call.
        to_result(unsafe {
            bindings::nvme_lm_identify_ctrl(self.ptr.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        })
    }

    /// Starts tracking the VF's writes to host memory with the Track Memory
    /// Changes data structure `buf[..len]`; returns the granularity the
    /// controller uses (log2 bytes).
    #[inline]
    pub fn track_start(&self, buf: &KVVec<u8>, len: usize) -> Result<u8> {
        let len = check_len(len, buf.len())?;
        let mut granularity = 0u8;
        // SAFETY: `ptr` is a live handle; `buf` holds at least `len` bytes of
        // kernel heap memory that the call only reads; `granularity` is
        // writable for the call.
        to_result(unsafe {
            bindings::nvme_lm_track_start(
                self.ptr.as_ptr(),
                buf.as_ptr().cast(),
                len,
                &mut granularity,
            )
        })?;
        Ok(granularity)
    }

    /// Stops tracking the VF's writes to host memory.
    #[inline]
    pub fn track_stop(&self) -> Result {
        // SAFETY: `ptr` is a live handle.
        to_result(unsafe { bindings::nvme_lm_track_stop(self.ptr.as_ptr()) })
    }

    /// Reads and clears the VF's tracked memory changes into the first
    /// `len` bytes of `buf` (a Tracked Memory Change data structure).
    #[inline]
    pub fn track_receive(&self, buf: &mut KVVec<u8>, len: usize) -> Result {
        let len = check_len(len, buf.len())?;
        // SAFETY: `ptr` is a live handle; `buf` holds at least `len` bytes of
        // kernel heap memory, borrowed mutably for the call.
        to_result(unsafe {
            bindings::nvme_lm_track_receive(self.ptr.as_ptr(), buf.as_mut_ptr().cast(), len)
        })
    }

    /// What a destination must match: model, firmware, subsystem, and the
    /// VF controller's current queue and interrupt resources.
    #[inline]
    pub fn identity(&self) -> Result<Identity> {
        // SAFETY: `nvme_lm_identity` is plain data: all zeroes is valid.
        let mut raw: bindings::nvme_lm_identity = unsafe { core::mem::zeroed() };
        // SAFETY: `ptr` is a live handle; `raw` is writable for the call.
        to_result(unsafe { bindings::nvme_lm_identity(self.ptr.as_ptr(), &mut raw) })?;
        Ok(Identity {
            model: raw.model,
            firmware: raw.firmware,
            subnqn: raw.subnqn,
            io_queues: raw.io_queues,
            vectors: raw.vectors,
            mqes: raw.mqes,
            contiguous_only: raw.contiguous_only,
        })
    }

    /// The namespaces attached to the VF's controller, in ascending NSID
    /// order, into `out`; returns how many. `E2BIG` if more than `N` are.
    #[inline]
    pub fn namespaces<const N: usize>(&self, out: &mut [Namespace; N]) -> Result<usize> {
        // SAFETY: `nvme_lm_ns` is plain data: all zeroes is valid.
        let mut raw: [bindings::nvme_lm_ns; N] = unsafe { core::mem::zeroed() };
        let max = u32::try_from(N).map_err(|_| EINVAL)?;
        // SAFETY: `ptr` is a live handle; `raw` has room for `max` entries
        // and is writable for the call.
        let n = unsafe { bindings::nvme_lm_namespaces(self.ptr.as_ptr(), raw.as_mut_ptr(), max) };
        let n = usize::try_from(to_result(n).map(|()| n)?).map_err(|_| EINVAL)?;
        for (o, r) in out.iter_mut().zip(raw.iter()).take(n) {
            *o = Namespace {
                nsid: r.nsid,
                nsze: r.nsze,
                lbads: r.lbads,
                ms: r.ms,
                nguid: r.nguid,
                eui64: r.eui64,
            };
        }
        Ok(n.min(N))
    }

    /// Suspends the VF's controller; a suspended one stays suspended and
    /// succeeds (NVMe 2.1 p. 376). `EALREADY` from a controller that answers
    /// Controller Suspended instead.
    #[inline]
    pub fn suspend(&self, ty: SuspendType) -> Result {
        let t = match ty {
            SuspendType::Notify => bindings::nvme_lm_suspend_type_NVME_LM_SUSPEND_NOTIFY,
            SuspendType::Full => bindings::nvme_lm_suspend_type_NVME_LM_SUSPEND_FULL,
        };
        // SAFETY: `ptr` is a live handle.
        to_result(unsafe { bindings::nvme_lm_suspend(self.ptr.as_ptr(), t) })
    }

    /// Lets the PF go: the VF's driver is being removed while this handle
    /// may outlive its `remove()`. Every later command fails with
    /// `ENODEV`; dropping the handle still frees it.
    #[inline]
    pub fn detach(&self) {
        // SAFETY: By the type invariant `ptr` is a live handle; detaching
        // takes the service's own locks.
        unsafe { bindings::nvme_lm_detach(self.ptr.as_ptr()) };
    }

    /// Resumes the VF's controller. `EINVAL` if it was not suspended.
    #[inline]
    pub fn resume(&self) -> Result {
        // SAFETY: `ptr` is a live handle.
        to_result(unsafe { bindings::nvme_lm_resume(self.ptr.as_ptr()) })
    }

    /// Reads `len` bytes of the controller state at `offset` into the start
    /// of `buf`; returns whether the controller is suspended.
    #[inline]
    pub fn get_state(
        &self,
        csvi: u8,
        csuuidi: u8,
        offset: u64,
        buf: &mut KVVec<u8>,
        len: usize,
    ) -> Result<bool> {
        let len = check_len(len, buf.len())?;
        let mut suspended = false;
        // SAFETY: `ptr` is a live handle; `buf` holds at least `len` bytes of
        // kernel heap memory, borrowed mutably for the call.
        to_result(unsafe {
            bindings::nvme_lm_get_state(
                self.ptr.as_ptr(),
                csvi,
                csuuidi,
                offset,
                buf.as_mut_ptr().cast(),
                len,
                &mut suspended,
            )
        })?;
        Ok(suspended)
    }

    /// Loads `buf[..len]`, the piece of a state at `offset`, into the
    /// suspended controller. The caller validates the state beforehand.
    #[inline]
    pub fn set_state(
        &self,
        seq: Sequence,
        csvi: u8,
        csuuidi: u8,
        offset: u64,
        buf: &KVVec<u8>,
        len: usize,
    ) -> Result {
        let len = check_len(len, buf.len())?;
        // SAFETY: `ptr` is a live handle; `buf` holds at least `len` bytes of
        // kernel heap memory that the call only reads.
        to_result(unsafe {
            bindings::nvme_lm_set_state(
                self.ptr.as_ptr(),
                seq.raw(),
                csvi,
                csuuidi,
                offset,
                buf.as_ptr().cast(),
                len,
            )
        })
    }
}

impl Drop for Handle {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` is a live handle, released
        // exactly once, here; every `Cdq` holds an `Arc` of its handle, so
        // none is left.
        unsafe { bindings::nvme_lm_put(self.ptr.as_ptr()) };
    }
}

mod cdq;
pub use cdq::*;
