// SPDX-License-Identifier: GPL-2.0

//! Submission and completion queue entries.

use crate::codec::cmd::AdminCmd;

/// A 64-byte submission queue entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sqe {
    /// Opcode.
    pub opcode: u8,
    /// Command identifier (set by the queue on submission).
    pub cid: u16,
    /// Namespace identifier.
    pub nsid: u32,
    /// PRP entry 1.
    pub prp1: u64,
    /// PRP entry 2.
    pub prp2: u64,
    /// Command dwords 10 to 15.
    pub cdw: [u32; 6],
}

/// I/O opcodes.
pub mod io_opcode {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management.
    pub const DSM: u8 = 0x09;
}

/// Admin opcodes: the codec's list.
pub use crate::codec::cmd::opcode as admin_opcode;

impl Sqe {
    /// The entry of an admin command from the shared codec.
    pub fn from_admin(c: &AdminCmd) -> Self {
        Self {
            opcode: c.opcode,
            nsid: c.nsid,
            cdw: c.cdw,
            ..Self::default()
        }
    }

    /// Read or write of `nlb` blocks (1-based) at `slba`, data at `prp1`
    /// (and `prp2` for a second page).
    pub fn rw(opcode: u8, nsid: u32, slba: u64, nlb: u16, prp1: u64, prp2: u64) -> Self {
        Self {
            opcode,
            nsid,
            prp1,
            prp2,
            // CAST: the low and high halves of the starting LBA.
            cdw: [
                slba as u32,
                (slba >> 32) as u32,
                u32::from(nlb - 1),
                0,
                0,
                0,
            ],
            ..Self::default()
        }
    }

    /// The 64 bytes as the controller reads them.
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0] = self.opcode;
        b[2..4].copy_from_slice(&self.cid.to_le_bytes());
        b[4..8].copy_from_slice(&self.nsid.to_le_bytes());
        b[24..32].copy_from_slice(&self.prp1.to_le_bytes());
        b[32..40].copy_from_slice(&self.prp2.to_le_bytes());
        for (i, d) in self.cdw.iter().enumerate() {
            b[40 + 4 * i..44 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
        b
    }
}

/// A 16-byte completion queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    /// Dword 0: command specific result.
    pub dw0: u32,
    /// Dword 1.
    pub dw1: u32,
    /// SQ head pointer.
    pub sq_head: u16,
    /// SQ identifier.
    pub sqid: u16,
    /// Command identifier.
    pub cid: u16,
    /// Status field, `(SCT << 8) | SC` with DNR and More bits (bits 15:1 of
    /// the completion's status word, shifted down).
    pub status: u16,
    /// Phase tag.
    pub phase: bool,
}

impl Cqe {
    /// Decodes 16 bytes.
    pub fn parse(b: &[u8; 16]) -> Self {
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let h = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let sf = h(14);
        Self {
            dw0: w(0),
            dw1: w(4),
            sq_head: h(8),
            sqid: h(10),
            cid: h(12),
            status: sf >> 1,
            phase: sf & 1 != 0,
        }
    }

    /// Status code type and code without the DNR and More bits.
    pub fn code(&self) -> u16 {
        self.status & 0x7ff
    }
}
