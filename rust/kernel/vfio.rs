// SPDX-License-Identifier: GPL-2.0

//! VFIO: PCI variant drivers built on vfio-pci-core.
//!
//! A variant driver binds a PCI function, registers it with VFIO through
//! vfio-pci-core and adds device-specific behaviour (for example live
//! migration) on top of vfio-pci's. This module provides:
//!
//! - [`PciDriver`]: what a variant driver implements;
//! - [`Device`]: the VFIO device, allocated by the C VFIO core with
//!   `struct vfio_pci_core_device` at offset 0 and the driver's data behind
//!   it, the layout vfio-pci-core requires (drvdata is the core device);
//! - [`Registration`]: the `struct pci_driver`, with `driver_managed_dma`
//!   and vfio-pci-core's error handlers, binding devices only through
//!   `driver_override`.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use crate::{
    bindings,
    device,
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
    ThisModule, //
};
use core::{
    marker::PhantomData,
    mem::{
        align_of,
        size_of,
        MaybeUninit, //
    },
};

/// A vfio-pci variant driver.
pub trait PciDriver: Sized + Send + Sync + 'static {
    /// Per-device data, created in probe and dropped when the VFIO device
    /// is released (after the last user closed it and the driver unbound).
    type Data: Send + Sync;

    /// Name of the driver, of its `struct pci_driver` and of its
    /// `vfio_device_ops` (vfio-pci-core also uses the latter to claim the
    /// VFs of a PF bound to this driver).
    const NAME: &'static CStr;

    /// Creates the device's data; the device is then registered with VFIO.
    fn probe(pdev: &pci::Device<device::Core<'_>>) -> Result<Self::Data>;
}

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
        close_device: Some(bindings::vfio_pci_core_close_device),
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
            Ok(0)
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
    fn probe(pdev: &pci::Device<device::Core<'_>>, data: T::Data) -> Result {
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

/// Registration of a vfio-pci variant driver with the PCI bus.
///
/// The driver has no device ID table: it binds a device only when the
/// device's `driver_override` names it.
///
/// # Invariants
///
/// `drv` is registered with the PCI core from construction until drop.
#[pin_data(PinnedDrop)]
pub struct Registration<T: PciDriver> {
    #[pin]
    drv: Opaque<bindings::pci_driver>,
    _t: PhantomData<T>,
}

// SAFETY: The registration is only read by the PCI core after creation.
unsafe impl<T: PciDriver> Send for Registration<T> {}

// SAFETY: As for `Send`.
unsafe impl<T: PciDriver> Sync for Registration<T> {}

impl<T: PciDriver> Registration<T> {
    /// Registers the driver of `module`.
    pub fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            drv <- Opaque::try_ffi_init(|ptr: *mut bindings::pci_driver| {
                // SAFETY: `ptr` is valid, pinned memory for a `pci_driver`,
                // which is all zeroes unless set here.
                unsafe {
                    ptr.write(core::mem::zeroed());
                    (*ptr).name = as_char_ptr_in_const_context(T::NAME);
                    (*ptr).probe = Some(Self::probe_callback);
                    (*ptr).remove = Some(Self::remove_callback);
                    (*ptr).err_handler = &raw const bindings::vfio_pci_core_err_handlers;
                    (*ptr).driver_managed_dma = true;
                }
                // SAFETY: `ptr` is a filled-in `pci_driver` that stays pinned
                // until `drop` unregisters it.
                to_result(unsafe {
                    bindings::__pci_register_driver(
                        ptr,
                        module.as_ptr(),
                        as_char_ptr_in_const_context(T::NAME),
                    )
                })
            }),
            _t: PhantomData,
        })
    }

    extern "C" fn probe_callback(
        pdev: *mut bindings::pci_dev,
        _id: *const bindings::pci_device_id,
    ) -> c_int {
        // SAFETY: The PCI core calls probe with a valid `pci_dev` and the
        // device lock held, which is what the `Core` context means.
        let pdev = unsafe { &*pdev.cast::<pci::Device<device::Core<'_>>>() };
        from_result(|| {
            let data = T::probe(pdev)?;
            Device::<T>::probe(pdev, data)?;
            Ok(0)
        })
    }

    extern "C" fn remove_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: The PCI core calls remove with the `pci_dev` we probed.
        let dev = unsafe { &raw mut (*pdev).dev };
        // SAFETY: Probe set drvdata to our registered vfio-pci-core device.
        let core =
            unsafe { bindings::dev_get_drvdata(dev) }.cast::<bindings::vfio_pci_core_device>();
        // SAFETY: `core` is registered; unregistering waits for its users,
        // then the reference taken at allocation is dropped, which releases
        // the device and the driver's data.
        unsafe {
            bindings::vfio_pci_core_unregister_device(core);
            bindings::dev_set_drvdata(dev, core::ptr::null_mut());
            bindings::put_device(&raw mut (*core).vdev.device);
        }
    }
}

#[pinned_drop]
impl<T: PciDriver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant `drv` is registered.
        unsafe { bindings::pci_unregister_driver(self.drv.get()) };
    }
}
