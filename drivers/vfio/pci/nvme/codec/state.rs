// SPDX-License-Identifier: GPL-2.0

//! Controller State data structure: what Migration Receive (Get Controller
//! State) returns and Migration Send (Set Controller State) takes.
//!
//! Layout: a 48-byte header, then `NVMECSS` dwords of NVMe-defined state,
//! then `VSS` dwords of vendor-specific state. NVMe-defined state version 0
//! holds only I/O submission and completion queue state (24 bytes a queue).

use super::bytes::{
    array,
    le16,
    le32,
    le64,
    put,
    zero, //
};
use super::Error;

/// Length of the controller state header.
pub const HEADER_LEN: usize = 48;
/// Length of the version-0 NVMe controller state before its queue entries.
pub const V0_PREFIX_LEN: usize = 8;
/// Length of one version-0 queue state entry (submission or completion).
pub const QUEUE_ENTRY_LEN: usize = 24;
/// Largest whole controller state accepted: 65535 SQs and CQs of version-0
/// state (3 MiB) plus 1 MiB of vendor state.
pub const MAX_STATE_LEN: usize = 4 << 20;

/// The controller state header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// VER: version of the container.
    pub version: u16,
    /// CSATTR bit 0: the controller was suspended when the state was taken.
    pub suspended: bool,
    /// NVMECSS: NVMe-defined state size, in dwords.
    pub nvme_dwords: u32,
    /// VSS: vendor-specific state size, in dwords.
    pub vendor_dwords: u32,
}

impl Header {
    /// Decodes and checks a header: version 0, reserved bytes and the high halves of
    /// the 128-bit size fields must be zero, and the whole state must fit in
    /// [`MAX_STATE_LEN`].
    pub fn parse(buf: &[u8]) -> Result<Self, Error> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated {
                need: HEADER_LEN,
                have: buf.len(),
            });
        }
        if le16(buf, 0)? != 0 {
            return Err(Error::InvalidField("state header version is not 0"));
        }
        let csattr = array::<1>(buf, 2)?[0];
        if csattr & !1 != 0 || !zero(buf, 3, 16) {
            return Err(Error::InvalidField("state header reserved bits set"));
        }
        if le64(buf, 24)? != 0 || le64(buf, 40)? != 0 {
            return Err(Error::InvalidField("state size above 2^64 dwords"));
        }
        let nvme = u32::try_from(le64(buf, 16)?).map_err(|_| Error::Overflow)?;
        let vendor = u32::try_from(le64(buf, 32)?).map_err(|_| Error::Overflow)?;
        let h = Header {
            version: le16(buf, 0)?,
            suspended: csattr & 1 != 0,
            nvme_dwords: nvme,
            vendor_dwords: vendor,
        };
        if h.total_len()? > MAX_STATE_LEN {
            return Err(Error::OutOfLimits("controller state larger than 4 MiB"));
        }
        Ok(h)
    }

    /// Length of the NVMe-defined state in bytes.
    pub fn nvme_len(&self) -> Result<usize, Error> {
        dwords_to_bytes(self.nvme_dwords)
    }

    /// Length of the vendor-specific state in bytes.
    pub fn vendor_len(&self) -> Result<usize, Error> {
        dwords_to_bytes(self.vendor_dwords)
    }

    /// Length of header plus both state parts.
    pub fn total_len(&self) -> Result<usize, Error> {
        HEADER_LEN
            .checked_add(self.nvme_len()?)
            .and_then(|n| n.checked_add(self.vendor_len().ok()?))
            .ok_or(Error::Overflow)
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&self.version.to_le_bytes());
        out[2] = u8::from(self.suspended);
        out[16..24].copy_from_slice(&u64::from(self.nvme_dwords).to_le_bytes());
        out[32..40].copy_from_slice(&u64::from(self.vendor_dwords).to_le_bytes());
        out
    }
}

fn dwords_to_bytes(dw: u32) -> Result<usize, Error> {
    usize::try_from(dw)
        .ok()
        .and_then(|d| d.checked_mul(4))
        .ok_or(Error::Overflow)
}

/// A whole controller state split into its parts, borrowed from a buffer
/// whose length matched the header exactly.
#[derive(Clone, Copy, Debug)]
pub struct ControllerState<'a> {
    /// The header.
    pub header: Header,
    /// NVMe-defined state (`NVMECSS` dwords).
    pub nvme: &'a [u8],
    /// Vendor-specific state (`VSS` dwords), opaque to us.
    pub vendor: &'a [u8],
}

impl<'a> ControllerState<'a> {
    /// Splits `buf`, which must hold exactly one controller state.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let header = Header::parse(buf)?;
        let total = header.total_len()?;
        if buf.len() < total {
            return Err(Error::Truncated {
                need: total,
                have: buf.len(),
            });
        }
        if buf.len() > total {
            return Err(Error::TrailingBytes {
                declared: total,
                have: buf.len(),
            });
        }
        let (nvme, vendor) = buf
            .get(HEADER_LEN..)
            .and_then(|rest| rest.split_at_checked(header.nvme_len().ok()?))
            .ok_or(Error::Overflow)?;
        Ok(Self {
            header,
            nvme,
            vendor,
        })
    }
}

/// State of one I/O submission queue (version 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqState {
    /// IOSQPRP1: queue base address (an IOVA in the guest's address space).
    pub prp1: u64,
    /// IOSQQSIZE: queue size, 0's based.
    pub qsize: u16,
    /// IOSQQID: queue identifier.
    pub qid: u16,
    /// IOSQCQID: the completion queue this queue posts to.
    pub cqid: u16,
    /// IOSQA bit 0: physically contiguous.
    pub contiguous: bool,
    /// IOSQA bits 2:1: queue priority.
    pub priority: u8,
    /// IOSQHP: head, the controller's consumer index.
    pub head: u16,
    /// IOSQTP: tail, the last doorbell value.
    pub tail: u16,
}

impl SqState {
    /// Decodes a 24-byte entry.
    pub fn parse(e: &[u8]) -> Result<Self, Error> {
        let attr = le16(e, 14)?;
        if attr & !0x7 != 0 || le32(e, 20)? != 0 {
            return Err(Error::InvalidField("SQ state reserved bits set"));
        }
        Ok(Self {
            prp1: le64(e, 0)?,
            qsize: le16(e, 8)?,
            qid: le16(e, 10)?,
            cqid: le16(e, 12)?,
            contiguous: attr & 1 != 0,
            // CAST: two bits.
            priority: ((attr >> 1) & 0x3) as u8,
            head: le16(e, 16)?,
            tail: le16(e, 18)?,
        })
    }

    /// Encodes a 24-byte entry.
    pub fn encode(&self) -> [u8; QUEUE_ENTRY_LEN] {
        let mut e = [0u8; QUEUE_ENTRY_LEN];
        let attr = u16::from(self.contiguous) | (u16::from(self.priority & 0x3) << 1);
        e[0..8].copy_from_slice(&self.prp1.to_le_bytes());
        e[8..10].copy_from_slice(&self.qsize.to_le_bytes());
        e[10..12].copy_from_slice(&self.qid.to_le_bytes());
        e[12..14].copy_from_slice(&self.cqid.to_le_bytes());
        e[14..16].copy_from_slice(&attr.to_le_bytes());
        e[16..18].copy_from_slice(&self.head.to_le_bytes());
        e[18..20].copy_from_slice(&self.tail.to_le_bytes());
        e
    }
}

/// State of one I/O completion queue (version 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CqState {
    /// IOCQPRP1: queue base address.
    pub prp1: u64,
    /// IOCQQSIZE: queue size, 0's based.
    pub qsize: u16,
    /// IOCQQID: queue identifier.
    pub qid: u16,
    /// IOCQHP: head, the host's last doorbell value.
    pub head: u16,
    /// IOCQTP: tail, the controller's producer index.
    pub tail: u16,
    /// IOCQA bit 0: physically contiguous.
    pub contiguous: bool,
    /// IOCQA bit 1: interrupts enabled.
    pub interrupts: bool,
    /// IOCQA bit 2 (S0PT): "the value of the Phase Tag bit for slot 0".
    /// With the tail at 0 (a fresh queue, or just after a wrap) that is
    /// the previous pass's phase, not the one posted next.
    pub slot0_phase: bool,
    /// IOCQA bits 31:16 (IOCQIV): interrupt vector.
    pub vector: u16,
}

impl CqState {
    /// Decodes a 24-byte entry.
    pub fn parse(e: &[u8]) -> Result<Self, Error> {
        let attr = le32(e, 16)?;
        if attr & 0xfff8 != 0 || le32(e, 20)? != 0 {
            return Err(Error::InvalidField("CQ state reserved bits set"));
        }
        Ok(Self {
            prp1: le64(e, 0)?,
            qsize: le16(e, 8)?,
            qid: le16(e, 10)?,
            head: le16(e, 12)?,
            tail: le16(e, 14)?,
            contiguous: attr & 1 != 0,
            interrupts: attr & 2 != 0,
            slot0_phase: attr & 4 != 0,
            // CAST: the high 16 bits of a u32.
            vector: (attr >> 16) as u16,
        })
    }

    /// Encodes a 24-byte entry.
    pub fn encode(&self) -> [u8; QUEUE_ENTRY_LEN] {
        let mut e = [0u8; QUEUE_ENTRY_LEN];
        let attr = u32::from(self.contiguous)
            | (u32::from(self.interrupts) << 1)
            | (u32::from(self.slot0_phase) << 2)
            | (u32::from(self.vector) << 16);
        e[0..8].copy_from_slice(&self.prp1.to_le_bytes());
        e[8..10].copy_from_slice(&self.qsize.to_le_bytes());
        e[10..12].copy_from_slice(&self.qid.to_le_bytes());
        e[12..14].copy_from_slice(&self.head.to_le_bytes());
        e[14..16].copy_from_slice(&self.tail.to_le_bytes());
        e[16..20].copy_from_slice(&attr.to_le_bytes());
        e
    }
}

/// What the target controller can accept, for validating a state before it
/// reaches the device.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Highest I/O queue identifier the controller has resources for.
    pub max_qid: u16,
    /// CAP.MQES: largest queue size, 0's based.
    pub mqes: u16,
    /// Interrupt vectors available to the controller.
    pub vectors: u16,
    /// The controller supports only physically contiguous queues.
    pub contiguous_only: bool,
    /// Queue base addresses must be aligned to this (a power of two).
    pub page_size: u64,
}

/// Version-0 NVMe controller state: I/O queue state entries.
#[derive(Clone, Copy, Debug)]
pub struct QueueStateV0<'a> {
    sq_count: u16,
    cq_count: u16,
    entries: &'a [u8],
}

impl<'a> QueueStateV0<'a> {
    /// Decodes the NVMe-defined part of a controller state. Entries must
    /// fit in the declared size; bytes after them are padding and ignored.
    pub fn parse(nvme: &'a [u8]) -> Result<Self, Error> {
        if le16(nvme, 0)? != 0 {
            return Err(Error::InvalidField(
                "NVMe controller state version is not 0",
            ));
        }
        let sq_count = le16(nvme, 2)?;
        let cq_count = le16(nvme, 4)?;
        if le16(nvme, 6)? != 0 {
            return Err(Error::InvalidField(
                "NVMe controller state reserved bytes set",
            ));
        }
        let len = (usize::from(sq_count) + usize::from(cq_count))
            .checked_mul(QUEUE_ENTRY_LEN)
            .ok_or(Error::Overflow)?;
        let entries =
            nvme.get(V0_PREFIX_LEN..)
                .and_then(|e| e.get(..len))
                .ok_or(Error::Truncated {
                    need: V0_PREFIX_LEN.saturating_add(len),
                    have: nvme.len(),
                })?;
        Ok(Self {
            sq_count,
            cq_count,
            entries,
        })
    }

    /// Number of submission queue entries.
    pub fn sq_count(&self) -> u16 {
        self.sq_count
    }

    /// Number of completion queue entries.
    pub fn cq_count(&self) -> u16 {
        self.cq_count
    }

    fn entry(&self, idx: usize) -> Result<&'a [u8], Error> {
        let off = idx.checked_mul(QUEUE_ENTRY_LEN).ok_or(Error::Overflow)?;
        self.entries
            .get(off..off.saturating_add(QUEUE_ENTRY_LEN))
            .ok_or(Error::Truncated {
                need: off.saturating_add(QUEUE_ENTRY_LEN),
                have: self.entries.len(),
            })
    }

    /// Submission queue entry `i`.
    pub fn sq(&self, i: u16) -> Result<SqState, Error> {
        if i >= self.sq_count {
            return Err(Error::InvalidField("SQ index out of range"));
        }
        SqState::parse(self.entry(usize::from(i))?)
    }

    /// Completion queue entry `i`.
    pub fn cq(&self, i: u16) -> Result<CqState, Error> {
        if i >= self.cq_count {
            return Err(Error::InvalidField("CQ index out of range"));
        }
        CqState::parse(self.entry(usize::from(self.sq_count) + usize::from(i))?)
    }

    /// Checks the structure (unique non-zero queue identifiers, every SQ
    /// posting to a CQ that exists) and the target's limits (identifiers,
    /// sizes, head and tail indexes, interrupt vectors, alignment).
    pub fn validate(&self, lim: &QueueLimits) -> Result<(), Error> {
        if self.sq_count > lim.max_qid || self.cq_count > lim.max_qid {
            return Err(Error::OutOfLimits("more queues than the controller has"));
        }
        for i in 0..self.cq_count {
            let cq = self.cq(i)?;
            check_queue(
                cq.qid,
                cq.qsize,
                cq.head,
                cq.tail,
                cq.prp1,
                cq.contiguous,
                lim,
            )?;
            if cq.interrupts && cq.vector >= lim.vectors {
                return Err(Error::OutOfLimits("CQ interrupt vector out of range"));
            }
            for j in 0..i {
                if self.cq(j)?.qid == cq.qid {
                    return Err(Error::InvalidField("duplicate CQ identifier"));
                }
            }
        }
        for i in 0..self.sq_count {
            let sq = self.sq(i)?;
            check_queue(
                sq.qid,
                sq.qsize,
                sq.head,
                sq.tail,
                sq.prp1,
                sq.contiguous,
                lim,
            )?;
            for j in 0..i {
                if self.sq(j)?.qid == sq.qid {
                    return Err(Error::InvalidField("duplicate SQ identifier"));
                }
            }
            let mut found = false;
            for j in 0..self.cq_count {
                found |= self.cq(j)?.qid == sq.cqid;
            }
            if !found {
                return Err(Error::InvalidField("SQ posts to a CQ not in the state"));
            }
        }
        Ok(())
    }
}

fn check_queue(
    qid: u16,
    qsize: u16,
    head: u16,
    tail: u16,
    prp1: u64,
    contiguous: bool,
    lim: &QueueLimits,
) -> Result<(), Error> {
    if qid == 0 || qid > lim.max_qid {
        return Err(Error::OutOfLimits("queue identifier out of range"));
    }
    if qsize == 0 || qsize > lim.mqes {
        return Err(Error::OutOfLimits("queue size out of range"));
    }
    if head > qsize || tail > qsize {
        return Err(Error::InvalidField("queue head or tail beyond the queue"));
    }
    if lim.contiguous_only && !contiguous {
        return Err(Error::OutOfLimits("non-contiguous queue not supported"));
    }
    if prp1 == 0 || prp1 & lim.page_size.wrapping_sub(1) != 0 {
        return Err(Error::InvalidField("queue base address not page aligned"));
    }
    Ok(())
}

/// Writes version-0 NVMe controller state for `sqs` and `cqs` into `out`;
/// returns the bytes written.
pub fn encode_v0(sqs: &[SqState], cqs: &[CqState], out: &mut [u8]) -> Result<usize, Error> {
    let nsq = u16::try_from(sqs.len()).map_err(|_| Error::Overflow)?;
    let ncq = u16::try_from(cqs.len()).map_err(|_| Error::Overflow)?;
    put(out, 0, &0u16.to_le_bytes())?;
    put(out, 2, &nsq.to_le_bytes())?;
    put(out, 4, &ncq.to_le_bytes())?;
    put(out, 6, &[0, 0])?;
    let mut off = V0_PREFIX_LEN;
    for e in sqs
        .iter()
        .map(SqState::encode)
        .chain(cqs.iter().map(CqState::encode))
    {
        put(out, off, &e)?;
        off += QUEUE_ENTRY_LEN;
    }
    Ok(off)
}
