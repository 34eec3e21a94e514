// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm dma-log`: VFIO DMA logging of one VF, no VMM. The userspace
//! guest of the `dma_logging` suite ([`crate::selftest::dma_logging`])
//! runs on the VF in an arena whose layout it knows; logging is started
//! over the arena, the guest writes then reads a few blocks, and one
//! DMA_LOGGING_REPORT is printed page by page, each page named (read
//! buffer of LBA n, I/O CQ q page p...) and compared with the pages the
//! VF must have written: the read data and the CQ pages the writes' and
//! reads' completions went to.

use crate::dma::Arena;
use crate::selftest::dma_logging::{
    self as dl,
    Labels,
    DEPTH,
    QUEUES, //
};
use crate::selftest::guest::Guest;
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::collections::BTreeSet;
use std::path::Path;
use std::rc::Rc;

/// The first block written and read (the VF's namespace is scratch).
pub const FIRST_LBA: u64 = 8000;

/// The most reads (and writes): each queue's completions of both, round
/// robin over the queues, fit in its CQ without wrapping.
pub const MAX_READS: usize = QUEUES as usize * (DEPTH as usize / 2 - 1);

/// Runs the check on the VF whose VFIO cdev is `cdev` (bound to
/// nvme-vfio-pci): prints the report; fails if a page was missing or
/// unexpected, or anything on the way failed.
pub fn run(cdev: &Path, reads: usize, page_size: u64) -> Result<(), String> {
    if !(1..=MAX_READS).contains(&reads) {
        return Err(format!("--reads {reads}: 1 to {MAX_READS}"));
    }
    let iommufd = Iommufd::open().map_err(dl::e)?;
    let arena = dl::arena(&iommufd)?;
    let dev = Device::open(cdev, &iommufd).map_err(|x| format!("{}: {x}", cdev.display()))?;
    let r = session(&dev, &arena, reads, page_size);
    // Stops the controller (and any logging) before the arena goes away.
    let _ = dev.reset();
    r
}

fn session(dev: &Device, arena: &Rc<Arena>, reads: usize, page_size: u64) -> Result<(), String> {
    let mut g = dl::guest(dev, arena)?;
    let mut labels = Labels::of(&g);
    let tracked = dl::range(arena);
    let (base, len) = tracked;
    let granted = dev.dma_logging_start(page_size, &[tracked]).map_err(|x| {
        let hint = match crate::migration::errno_of(&x) {
            Some(libc::ENOTTY) => {
                " (no DMA logging: is the VF bound to nvme-vfio-pci, its PF tracking memory changes?)"
            }
            _ => "",
        };
        format!("{x}{hint}")
    })?;
    println!(
        "DMA logging over [{base:#x}, {:#x}): page_size {page_size} asked, {granted} granted",
        base + len
    );
    let r = log_io(dev, &mut g, &mut labels, tracked, reads, granted);
    // STOP whatever happened; the first failure is the one reported.
    let stop = dev.dma_logging_stop().map_err(dl::e);
    r.and(stop)
}

/// Writes then reads `reads` blocks, REPORTs the arena in units of
/// `unit` and prints it; fails if it could not or if the report was not
/// exactly what the VF wrote.
fn log_io(
    dev: &Device,
    g: &mut Guest,
    labels: &mut Labels,
    tracked: (u64, u64),
    reads: usize,
    unit: u64,
) -> Result<(), String> {
    let lbas: Vec<u64> = (FIRST_LBA..).take(reads).collect();
    let mark = dl::cq_mark(g);
    dl::write_blocks(g, &lbas, labels)?;
    let data = dl::read_blocks(g, &lbas, &[], labels)?;
    let cq = dl::cq_pages(g, &mark, 2 * reads)?;
    println!(
        "wrote then read {reads} blocks of {} bytes from LBA {FIRST_LBA}",
        g.lba_size
    );
    let written: BTreeSet<u64> = data.union(&cq).copied().collect();
    let want = dl::units(&written, tracked.0, unit);
    let got = dl::report(dev, tracked, unit)?;
    for &u in &got {
        let tag = if want.contains(&u) {
            ""
        } else {
            "  UNEXPECTED"
        };
        println!("dirty {}{tag}", labels.describe(u, unit));
    }
    let missing: Vec<u64> = want.difference(&got).copied().collect();
    for &u in &missing {
        println!("missing {}", labels.describe(u, unit));
    }
    let unexpected = got.difference(&want).count();
    println!(
        "dirty pages: {} (expected {}, missing {}, unexpected {unexpected})",
        got.len(),
        want.len(),
        missing.len()
    );
    if missing.is_empty() && unexpected == 0 {
        Ok(())
    } else {
        Err(format!(
            "DMA_LOGGING_REPORT: {} pages missing, {unexpected} unexpected",
            missing.len()
        ))
    }
}
