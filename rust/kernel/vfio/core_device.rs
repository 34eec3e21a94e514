// SPDX-License-Identifier: GPL-2.0

//! The VFIO device of a vfio-pci variant driver: allocated by the C VFIO
//! core with `struct vfio_pci_core_device` at offset 0 and the driver's data
//! behind it, with vfio-pci-core's operations and the driver's migration
//! operations.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use super::{
    DirtyBitmap,
    Flags,
    PciDriver,
    Ranges,
    State, //
};
use crate::{
    bindings, device,
    error::{
        from_err_ptr,
        from_result,
        to_result,
        Result, //
    },
    pci,
    prelude::*,
    str::as_char_ptr_in_const_context,
    types::Opaque,
};
use core::mem::{
    align_of,
    size_of,
    MaybeUninit, //
};

/// The VFIO device of a variant driver.
///
/// # Invariants
///
/// Allocated by `_vfio_alloc_device()` (zeroed, `core` initialized by
/// `vfio_pci_core_init_dev()`); `data` is initialized if and only if
/// `has_data` is set, and then dropped exactly once, on release.
#[repr(C)]
pub struct Device<T: PciDriver> {
    core: Opaque<bindings::vfio_pci_core_device>,
    has_data: bool,
    data: MaybeUninit<T::Data>,
}

impl<T: PciDriver> Device<T> {
    // SAFETY: All-zero is a valid `vfio_device_ops`: no name, no callbacks.
    const ZEROED: bindings::vfio_device_ops = unsafe { core::mem::zeroed() };

    /// The operations: vfio-pci-core's, with this driver's open and release.
    const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        // CAST: the C field is `char *`, but the VFIO core never writes it.
        name: as_char_ptr_in_const_context(T::NAME).cast_mut(),
        init: Some(bindings::vfio_pci_core_init_dev),
        release: Some(Self::release_callback),
        open_device: Some(Self::open_callback),
        close_device: Some(Self::close_callback),
        ioctl: Some(bindings::vfio_pci_core_ioctl),
        get_region_info_caps: Some(bindings::vfio_pci_ioctl_get_region_info),
        device_feature: Some(bindings::vfio_pci_core_ioctl_feature),
        read: Some(bindings::vfio_pci_core_read),
        write: Some(bindings::vfio_pci_core_write),
        mmap: Some(bindings::vfio_pci_core_mmap),
        request: Some(bindings::vfio_pci_core_request),
        match_: Some(bindings::vfio_pci_core_match),
        match_token_uuid: Some(bindings::vfio_pci_core_match_token_uuid),
        #[cfg(CONFIG_IOMMUFD)]
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        #[cfg(CONFIG_IOMMUFD)]
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        #[cfg(CONFIG_IOMMUFD)]
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        #[cfg(CONFIG_IOMMUFD)]
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        ..Self::ZEROED
    };

    /// The migration operations, used if the driver implements them.
    const MIG_OPS: bindings::vfio_migration_ops = bindings::vfio_migration_ops {
        migration_set_state: Some(Self::set_state_callback),
        migration_get_state: Some(Self::get_state_callback),
        migration_get_data_size: Some(Self::data_size_callback),
    };

    /// [`Self::MIG_OPS`] if the driver implements migration: decided at
    /// compile time, so a driver without it never references the
    /// trampolines (whose trait defaults are build errors).
    const MIG_OPS_IF_ANY: Option<&'static bindings::vfio_migration_ops> =
        if T::HAS_MIGRATION_SET_STATE {
            Some(&Self::MIG_OPS)
        } else {
            None
        };

    /// The DMA logging operations, used if the driver implements them.
    const LOG_OPS: bindings::vfio_log_ops = bindings::vfio_log_ops {
        log_start: Some(Self::log_start_callback),
        log_stop: Some(Self::log_stop_callback),
        log_read_and_clear: Some(Self::log_read_and_clear_callback),
    };

    /// [`Self::LOG_OPS`] if the driver implements DMA logging (decided at
    /// compile time, as [`Self::MIG_OPS_IF_ANY`]).
    /// Without `CONFIG_IOMMUFD_DRIVER` the core cannot report a bitmap.
    const LOG_OPS_IF_ANY: Option<&'static bindings::vfio_log_ops> =
        if T::HAS_LOG_START && cfg!(CONFIG_IOMMUFD_DRIVER) {
            Some(&Self::LOG_OPS)
        } else {
            None
        };

    /// # Safety
    ///
    /// `vdev` must be the `vdev` member of the `core` of a live `Device<T>`
    /// whose data is initialized (it is from registration to release).
    pub(super) unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: `core`, whose first member is `vdev`, is at offset 0 of a
        // `Device<T>` (`#[repr(C)]`), which lives as long as `vdev`.
        unsafe { &*vdev.cast::<Self>() }
    }

    fn vdev(&self) -> *mut bindings::vfio_device {
        self.core.get().cast()
    }

    /// The PCI function's device, for messages.
    pub fn as_dev(&self) -> &device::Device {
        // SAFETY: `core` is initialized: `pdev` is the bound PCI function,
        // which outlives the VFIO device.
        unsafe { device::Device::from_raw(&raw mut (*(*self.core.get()).pdev).dev) }
    }

    /// The next state on the path from `cur` to `new` the VFIO core defines
    /// for the device's migration features (`vfio_mig_get_next_state()`);
    /// `EINVAL` if `new` cannot be reached.
    pub fn next_state(&self, cur: State, new: State) -> Result<State> {
        if cur == State::Error {
            // The core's table has no arc out of ERROR: only reset leaves it.
            return Err(EINVAL);
        }
        let mut next = 0;
        // SAFETY: `vdev()` is a registered VFIO device with migration ops.
        to_result(unsafe {
            bindings::vfio_mig_get_next_state(self.vdev(), cur as u32, new as u32, &mut next)
        })?;
        State::from_raw(next)
    }

    /// Whether the user opted in to `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2`
    /// (the core clears it on the last close).
    pub fn precopy_info_v2(&self) -> bool {
        // SAFETY: `vdev()` is valid; the core writes the flag under the
        // device's open lock, a racy read sees either value.
        unsafe { core::ptr::read_volatile(&raw const (*self.vdev()).precopy_info_v2) != 0 }
    }

    /// The driver's data of this device.
    pub fn data(&self) -> &T::Data {
        // SAFETY: A `&Device<T>` is only handed out once `has_data` is set
        // (by probe, before registration), and the data lives until release.
        unsafe { self.data.assume_init_ref() }
    }

    /// # Safety
    ///
    /// `vdev` must be the `vdev` member of the `core` of a live `Device<T>`.
    unsafe extern "C" fn open_callback(vdev: *mut bindings::vfio_device) -> c_int {
        // `vdev` is the first member of `vfio_pci_core_device`.
        let core = vdev.cast::<bindings::vfio_pci_core_device>();
        from_result(|| {
            // SAFETY: `core` is a live, registered vfio-pci-core device.
            to_result(unsafe { bindings::vfio_pci_core_enable(core) })?;
            // SAFETY: As above; `vfio_pci_core_enable()` succeeded.
            unsafe { bindings::vfio_pci_core_finish_enable(core) };
            // SAFETY: By the function's safety requirement; data lives
            // until release, which comes after the last close.
            T::open_device(unsafe { Self::from_vdev(vdev) });
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// `vdev` must be the `vdev` member of the `core` of a live `Device<T>`.
    unsafe extern "C" fn close_callback(vdev: *mut bindings::vfio_device) {
        // SAFETY: By the function's safety requirement; data lives until
        // release, which comes after the last close.
        T::close_device(unsafe { Self::from_vdev(vdev) });
        // SAFETY: `vdev` is an open vfio-pci-core device.
        unsafe { bindings::vfio_pci_core_close_device(vdev) };
    }

    /// # Safety
    ///
    /// Called by the VFIO core on a registered `Device<T>` with migration.
    unsafe extern "C" fn set_state_callback(
        vdev: *mut bindings::vfio_device,
        new: bindings::vfio_device_mig_state,
    ) -> *mut bindings::file {
        // SAFETY: By the function's safety requirement.
        let this = unsafe { Self::from_vdev(vdev) };
        match State::from_raw(new).and_then(|new| T::migration_set_state(this, new)) {
            Ok(Some(file)) => file.into_raw(),
            Ok(None) => core::ptr::null_mut(),
            // SAFETY: `ERR_PTR()` only encodes the errno.
            // CAST: an errno fits a `long`.
            Err(e) => unsafe { bindings::ERR_PTR(e.to_errno() as c_long) }.cast(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core on a registered `Device<T>` with migration,
    /// with a valid `cur`.
    unsafe extern "C" fn get_state_callback(
        vdev: *mut bindings::vfio_device,
        cur: *mut bindings::vfio_device_mig_state,
    ) -> c_int {
        // SAFETY: By the function's safety requirement.
        let this = unsafe { Self::from_vdev(vdev) };
        from_result(|| {
            let state = T::migration_get_state(this)?;
            // SAFETY: `cur` is valid for writes.
            unsafe { *cur = state as u32 };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFIO core on a registered `Device<T>` with migration,
    /// with a valid `len`.
    unsafe extern "C" fn data_size_callback(
        vdev: *mut bindings::vfio_device,
        len: *mut c_ulong,
    ) -> c_int {
        // SAFETY: By the function's safety requirement.
        let this = unsafe { Self::from_vdev(vdev) };
        from_result(|| {
            let size = T::migration_data_size(this)?;
            // SAFETY: `len` is valid for writes.
            unsafe { *len = c_ulong::try_from(size)? };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFIO core on a registered `Device<T>` with log ops,
    /// with the interval tree of `nnodes` ranges it built and a valid
    /// `page_size`, both for the duration of the call.
    unsafe extern "C" fn log_start_callback(
        vdev: *mut bindings::vfio_device,
        ranges: *mut bindings::rb_root_cached,
        nnodes: u32,
        page_size: *mut u64,
    ) -> c_int {
        // SAFETY: By the function's safety requirement.
        let this = unsafe { Self::from_vdev(vdev) };
        from_result(|| {
            // SAFETY: `ranges` is the core's tree of `nnodes` ranges, used
            // only within this call.
            let mut ranges = unsafe { Ranges::from_raw(ranges, nnodes) }.ok_or(EINVAL)?;
            // SAFETY: `page_size` is valid for reads and writes.
            let mut size = unsafe { *page_size };
            T::log_start(this, &mut ranges, &mut size)?;
            // SAFETY: As above.
            unsafe { *page_size = size };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFIO core on a registered `Device<T>` with log ops.
    unsafe extern "C" fn log_stop_callback(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: By the function's safety requirement.
        let this = unsafe { Self::from_vdev(vdev) };
        from_result(|| T::log_stop(this).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the VFIO core on a registered `Device<T>` with log ops,
    /// with the report's bitmap, which covers `[iova, iova + length)`, for
    /// the duration of the call.
    unsafe extern "C" fn log_read_and_clear_callback(
        vdev: *mut bindings::vfio_device,
        iova: c_ulong,
        length: c_ulong,
        dirty: *mut bindings::iova_bitmap,
    ) -> c_int {
        // SAFETY: By the function's safety requirement.
        let this = unsafe { Self::from_vdev(vdev) };
        from_result(|| {
            // CAST: lossless, `usize` is at most 64 bits (see `dma_logging`).
            let (iova, length) = (iova as u64, length as u64);
            // SAFETY: `dirty` is the core's bitmap of this window, used only
            // within this call.
            let mut dirty = unsafe { DirtyBitmap::from_raw(dirty, iova, length) }.ok_or(EINVAL)?;
            T::log_read_and_clear(this, &mut dirty).map(|()| 0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFIO core once, when the last reference to `vdev`, the
    /// `vdev` member of the `core` of a `Device<T>`, goes away.
    unsafe extern "C" fn release_callback(vdev: *mut bindings::vfio_device) {
        // `core` (and its first member `vdev`) is at offset 0 of `Device<T>`.
        let this = vdev.cast::<Self>();
        // SAFETY: `this` is a `Device<T>` that nothing else references any
        // more; by the type invariant `data` is initialized iff `has_data`.
        unsafe {
            if (*this).has_data {
                (*this).has_data = false;
                (*this).data.assume_init_drop();
            }
        }
        // SAFETY: `vdev` was initialized by `vfio_pci_core_init_dev()`.
        unsafe { bindings::vfio_pci_core_release_dev(vdev) };
    }

    /// Allocates the VFIO device for `pdev` with `data`, then registers it.
    pub(super) fn probe(pdev: &pci::Device<device::Core<'_>>, data: T::Data) -> Result {
        build_assert!(align_of::<Self>() <= 8, "kvzalloc() aligns to 8 bytes");
        let dev: &device::Device<device::Core<'_>> = pdev.as_ref();
        // SAFETY: `dev.as_raw()` is the bound device of `pdev`; `OPS` is a
        // `'static` ops table whose `init` initializes a vfio-pci-core
        // device at offset 0 of an allocation of `size_of::<Self>()` bytes.
        let vdev = from_err_ptr(unsafe {
            bindings::_vfio_alloc_device(size_of::<Self>(), dev.as_raw(), &Self::OPS)
        })?;
        let this = vdev.cast::<Self>();
        // SAFETY: `this` is a zeroed `Device<T>` allocation that only we
        // reference yet; `data` is written before `has_data` is set.
        unsafe {
            (*this).data.write(data);
            (*this).has_data = true;
        }
        // SAFETY: `data` was just initialized; the writes below through
        // `vdev` touch only the `core` field.
        let data = unsafe { (*this).data.assume_init_ref() };
        let flags = T::migration_flags(data);
        if let Some(ops) = Self::MIG_OPS_IF_ANY.filter(|_| flags.contains(Flags::STOP_COPY)) {
            // SAFETY: Not registered yet: the migration ops and flags may
            // be set; `ops` is a `'static` table.
            unsafe {
                (*vdev).mig_ops = ops;
                (*vdev).migration_flags = flags.bits();
            }
        }
        if let Some(ops) = Self::LOG_OPS_IF_ANY.filter(|_| T::dma_logging(data)) {
            // SAFETY: Not registered yet: the log ops may be set; `ops` is a
            // `'static` table with all three callbacks, as vfio-pci-core
            // requires.
            unsafe { (*vdev).log_ops = ops };
        }
        let core = vdev.cast::<bindings::vfio_pci_core_device>();
        // SAFETY: vfio-pci-core requires drvdata to be the core device
        // before registration; `dev` is bound to us (Core context).
        unsafe { bindings::dev_set_drvdata(dev.as_raw(), core.cast()) };
        // SAFETY: `core` is an initialized vfio-pci-core device of `pdev`.
        let ret = to_result(unsafe { bindings::vfio_pci_core_register_device(core) });
        if ret.is_err() {
            // SAFETY: As above; the device was not registered, so this drops
            // the only reference and releases it (and the data).
            unsafe {
                bindings::dev_set_drvdata(dev.as_raw(), core::ptr::null_mut());
                bindings::put_device(&raw mut (*vdev).device);
            }
        }
        ret
    }
}
