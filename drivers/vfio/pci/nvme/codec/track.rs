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

// Both structures are a header with the descriptor count (le32) at byte 4,
// then descriptors of a fixed stride that begin with SADDR (le64) and LEN
// (le32); the rest of a descriptor is reserved.

/// Bytes of a header of `header` bytes and `n` descriptors of `stride`.
fn list_len(header: usize, n: usize, stride: usize) -> Option<usize> {
    n.checked_mul(stride)?.checked_add(header)
}

/// The descriptors of `buf` (a header of `header` bytes, `stride`-byte
/// descriptors), all of which must be inside `buf`.
fn list(buf: &[u8], header: usize, stride: usize) -> Result<&[u8], Error> {
    let n = usize::try_from(le32(buf, 4)?).map_err(|_| Error::Overflow)?;
    let end = list_len(header, n, stride).ok_or(Error::Overflow)?;
    buf.get(header..end).ok_or(Error::Truncated {
        need: end,
        have: buf.len(),
    })
}

/// The ranges of the descriptors `descs`, `stride` bytes each.
fn decode_list(descs: &[u8], stride: usize) -> impl Iterator<Item = Range> + '_ {
    descs.chunks_exact(stride).map(|d| Range {
        addr: le64(d, 0).unwrap_or(0),
        granules: le32(d, 8).unwrap_or(0),
    })
}

/// Writes the count of `ranges` at byte 4 and the ranges as `stride`-byte
/// descriptors from byte `header` on (reserved bytes zero); returns the
/// length of the whole structure.
fn encode_list(
    buf: &mut [u8],
    header: usize,
    stride: usize,
    ranges: &[Range],
) -> Result<usize, Error> {
    let len = list_len(header, ranges.len(), stride).ok_or(Error::Overflow)?;
    let count = u32::try_from(ranges.len()).map_err(|_| Error::Overflow)?;
    put(buf, 4, &count.to_le_bytes())?;
    let have = buf.len();
    for (i, r) in ranges.iter().enumerate() {
        // No overflow: `len`, computed checked, covers every descriptor.
        let (off, end) = (header + i * stride, header + (i + 1) * stride);
        put(buf, off, &r.addr.to_le_bytes())?;
        put(buf, off + 8, &r.granules.to_le_bytes())?;
        buf.get_mut(off + 12..end)
            .ok_or(Error::Truncated { need: end, have })?
            .fill(0);
    }
    Ok(len)
}

/// Bytes of a start's data with `n` descriptors.
pub fn start_len(n: usize) -> Option<usize> {
    list_len(START_HEADER_LEN, n, RANGE_LEN)
}

/// Encodes the Track Memory Changes data structure of a start into `buf`
/// and returns its length. The ranges must be non-empty, aligned, sorted
/// and disjoint: what a controller accepts.
pub fn encode_start(buf: &mut [u8], granularity: u8, ranges: &[Range]) -> Result<usize, Error> {
    if ranges.is_empty() {
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
    encode_list(buf, START_HEADER_LEN, RANGE_LEN, ranges)
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
        Ok(Self {
            granularity: u8_at(buf, 3)?,
            ranges: list(buf, START_HEADER_LEN, RANGE_LEN)?,
        })
    }

    /// The requested ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = Range> + 'a {
        decode_list(self.ranges, RANGE_LEN)
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
        Ok(Self {
            attributes: u8_at(buf, 1)?,
            cntlid: le16(buf, 2)?,
            granularity,
            descs: list(buf, REPORT_HEADER_LEN, CHANGE_LEN)?,
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
        decode_list(self.descs, CHANGE_LEN)
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
    put(buf, 0, &[0, u8::from(more) * ATTRB_MORE])?;
    put(buf, 2, &cntlid.to_le_bytes())?;
    put(buf, 8, &u16::from(granularity).to_le_bytes())?;
    put(buf, 10, &[0; 6])?;
    encode_list(buf, REPORT_HEADER_LEN, CHANGE_LEN, changes)
}
