// SPDX-License-Identifier: GPL-2.0

//! Plain I/O through a VFIO device: whatever driver serves the VF, the
//! userspace client must enable it, create queues, write, flush and read
//! back its data.

use super::guest::Guest;
use super::Ktap;
use crate::dma::Arena;
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::path::Path;

/// Runs the suite on `cdev`; returns the number of failed cases.
pub fn run(cdev: &Path) -> usize {
    let mut k = Ktap::begin("vfio_io", 1, None);
    k.case("write_flush_read_verify", || {
        let e = |x: std::io::Error| x.to_string();
        let iommufd = Iommufd::open().map_err(e)?;
        let arena = Arena::new(&iommufd, 16 << 20, 0x4_0000_0000).map_err(e)?;
        let dev = Device::open(cdev, &iommufd).map_err(e)?;
        let mut g = Guest::start(&dev, arena, 2, 32).map_err(e)?;
        for batch in (3000..3064u64).collect::<Vec<_>>().chunks(16) {
            for &lba in batch {
                g.submit_write((lba % 2) as usize, lba, true).map_err(e)?;
            }
            g.drain(20_000).map_err(e)?;
        }
        g.flush(0).map_err(e)?;
        g.verify_all().map_err(e)?;
        g.sq_heads_at_tail()?;
        println!(
            "# 64 blocks written, flushed and verified through {}",
            cdev.display()
        );
        Ok(())
    });
    k.failed()
}
