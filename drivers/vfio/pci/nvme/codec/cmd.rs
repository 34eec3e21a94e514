// SPDX-License-Identifier: GPL-2.0

//! Admin commands of Host Managed Live Migration, as the dwords a PF's
//! admin queue carries. Data pointers (PRP1/PRP2) are the transport's job
//! and are not part of this type.

/// Admin opcodes.
pub mod opcode {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0a;
    /// Asynchronous Event Request.
    pub const ASYNC_EVENT: u8 = 0x0c;
    /// Virtualization Management.
    pub const VIRT_MGMT: u8 = 0x1c;
    /// Track Send.
    pub const TRACK_SEND: u8 = 0x3d;
    /// Track Receive.
    pub const TRACK_RECEIVE: u8 = 0x3e;
    /// Migration Send.
    pub const MIGRATION_SEND: u8 = 0x41;
    /// Migration Receive.
    pub const MIGRATION_RECEIVE: u8 = 0x42;
    /// Controller Data Queue.
    pub const CONTROLLER_DATA_QUEUE: u8 = 0x45;
}

/// Feature identifier of Controller Data Queue (Set/Get Features).
pub const FID_CONTROLLER_DATA_QUEUE: u8 = 0x21;

/// Command-specific status codes (SCT 1) of HMLM, as `(SCT << 8) | SC`.
pub mod status {
    /// Invalid Controller Data Queue.
    pub const INVALID_CDQ: u16 = 0x137;
    /// Not Enough Resources.
    pub const NOT_ENOUGH_RESOURCES: u16 = 0x138;
    /// Controller Suspended.
    pub const CONTROLLER_SUSPENDED: u16 = 0x139;
    /// Controller Not Suspended.
    pub const CONTROLLER_NOT_SUSPENDED: u16 = 0x13a;
    /// Controller Data Queue Full.
    pub const CDQ_FULL: u16 = 0x13b;
}

/// Suspend type (Migration Send, Suspend, CDW11 bits 23:16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendType {
    /// 0: notification only; the controller keeps running.
    Notification = 0,
    /// 1: stop fetching, finish fetched commands, then no DMA, no interrupts.
    Suspend = 1,
}

/// Sequence indicator of Set Controller State (MOS bits 1:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sequence {
    /// 0: a middle piece.
    Middle = 0,
    /// 1: the first piece.
    First = 1,
    /// 2: the last piece.
    Last = 2,
    /// 3: the whole state in one command.
    Only = 3,
}

/// An admin command's opcode, namespace and command dwords 10 to 15.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdminCmd {
    /// Opcode.
    pub opcode: u8,
    /// Namespace identifier.
    pub nsid: u32,
    /// Command dwords 10 to 15.
    pub cdw: [u32; 6],
}

fn sel_mos(sel: u8, mos: u16) -> u32 {
    u32::from(sel) | (u32::from(mos) << 16)
}

fn split64(v: u64) -> (u32, u32) {
    // CAST: the low and the high half of a u64.
    (v as u32, (v >> 32) as u32)
}

impl AdminCmd {
    /// Command dword `n` (10 to 15); other dwords are zero.
    pub fn cdw(&self, n: usize) -> u32 {
        n.checked_sub(10)
            .and_then(|i| self.cdw.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Migration Send, Suspend (SEL 0) of controller `cntlid`.
    pub fn suspend(cntlid: u16, ty: SuspendType, delete_udmq: bool) -> Self {
        let cdw11 = u32::from(cntlid) | ((ty as u32) << 16) | (u32::from(delete_udmq) << 31);
        Self {
            opcode: opcode::MIGRATION_SEND,
            cdw: [sel_mos(0, 0), cdw11, 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Migration Send, Resume (SEL 1) of controller `cntlid`.
    pub fn resume(cntlid: u16) -> Self {
        Self {
            opcode: opcode::MIGRATION_SEND,
            cdw: [sel_mos(1, 0), u32::from(cntlid), 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Migration Send, Set Controller State (SEL 2): `len` bytes (a multiple
    /// of 4) at byte `offset` of the state, format selected by the 1-based
    /// `csvi` and `csuuidi` (0 = none). NUMD is not 0's based here.
    pub fn set_state(
        cntlid: u16,
        seq: Sequence,
        csvi: u8,
        csuuidi: u8,
        offset: u64,
        len: u32,
    ) -> Self {
        let cdw11 = u32::from(cntlid) | (u32::from(csvi) << 16) | (u32::from(csuuidi) << 24);
        let (lo, hi) = split64(offset);
        Self {
            opcode: opcode::MIGRATION_SEND,
            cdw: [sel_mos(2, seq as u16), cdw11, lo, hi, 0, len / 4],
            ..Self::default()
        }
    }

    /// Migration Receive, Get Controller State (SEL 0): `len` bytes (a
    /// non-zero multiple of 4) from byte `offset`. NUMD is 0's based here.
    pub fn get_state(cntlid: u16, csvi: u8, csuuidi: u8, offset: u64, len: u32) -> Self {
        let cdw11 = u32::from(cntlid) | (u32::from(csuuidi) << 16);
        let (lo, hi) = split64(offset);
        Self {
            opcode: opcode::MIGRATION_RECEIVE,
            cdw: [
                sel_mos(0, u16::from(csvi)),
                cdw11,
                lo,
                hi,
                0,
                (len / 4).saturating_sub(1),
            ],
            ..Self::default()
        }
    }

    /// Controller Data Queue, Create (SEL 0) of a User Data Migration Queue
    /// (queue type 0) for controller `cntlid`, `dwords` long.
    pub fn cdq_create(cntlid: u16, contiguous: bool, dwords: u32) -> Self {
        Self {
            opcode: opcode::CONTROLLER_DATA_QUEUE,
            cdw: [
                sel_mos(0, 0),
                u32::from(contiguous) | (u32::from(cntlid) << 16),
                dwords,
                0,
                0,
                0,
            ],
            ..Self::default()
        }
    }

    /// Controller Data Queue, Delete (SEL 1).
    pub fn cdq_delete(cdqid: u16) -> Self {
        Self {
            opcode: opcode::CONTROLLER_DATA_QUEUE,
            cdw: [sel_mos(1, 0), u32::from(cdqid), 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Track Send, Log User Data Changes (SEL 0): start or stop logging
    /// into CDQ `cdqid`.
    pub fn track_user_data(cdqid: u16, start: bool) -> Self {
        Self {
            opcode: opcode::TRACK_SEND,
            cdw: [sel_mos(0, u16::from(start)), u32::from(cdqid), 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Track Send, Track Memory Changes (SEL 1): start (TACT 1, the data
    /// is a [`super::track`] start structure) or stop (TACT 0) tracking the
    /// host memory writes of controller `cntlid`.
    pub fn track_memory(cntlid: u16, start: bool) -> Self {
        Self {
            opcode: opcode::TRACK_SEND,
            cdw: [sel_mos(1, u16::from(start)), u32::from(cntlid), 0, 0, 0, 0],
            ..Self::default()
        }
    }

    /// Track Receive, Tracked Memory Changes (SEL 0) of controller
    /// `cntlid` into a buffer of `len` bytes (a non-zero multiple of 4).
    /// NUMD is 0's based.
    pub fn tracked_changes(cntlid: u16, len: u32) -> Self {
        Self {
            opcode: opcode::TRACK_RECEIVE,
            cdw: [
                sel_mos(0, 0),
                u32::from(cntlid),
                0,
                0,
                0,
                (len / 4).saturating_sub(1),
            ],
            ..Self::default()
        }
    }

    /// Set Features, Controller Data Queue: report the consumed head and,
    /// with `trigger`, arm the one-shot tail-pointer trigger.
    pub fn cdq_set_head(cdqid: u16, head: u32, trigger: Option<u32>) -> Self {
        let etpt = u32::from(trigger.is_some()) << 31;
        Self {
            opcode: opcode::SET_FEATURES,
            cdw: [
                u32::from(FID_CONTROLLER_DATA_QUEUE),
                u32::from(cdqid) | etpt,
                head,
                trigger.unwrap_or(0),
                0,
                0,
            ],
            ..Self::default()
        }
    }

    /// Identify with `cns`, `cntid` in CDW10[31:16].
    pub fn identify(cns: u8, cntid: u16) -> Self {
        Self {
            opcode: opcode::IDENTIFY,
            cdw: [u32::from(cns) | (u32::from(cntid) << 16), 0, 0, 0, 0, 0],
            ..Self::default()
        }
    }
}
