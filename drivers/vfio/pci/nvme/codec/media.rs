// SPDX-License-Identifier: GPL-2.0

//! Media migration records of stream version 3 (`super::stream`): the
//! namespaces' data, copied to a destination in another subsystem.
//!
//! After the compatibility record, the source sends, for each namespace of
//! its compatibility record, one namespace descriptor (`NS_DESC`, before
//! any range of that namespace), then any number of `DATA` records (LBAs
//! and their data, with the data's CRC32C) and `ZERO` records (LBAs that
//! read as zeroes); a later record of an LBA supersedes an earlier one. All
//! of them come before the controller state record. Payloads:
//!
//! - `NS_DESC`, 16 bytes: `le32 nsid`, `u8 lbads`, `u8` reserved, `le16`
//!   reserved, `le64 nsze`.
//! - `DATA`, 24 bytes + data: `le32 nsid`, `le32 nlb` (1-based), `le64
//!   slba`, `le32 crc32c` (of the data), `le32` reserved; then `nlb <<
//!   lbads` data bytes, at most [`MAX_DATA_LEN`].
//! - `ZERO`, 24 bytes: `le32 nsid`, `le32` reserved, `le64 slba`, `le64
//!   nlb` (1-based).
//!
//! The reader is in `super::stream` ([`record_need`], [`parse_record`],
//! [`Checker`]), re-exported here.

use super::bytes::{
    le32,
    le64,
    put,
    u8_at,
    zero, //
};
use super::stream::{
    crc32c,
    pad8,
    tag,
    RECORD_HEADER_LEN, //
};
use super::Error;

pub use super::stream::{
    crc_record,
    parse_record,
    record_need,
    Checker,
    Record, //
};

/// Largest DATA payload (data bytes, without the data header).
pub const MAX_DATA_LEN: usize = 1 << 20;
/// Length of a namespace descriptor payload.
pub const NS_DESC_LEN: usize = 16;
/// Length of a DATA record's header (the data bytes follow it).
pub const DATA_HEADER_LEN: usize = 24;
/// Length of a ZERO record's payload.
pub const ZERO_LEN: usize = 24;

/// A namespace descriptor: the namespace whose ranges follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsDesc {
    /// Namespace identifier.
    pub nsid: u32,
    /// LBA data size, as a power of two.
    pub lbads: u8,
    /// Namespace size in logical blocks.
    pub nsze: u64,
}

/// The header of a DATA record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataHeader {
    /// Namespace identifier.
    pub nsid: u32,
    /// First LBA.
    pub slba: u64,
    /// Number of LBAs (1-based).
    pub nlb: u32,
    /// CRC32C of the data bytes.
    pub crc: u32,
}

/// A ZERO record: LBAs that read as zeroes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroRange {
    /// Namespace identifier.
    pub nsid: u32,
    /// First LBA.
    pub slba: u64,
    /// Number of LBAs (1-based).
    pub nlb: u64,
}

impl NsDesc {
    /// Encodes the payload.
    pub fn encode(&self) -> [u8; NS_DESC_LEN] {
        let mut b = [0u8; NS_DESC_LEN];
        b[0..4].copy_from_slice(&self.nsid.to_le_bytes());
        b[4] = self.lbads;
        b[8..16].copy_from_slice(&self.nsze.to_le_bytes());
        b
    }

    /// Decodes the payload (reserved bytes must be zero).
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        if b.len() != NS_DESC_LEN {
            return Err(Error::InvalidField("namespace descriptor length"));
        }
        if !zero(b, 5, 8) {
            return Err(Error::InvalidField("namespace descriptor reserved bytes"));
        }
        Ok(Self {
            nsid: le32(b, 0)?,
            lbads: u8_at(b, 4)?,
            nsze: le64(b, 8)?,
        })
    }
}

impl DataHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; DATA_HEADER_LEN] {
        let mut b = [0u8; DATA_HEADER_LEN];
        b[0..4].copy_from_slice(&self.nsid.to_le_bytes());
        b[4..8].copy_from_slice(&self.nlb.to_le_bytes());
        b[8..16].copy_from_slice(&self.slba.to_le_bytes());
        b[16..20].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// Decodes a DATA payload: its header and data, whose CRC it checks
    /// (reserved bytes must be zero).
    pub fn parse(b: &[u8]) -> Result<(Self, &[u8]), Error> {
        let data = b.get(DATA_HEADER_LEN..).ok_or(Error::Truncated {
            need: DATA_HEADER_LEN,
            have: b.len(),
        })?;
        if le32(b, 20)? != 0 {
            return Err(Error::InvalidField("data record reserved bytes"));
        }
        let h = Self {
            nsid: le32(b, 0)?,
            nlb: le32(b, 4)?,
            slba: le64(b, 8)?,
            crc: le32(b, 16)?,
        };
        if crc32c(0, data) != h.crc {
            return Err(Error::InvalidField("data record checksum mismatch"));
        }
        Ok((h, data))
    }
}

impl ZeroRange {
    /// Encodes the payload.
    pub fn encode(&self) -> [u8; ZERO_LEN] {
        let mut b = [0u8; ZERO_LEN];
        b[0..4].copy_from_slice(&self.nsid.to_le_bytes());
        b[8..16].copy_from_slice(&self.slba.to_le_bytes());
        b[16..24].copy_from_slice(&self.nlb.to_le_bytes());
        b
    }

    /// Decodes the payload (reserved bytes must be zero).
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        if b.len() != ZERO_LEN {
            return Err(Error::InvalidField("zero record length"));
        }
        if le32(b, 4)? != 0 {
            return Err(Error::InvalidField("zero record reserved bytes"));
        }
        Ok(Self {
            nsid: le32(b, 0)?,
            slba: le64(b, 8)?,
            nlb: le64(b, 16)?,
        })
    }
}

/// Bytes a DATA record with `data_len` data bytes takes (record header,
/// data header, data, padding); `data_len` is 1 to [`MAX_DATA_LEN`].
pub fn data_record_len(data_len: usize) -> Result<usize, Error> {
    if data_len == 0 {
        return Err(Error::InvalidField("data record without data"));
    }
    if data_len > MAX_DATA_LEN {
        return Err(Error::OutOfLimits("data record larger than 1 MiB of data"));
    }
    Ok(RECORD_HEADER_LEN + pad8(DATA_HEADER_LEN + data_len)?)
}

/// Writes a namespace descriptor record at `off`; returns the offset after
/// it.
pub fn write_ns_desc(out: &mut [u8], off: usize, d: &NsDesc) -> Result<usize, Error> {
    super::stream::write_record(out, off, tag::NS_DESC, 0, &d.encode())
}

/// Writes a ZERO record at `off`; returns the offset after it.
pub fn write_zero(out: &mut [u8], off: usize, z: &ZeroRange) -> Result<usize, Error> {
    super::stream::write_record(out, off, tag::ZERO, 0, &z.encode())
}

/// Writes a whole DATA record at `off` carrying `data` (`h.crc` is
/// ignored: the CRC of `data` is written); returns the offset after it.
pub fn write_data(out: &mut [u8], off: usize, h: &DataHeader, data: &[u8]) -> Result<usize, Error> {
    let h = DataHeader {
        crc: crc32c(0, data),
        ..*h
    };
    let data_off = begin_data(out, off, &h, data.len())?;
    put(out, data_off, data)?;
    end_data(out, data_off + data.len())
}

/// Writes the record header and the DATA header (with `h.crc` as given)
/// of a record of `data_len` data bytes at `off`, a multiple of 8; returns
/// the offset where the data bytes go. The caller then puts the data there
/// and calls [`finish_data`] (which computes the CRC) or, with `h.crc`
/// already right, [`end_data`].
pub fn begin_data(
    out: &mut [u8],
    off: usize,
    h: &DataHeader,
    data_len: usize,
) -> Result<usize, Error> {
    if off % 8 != 0 {
        return Err(Error::InvalidField("record offset not a multiple of 8"));
    }
    let end = off
        .checked_add(data_record_len(data_len)?)
        .ok_or(Error::Overflow)?;
    if end > out.len() {
        return Err(Error::Truncated {
            need: end,
            have: out.len(),
        });
    }
    let size = u64::try_from(DATA_HEADER_LEN + data_len).map_err(|_| Error::Overflow)?;
    put(out, off, &size.to_le_bytes())?;
    put(out, off + 8, &0u32.to_le_bytes())?;
    put(out, off + 12, &tag::DATA.to_le_bytes())?;
    put(out, off + RECORD_HEADER_LEN, &h.encode())?;
    Ok(off + RECORD_HEADER_LEN + DATA_HEADER_LEN)
}

/// Writes the padding after data that ends at `data_end` (of a record
/// [`begin_data`] started); returns the offset after the record.
pub fn end_data(out: &mut [u8], data_end: usize) -> Result<usize, Error> {
    let end = pad8(data_end)?;
    let have = out.len();
    out.get_mut(data_end..end)
        .ok_or(Error::Truncated { need: end, have })?
        .fill(0);
    Ok(end)
}

/// Completes the DATA record that [`begin_data`] started at `off`, its
/// data in place: computes and writes the data's CRC, writes the padding;
/// returns the offset after the record.
pub fn finish_data(out: &mut [u8], off: usize) -> Result<usize, Error> {
    let (size, _, t) = super::stream::record_header(out, off)?;
    if t != tag::DATA {
        return Err(Error::InvalidField("not a data record"));
    }
    let data_off = off + RECORD_HEADER_LEN + DATA_HEADER_LEN;
    let data_end = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_add(off + RECORD_HEADER_LEN))
        .filter(|&e| e >= data_off)
        .ok_or(Error::Overflow)?;
    let have = out.len();
    let data = out.get(data_off..data_end).ok_or(Error::Truncated {
        need: data_end,
        have,
    })?;
    let crc = crc32c(0, data);
    put(out, off + RECORD_HEADER_LEN + 16, &crc.to_le_bytes())?;
    end_data(out, data_end)
}
