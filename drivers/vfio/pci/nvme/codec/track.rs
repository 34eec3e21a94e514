// SPDX-License-Identifier: GPL-2.0

//! Track Memory Changes (NVMe Base 2.2): the host memory ranges a
//! controller is asked to watch (Track Send, SEL 1, data of a start) and the
//! changes it reports (Track Receive, Tracked Memory Changes), plus the
//! Identify Controller limits. Layouts are libnvme 3.2's
//! `nvme_lm_track_memory_changes_data`, `nvme_lm_memory_range_tracking_descriptor`,
//! `nvme_lm_tracked_memory_change_data` and
//! `nvme_lm_tracked_memory_changed_descriptor`. Every granularity is a power
//! of two given as its log2 in bytes (12 = 4 KiB); see
//! `Documentation/nvme-vfio/emulated-hmlm.rst` for the field positions the
//! public material leaves open.

use super::bytes::{
    le16,
    le32,
    le64,
    put,
    u8_at, //
};
use super::Error;

/// Identify Controller: Controller Max Memory Range Tracking Descriptors.
pub const ID_CTRL_CMMRTD: usize = 570;
/// Identify Controller: NVM Subsystem Max Memory Range Tracking Descriptors.
pub const ID_CTRL_NMMRTD: usize = 572;
/// Identify Controller: Minimum Memory Range Tracking Granularity.
pub const ID_CTRL_MINMRTG: usize = 574;
/// Identify Controller: Maximum Memory Range Tracking Granularity.
pub const ID_CTRL_MAXMRTG: usize = 575;
/// Identify Controller: Tracking Attributes.
pub const ID_CTRL_TRATTR: usize = 576;
/// TRATTR bit 0: Track Host Memory Changes supported.
pub const TRATTR_THMCS: u8 = 1 << 0;

/// Length of the header of the Track Memory Changes data structure.
pub const START_HEADER_LEN: usize = 8;
/// Length of one Memory Range Tracking Descriptor.
pub const RANGE_LEN: usize = 12;
/// Length of the header of the Tracked Memory Change data structure.
pub const REPORT_HEADER_LEN: usize = 16;
/// Length of one Tracked Memory Changed Descriptor.
pub const CHANGE_LEN: usize = 16;
/// ATTRB bit 0: more changes remain than the buffer held; receive again.
pub const ATTRB_MORE: u8 = 1 << 0;
/// Smallest granularity a host page can be tracked at (4 KiB).
pub const MIN_GRANULARITY: u8 = 12;
/// Largest granularity this code handles (a granule still fits a `u64`).
pub const MAX_GRANULARITY: u8 = 62;

/// What a controller can track, from its Identify Controller data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Descriptors one controller may track (CMMRTD).
    pub ranges: u16,
    /// Descriptors the whole NVM subsystem may track (NMMRTD).
    pub subsystem_ranges: u16,
    /// Finest granularity (MINMRTG), log2 bytes.
    pub min_granularity: u8,
    /// Coarsest granularity (MAXMRTG), log2 bytes.
    pub max_granularity: u8,
}

impl Limits {
    /// The limits in Identify Controller data `id`; `None` if the controller
    /// does not track host memory changes (THMCS clear). A controller that
    /// claims support with unusable limits is an error.
    pub fn parse(id: &[u8]) -> Result<Option<Self>, Error> {
        if u8_at(id, ID_CTRL_TRATTR)? & TRATTR_THMCS == 0 {
            return Ok(None);
        }
        let l = Self {
            ranges: le16(id, ID_CTRL_CMMRTD)?,
            subsystem_ranges: le16(id, ID_CTRL_NMMRTD)?,
            min_granularity: u8_at(id, ID_CTRL_MINMRTG)?,
            max_granularity: u8_at(id, ID_CTRL_MAXMRTG)?,
        };
        if l.ranges == 0 {
            return Err(Error::InvalidField("CMMRTD is 0 with THMCS set"));
        }
        if l.min_granularity < MIN_GRANULARITY
            || l.max_granularity > MAX_GRANULARITY
            || l.min_granularity > l.max_granularity
        {
            return Err(Error::InvalidField("MINMRTG/MAXMRTG out of range"));
        }
        Ok(Some(l))
    }

    /// The granularity to ask for when the host wants `want` (log2 bytes):
    /// `want` clamped to what the controller offers.
    pub fn granularity_for(&self, want: u8) -> u8 {
        want.clamp(self.min_granularity, self.max_granularity)
    }
}

/// A host memory range, in granules of the granularity it is used with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Start address, aligned to the granularity.
    pub addr: u64,
    /// Length in granules, not zero.
    pub granules: u32,
}

impl Range {
    /// The first and the last byte address of the range at `granularity`,
    /// or `None` if it is empty or does not fit the address space.
    pub fn bytes(&self, granularity: u8) -> Option<(u64, u64)> {
        if self.granules == 0 || granularity > MAX_GRANULARITY {
            return None;
        }
        let mask = (1u64 << granularity) - 1;
        if self.addr & mask != 0 {
            return None;
        }
        let len = u64::from(self.granules).checked_shl(u32::from(granularity))?;
        let last = self.addr.checked_add(len - 1)?;
        Some((self.addr, last))
    }
}

/// Bytes of a start's data with `n` descriptors.
pub fn start_len(n: usize) -> Option<usize> {
    n.checked_mul(RANGE_LEN)?.checked_add(START_HEADER_LEN)
}

/// Encodes the Track Memory Changes data structure of a start into `buf`
/// and returns its length. The ranges must be non-empty, aligned, sorted
/// and disjoint: what a controller accepts.
pub fn encode_start(buf: &mut [u8], granularity: u8, ranges: &[Range]) -> Result<usize, Error> {
    let len = start_len(ranges.len()).ok_or(Error::Overflow)?;
    let count = u32::try_from(ranges.len()).map_err(|_| Error::Overflow)?;
    if count == 0 {
        return Err(Error::InvalidField("no range to track"));
    }
    let mut prev_last: Option<u64> = None;
    for r in ranges {
        let (first, last) = r
            .bytes(granularity)
            .ok_or(Error::InvalidField("range empty, misaligned or too long"))?;
        if prev_last.is_some_and(|p| first <= p) {
            return Err(Error::InvalidField("ranges unsorted or overlapping"));
        }
        prev_last = Some(last);
    }
    put(buf, 0, &[0, 0, 0, granularity])?;
    put(buf, 4, &count.to_le_bytes())?;
    for (i, r) in ranges.iter().enumerate() {
        let off = START_HEADER_LEN + i * RANGE_LEN;
        put(buf, off, &r.addr.to_le_bytes())?;
        put(buf, off + 8, &r.granules.to_le_bytes())?;
    }
    Ok(len)
}

/// A decoded start: what a controller is asked to track.
#[derive(Clone, Copy, Debug)]
pub struct Start<'a> {
    /// Requested granularity (RMRTG), log2 bytes.
    pub granularity: u8,
    ranges: &'a [u8],
}

impl<'a> Start<'a> {
    /// Decodes the data of a start (VER 0, RNMRTD descriptors present).
    /// Does not check the ranges against each other or a controller.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        if u8_at(buf, 0)? != 0 {
            return Err(Error::InvalidField("VER"));
        }
        let n = usize::try_from(le32(buf, 4)?).map_err(|_| Error::Overflow)?;
        let end = start_len(n).ok_or(Error::Overflow)?;
        let ranges = buf.get(START_HEADER_LEN..end).ok_or(Error::Truncated {
            need: end,
            have: buf.len(),
        })?;
        Ok(Self {
            granularity: u8_at(buf, 3)?,
            ranges,
        })
    }

    /// The requested ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = Range> + 'a {
        self.ranges.chunks_exact(RANGE_LEN).map(|d| Range {
            addr: le64(d, 0).unwrap_or(0),
            granules: le32(d, 8).unwrap_or(0),
        })
    }
}

/// A decoded Tracked Memory Change data structure.
#[derive(Clone, Copy, Debug)]
pub struct Changes<'a> {
    /// Attributes (ATTRB).
    pub attributes: u8,
    /// The controller the changes are of.
    pub cntlid: u16,
    /// Reported granularity (RPMPG), log2 bytes.
    pub granularity: u8,
    descs: &'a [u8],
}

impl<'a> Changes<'a> {
    /// Decodes a Track Receive buffer: VER 0, a usable granularity, and all
    /// NTMCD descriptors inside `buf`. Each descriptor is checked by
    /// [`Changes::ranges`]' consumer against what it tracks.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        if u8_at(buf, 0)? != 0 {
            return Err(Error::InvalidField("VER"));
        }
        let rpmpg = le16(buf, 8)?;
        let granularity = u8::try_from(rpmpg)
            .ok()
            .filter(|g| (MIN_GRANULARITY..=MAX_GRANULARITY).contains(g))
            .ok_or(Error::InvalidField("RPMPG"))?;
        let n = usize::try_from(le32(buf, 4)?).map_err(|_| Error::Overflow)?;
        let end = n
            .checked_mul(CHANGE_LEN)
            .and_then(|b| b.checked_add(REPORT_HEADER_LEN))
            .ok_or(Error::Overflow)?;
        let descs = buf.get(REPORT_HEADER_LEN..end).ok_or(Error::Truncated {
            need: end,
            have: buf.len(),
        })?;
        Ok(Self {
            attributes: u8_at(buf, 1)?,
            cntlid: le16(buf, 2)?,
            granularity,
            descs,
        })
    }

    /// Whether the controller holds more changes than this buffer did.
    pub fn more(&self) -> bool {
        self.attributes & ATTRB_MORE != 0
    }

    /// Number of descriptors (NTMCD).
    pub fn len(&self) -> usize {
        self.descs.len() / CHANGE_LEN
    }

    /// Whether no change is reported.
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// The changed ranges, in granules of [`Changes::granularity`].
    pub fn ranges(&self) -> impl Iterator<Item = Range> + 'a {
        self.descs.chunks_exact(CHANGE_LEN).map(|d| Range {
            addr: le64(d, 0).unwrap_or(0),
            granules: le32(d, 8).unwrap_or(0),
        })
    }
}

/// Encodes a Tracked Memory Change data structure (what a controller
/// returns) into `buf`; returns its length.
pub fn encode_changes(
    buf: &mut [u8],
    cntlid: u16,
    granularity: u8,
    more: bool,
    changes: &[Range],
) -> Result<usize, Error> {
    let count = u32::try_from(changes.len()).map_err(|_| Error::Overflow)?;
    let len = changes
        .len()
        .checked_mul(CHANGE_LEN)
        .and_then(|b| b.checked_add(REPORT_HEADER_LEN))
        .ok_or(Error::Overflow)?;
    put(buf, 0, &[0, u8::from(more) * ATTRB_MORE])?;
    put(buf, 2, &cntlid.to_le_bytes())?;
    put(buf, 4, &count.to_le_bytes())?;
    put(buf, 8, &u16::from(granularity).to_le_bytes())?;
    put(buf, 10, &[0; 6])?;
    for (i, r) in changes.iter().enumerate() {
        let off = REPORT_HEADER_LEN + i * CHANGE_LEN;
        put(buf, off, &r.addr.to_le_bytes())?;
        put(buf, off + 8, &r.granules.to_le_bytes())?;
        put(buf, off + 12, &[0; 4])?;
    }
    Ok(len)
}
