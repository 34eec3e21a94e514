// SPDX-License-Identifier: GPL-2.0

//! Override-only PCI device IDs of vfio-pci variant drivers.
//!
//! C header: [`include/linux/device-id/pci.h`](srctree/include/linux/device-id/pci.h)

use crate::{
    bindings,
    device_id::{
        RawDeviceId,
        RawDeviceIdIndex, //
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
