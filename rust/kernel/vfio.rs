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
//! - [`Registration`]: the `struct pci_driver`, with `driver_managed_dma`,
//!   vfio-pci-core's error handling plus the driver's `reset_done`, and an
//!   ID table of override-only entries ([`DeviceId`]): devices bind only
//!   through `driver_override`, and the module gets `vfio_pci:` aliases;
//! - live migration (uAPI v2): the driver's [`PciDriver::migration_flags`]
//!   and `migration_*` methods become the device's `vfio_migration_ops`;
//!   [`migration::State`] is a device state and [`DataFile`] the `data_fd`
//!   of a saving or resuming session.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

pub mod data_file;
pub mod migration;

pub use data_file::{
    DataFile,
    DataFileOps,
    Direction, //
};
pub use migration::{
    Flags,
    PrecopyInfo,
    State, //
};

use crate::{
    bindings,
    device,
    device_id::{
        RawDeviceId,
        RawDeviceIdIndex, //
    },
    error::{
        from_err_ptr,
        from_result,
        to_result,
        Result, //
        VTABLE_DEFAULT_ERROR,
    },
    module::ModuleMetadata,
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

/// A PCI device ID that matches only through `driver_override`
/// (`PCI_DRIVER_OVERRIDE_DEVICE_VFIO`): modpost turns it into a `vfio_pci:`
/// module alias, which tools such as libvirt and driverctl look up.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct DeviceId(bindings::pci_device_id);

impl DeviceId {
    const ANY: u32 = !0;

    /// Devices of a class (`class & class_mask` compared), any vendor.
    pub const fn class(class: u32, class_mask: u32) -> Self {
        Self(bindings::pci_device_id {
            vendor: Self::ANY,
            device: Self::ANY,
            subvendor: Self::ANY,
            subdevice: Self::ANY,
            class,
            class_mask,
            driver_data: 0,
            override_only: bindings::PCI_ID_F_VFIO_DRIVER_OVERRIDE,
        })
    }

    /// One vendor's device.
    pub const fn device(vendor: u16, device: u16) -> Self {
        Self(bindings::pci_device_id {
            vendor: vendor as u32,
            device: device as u32,
            subvendor: Self::ANY,
            subdevice: Self::ANY,
            class: 0,
            class_mask: 0,
            driver_data: 0,
            override_only: bindings::PCI_ID_F_VFIO_DRIVER_OVERRIDE,
        })
    }
}

// SAFETY: `DeviceId` is a transparent `struct pci_device_id` that holds no
// other data.
unsafe impl RawDeviceId for DeviceId {
    type RawType = bindings::pci_device_id;
}

// SAFETY: `DRIVER_DATA_OFFSET` is the offset of the `driver_data` field.
unsafe impl RawDeviceIdIndex for DeviceId {
    const DRIVER_DATA_OFFSET: usize = core::mem::offset_of!(bindings::pci_device_id, driver_data);
}

/// The ID table of a variant driver.
pub type IdTable = &'static dyn crate::device_id::IdTable<DeviceId, ()>;

/// Creates a variant driver's [`IdTable`] and its module aliases.
///
/// # Examples
///
/// ```ignore
/// kernel::vfio_pci_device_table!(
///     ID_TABLE,
///     [kernel::vfio::DeviceId::class(0x010802, 0xffffff)]
/// );
/// ```
#[macro_export]
macro_rules! vfio_pci_device_table {
    ($table_name:ident, [$($id:expr),* $(,)?]) => {
        $crate::module_device_table!(
            "pci", $crate::vfio::DeviceId, $table_name, @none, [$($id),*]
        );
    };
}

/// A vfio-pci variant driver.
///
/// Implementing [`PciDriver::migration_set_state`] (and the other
/// `migration_*` methods) gives the driver's devices live migration when
/// [`PciDriver::migration_flags`] says so for the device.
#[vtable]
pub trait PciDriver: Sized + Send + Sync + 'static {
    /// Per-device data, created in probe and dropped when the VFIO device
    /// is released (after the last user closed it and the driver unbound).
    type Data: Send + Sync;

    /// The module of the driver.
    type OwnerModule: ModuleMetadata;

    /// Name of the driver, of its `struct pci_driver` and of its
    /// `vfio_device_ops` (vfio-pci-core also uses the latter to claim the
    /// VFs of a PF bound to this driver).
    const NAME: &'static CStr;

    /// The devices the driver may bind (through `driver_override` only).
    const ID_TABLE: IdTable;

    /// Creates the device's data; the device is then registered with VFIO.
    fn probe(pdev: &pci::Device<device::Core<'_>>) -> Result<Self::Data>;

    /// The migration features of a device, decided once, right after
    /// probe; [`Flags::NONE`] registers it without migration.
    fn migration_flags(_data: &Self::Data) -> Flags {
        Flags::NONE
    }

    /// Moves the device to `new`, an arc the uAPI defines; returns the
    /// data file of a session this arc opens. Called by the VFIO core with
    /// any state the device supports: the driver walks the path with
    /// [`Device::next_state`].
    fn migration_set_state(_dev: &Device<Self>, _new: State) -> Result<Option<DataFile>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The device's current migration state.
    fn migration_get_state(_dev: &Device<Self>) -> Result<State> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The bytes a STOP_COPY session would stream now.
    fn migration_data_size(_dev: &Device<Self>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The last user closed the device (before vfio-pci-core disables it):
    /// migration sessions end here.
    fn close_device(_dev: &Device<Self>) {}

    /// The PCI function was reset (`VFIO_DEVICE_RESET`, an FLR through
    /// config space, a bus reset).
    fn reset_done(_dev: &Device<Self>) {}
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

    /// # Safety
    ///
    /// `vdev` must be the `vdev` member of the `core` of a live `Device<T>`
    /// whose data is initialized (it is from registration to release).
    unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
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
        // SAFETY: `data` was just initialized.
        let flags = T::migration_flags(unsafe { (*this).data.assume_init_ref() });
        if let Some(ops) = Self::MIG_OPS_IF_ANY.filter(|_| flags.contains(Flags::STOP_COPY)) {
            // SAFETY: Not registered yet: the migration ops and flags may
            // be set; `ops` is a `'static` table.
            unsafe {
                (*vdev).mig_ops = ops;
                (*vdev).migration_flags = flags.bits();
            }
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
/// Every entry of the driver's ID table is override-only: the driver binds
/// a device only when the device's `driver_override` names it.
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
        try_pin_init!(Self {
            drv <- Opaque::try_ffi_init(|ptr: *mut bindings::pci_driver| {
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
