// SPDX-License-Identifier: GPL-2.0

//! Host-side tooling for nvme-vfio.
//!
//! [`codec`] is the kernel driver's own wire-format code
//! (`drivers/vfio/pci/nvme/codec`), compiled here from the same files.
//! [`vfio`] opens a VFIO device cdev and binds it to iommufd.

#[path = "../../../drivers/vfio/pci/nvme"]
mod driver {
    pub mod codec;
}
pub use driver::codec;

#[cfg(test)]
#[path = "../../../drivers/vfio/pci/nvme/codec/cases.rs"]
mod cases;
#[cfg(test)]
mod codec_tests;

pub mod bench;
pub mod caps;
pub mod dma;
pub mod dma_log_cmd;
pub mod fuzz;
pub mod inspect;
pub mod irq;
pub mod kmsg;
pub mod media;
pub mod media_stream;
pub mod migrate;
pub mod migration;
pub mod nvme;
pub mod passthru;
pub mod selftest;
pub mod sys;
pub mod vfio;
