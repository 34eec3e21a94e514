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
//!   of a saving or resuming session;
//! - device DMA logging: the driver's [`PciDriver::log_start`],
//!   `log_stop` and `log_read_and_clear` become the `vfio_log_ops` of the
//!   devices [`PciDriver::dma_logging`] accepts;
//! - per-device options: each of the driver's [`PciDriver::OPTIONS`] is a
//!   boolean sysfs file of every device it binds, read and written through
//!   [`PciDriver::option_get`] and [`PciDriver::option_set`].
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

mod core_device;
pub mod data_file;
mod device_id;
pub mod dma_logging;
pub mod migration;
mod options;
mod registration;

pub use core_device::Device;
pub use data_file::{
    DataFile,
    DataFileOps,
    Direction, //
};
pub use device_id::{
    DeviceId,
    IdTable, //
};
pub use dma_logging::{
    DirtyBitmap,
    IovaRange,
    Ranges, //
};
pub use migration::{
    Flags,
    PrecopyInfo,
    State, //
};
pub use options::MAX_OPTIONS;
pub use registration::Registration;

use crate::{
    device,
    error::VTABLE_DEFAULT_ERROR,
    module::ModuleMetadata,
    pci,
    prelude::*, //
};

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

    /// Whether the device offers DMA logging, decided once, right after
    /// probe, for a driver that implements [`PciDriver::log_start`].
    fn dma_logging(_data: &Self::Data) -> bool {
        false
    }

    /// Starts logging the device's DMA writes into `ranges` (which the
    /// driver may [`Ranges::combine`]) at about `page_size` bytes; sets
    /// `page_size` to the granularity it logs at. Another start before a
    /// stop must fail.
    fn log_start(_dev: &Device<Self>, _ranges: &mut Ranges<'_>, _page_size: &mut u64) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Stops logging; fails if logging was not started.
    fn log_stop(_dev: &Device<Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Marks in `dirty` what the device wrote inside `dirty.window()` since
    /// the last report of it, and forgets it (read and clear).
    fn log_read_and_clear(_dev: &Device<Self>, _dirty: &mut DirtyBitmap<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The driver's boolean per-device options (at most [`MAX_OPTIONS`]):
    /// each a sysfs file (mode 0644) in the directory of every device it
    /// binds, created after probe and removed before remove (the driver's
    /// `dev_groups`), reading `"0\n"` or `"1\n"` and taking what
    /// `kstrtobool()` takes. Option `index` is `OPTIONS[index]`.
    const OPTIONS: &'static [&'static CStr] = &[];

    /// The value of option `index` of a bound device.
    fn option_get(_data: &Self::Data, _index: usize) -> bool {
        false
    }

    /// Sets option `index` of a bound device; an error is returned to the
    /// writer (e.g. `EBUSY` while the device is open).
    fn option_set(_dev: &Device<Self>, _index: usize, _value: bool) -> Result {
        Err(EINVAL)
    }

    /// The first user opened the device (vfio-pci-core enabled it; the
    /// open cannot fail any more): [`PciDriver::close_device`] follows.
    fn open_device(_dev: &Device<Self>) {}

    /// The last user closed the device (before vfio-pci-core disables it):
    /// migration sessions end here.
    fn close_device(_dev: &Device<Self>) {}

    /// The PCI function was reset (`VFIO_DEVICE_RESET`, an FLR through
    /// config space, a bus reset).
    fn reset_done(_dev: &Device<Self>) {}

    /// The driver is being removed from the PCI function and the device
    /// has no user left. The data may outlive `remove()` (its last
    /// reference can go later): release here what ties it to other
    /// devices.
    fn remove(_data: &Self::Data) {}
}
