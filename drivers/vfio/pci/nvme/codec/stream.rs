// SPDX-License-Identifier: GPL-2.0

//! The migration data stream of `nvme_vfio_pci`, format version 2, as
//! documented in `include/uapi/linux/nvme_vfio.h`.
//!
//! A 16-byte stream header, then records `{le64 size, le32 flags, le32
//! tag}` + `size` payload bytes, each padded to 8 bytes, in this order: the
//! compatibility record (also the whole PRE_COPY data, so that a destination
//! can refuse an incompatible source before the source stops), the
//! controller state record, then the end record whose CRC32C covers every
//! byte before it. Records with the optional flag and an unknown tag are
//! skipped; an unknown mandatory tag is an error.

use super::bytes::{
    array,
    le16,
    le32,
    le64,
    put,
    u8_at,
    zero, //
};
use super::namespaces::{
    Namespaces,
    TABLE_LEN, //
};
use super::Error;

/// Stream magic.
pub const MAGIC: [u8; 8] = *b"NVMEVFIO";
/// Stream format version (2: the compatibility record carries the
/// namespaces attached to the source).
pub const VERSION: u16 = 2;
/// Length of the stream header.
pub const HEADER_LEN: usize = 16;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Record flag: a reader that does not know the tag may skip the record.
pub const FLAG_OPTIONAL: u32 = 1;

/// Record tags.
pub mod tag {
    /// Compatibility: what the destination must match.
    pub const COMPAT: u32 = 1;
    /// The controller state (Migration Receive data, verbatim).
    pub const CTRL_STATE: u32 = 2;
    /// End of stream: CRC32C of every byte before this record.
    pub const END: u32 = 0xffff_fff0;
}

/// Offset of the namespace table in the compatibility record.
pub const COMPAT_NAMESPACES: usize = 96;
/// Length of the compatibility record's payload.
pub const COMPAT_LEN: usize = COMPAT_NAMESPACES + TABLE_LEN;
/// Bytes of a stream up to the end of the compatibility record: all of the
/// PRE_COPY data.
pub const PREFIX_LEN: usize = HEADER_LEN + RECORD_HEADER_LEN + COMPAT_LEN;
/// Largest controller-state payload accepted.
pub const MAX_STATE_LEN: usize = super::state::MAX_STATE_LEN;

/// The compatibility record: the source's identity and what its state
/// needs from a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compat {
    /// PCI vendor ID of the VF.
    pub vendor: u16,
    /// PCI device ID of the VF.
    pub device: u16,
    /// NVMe controller state version (the value CSVI selected).
    pub nvme_version: u16,
    /// Number of I/O queue pairs the source controller has resources for.
    pub io_queues: u16,
    /// Number of interrupt vectors of the source controller.
    pub vectors: u16,
    /// CAP.MQES of the source controller.
    pub mqes: u16,
    /// Vendor-specific state format (zero: none).
    pub vendor_uuid: [u8; 16],
    /// Model number (Identify Controller MN).
    pub model: [u8; 40],
    /// Firmware revision (Identify Controller FR).
    pub firmware: [u8; 8],
    /// Hash of the subsystem NQN (FNV-1a, 64 bits): the same subsystem.
    pub nqn_hash: u64,
    /// The namespaces attached to the source's controller.
    pub namespaces: Namespaces,
}

impl Compat {
    /// Encodes the payload.
    pub fn encode(&self) -> [u8; COMPAT_LEN] {
        let mut b = [0u8; COMPAT_LEN];
        b[0..2].copy_from_slice(&self.vendor.to_le_bytes());
        b[2..4].copy_from_slice(&self.device.to_le_bytes());
        b[4..6].copy_from_slice(&self.nvme_version.to_le_bytes());
        b[6..8].copy_from_slice(&self.io_queues.to_le_bytes());
        b[8..10].copy_from_slice(&self.vectors.to_le_bytes());
        b[10..12].copy_from_slice(&self.mqes.to_le_bytes());
        b[16..32].copy_from_slice(&self.vendor_uuid);
        b[32..72].copy_from_slice(&self.model);
        b[72..80].copy_from_slice(&self.firmware);
        b[80..88].copy_from_slice(&self.nqn_hash.to_le_bytes());
        b[12] = self.namespaces.count();
        // The table has exactly the room it needs: this cannot fail.
        let _ = self.namespaces.encode(&mut b[COMPAT_NAMESPACES..]);
        b
    }

    /// Decodes the payload (reserved bytes must be zero).
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        if b.len() != COMPAT_LEN {
            return Err(Error::InvalidField("compatibility record length"));
        }
        if !zero(b, 13, 16) || le64(b, 88)? != 0 {
            return Err(Error::InvalidField("compatibility record reserved bytes"));
        }
        Ok(Self {
            vendor: le16(b, 0)?,
            device: le16(b, 2)?,
            nvme_version: le16(b, 4)?,
            io_queues: le16(b, 6)?,
            vectors: le16(b, 8)?,
            mqes: le16(b, 10)?,
            vendor_uuid: array(b, 16)?,
            model: array(b, 32)?,
            firmware: array(b, 72)?,
            nqn_hash: le64(b, 80)?,
            namespaces: Namespaces::parse(
                u8_at(b, 12)?,
                b.get(COMPAT_NAMESPACES..).ok_or(Error::Overflow)?,
            )?,
        })
    }

    /// Whether a destination described by `self` can load a state from a
    /// source described by `src`: same device, model, firmware and
    /// subsystem, the same state formats, at least the resources, and the
    /// same namespaces.
    pub fn accepts(&self, src: &Compat) -> Result<(), Error> {
        if self.vendor != src.vendor || self.device != src.device {
            return Err(Error::OutOfLimits("different PCI device"));
        }
        if self.model != src.model || self.firmware != src.firmware {
            return Err(Error::OutOfLimits("different controller model or firmware"));
        }
        if self.nqn_hash != src.nqn_hash {
            return Err(Error::OutOfLimits(
                "different NVM subsystem: the source's namespaces are not reachable (no media migration)",
            ));
        }
        if self.nvme_version != src.nvme_version || self.vendor_uuid != src.vendor_uuid {
            return Err(Error::OutOfLimits("different controller state format"));
        }
        if self.io_queues < src.io_queues || self.vectors < src.vectors || self.mqes < src.mqes {
            return Err(Error::OutOfLimits("fewer queue resources than the source"));
        }
        self.namespaces.accepts(&src.namespaces)
    }
}

/// FNV-1a, 64 bits: the NQN hash of [`Compat`].
pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// CRC32C (Castagnoli), continuing from `crc` (start with 0).
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = (c >> 1) ^ (0x82f6_3b78 & 0u32.wrapping_sub(c & 1));
        }
    }
    !c
}

fn pad8(n: usize) -> Result<usize, Error> {
    n.checked_add(7).map(|x| x & !7).ok_or(Error::Overflow)
}

/// The bytes a stream with a `state_len`-byte controller state takes.
pub fn stream_len(state_len: usize) -> Result<usize, Error> {
    let rec = |payload: usize| {
        pad8(payload).and_then(|p| p.checked_add(RECORD_HEADER_LEN).ok_or(Error::Overflow))
    };
    HEADER_LEN
        .checked_add(rec(COMPAT_LEN)?)
        .and_then(|n| n.checked_add(rec(state_len).ok()?))
        .and_then(|n| n.checked_add(rec(4).ok()?))
        .ok_or(Error::Overflow)
}

/// Writes the stream header and the compatibility record (the PRE_COPY
/// data) into `out`; returns the bytes written.
pub fn write_prefix(out: &mut [u8], compat: &Compat) -> Result<usize, Error> {
    put(out, 0, &MAGIC)?;
    put(out, 8, &VERSION.to_le_bytes())?;
    put(out, 10, &[0, 0])?;
    // CAST: the header length is a small constant.
    put(out, 12, &(HEADER_LEN as u32).to_le_bytes())?;
    write_record(out, HEADER_LEN, tag::COMPAT, 0, &compat.encode())
}

/// Writes a whole stream carrying `compat` and `state` into `out` (at least
/// [`stream_len`] bytes); returns its length.
pub fn write_stream(out: &mut [u8], compat: &Compat, state: &[u8]) -> Result<usize, Error> {
    let off = write_prefix(out, compat)?;
    let off = write_record(out, off, tag::CTRL_STATE, 0, state)?;
    write_end(out, off)
}

/// The header of the record at `off`: payload size, flags and tag.
pub fn record_header(buf: &[u8], off: usize) -> Result<(u64, u32, u32), Error> {
    Ok((le64(buf, off)?, le32(buf, off + 8)?, le32(buf, off + 12)?))
}

/// Writes one record at `off`; returns the offset after it.
pub fn write_record(
    out: &mut [u8],
    off: usize,
    tag: u32,
    flags: u32,
    payload: &[u8],
) -> Result<usize, Error> {
    let size = u64::try_from(payload.len()).map_err(|_| Error::Overflow)?;
    put(out, off, &size.to_le_bytes())?;
    put(out, off + 8, &flags.to_le_bytes())?;
    put(out, off + 12, &tag.to_le_bytes())?;
    put(out, off + RECORD_HEADER_LEN, payload)?;
    let end = off
        .checked_add(RECORD_HEADER_LEN)
        .and_then(|x| x.checked_add(pad8(payload.len()).ok()?))
        .ok_or(Error::Overflow)?;
    let pad_from = off + RECORD_HEADER_LEN + payload.len();
    for i in pad_from..end {
        put(out, i, &[0])?;
    }
    Ok(end)
}

/// Appends the end record (CRC32C of `out[..off]`); returns the length.
pub fn write_end(out: &mut [u8], off: usize) -> Result<usize, Error> {
    let crc = crc32c(
        0,
        out.get(..off).ok_or(Error::Truncated {
            need: off,
            have: out.len(),
        })?,
    );
    write_record(out, off, tag::END, 0, &crc.to_le_bytes())
}

/// A whole stream, checked: borrowed parts of it.
#[derive(Clone, Copy, Debug)]
pub struct Stream<'a> {
    /// The source's compatibility record.
    pub compat: Compat,
    /// The controller state, as Migration Receive returned it.
    pub state: &'a [u8],
}

/// Checks the stream header at the start of `buf`.
pub fn parse_header(buf: &[u8]) -> Result<(), Error> {
    if array::<8>(buf, 0)? != MAGIC {
        return Err(Error::InvalidField("not an nvme_vfio_pci stream (magic)"));
    }
    if le16(buf, 8)? != VERSION {
        return Err(Error::InvalidField("unsupported stream version"));
    }
    if le16(buf, 10)? != 0 || le32(buf, 12)? != 16 {
        return Err(Error::InvalidField("stream header flags or length"));
    }
    Ok(())
}

impl<'a> Stream<'a> {
    /// Parses and checks a complete stream: header, records in order, each
    /// mandatory record exactly once, the checksum, no trailing bytes.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        parse_header(buf)?;
        let mut off = HEADER_LEN;
        let mut compat = None;
        let mut state = None;
        loop {
            let (size, flags, tag) = record_header(buf, off)?;
            let size = usize::try_from(size).map_err(|_| Error::Overflow)?;
            if size > MAX_STATE_LEN {
                return Err(Error::OutOfLimits("record larger than 4 MiB"));
            }
            if flags & !FLAG_OPTIONAL != 0 {
                return Err(Error::InvalidField("reserved record flags"));
            }
            // The records this version defines are mandatory, and the end
            // record's header is not covered by the checksum: no flags.
            if matches!(tag, tag::COMPAT | tag::CTRL_STATE | tag::END) && flags != 0 {
                return Err(Error::InvalidField("mandatory record marked optional"));
            }
            let start = off + RECORD_HEADER_LEN;
            let payload = buf.get(start..start + size).ok_or(Error::Truncated {
                need: start + size,
                have: buf.len(),
            })?;
            let next = start + pad8(size)?;
            let padding = buf.get(start + size..next).ok_or(Error::Truncated {
                need: next,
                have: buf.len(),
            })?;
            if padding.iter().any(|&b| b != 0) {
                return Err(Error::InvalidField("record padding not zero"));
            }
            match tag {
                tag::COMPAT if compat.is_none() && state.is_none() => {
                    compat = Some(Compat::parse(payload)?);
                }
                tag::CTRL_STATE if compat.is_some() && state.is_none() => {
                    state = Some(payload);
                }
                tag::END => {
                    if size != 4 {
                        return Err(Error::InvalidField("end record length"));
                    }
                    let want = le32(payload, 0)?;
                    if crc32c(0, buf.get(..off).ok_or(Error::Overflow)?) != want {
                        return Err(Error::InvalidField("stream checksum mismatch"));
                    }
                    if next != buf.len() {
                        return Err(Error::TrailingBytes {
                            declared: next,
                            have: buf.len(),
                        });
                    }
                    return match (compat, state) {
                        (Some(compat), Some(state)) => Ok(Self { compat, state }),
                        _ => Err(Error::InvalidField("stream lacks a mandatory record")),
                    };
                }
                tag::COMPAT | tag::CTRL_STATE => {
                    return Err(Error::InvalidField("record out of order or repeated"));
                }
                _ if flags & FLAG_OPTIONAL != 0 => {}
                _ => return Err(Error::InvalidField("unknown mandatory record")),
            }
            off = next;
        }
    }
}
