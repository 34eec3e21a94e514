// SPDX-License-Identifier: GPL-2.0

//! The migration data stream of `nvme_vfio_pci`, format versions 2 and 3,
//! as documented in `include/uapi/linux/nvme_vfio.h`.
//!
//! A 16-byte stream header, then records `{le64 size, le32 flags, le32
//! tag}` + `size` payload bytes, each padded to 8 bytes, in this order: the
//! compatibility record (also the whole PRE_COPY data, so that a destination
//! can refuse an incompatible source before the source stops), in version 3
//! the media records ([`super::media`]: a namespace descriptor for each
//! namespace, then data and zero ranges), the controller state record, then
//! the end record. Its CRC32C covers, in version 2, every byte before it;
//! in version 3, every byte before it except the data bytes of the data
//! records (each data record's own CRC covers those). Records with the
//! optional flag and an unknown tag are skipped; an unknown mandatory tag is
//! an error.
//!
//! One parser: [`record_need`] frames a record, [`parse_record`] decodes it
//! and the stream-order rules ([`Checker`] for a destination fed piece by
//! piece, [`Stream::parse`] for a whole buffer) are one `Order`.

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
    MAX_NAMESPACES,
    TABLE_LEN, //
};
use super::Error;

/// Stream magic.
pub const MAGIC: [u8; 8] = *b"NVMEVFIO";
/// Stream format version (3: media records may follow the compatibility
/// record; written when media migration is on).
pub const VERSION: u16 = 3;
/// Stream format version without media migration (2: the compatibility
/// record carries the namespaces attached to the source). A source with
/// media migration off writes it, so that older destinations read it.
pub const VERSION_NO_MEDIA: u16 = 2;
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
    /// Version 3: a namespace whose media follows ([`super::super::media`]).
    pub const NS_DESC: u32 = 3;
    /// Version 3: LBAs and their data.
    pub const DATA: u32 = 4;
    /// Version 3: a range of LBAs that reads as zeroes.
    pub const ZERO: u32 = 5;
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
    /// Media migration: the namespaces' data travels in the stream (to
    /// another subsystem); byte 13 bit 0. Only in version 3 streams.
    pub media: bool,
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
        b[13] = u8::from(self.media);
        // The table has exactly the room it needs: this cannot fail.
        let _ = self.namespaces.encode(&mut b[COMPAT_NAMESPACES..]);
        b
    }

    /// Decodes the payload (reserved bytes must be zero).
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        if b.len() != COMPAT_LEN {
            return Err(Error::InvalidField("compatibility record length"));
        }
        if u8_at(b, 13)? & !1 != 0 || !zero(b, 14, 16) || le64(b, 88)? != 0 {
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
            media: u8_at(b, 13)? & 1 != 0,
        })
    }

    /// Whether a destination described by `self` can load a state from a
    /// source described by `src`: same device, model, firmware and
    /// subsystem, the same state formats, at least the resources, and the
    /// same namespaces. With media migration (on at both ends, or it is
    /// refused), the subsystem may differ and the namespaces need only the
    /// same NSIDs, format and room ([`Namespaces::accepts_media`]).
    pub fn accepts(&self, src: &Compat) -> Result<(), Error> {
        if self.vendor != src.vendor || self.device != src.device {
            return Err(Error::OutOfLimits("different PCI device"));
        }
        if self.model != src.model || self.firmware != src.firmware {
            return Err(Error::OutOfLimits("different controller model or firmware"));
        }
        if self.media != src.media {
            return Err(Error::OutOfLimits(
                "media migration on at one end only (both or neither must copy the namespaces)",
            ));
        }
        if !self.media && self.nqn_hash != src.nqn_hash {
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
        if self.media {
            self.namespaces.accepts_media(&src.namespaces)
        } else {
            self.namespaces.accepts(&src.namespaces)
        }
    }
}

/// FNV-1a, 64 bits: the NQN hash of [`Compat`].
pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The CRC32C (Castagnoli, reflected 82F63B78h) slicing-by-8 tables:
/// `t[0]` the byte table, `t[k][i]` the CRC of byte `i` followed by `k`
/// zero bytes.
const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        // CAST: `i < 256`.
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = (c >> 1) ^ (0x82f6_3b78 & 0u32.wrapping_sub(c & 1));
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let p = t[k - 1][i];
            // CAST: masked to a byte.
            t[k][i] = (p >> 8) ^ t[0][(p & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

/// Entry `x & 0xff` of a CRC table.
#[inline(always)]
fn crc_at(t: &[u32; 256], x: u64) -> u32 {
    // CAST: masked to a byte, below the table's 256 entries.
    t[(x & 0xff) as usize]
}

/// CRC32C (Castagnoli), continuing from `crc` (start with 0); eight bytes a
/// step (slicing-by-8).
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = &CRC_TABLES;
    let mut c = !crc;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let Ok(w) = <[u8; 8]>::try_from(w) else {
            continue;
        };
        let v = u64::from_le_bytes(w) ^ u64::from(c);
        c = crc_at(t7, v)
            ^ crc_at(t6, v >> 8)
            ^ crc_at(t5, v >> 16)
            ^ crc_at(t4, v >> 24)
            ^ crc_at(t3, v >> 32)
            ^ crc_at(t2, v >> 40)
            ^ crc_at(t1, v >> 48)
            ^ crc_at(t0, v >> 56);
    }
    for &b in words.remainder() {
        c = (c >> 8) ^ crc_at(t0, u64::from(c ^ u32::from(b)));
    }
    !c
}

pub(crate) fn pad8(n: usize) -> Result<usize, Error> {
    n.checked_add(7).map(|x| x & !7).ok_or(Error::Overflow)
}

/// The bytes a stream without media records and with a `state_len`-byte
/// controller state takes.
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

/// The stream version a source described by `compat` writes: [`VERSION`]
/// with media migration, else [`VERSION_NO_MEDIA`].
pub fn version_of(compat: &Compat) -> u16 {
    if compat.media {
        VERSION
    } else {
        VERSION_NO_MEDIA
    }
}

/// Writes the stream header and the compatibility record (the PRE_COPY
/// data) into `out`; returns the bytes written. The version is
/// [`version_of`]`(compat)`.
pub fn write_prefix(out: &mut [u8], compat: &Compat) -> Result<usize, Error> {
    put(out, 0, &MAGIC)?;
    put(out, 8, &version_of(compat).to_le_bytes())?;
    put(out, 10, &[0, 0])?;
    // CAST: the header length is a small constant.
    put(out, 12, &(HEADER_LEN as u32).to_le_bytes())?;
    write_record(out, HEADER_LEN, tag::COMPAT, 0, &compat.encode())
}

/// Writes a whole stream carrying `compat` and `state` into `out` (at least
/// [`stream_len`] bytes); returns its length. With `compat.media` the
/// stream is version 3 without media records, which a reader refuses
/// unless the source has no namespace: a media stream is written record by
/// record ([`super::media`]).
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

/// Appends the end record at `off` with the stream's CRC, computed over
/// `out[..off]` by the rule of the stream's version (read from its header):
/// returns the length.
pub fn write_end(out: &mut [u8], off: usize) -> Result<usize, Error> {
    let have = out.len();
    let prefix = out.get(..off).ok_or(Error::Truncated { need: off, have })?;
    let crc = stream_crc(prefix)?;
    write_end_crc(out, off, crc)
}

/// Appends the end record at `off` carrying `crc` (a source that keeps a
/// running CRC as it writes, with [`crc_record`]); returns the length.
pub fn write_end_crc(out: &mut [u8], off: usize, crc: u32) -> Result<usize, Error> {
    write_record(out, off, tag::END, 0, &crc.to_le_bytes())
}

/// The CRC of an end record following `buf` (a stream header and whole
/// records): version 2 covers every byte, version 3 skips DATA's data.
pub fn stream_crc(buf: &[u8]) -> Result<u32, Error> {
    let version = parse_header(buf)?;
    if version == VERSION_NO_MEDIA {
        return Ok(crc32c(0, buf));
    }
    let mut crc = crc32c(0, buf.get(..HEADER_LEN).ok_or(Error::Overflow)?);
    let mut rest = buf.get(HEADER_LEN..).ok_or(Error::Overflow)?;
    while !rest.is_empty() {
        let need = record_need(rest)?.ok_or(Error::Truncated {
            need: RECORD_HEADER_LEN,
            have: rest.len(),
        })?;
        let raw = rest.get(..need).ok_or(Error::Truncated {
            need,
            have: rest.len(),
        })?;
        crc = crc_record(crc, raw)?;
        rest = rest.get(need..).ok_or(Error::Overflow)?;
    }
    Ok(crc)
}

/// Continues a version-3 stream CRC over one whole record `raw` (header,
/// payload, padding): every byte but the data bytes of a DATA record.
pub fn crc_record(crc: u32, raw: &[u8]) -> Result<u32, Error> {
    let (size, _, t) = record_header(raw, 0)?;
    if t != tag::DATA {
        return Ok(crc32c(crc, raw));
    }
    let data_from = RECORD_HEADER_LEN + super::media::DATA_HEADER_LEN;
    let data_to = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_add(RECORD_HEADER_LEN))
        .ok_or(Error::Overflow)?;
    let head = raw.get(..data_from).ok_or(Error::Truncated {
        need: data_from,
        have: raw.len(),
    })?;
    let pad = raw.get(data_to..).ok_or(Error::Truncated {
        need: data_to,
        have: raw.len(),
    })?;
    Ok(crc32c(crc32c(crc, head), pad))
}

/// A whole stream, checked: borrowed parts of it.
#[derive(Clone, Copy, Debug)]
pub struct Stream<'a> {
    /// The source's compatibility record.
    pub compat: Compat,
    /// The controller state, as Migration Receive returned it.
    pub state: &'a [u8],
    /// The stream format version ([`VERSION`] or [`VERSION_NO_MEDIA`]).
    pub version: u16,
}

/// Checks the stream header at the start of `buf`; returns its version
/// ([`VERSION_NO_MEDIA`] or [`VERSION`]).
pub fn parse_header(buf: &[u8]) -> Result<u16, Error> {
    if array::<8>(buf, 0)? != MAGIC {
        return Err(Error::InvalidField("not an nvme_vfio_pci stream (magic)"));
    }
    let version = le16(buf, 8)?;
    if version != VERSION && version != VERSION_NO_MEDIA {
        return Err(Error::InvalidField("unsupported stream version"));
    }
    if le16(buf, 10)? != 0 || le32(buf, 12)? != 16 {
        return Err(Error::InvalidField("stream header flags or length"));
    }
    Ok(version)
}

/// The largest payload of a record with tag `t` and `flags` (already
/// checked), or why no record with that header is valid.
fn payload_limits(t: u32, flags: u32) -> Result<(usize, usize), Error> {
    use super::media::{
        DATA_HEADER_LEN,
        MAX_DATA_LEN,
        NS_DESC_LEN,
        ZERO_LEN, //
    };
    Ok(match t {
        tag::COMPAT => (COMPAT_LEN, COMPAT_LEN),
        tag::NS_DESC => (NS_DESC_LEN, NS_DESC_LEN),
        tag::DATA => (DATA_HEADER_LEN + 1, DATA_HEADER_LEN + MAX_DATA_LEN),
        tag::ZERO => (ZERO_LEN, ZERO_LEN),
        tag::END => (4, 4),
        tag::CTRL_STATE => (0, MAX_STATE_LEN),
        _ if flags & FLAG_OPTIONAL != 0 => (0, MAX_STATE_LEN),
        _ => return Err(Error::InvalidField("unknown mandatory record")),
    })
}

/// Whether `t` is a tag this version defines (all mandatory).
fn known_tag(t: u32) -> bool {
    matches!(
        t,
        tag::COMPAT | tag::CTRL_STATE | tag::END | tag::NS_DESC | tag::DATA | tag::ZERO
    )
}

/// Total bytes (record header, payload, padding) of the record that starts
/// at `buf[0]`, as soon as its 16-byte header is present; `Ok(None)` if
/// fewer than 16 bytes. Rejects, from the header alone, a size outside the
/// tag's limits, reserved flags, a mandatory tag marked optional and an
/// unknown mandatory tag.
pub fn record_need(buf: &[u8]) -> Result<Option<usize>, Error> {
    if buf.len() < RECORD_HEADER_LEN {
        return Ok(None);
    }
    let (size, flags, t) = record_header(buf, 0)?;
    if flags & !FLAG_OPTIONAL != 0 {
        return Err(Error::InvalidField("reserved record flags"));
    }
    // The records this version defines are mandatory, and the end record's
    // header is not covered by the checksum: no flags.
    if known_tag(t) && flags != 0 {
        return Err(Error::InvalidField("mandatory record marked optional"));
    }
    let (min, max) = payload_limits(t, flags)?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > max {
        return Err(match t {
            tag::CTRL_STATE => Error::OutOfLimits("record larger than 4 MiB"),
            tag::DATA => Error::OutOfLimits("data record larger than 1 MiB of data"),
            _ if !known_tag(t) => Error::OutOfLimits("record larger than 4 MiB"),
            _ => Error::InvalidField("record length not the tag's"),
        });
    }
    if size < min {
        return Err(Error::InvalidField("record length not the tag's"));
    }
    pad8(size)?
        .checked_add(RECORD_HEADER_LEN)
        .map(Some)
        .ok_or(Error::Overflow)
}

/// One record, decoded by [`parse_record`].
// The compatibility record is large and there is no heap in `core`: one
// `Record` at a time lives on the stack, it is not stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The compatibility record.
    Compat(Compat),
    /// A namespace descriptor (version 3).
    NsDesc(super::media::NsDesc),
    /// LBAs and their data (version 3); the data's CRC is checked.
    Data {
        /// The data header.
        header: super::media::DataHeader,
        /// The data bytes.
        data: &'a [u8],
    },
    /// LBAs that read as zeroes (version 3).
    Zero(super::media::ZeroRange),
    /// The controller state.
    CtrlState(&'a [u8]),
    /// The end record, with its CRC.
    End(u32),
    /// An optional record of an unknown tag.
    Skipped,
}

/// Parses the complete record at the start of `buf` (at least
/// [`record_need`] bytes): framing, zero padding, the payload's own rules
/// (reserved bytes zero, a DATA record's CRC); returns the record and its
/// total length.
pub fn parse_record(buf: &[u8]) -> Result<(Record<'_>, usize), Error> {
    use super::media::{
        DataHeader,
        NsDesc,
        ZeroRange, //
    };
    let have = buf.len();
    let need = record_need(buf)?.ok_or(Error::Truncated {
        need: RECORD_HEADER_LEN,
        have,
    })?;
    let (size, _, t) = record_header(buf, 0)?;
    // `record_need` bounded the size: it fits.
    let end = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_add(RECORD_HEADER_LEN))
        .ok_or(Error::Overflow)?;
    let payload = buf
        .get(RECORD_HEADER_LEN..end)
        .ok_or(Error::Truncated { need, have })?;
    let padding = buf.get(end..need).ok_or(Error::Truncated { need, have })?;
    if padding.iter().any(|&b| b != 0) {
        return Err(Error::InvalidField("record padding not zero"));
    }
    let rec = match t {
        tag::COMPAT => Record::Compat(Compat::parse(payload)?),
        tag::NS_DESC => Record::NsDesc(NsDesc::parse(payload)?),
        tag::DATA => {
            let (header, data) = DataHeader::parse(payload)?;
            Record::Data { header, data }
        }
        tag::ZERO => Record::Zero(ZeroRange::parse(payload)?),
        tag::CTRL_STATE => Record::CtrlState(payload),
        tag::END => Record::End(le32(payload, 0)?),
        _ => Record::Skipped,
    };
    Ok((rec, need))
}

/// The stream-order rules and the running CRC, shared by [`Checker`] and
/// [`Stream::parse`].
#[derive(Clone, Debug)]
struct Order {
    version: u16,
    crc: u32,
    src: Option<Compat>,
    /// Whether each namespace of the source's table was described.
    described: [bool; MAX_NAMESPACES],
    state: bool,
    ended: bool,
}

impl Order {
    fn new() -> Self {
        Self {
            version: 0,
            crc: 0,
            src: None,
            described: [false; MAX_NAMESPACES],
            state: false,
            ended: false,
        }
    }

    fn header(&mut self, hdr: &[u8]) -> Result<u16, Error> {
        if self.version != 0 {
            return Err(Error::InvalidField("stream header repeated"));
        }
        let version = parse_header(hdr)?;
        self.crc = crc32c(0, hdr.get(..HEADER_LEN).ok_or(Error::Overflow)?);
        self.version = version;
        Ok(version)
    }

    fn record(&mut self, rec: &Record<'_>, raw: &[u8]) -> Result<(), Error> {
        if self.ended {
            return Err(Error::InvalidField("record after the end record"));
        }
        if self.version == 0 {
            return Err(Error::InvalidField("record before the stream header"));
        }
        match rec {
            Record::Compat(c) => self.compat(c)?,
            Record::NsDesc(d) => self.ns_desc(d)?,
            Record::Data { header, data } => {
                let lbads = self.media_range(header.nsid, header.slba, u64::from(header.nlb))?;
                // `lbads <= 31` and `nlb < 2^32`: no overflow.
                let want = u64::from(header.nlb) << lbads;
                if u64::try_from(data.len()).ok() != Some(want) {
                    return Err(Error::InvalidField("data length is not nlb logical blocks"));
                }
            }
            Record::Zero(z) => {
                self.media_range(z.nsid, z.slba, z.nlb)?;
            }
            Record::CtrlState(_) => self.ctrl_state()?,
            Record::End(crc) => return self.end(*crc),
            Record::Skipped => {}
        }
        self.crc = if self.version == VERSION {
            crc_record(self.crc, raw)?
        } else {
            crc32c(self.crc, raw)
        };
        Ok(())
    }

    fn compat(&mut self, c: &Compat) -> Result<(), Error> {
        if self.src.is_some() || self.state {
            return Err(Error::InvalidField("record out of order or repeated"));
        }
        if c.media != (self.version == VERSION) {
            return Err(Error::InvalidField(
                "media migration flag does not match the stream version",
            ));
        }
        self.src = Some(*c);
        Ok(())
    }

    /// The source's compatibility record, before the controller state:
    /// where media records may be.
    fn media_src(&self) -> Result<&Compat, Error> {
        if self.version != VERSION {
            return Err(Error::InvalidField("media record in a version-2 stream"));
        }
        match &self.src {
            Some(src) if !self.state => Ok(src),
            _ => Err(Error::InvalidField("record out of order or repeated")),
        }
    }

    fn ns_desc(&mut self, d: &super::media::NsDesc) -> Result<(), Error> {
        let src = self.media_src()?;
        let (i, ns) = src
            .namespaces
            .as_slice()
            .iter()
            .enumerate()
            .find(|(_, ns)| ns.nsid == d.nsid)
            .ok_or(Error::InvalidField(
                "namespace descriptor of a namespace the source does not have",
            ))?;
        if d.lbads != ns.lbads {
            return Err(Error::InvalidField(
                "namespace descriptor LBA size differs from the compatibility record",
            ));
        }
        if d.nsze != ns.nsze {
            return Err(Error::InvalidField(
                "namespace descriptor capacity differs from the compatibility record",
            ));
        }
        let seen = self.described.get_mut(i).ok_or(Error::Overflow)?;
        if *seen {
            return Err(Error::InvalidField("namespace described twice"));
        }
        *seen = true;
        Ok(())
    }

    /// Checks a DATA or ZERO range `[slba, slba + nlb)` of `nsid`; returns
    /// the namespace's LBADS.
    fn media_range(&self, nsid: u32, slba: u64, nlb: u64) -> Result<u8, Error> {
        let src = self.media_src()?;
        let ns = src
            .namespaces
            .as_slice()
            .iter()
            .zip(self.described.iter())
            .find(|(ns, &d)| ns.nsid == nsid && d)
            .map(|(ns, _)| ns)
            .ok_or(Error::InvalidField(
                "media record of a namespace not described",
            ))?;
        if nlb == 0 {
            return Err(Error::InvalidField("media record of no logical block"));
        }
        match slba.checked_add(nlb) {
            Some(end) if end <= ns.nsze => Ok(ns.lbads),
            _ => Err(Error::OutOfLimits(
                "media record beyond the namespace's capacity",
            )),
        }
    }

    fn ctrl_state(&mut self) -> Result<(), Error> {
        let Some(src) = &self.src else {
            return Err(Error::InvalidField("record out of order or repeated"));
        };
        if self.state {
            return Err(Error::InvalidField("record out of order or repeated"));
        }
        let all = src.namespaces.as_slice().len();
        if src.media && self.described.iter().take(all).any(|&d| !d) {
            return Err(Error::InvalidField(
                "a namespace of the source not described before the controller state",
            ));
        }
        self.state = true;
        Ok(())
    }

    fn end(&mut self, crc: u32) -> Result<(), Error> {
        if self.crc != crc {
            return Err(Error::InvalidField("stream checksum mismatch"));
        }
        if self.src.is_none() || !self.state {
            return Err(Error::InvalidField("stream lacks a mandatory record"));
        }
        self.ended = true;
        Ok(())
    }
}

/// A destination's checks of a stream fed piece by piece: the stream-order
/// rules of [`Stream::parse`] and the destination's acceptance of the
/// source ([`Compat::accepts`]).
#[derive(Clone, Debug)]
pub struct Checker {
    dest: Compat,
    order: Order,
}

impl Checker {
    /// A checker for a destination described by `dest`.
    pub fn new(dest: &Compat) -> Self {
        Self {
            dest: *dest,
            order: Order::new(),
        }
    }

    /// The 16-byte stream header; returns the version.
    pub fn header(&mut self, hdr: &[u8]) -> Result<u16, Error> {
        self.order.header(hdr)
    }

    /// One record, in stream order: `raw` its complete bytes as framed by
    /// [`parse_record`], `rec` their parse. Checks the order rules (the
    /// compatibility record first; in version 3 each namespace of the
    /// source described once, before its data and the controller state;
    /// media records only in version 3, in the described ranges, DATA's
    /// length `nlb << lbads`; the controller state once, after the media;
    /// the end record last, with the CRC) and that `dest` accepts the
    /// source.
    pub fn check(&mut self, rec: &Record<'_>, raw: &[u8]) -> Result<(), Error> {
        self.order.record(rec, raw)?;
        if let Record::Compat(src) = rec {
            self.dest.accepts(src)?;
        }
        Ok(())
    }

    /// Whether the end record was accepted: the stream is complete.
    pub fn ended(&self) -> bool {
        self.order.ended
    }

    /// The source's compatibility record, once seen.
    pub fn source(&self) -> Option<&Compat> {
        self.order.src.as_ref()
    }

    /// The stream version, once the header is seen.
    pub fn version(&self) -> Option<u16> {
        Some(self.order.version).filter(|&v| v != 0)
    }
}

impl<'a> Stream<'a> {
    /// Parses and checks a complete stream: header, records in order, each
    /// mandatory record exactly once, the checksum, no trailing bytes.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let mut order = Order::new();
        let version = order.header(buf)?;
        let mut off = HEADER_LEN;
        let mut state = None;
        loop {
            let rest = buf.get(off..).unwrap_or(&[]);
            let have = buf.len();
            let need = record_need(rest)?.ok_or(Error::Truncated {
                need: off.saturating_add(RECORD_HEADER_LEN),
                have,
            })?;
            let next = off.checked_add(need).ok_or(Error::Overflow)?;
            let raw = buf
                .get(off..next)
                .ok_or(Error::Truncated { need: next, have })?;
            let (rec, _) = parse_record(raw)?;
            order.record(&rec, raw)?;
            match rec {
                Record::CtrlState(s) => state = Some(s),
                Record::End(_) => break,
                _ => {}
            }
            off = next;
        }
        let next = off.saturating_add(RECORD_HEADER_LEN + 8);
        if next != buf.len() {
            return Err(Error::TrailingBytes {
                declared: next,
                have: buf.len(),
            });
        }
        match (order.src, state) {
            (Some(compat), Some(state)) => Ok(Self {
                compat,
                state,
                version,
            }),
            _ => Err(Error::InvalidField("stream lacks a mandatory record")),
        }
    }
}
