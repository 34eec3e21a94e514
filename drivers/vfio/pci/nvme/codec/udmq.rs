// SPDX-License-Identifier: GPL-2.0

//! User Data Migration Queue entries: what a Controller Data Queue of queue
//! type 0 receives when the migratable controller changes user data.

use super::bytes::{
    le32,
    le64,
    u8_at, //
};
use super::Error;

/// Length of one entry.
pub const ENTRY_LEN: usize = 32;

/// ESA: why an entry ends or starts a run of logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// 0: an ordinary entry.
    None,
    /// 1: first entry after logging started or resumed.
    First,
    /// 2: last entry, logging stopped.
    Stopped,
    /// 3: last entry, controller suspended.
    Suspended,
    /// 7: last entry, the queue is full and logging stopped.
    Full,
}

/// LBACI: what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// 0: the LBA range in the entry changed.
    Range,
    /// 1: every LBA of the namespace changed.
    WholeNamespace,
    /// 2: nothing changed (a marker entry).
    Unchanged,
}

/// One decoded entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Namespace (valid when `change` is [`Change::Range`]).
    pub nsid: u32,
    /// First LBA.
    pub slba: u64,
    /// Number of LBAs, 0's based.
    pub nlb: u32,
    /// Phase tag.
    pub phase: bool,
    /// End or start marker.
    pub marker: Marker,
    /// What the entry reports.
    pub change: Change,
}

impl Entry {
    /// The phase tag of the raw entry, to test for a new entry before it is
    /// decoded.
    pub fn phase_of(raw: &[u8]) -> Result<bool, Error> {
        Ok(u8_at(raw, 31)? & 1 != 0)
    }

    /// Decodes a 32-byte entry.
    pub fn parse(raw: &[u8]) -> Result<Self, Error> {
        let attr = u8_at(raw, 31)?;
        let marker = match (attr >> 1) & 0x7 {
            0 => Marker::None,
            1 => Marker::First,
            2 => Marker::Stopped,
            3 => Marker::Suspended,
            7 => Marker::Full,
            _ => return Err(Error::InvalidField("reserved UDMQ entry ESA value")),
        };
        let change = match attr >> 6 {
            0 => Change::Range,
            1 => Change::WholeNamespace,
            2 => Change::Unchanged,
            _ => return Err(Error::InvalidField("reserved UDMQ entry LBACI value")),
        };
        Ok(Self {
            nsid: le32(raw, 0)?,
            nlb: le32(raw, 4)?,
            slba: le64(raw, 8)?,
            phase: attr & 1 != 0,
            marker,
            change,
        })
    }
}
