// SPDX-License-Identifier: GPL-2.0

//! One NVMe controller behind a VFIO device: registers, enable/disable,
//! and synchronous admin commands on a [`QueuePair`] the caller owns.

use super::queue::{
    Doorbells,
    QueuePair, //
};
use super::regs;
use super::sqe::{
    admin_opcode,
    Cqe,
    Sqe, //
};
use crate::dma::Arena;
use crate::vfio::{
    Device,
    Mmio, //
};
use std::io;
use std::rc::Rc;
use std::time::{
    Duration,
    Instant, //
};

/// Time allowed for one admin command.
pub const ADMIN_TIMEOUT_MS: u64 = 10_000;

/// A controller's registers and doorbells.
pub struct Controller {
    bar: Rc<Mmio>,
    cap: u64,
    /// Admin completions that arrived while waiting for another command
    /// (Asynchronous Event Requests), oldest first.
    stashed: std::cell::RefCell<Vec<Cqe>>,
}

fn err(msg: String) -> io::Error {
    io::Error::other(msg)
}

impl Controller {
    /// Opens BAR0 of `dev`.
    pub fn new(dev: &Device) -> io::Result<Self> {
        let bar = Rc::new(dev.bar(crate::sys::VFIO_PCI_BAR0_REGION_INDEX)?);
        let cap = bar.read64(regs::CAP)?;
        Ok(Self {
            bar,
            cap,
            stashed: std::cell::RefCell::new(Vec::new()),
        })
    }

    /// CAP.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Register access.
    pub fn bar(&self) -> &Mmio {
        &self.bar
    }

    /// This controller's doorbells.
    pub fn doorbells(&self) -> Doorbells {
        Doorbells {
            bar: Rc::clone(&self.bar),
            stride: regs::cap_doorbell_stride(self.cap),
        }
    }

    fn wait_ready(&self, ready: bool) -> io::Result<()> {
        let limit = Duration::from_millis(regs::cap_timeout_ms(self.cap));
        let start = Instant::now();
        loop {
            let csts = self.bar.read32(regs::CSTS)?;
            if csts & regs::CSTS_CFS != 0 {
                return Err(err(format!("controller fatal status (CSTS {csts:#x})")));
            }
            if (csts & regs::CSTS_RDY != 0) == ready {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(err(format!(
                    "CSTS.RDY did not become {} in {} ms (CSTS {csts:#x})",
                    u8::from(ready),
                    limit.as_millis()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Clears CC.EN and waits until the controller is idle.
    pub fn disable(&self) -> io::Result<()> {
        self.bar.write32(regs::CC, 0)?;
        self.wait_ready(false)
    }

    /// Programs the admin queues of `admin` and enables the controller with
    /// 4 KiB pages and the NVM command set.
    pub fn enable(&self, admin: &QueuePair) -> io::Result<()> {
        let d = u32::from(admin.depth() - 1);
        self.bar.write32(regs::AQA, (d << 16) | d)?;
        self.bar.write64(regs::ASQ, admin.sq_iova())?;
        self.bar.write64(regs::ACQ, admin.cq_iova())?;
        self.bar
            .write32(regs::CC, regs::CC_EN | regs::CC_ENTRY_SIZES)?;
        self.wait_ready(true)
    }

    /// Submits `sqe` on `admin` and waits for its completion (any status).
    pub fn admin(&self, admin: &mut QueuePair, sqe: Sqe) -> io::Result<Cqe> {
        let db = self.doorbells();
        let cid = admin.submit(&db, sqe)?;
        let mut others = Vec::new();
        let c = admin.wait(&db, cid, ADMIN_TIMEOUT_MS, &mut others)?;
        self.stashed.borrow_mut().extend(others);
        Ok(c)
    }

    /// Admin completions of commands other than the ones waited for (AERs),
    /// including any posted since, consumed.
    pub fn take_async(&self, admin: &mut QueuePair) -> io::Result<Vec<Cqe>> {
        let db = self.doorbells();
        while let Some(c) = admin.poll(&db)? {
            self.stashed.borrow_mut().push(c);
        }
        Ok(std::mem::take(&mut *self.stashed.borrow_mut()))
    }

    /// Like [`Controller::admin`], but a non-zero status is an error.
    pub fn admin_ok(&self, admin: &mut QueuePair, sqe: Sqe, what: &str) -> io::Result<Cqe> {
        let c = self.admin(admin, sqe)?;
        if c.code() != 0 {
            return Err(err(format!("{what}: NVMe status {:#x}", c.status)));
        }
        Ok(c)
    }

    /// Creates I/O completion queue and submission queue `io.qid`,
    /// physically contiguous; the CQ signals `io.vector` if it has one
    /// (IEN, IV), else it is polled.
    pub fn create_io_queues(&self, admin: &mut QueuePair, io: &QueuePair) -> io::Result<()> {
        let size = u32::from(io.depth() - 1) << 16;
        let cq_size = u32::from(io.cq_depth() - 1) << 16;
        let qid = u32::from(io.qid);
        let irq = io.vector.map_or(0, |v| 2 | (u32::from(v) << 16));
        let cq = Sqe {
            opcode: admin_opcode::CREATE_CQ,
            prp1: io.cq_iova(),
            cdw: [cq_size | qid, 1 | irq, 0, 0, 0, 0],
            ..Sqe::default()
        };
        self.admin_ok(admin, cq, "Create I/O CQ")?;
        let sq = Sqe {
            opcode: admin_opcode::CREATE_SQ,
            prp1: io.sq_iova(),
            cdw: [size | qid, 1 | (qid << 16), 0, 0, 0, 0],
            ..Sqe::default()
        };
        self.admin_ok(admin, sq, "Create I/O SQ")?;
        Ok(())
    }

    /// Identify with `cns` (and `nsid`, `cntid`): the 4 KiB data structure.
    pub fn identify(
        &self,
        admin: &mut QueuePair,
        arena: &Rc<Arena>,
        cns: u8,
        nsid: u32,
        cntid: u16,
    ) -> io::Result<Vec<u8>> {
        let buf = arena.alloc(4096)?;
        let sqe = Sqe {
            opcode: admin_opcode::IDENTIFY,
            nsid,
            prp1: buf.iova(),
            cdw: [u32::from(cns) | (u32::from(cntid) << 16), 0, 0, 0, 0, 0],
            ..Sqe::default()
        };
        self.admin_ok(admin, sqe, "Identify")?;
        let mut out = vec![0u8; 4096];
        buf.read(0, &mut out);
        Ok(out)
    }
}
