// SPDX-License-Identifier: GPL-2.0

//! A submission/completion queue pair in DMA memory.
//!
//! The pair holds only the host's side of the protocol (SQ tail, CQ head,
//! expected phase, commands in flight). Doorbells belong to whichever
//! controller runs the queues now, so the same pair can continue on a
//! destination controller after a migration.

use super::regs;
use super::sqe::{
    Cqe,
    Sqe, //
};
use crate::dma::{
    Arena,
    Chunk, //
};
use crate::vfio::Mmio;
use std::collections::BTreeSet;
use std::io;
use std::rc::Rc;

/// Where a controller's doorbells are.
#[derive(Clone)]
pub struct Doorbells {
    /// BAR0 of the controller.
    pub bar: Rc<Mmio>,
    /// Doorbell stride in bytes (from CAP.DSTRD).
    pub stride: u64,
}

impl Doorbells {
    fn sq_tail(&self, qid: u16) -> u64 {
        regs::DOORBELL_BASE + 2 * u64::from(qid) * self.stride
    }

    fn cq_head(&self, qid: u16) -> u64 {
        regs::DOORBELL_BASE + (2 * u64::from(qid) + 1) * self.stride
    }
}

/// A queue pair: queue identifier `qid` for both the SQ and its CQ.
pub struct QueuePair {
    /// Queue identifier (0 = admin).
    pub qid: u16,
    /// The CQ's MSI-X vector, if it signals completions (IEN, IV).
    pub vector: Option<u16>,
    depth: u16,
    cq_depth: u16,
    sq: Chunk,
    cq: Chunk,
    sq_tail: u16,
    sq_head: u16,
    cq_head: u16,
    phase: bool,
    next_cid: u16,
    in_flight: BTreeSet<u16>,
}

impl QueuePair {
    /// Allocates an SQ and a CQ of `depth` entries each.
    pub fn new(arena: &Rc<Arena>, qid: u16, depth: u16) -> io::Result<Self> {
        Self::with_cq_depth(arena, qid, depth, depth)
    }

    /// Allocates an SQ of `depth` entries and a CQ of `cq_depth` entries.
    /// With a CQ smaller than the SQ, more commands can be in flight than
    /// the CQ holds: completions then wait in the controller for the host
    /// to free CQ room.
    pub fn with_cq_depth(
        arena: &Rc<Arena>,
        qid: u16,
        depth: u16,
        cq_depth: u16,
    ) -> io::Result<Self> {
        Ok(Self {
            qid,
            vector: None,
            depth,
            cq_depth,
            sq: arena.alloc(usize::from(depth) * 64)?,
            cq: arena.alloc(usize::from(cq_depth) * 16)?,
            sq_tail: 0,
            sq_head: 0,
            cq_head: 0,
            phase: true,
            next_cid: 0,
            in_flight: BTreeSet::new(),
        })
    }

    /// Number of entries of the SQ (and of the CQ, unless
    /// [`QueuePair::with_cq_depth`] made it another size).
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// Number of entries of the CQ.
    pub fn cq_depth(&self) -> u16 {
        self.cq_depth
    }

    /// IOVA of the submission queue.
    pub fn sq_iova(&self) -> u64 {
        self.sq.iova()
    }

    /// IOVA of the completion queue.
    pub fn cq_iova(&self) -> u64 {
        self.cq.iova()
    }

    /// The host's CQ head: the slot of the next completion the controller
    /// posts (it posts to `cq_iova() + 16 * slot`).
    pub fn cq_head(&self) -> u16 {
        self.cq_head
    }

    /// Size of the SQ in bytes (`depth` 64-byte entries).
    pub fn sq_bytes(&self) -> usize {
        usize::from(self.depth) * 64
    }

    /// Size of the CQ in bytes (`cq_depth` 16-byte entries).
    pub fn cq_bytes(&self) -> usize {
        usize::from(self.cq_depth) * 16
    }

    /// The SQ head the controller last reported (in a completion) and the
    /// host's SQ tail: equal once the controller consumed every entry rung.
    pub fn sq_head_tail(&self) -> (u16, u16) {
        (self.sq_head, self.sq_tail)
    }

    /// Commands submitted and not completed yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// `true` if one more command fits without overrunning either queue.
    pub fn has_room(&self) -> bool {
        (self.sq_tail + 1) % self.depth != self.sq_head
            && self.in_flight.len() + 1 < usize::from(self.depth)
    }

    /// Writes `sqe` at the tail with a fresh command identifier and rings
    /// the tail doorbell; returns the identifier.
    pub fn submit(&mut self, db: &Doorbells, mut sqe: Sqe) -> io::Result<u16> {
        self.enqueue(&mut sqe)?;
        self.ring(db)?;
        Ok(sqe.cid)
    }

    /// Writes `sqe` at the tail without ringing the doorbell (batching).
    pub fn enqueue(&mut self, sqe: &mut Sqe) -> io::Result<u16> {
        if !self.has_room() {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "queue full"));
        }
        while self.in_flight.contains(&self.next_cid) {
            self.next_cid = self.next_cid.wrapping_add(1);
        }
        sqe.cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1);
        self.sq.write(usize::from(self.sq_tail) * 64, &sqe.encode());
        self.sq_tail = (self.sq_tail + 1) % self.depth;
        self.in_flight.insert(sqe.cid);
        Ok(sqe.cid)
    }

    /// Rings the SQ tail doorbell.
    pub fn ring(&self, db: &Doorbells) -> io::Result<()> {
        db.bar
            .write32(db.sq_tail(self.qid), u32::from(self.sq_tail))
    }

    /// The completions posted and not consumed yet, oldest first; consumes
    /// nothing and rings no doorbell.
    pub fn peek(&self) -> Vec<Cqe> {
        let mut out = Vec::new();
        let (mut head, mut phase) = (self.cq_head, self.phase);
        while out.len() < usize::from(self.cq_depth) {
            let off = usize::from(head) * 16;
            let mut status = [0u8; 2];
            self.cq.read(off + 14, &mut status);
            if (status[0] & 1 != 0) != phase {
                break;
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            let mut raw = [0u8; 16];
            self.cq.read(off, &mut raw);
            out.push(Cqe::parse(&raw));
            head = (head + 1) % self.cq_depth;
            if head == 0 {
                phase = !phase;
            }
        }
        out
    }

    /// The next completion, if one is posted; consumes it and rings the CQ
    /// head doorbell. A completion for a command identifier that is not in
    /// flight (a duplicate) is an error.
    pub fn poll(&mut self, db: &Doorbells) -> io::Result<Option<Cqe>> {
        // The phase tag first: the controller may still be writing the
        // entry; only once the tag is new may the rest be read.
        let off = usize::from(self.cq_head) * 16;
        let mut status = [0u8; 2];
        self.cq.read(off + 14, &mut status);
        if (status[0] & 1 != 0) != self.phase {
            return Ok(None);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let mut raw = [0u8; 16];
        self.cq.read(off, &mut raw);
        let cqe = Cqe::parse(&raw);
        self.cq_head = (self.cq_head + 1) % self.cq_depth;
        if self.cq_head == 0 {
            self.phase = !self.phase;
        }
        self.sq_head = cqe.sq_head;
        db.bar
            .write32(db.cq_head(self.qid), u32::from(self.cq_head))?;
        if !self.in_flight.remove(&cqe.cid) {
            return Err(io::Error::other(format!(
                "queue {}: completion for command {} which is not in flight (duplicate?)",
                self.qid, cqe.cid
            )));
        }
        Ok(Some(cqe))
    }

    /// Polls until the completion of `cid` arrives (other completions are
    /// returned in `others`), or `timeout_ms` passes.
    pub fn wait(
        &mut self,
        db: &Doorbells,
        cid: u16,
        timeout_ms: u64,
        others: &mut Vec<Cqe>,
    ) -> io::Result<Cqe> {
        let start = std::time::Instant::now();
        loop {
            if let Some(c) = self.poll(db)? {
                if c.cid == cid {
                    return Ok(c);
                }
                others.push(c);
                continue;
            }
            if start.elapsed().as_millis() as u64 > timeout_ms {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "queue {}: command {cid} not completed in {timeout_ms} ms",
                        self.qid
                    ),
                ));
            }
            std::thread::yield_now();
        }
    }
}
