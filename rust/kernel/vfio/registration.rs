// SPDX-License-Identifier: GPL-2.0

//! The `struct pci_driver` of a vfio-pci variant driver.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::{
    options::Options,
    Device,
    PciDriver, //
};
use crate::{
    bindings,
    device,
    error::{
        from_result,
        to_result, //
    },
    pci,
    prelude::*,
    str::as_char_ptr_in_const_context,
    types::Opaque,
    ThisModule, //
};
use core::marker::PhantomData;

/// Registration of a vfio-pci variant driver with the PCI bus.
///
/// Every entry of the driver's ID table is override-only: the driver binds
/// a device only when the device's `driver_override` names it.
///
/// # Invariants
///
/// `drv` is registered with the PCI core from construction until drop;
/// its `dev_groups` are those of `options`, which outlives the registration
/// (fields drop after [`PinnedDrop::drop`] unregistered `drv`).
#[pin_data(PinnedDrop)]
pub struct Registration<T: PciDriver> {
    options: Options<T>,
    #[pin]
    drv: Opaque<bindings::pci_driver>,
    _t: PhantomData<T>,
}

// SAFETY: The registration is only read by the PCI core after creation.
unsafe impl<T: PciDriver> Send for Registration<T> {}

// SAFETY: As for `Send`.
unsafe impl<T: PciDriver> Sync for Registration<T> {}

impl<T: PciDriver> Registration<T> {
    /// vfio-pci-core's error handling, with the driver's `reset_done`.
    const ERR_HANDLERS: bindings::pci_error_handlers = bindings::pci_error_handlers {
        error_detected: Some(bindings::vfio_pci_core_aer_err_detected),
        reset_done: Some(Self::reset_done_callback),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// Called by the PCI core with a `pci_dev` bound to this driver.
    unsafe extern "C" fn reset_done_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: `pdev` is valid for the call.
        let core = unsafe { bindings::dev_get_drvdata(&raw mut (*pdev).dev) };
        if core.is_null() {
            return;
        }
        // SAFETY: A bound device's drvdata is its registered `Device<T>`,
        // whose `vdev` is the first member of the core at offset 0.
        T::reset_done(unsafe { Device::<T>::from_vdev(core.cast()) });
    }

    /// Registers the driver of `module`.
    pub fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let options = Options::<T>::new();
        // NULL if there are no options (or no tables: then `options?`
        // fails before `drv` is initialized).
        let dev_groups = options
            .as_ref()
            .map_or(core::ptr::null_mut(), Options::dev_groups);
        try_pin_init!(Self {
            options: options?,
            drv <- Opaque::try_ffi_init(move |ptr: *mut bindings::pci_driver| {
                // SAFETY: `ptr` is valid, pinned memory for a `pci_driver`,
                // which is all zeroes unless set here.
                unsafe {
                    ptr.write(core::mem::zeroed());
                    (*ptr).name = as_char_ptr_in_const_context(T::NAME);
                    (*ptr).probe = Some(Self::probe_callback);
                    (*ptr).remove = Some(Self::remove_callback);
                    (*ptr).id_table = T::ID_TABLE.as_ptr();
                    (*ptr).err_handler = &Self::ERR_HANDLERS;
                    (*ptr).driver_managed_dma = true;
                    // The PCI core copies them to the driver core's
                    // `dev_groups`.
                    (*ptr).dev_groups = dev_groups;
                }
                // SAFETY: `ptr` is a filled-in `pci_driver` that stays pinned
                // until `drop` unregisters it; `dev_groups`, in `options`,
                // outlives that.
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
        // SAFETY: `core` is registered; unregistering waits for its users.
        unsafe { bindings::vfio_pci_core_unregister_device(core) };
        // SAFETY: The device is unregistered, not released: the reference
        // taken at allocation is still ours, so its data lives.
        T::remove(unsafe { Device::<T>::from_vdev(core.cast()) }.data());
        // SAFETY: Dropping the reference taken at allocation releases the
        // device and the driver's data once nothing else holds it.
        unsafe {
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
