// SPDX-License-Identifier: GPL-2.0

//! The "guest" of the VMM-less tests: an NVMe host running I/O with data
//! patterns on a VF, whose queues and data live in an IOAS-mapped arena so
//! that they can continue on another VF after a migration. I/O completions
//! are interrupt driven: each I/O CQ signals its own MSI-X vector (its
//! queue ID; vector 0 is the admin CQ's), which VFIO delivers into an
//! eventfd, and a queue is reaped only when its vector fired.

use crate::dma::{
    Arena,
    Chunk, //
};
use crate::irq::Interrupts;
use crate::nvme::queue::Doorbells;
use crate::nvme::sqe::io_opcode;
use crate::nvme::{
    Controller,
    Cqe,
    QueuePair,
    Sqe, //
};
use crate::vfio::Device;
use std::collections::{
    BTreeMap,
    BTreeSet, //
};
use std::io;
use std::rc::Rc;
use std::time::{
    Duration,
    Instant, //
};

/// Namespace the tests use.
pub const NSID: u32 = 1;
/// Admin queue depth.
pub const ADMIN_DEPTH: u16 = 32;
/// I/O queue pairs of a full-size VF (the test bed gives each VF 8 and an
/// MSI-X vector for each, tests/vm/run-vm.py).
pub const FULL_QUEUES: u16 = 8;
/// Entries per queue of a full-size VF.
pub const FULL_DEPTH: u16 = 1024;

/// What a command in flight was for, to check its completion.
#[derive(Clone)]
pub struct Pending {
    /// Write or read.
    pub opcode: u8,
    /// Block written or read.
    pub lba: u64,
    /// Generation written (writes) or expected (reads).
    pub generation: u32,
    /// Data buffer.
    pub buf: Chunk,
    /// A read that must return zeroes (the block was zeroed, deallocated
    /// where that reads zeroes, or never written on a namespace that read
    /// zeroes at the start: [`Guest::zero_default`]).
    pub expect_zero: bool,
}

/// A host driving one controller at a time.
pub struct Guest {
    /// DMA memory.
    pub arena: Rc<Arena>,
    /// The controller queues run on now.
    pub ctrl: Controller,
    /// Admin queue pair.
    pub admin: QueuePair,
    /// I/O queue pairs, qid 1..
    pub io: Vec<QueuePair>,
    /// Logical block size in bytes.
    pub lba_size: usize,
    /// Generation last written to each block (the model reads check).
    pub model: BTreeMap<u64, u32>,
    /// The namespace the guest runs I/O on ([`NSID`] unless started with
    /// [`Guest::start_ns`]).
    pub nsid: u32,
    /// Its size in blocks (Identify Namespace NSZE).
    pub nsze: u64,
    /// Identify Namespace DLFEAT: bits 2:0 = 1 when deallocated blocks
    /// read zeroes.
    pub dlfeat: u8,
    /// Whether a block outside `model` and `unknown` reads zeroes: the
    /// namespace read zeroes when the model started (fresh, or cleared by
    /// [`Guest::clear_namespace`]). Off by default: such blocks are
    /// unchecked.
    pub zero_default: bool,
    /// Blocks whose contents the model does not know (deallocated).
    pub unknown: BTreeSet<u64>,
    /// Commands in flight, by (qid, cid).
    pub pending: BTreeMap<(u16, u16), Pending>,
    /// The (qid, cid) of every completion reaped, in order (callers take
    /// it to see which commands completed where).
    pub completions: Vec<(u16, u16)>,
    /// The MSI-X vectors of the controller queues run on now.
    pub irqs: Interrupts,
    /// Vectors signalled and not serviced yet (taken from a previous
    /// controller at a switch: interrupts pending at the switchover).
    carried: BTreeSet<u16>,
}

/// Fails naming the first queue of `heads` ([`Guest::sq_heads`]) whose SQ
/// head is not at its tail.
pub fn heads_at_tail(heads: &[(u16, u16, u16)]) -> Result<(), String> {
    match heads.iter().find(|(_, h, t)| h != t) {
        Some((qid, head, tail)) => Err(format!(
            "queue {qid}: the controller reports SQ head {head}, the host's tail is {tail}"
        )),
        None => Ok(()),
    }
}

fn other(e: impl ToString) -> io::Error {
    io::Error::other(e.to_string())
}

/// The data a block holds after being written with `generation`.
pub fn pattern(lba: u64, generation: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    for w in 0..len / 8 {
        let word = (lba << 32) ^ (u64::from(generation) << 16) ^ w as u64 ^ 0x5a5a_0000_0000_0000;
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

impl Guest {
    /// Enables `dev` (bus master, MSI-X, controller reset, admin queue)
    /// and creates `nr_io` I/O queue pairs of `depth` entries, queue `q`
    /// signalling vector `q`.
    pub fn start(dev: &Device, arena: Rc<Arena>, nr_io: u16, depth: u16) -> io::Result<Self> {
        Self::start_sized(dev, arena, nr_io, depth, depth)
    }

    /// Like [`Guest::start`], with CQs of `cq_depth` entries (SQs of
    /// `depth`): a CQ smaller than its SQ fills while more commands are in
    /// flight than it holds.
    pub fn start_sized(
        dev: &Device,
        arena: Rc<Arena>,
        nr_io: u16,
        depth: u16,
        cq_depth: u16,
    ) -> io::Result<Self> {
        Self::start_ns(dev, arena, nr_io, depth, cq_depth, NSID)
    }

    /// Like [`Guest::start_sized`], running I/O on namespace `nsid`.
    pub fn start_ns(
        dev: &Device,
        arena: Rc<Arena>,
        nr_io: u16,
        depth: u16,
        cq_depth: u16,
        nsid: u32,
    ) -> io::Result<Self> {
        let irqs = Self::destination(dev)?;
        if irqs.len() <= usize::from(nr_io) {
            return Err(other(format!(
                "{nr_io} I/O queues need {} MSI-X vectors, the device has {}",
                nr_io + 1,
                irqs.len()
            )));
        }
        let ctrl = Controller::new(dev)?;
        ctrl.disable()?;
        let mut admin = QueuePair::new(&arena, 0, ADMIN_DEPTH)?;
        ctrl.enable(&admin)?;
        let mut io = Vec::new();
        for qid in 1..=nr_io {
            let mut q = QueuePair::with_cq_depth(&arena, qid, depth, cq_depth)?;
            q.vector = Some(qid);
            ctrl.create_io_queues(&mut admin, &q)?;
            io.push(q);
        }
        let ns = ctrl.identify(&mut admin, &arena, 0, nsid, 0)?;
        let nsze = u64::from_le_bytes(ns[0..8].try_into().map_err(other)?);
        let dlfeat = ns[33];
        let flbas = usize::from(ns[26] & 0xf);
        let lbads = ns[128 + 4 * flbas + 2];
        if !(9..=12).contains(&lbads) {
            return Err(other(format!(
                "namespace {nsid}: unexpected LBA data size 2^{lbads}"
            )));
        }
        Ok(Self {
            arena,
            ctrl,
            admin,
            io,
            lba_size: 1 << lbads,
            model: BTreeMap::new(),
            nsid,
            nsze,
            dlfeat,
            zero_default: false,
            unknown: BTreeSet::new(),
            pending: BTreeMap::new(),
            completions: Vec::new(),
            irqs,
            carried: BTreeSet::new(),
        })
    }

    /// Prepares `dev` to run this guest's queues, as a VMM restores a
    /// destination's config space before it runs: bus master on, every
    /// MSI-X vector into an eventfd. Returns the vectors for
    /// [`Guest::switch_to`].
    pub fn destination(dev: &Device) -> io::Result<Interrupts> {
        dev.enable_bus_master()?;
        Interrupts::enable(dev)
    }

    /// Continues on `dev` (prepared by [`Guest::destination`], which gave
    /// `irqs`): the same queues, the other controller's doorbells and
    /// vectors. Vectors the previous controller signalled and the guest had
    /// not serviced stay pending and are serviced first; returns them.
    pub fn switch_to(&mut self, dev: &Device, irqs: Interrupts) -> io::Result<Vec<u16>> {
        let pending = self.irqs.wait(Duration::ZERO)?;
        self.carried.extend(pending);
        self.ctrl = Controller::new(dev)?;
        self.irqs = irqs;
        Ok(self.carried.iter().copied().collect())
    }

    fn db(&self) -> Doorbells {
        self.ctrl.doorbells()
    }

    /// Queues a write of `lba` with the next generation on I/O queue `qi`
    /// (index into `io`); rings the doorbell only if `ring`.
    pub fn submit_write(&mut self, qi: usize, lba: u64, ring: bool) -> io::Result<u16> {
        let generation = self.model.get(&lba).map_or(1, |g| g + 1);
        let buf = self.arena.alloc(self.lba_size)?;
        buf.write(0, &pattern(lba, generation, self.lba_size));
        let mut sqe = Sqe::rw(io_opcode::WRITE, self.nsid, lba, 1, buf.iova(), 0);
        let db = self.db();
        let q = &mut self.io[qi];
        let cid = q.enqueue(&mut sqe)?;
        if ring {
            q.ring(&db)?;
        }
        // The model moves on at submission: no read of this block may be
        // in flight together with the write (tests keep them apart).
        self.model.insert(lba, generation);
        self.unknown.remove(&lba);
        self.pending.insert(
            (q.qid, cid),
            Pending {
                opcode: io_opcode::WRITE,
                lba,
                generation,
                buf,
                expect_zero: false,
            },
        );
        Ok(cid)
    }

    /// Queues a read of `lba` on I/O queue `qi`; checked at completion
    /// against the generation the model holds now.
    pub fn submit_read(&mut self, qi: usize, lba: u64, ring: bool) -> io::Result<u16> {
        let generation = self.model.get(&lba).copied().unwrap_or(0);
        let expect_zero = generation == 0 && self.reads_zero(lba);
        let buf = self.arena.alloc(self.lba_size)?;
        buf.fill(0xee);
        let mut sqe = Sqe::rw(io_opcode::READ, self.nsid, lba, 1, buf.iova(), 0);
        let db = self.db();
        let q = &mut self.io[qi];
        let cid = q.enqueue(&mut sqe)?;
        if ring {
            q.ring(&db)?;
        }
        self.pending.insert(
            (q.qid, cid),
            Pending {
                opcode: io_opcode::READ,
                lba,
                generation,
                buf,
                expect_zero,
            },
        );
        Ok(cid)
    }

    /// Writes `nlb` blocks (at most one page of data) at `slba` on queue
    /// `qi` and waits for the completion.
    pub fn write_range(&mut self, qi: usize, slba: u64, nlb: u16) -> io::Result<()> {
        let len = self.lba_size * usize::from(nlb);
        if len > crate::dma::PAGE {
            return Err(other(format!("write of {len} bytes exceeds one page")));
        }
        let buf = self.arena.alloc(len)?;
        for i in 0..u64::from(nlb) {
            let g = self
                .model
                .get(&(slba + i))
                .map_or(1, |g| g.wrapping_add(1).max(1));
            buf.write(
                i as usize * self.lba_size,
                &pattern(slba + i, g, self.lba_size),
            );
            self.model.insert(slba + i, g);
            self.unknown.remove(&(slba + i));
        }
        let sqe = Sqe::rw(io_opcode::WRITE, self.nsid, slba, nlb, buf.iova(), 0);
        self.io_sync(qi, sqe, "Write")
    }

    /// Flush on queue `qi`, waited for.
    pub fn flush(&mut self, qi: usize) -> io::Result<()> {
        let sqe = Sqe {
            opcode: io_opcode::FLUSH,
            nsid: self.nsid,
            ..Sqe::default()
        };
        self.io_sync(qi, sqe, "Flush")
    }

    /// Write Zeroes of `nlb` blocks at `slba` (reads of them are checked
    /// for zeroes only under [`Guest::zero_default`]).
    pub fn write_zeroes(&mut self, qi: usize, slba: u64, nlb: u16) -> io::Result<()> {
        self.model_zeroed(slba, u64::from(nlb));
        let mut sqe = Sqe::rw(io_opcode::WRITE_ZEROES, self.nsid, slba, nlb, 0, 0);
        sqe.prp1 = 0;
        self.io_sync(qi, sqe, "Write Zeroes")
    }

    /// Dataset Management, deallocate: `ranges` of (slba, nlb).
    pub fn deallocate(&mut self, qi: usize, ranges: &[(u64, u32)]) -> io::Result<()> {
        let list = self.arena.alloc(16 * ranges.len())?;
        for (i, (slba, nlb)) in ranges.iter().enumerate() {
            let mut r = [0u8; 16];
            r[4..8].copy_from_slice(&nlb.to_le_bytes());
            r[8..16].copy_from_slice(&slba.to_le_bytes());
            list.write(16 * i, &r);
            self.model_deallocated(*slba, u64::from(*nlb));
        }
        let n = u32::try_from(ranges.len() - 1).map_err(other)?;
        let sqe = Sqe {
            opcode: io_opcode::DSM,
            nsid: self.nsid,
            prp1: list.iova(),
            cdw: [n, 1 << 2, 0, 0, 0, 0],
            ..Sqe::default()
        };
        self.io_sync(qi, sqe, "Dataset Management")
    }

    fn io_sync(&mut self, qi: usize, sqe: Sqe, what: &str) -> io::Result<()> {
        let db = self.db();
        let q = &mut self.io[qi];
        let cid = q.submit(&db, sqe)?;
        let mut others = Vec::new();
        let c = q.wait(&db, cid, 10_000, &mut others)?;
        if !others.is_empty() {
            return Err(other(format!("{what}: unexpected completions {others:?}")));
        }
        if c.code() != 0 {
            return Err(other(format!("{what}: status {:#x}", c.status)));
        }
        Ok(())
    }

    /// Rings every I/O queue's SQ doorbell.
    pub fn ring_all(&self) -> io::Result<()> {
        let db = self.db();
        for q in &self.io {
            q.ring(&db)?;
        }
        Ok(())
    }

    fn check(&self, qid: u16, c: &Cqe, p: &Pending) -> io::Result<()> {
        if c.sqid != qid {
            return Err(other(format!(
                "queue {qid}: completion of command {} names SQ {}",
                c.cid, c.sqid
            )));
        }
        if c.code() != 0 {
            return Err(other(format!(
                "queue {qid} command {} (opcode {:#x}, LBA {}) failed: status {:#x}",
                c.cid, p.opcode, p.lba, c.status
            )));
        }
        if p.opcode == io_opcode::READ && p.expect_zero {
            let mut got = vec![0u8; self.lba_size];
            p.buf.read(0, &mut got);
            if let Some(at) = got.iter().position(|&b| b != 0) {
                return Err(other(format!(
                    "queue {qid}: read of LBA {} (zeroed, deallocated or never written) has byte {at} = {:#04x}, expected zeroes",
                    p.lba, got[at]
                )));
            }
        }
        if p.opcode == io_opcode::READ && p.generation != 0 {
            let mut got = vec![0u8; self.lba_size];
            p.buf.read(0, &mut got);
            if got != pattern(p.lba, p.generation, self.lba_size) {
                return Err(other(format!(
                    "queue {qid}: read of LBA {} does not hold generation {}",
                    p.lba, p.generation
                )));
            }
        }
        Ok(())
    }

    /// Services interrupts until nothing is pending or `timeout_ms`
    /// passes: each time a queue's vector fires, takes and checks that
    /// queue's completions (exactly once, status, read data). A completion
    /// whose interrupt never comes is a timeout. Returns the number of
    /// completions seen.
    pub fn drain(&mut self, timeout_ms: u64) -> io::Result<usize> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut seen = 0;
        while !self.pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && self.carried.is_empty() {
                return Err(self.stuck(timeout_ms));
            }
            seen += self.service(left)?;
        }
        Ok(seen)
    }

    /// Why commands are still pending after `timeout_ms`: completions
    /// posted without an interrupt, or never posted.
    fn stuck(&self, timeout_ms: u64) -> io::Error {
        for q in &self.io {
            let posted = q.peek().len();
            if posted > 0 {
                return other(format!(
                    "queue {}: {posted} completions posted but no interrupt on vector {:?} in {timeout_ms} ms",
                    q.qid, q.vector
                ));
            }
        }
        let left: Vec<_> = self.pending.keys().collect();
        other(format!(
            "{} commands never completed in {timeout_ms} ms: (qid, cid) {left:?}",
            self.pending.len()
        ))
    }

    /// Waits up to `timeout` for interrupts (none if some are carried) and
    /// reaps the queues whose vectors fired; returns the completions seen.
    fn service(&mut self, timeout: Duration) -> io::Result<usize> {
        let mut fired = std::mem::take(&mut self.carried);
        if fired.is_empty() {
            fired.extend(self.irqs.wait(timeout.min(Duration::from_millis(100)))?);
        }
        let mut seen = 0;
        for v in fired {
            if let Some(i) = self.io.iter().position(|q| q.vector == Some(v)) {
                seen += self.reap_queue(i)?;
            }
        }
        Ok(seen)
    }

    /// Takes and checks every completion posted on I/O queue index `i`.
    fn reap_queue(&mut self, i: usize) -> io::Result<usize> {
        let db = self.db();
        let mut seen = 0;
        while let Some(c) = self.io[i].poll(&db)? {
            let qid = self.io[i].qid;
            let p = self.pending.remove(&(qid, c.cid)).ok_or_else(|| {
                other(format!(
                    "queue {qid}: completion for unknown command {}",
                    c.cid
                ))
            })?;
            self.check(qid, &c, &p)?;
            self.completions.push((qid, c.cid));
            seen += 1;
        }
        Ok(seen)
    }

    /// Services interrupts for `ms` milliseconds, then takes whatever else
    /// is posted (with or without an interrupt); checks and counts the
    /// completions (none are waited for).
    pub fn collect(&mut self, ms: u64) -> io::Result<usize> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut seen = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            seen += self.service(left)?;
        }
        for i in 0..self.io.len() {
            seen += self.reap_queue(i)?;
        }
        Ok(seen)
    }

    /// (qid, cid) of every completion posted on the I/O queues and not
    /// consumed yet: looks without consuming or signalling anything.
    pub fn posted(&self) -> Vec<(u16, u16)> {
        self.io
            .iter()
            .flat_map(|q| q.peek().into_iter().map(move |c| (q.qid, c.cid)))
            .collect()
    }

    /// Fails unless, on every I/O queue, the SQ head the controller reported
    /// last is the host's tail: it consumed each entry rung, none twice and
    /// none skipped (after a migration: the destination went on from the
    /// source's head).
    pub fn sq_heads_at_tail(&self) -> Result<(), String> {
        heads_at_tail(&self.sq_heads())
    }

    /// (qid, SQ head the controller reported last, host tail) of every I/O
    /// queue.
    pub fn sq_heads(&self) -> Vec<(u16, u16, u16)> {
        self.io
            .iter()
            .map(|q| {
                let (head, tail) = q.sq_head_tail();
                (q.qid, head, tail)
            })
            .collect()
    }

    /// Whether the model says block `lba` reads zeroes (it holds no
    /// written generation).
    pub fn reads_zero(&self, lba: u64) -> bool {
        self.zero_default && !self.model.contains_key(&lba) && !self.unknown.contains(&lba)
    }

    /// Whether deallocated blocks read zeroes (DLFEAT bits 2:0 = 001b).
    pub fn deallocate_reads_zero(&self) -> bool {
        self.dlfeat & 7 == 1
    }

    /// The model after `nlb` blocks from `slba` were zeroed.
    fn model_zeroed(&mut self, slba: u64, nlb: u64) {
        for b in slba..slba + nlb {
            self.model.remove(&b);
            self.unknown.remove(&b);
        }
    }

    /// The model after `nlb` blocks from `slba` were deallocated: unknown.
    /// Deallocate is advisory (the controller may keep the data: QEMU's
    /// does over a drive without discard), so DLFEAT's "deallocated blocks
    /// read zeroes" promises nothing about these blocks.
    fn model_deallocated(&mut self, slba: u64, nlb: u64) {
        for b in slba..slba + nlb {
            self.model.remove(&b);
            self.unknown.insert(b);
        }
    }

    /// Queues `sqe` (an I/O command of no data to check at completion,
    /// buffer `buf`) on queue `qi`, recorded at `lba`; rings only if `ring`.
    fn submit_other(
        &mut self,
        qi: usize,
        mut sqe: Sqe,
        lba: u64,
        buf: Chunk,
        ring: bool,
    ) -> io::Result<u16> {
        let opcode = sqe.opcode;
        let db = self.db();
        let q = &mut self.io[qi];
        let cid = q.enqueue(&mut sqe)?;
        if ring {
            q.ring(&db)?;
        }
        self.pending.insert(
            (q.qid, cid),
            Pending {
                opcode,
                lba,
                generation: 0,
                buf,
                expect_zero: false,
            },
        );
        Ok(cid)
    }

    /// Queues a write of `nlb` blocks (at most one page of data) at `slba`
    /// on queue `qi`, each block with its next generation; the model moves
    /// on at submission, like [`Guest::submit_write`].
    pub fn submit_write_blocks(
        &mut self,
        qi: usize,
        slba: u64,
        nlb: u16,
        ring: bool,
    ) -> io::Result<u16> {
        let len = self.lba_size * usize::from(nlb);
        if len > crate::dma::PAGE || nlb == 0 {
            return Err(other(format!(
                "write of {nlb} blocks ({len} bytes): not 1 block to 1 page"
            )));
        }
        let buf = self.arena.alloc(len)?;
        for i in 0..u64::from(nlb) {
            let g = self
                .model
                .get(&(slba + i))
                .map_or(1, |g| g.wrapping_add(1).max(1));
            buf.write(
                i as usize * self.lba_size,
                &pattern(slba + i, g, self.lba_size),
            );
            self.model.insert(slba + i, g);
            self.unknown.remove(&(slba + i));
        }
        let sqe = Sqe::rw(io_opcode::WRITE, self.nsid, slba, nlb, buf.iova(), 0);
        self.submit_other(qi, sqe, slba, buf, ring)
    }

    /// Queues a Write Zeroes of `nlb` blocks at `slba` on queue `qi`.
    pub fn submit_write_zeroes(
        &mut self,
        qi: usize,
        slba: u64,
        nlb: u16,
        ring: bool,
    ) -> io::Result<u16> {
        self.model_zeroed(slba, u64::from(nlb));
        let buf = self.arena.alloc(1)?;
        let sqe = Sqe::rw(io_opcode::WRITE_ZEROES, self.nsid, slba, nlb, 0, 0);
        self.submit_other(qi, sqe, slba, buf, ring)
    }

    /// Queues a Dataset Management deallocate of `ranges` (slba, nlb) on
    /// queue `qi`.
    pub fn submit_deallocate(
        &mut self,
        qi: usize,
        ranges: &[(u64, u32)],
        ring: bool,
    ) -> io::Result<u16> {
        if ranges.is_empty() || ranges.len() > 256 {
            return Err(other(format!("deallocate of {} ranges", ranges.len())));
        }
        let list = self.arena.alloc(16 * ranges.len())?;
        for (i, (slba, nlb)) in ranges.iter().enumerate() {
            let mut r = [0u8; 16];
            r[4..8].copy_from_slice(&nlb.to_le_bytes());
            r[8..16].copy_from_slice(&slba.to_le_bytes());
            list.write(16 * i, &r);
            self.model_deallocated(*slba, u64::from(*nlb));
        }
        let n = u32::try_from(ranges.len() - 1).map_err(other)?;
        let sqe = Sqe {
            opcode: io_opcode::DSM,
            nsid: self.nsid,
            prp1: list.iova(),
            cdw: [n, 1 << 2, 0, 0, 0, 0],
            ..Sqe::default()
        };
        self.submit_other(qi, sqe, ranges[0].0, list, ring)
    }

    /// Write Zeroes over the whole namespace (1 MiB commands, 64 in
    /// flight), then starts the model over: every block reads zeroes.
    pub fn clear_namespace(&mut self) -> io::Result<()> {
        let per = u64::try_from((1usize << 20) / self.lba_size).map_err(other)?;
        let mark = self.arena.used();
        let mut slba = 0;
        while slba < self.nsze {
            let nlb = per.min(self.nsze - slba);
            let qi = (slba / per) as usize % self.io.len();
            self.submit_write_zeroes(qi, slba, u16::try_from(nlb).map_err(other)?, true)?;
            slba += nlb;
            if self.pending.len() >= 64 {
                self.drain(20_000)?;
            }
        }
        self.drain(20_000)?;
        self.arena.rewind(mark)?;
        self.model.clear();
        self.unknown.clear();
        self.zero_default = true;
        Ok(())
    }

    /// Reads back `lbas` (64 in flight over the queues) and checks each
    /// against the model: its generation's pattern, zeroes, or unchecked
    /// (unknown). Returns the reads checked against data or zeroes.
    pub fn verify_lbas(&mut self, lbas: &[u64]) -> io::Result<usize> {
        let mark = self.arena.used();
        let mut checked = 0;
        for chunk in lbas.chunks(64) {
            if !self.pending.is_empty() {
                return Err(other("verify: commands still in flight"));
            }
            for (i, lba) in chunk.iter().enumerate() {
                if self.model.contains_key(lba) || self.reads_zero(*lba) {
                    checked += 1;
                }
                self.submit_read(i % self.io.len(), *lba, false)?;
            }
            self.ring_all()?;
            self.drain(20_000)?;
            self.arena.rewind(mark)?;
        }
        Ok(checked)
    }

    /// Reads back every block the model knows (batches over the queues)
    /// and checks its data.
    pub fn verify_all(&mut self) -> io::Result<usize> {
        let lbas: Vec<u64> = self.model.keys().copied().collect();
        let mut n = 0;
        for chunk in lbas.chunks(8) {
            for (i, lba) in chunk.iter().enumerate() {
                self.submit_read(i % self.io.len(), *lba, false)?;
            }
            self.ring_all()?;
            n += self.drain(20_000)?;
        }
        Ok(n)
    }
}
