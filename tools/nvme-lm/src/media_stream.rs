// SPDX-License-Identifier: GPL-2.0

//! The media records of migration stream format v3, from the test side:
//! walk a captured stream record by record, count what it carries, and
//! build the bad streams of `tests/vm/media.sh` from a real one.
//!
//! Local stand-ins, in this one place, until the shared codec's
//! `codec::media` lands: the layouts below follow the format as specified
//! (16-byte header, magic "NVMEVFIO", le16 version 3; records {le64 size,
//! le32 flags, le32 tag} + payload padded to 8; NS_DESC {le32 nsid, u8
//! lbads, u8 0, le16 0, le64 nsze}; DATA {le32 nsid, le32 nlb (1-based),
//! le64 slba, le32 crc32c(data), le32 0, data}; ZERO {le32 nsid, le32 0,
//! le64 slba, le64 nlb}; END {le32 CRC32C of every byte before it except
//! DATA records' data bytes}). Swap [`walk`], [`end_crc`] and the
//! builders for the codec's reader and writer functions once they exist.

use crate::codec::stream::{
    crc32c,
    HEADER_LEN,
    MAGIC,
    RECORD_HEADER_LEN, //
};
use std::fmt::Write as _;

/// Stream format version with media records.
pub const VERSION: u16 = 3;

/// Record tags of format v3.
pub mod tag {
    /// Compatibility record.
    pub const COMPAT: u32 = 1;
    /// Controller state.
    pub const CTRL_STATE: u32 = 2;
    /// A namespace the stream carries.
    pub const NS_DESC: u32 = 3;
    /// Blocks of data.
    pub const DATA: u32 = 4;
    /// A range of zeroes.
    pub const ZERO: u32 = 5;
    /// End (CRC32C).
    pub const END: u32 = 0xffff_fff0;
}

/// Offset of the flags byte in the compatibility record's payload whose
/// bit 0 says the media travels in the stream.
pub const COMPAT_MEDIA_BYTE: usize = 13;
/// Length of a DATA record's fields before its data.
pub const DATA_HEADER_LEN: usize = 24;
/// Largest DATA record data the destination must accept.
pub const MAX_DATA_LEN: u64 = 1 << 20;

/// One record of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    /// Offset of its header in the stream.
    pub off: usize,
    /// Payload size.
    pub size: usize,
    /// Flags.
    pub flags: u32,
    /// Tag.
    pub tag: u32,
}

impl Rec {
    /// Offset of its payload.
    pub fn payload(&self) -> usize {
        self.off + RECORD_HEADER_LEN
    }
    /// Offset after it (padding included).
    pub fn end(&self) -> usize {
        self.payload() + self.size.div_ceil(8) * 8
    }
}

/// The name of a record tag.
pub fn tag_name(t: u32) -> String {
    match t {
        tag::COMPAT => "COMPAT".into(),
        tag::CTRL_STATE => "CTRL_STATE".into(),
        tag::NS_DESC => "NS_DESC".into(),
        tag::DATA => "DATA".into(),
        tag::ZERO => "ZERO".into(),
        tag::END => "END".into(),
        t => format!("tag {t:#x}"),
    }
}

fn le32(b: &[u8], o: usize) -> Result<u32, String> {
    b.get(o..o + 4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        .ok_or_else(|| format!("stream: 4 bytes at {o} beyond its {} bytes", b.len()))
}

fn le64(b: &[u8], o: usize) -> Result<u64, String> {
    let lo = le32(b, o)?;
    let hi = le32(b, o + 4)?;
    Ok(u64::from(lo) | u64::from(hi) << 32)
}

/// The records of `buf` up to and including the end record (or up to
/// where `buf` ends, if `partial`): checks the header (magic, version 3)
/// and that each record fits.
pub fn walk(buf: &[u8], partial: bool) -> Result<Vec<Rec>, String> {
    if buf.get(..8) != Some(&MAGIC[..]) {
        return Err("stream: no NVMEVFIO magic".into());
    }
    let v = u16::from_le_bytes([buf[8], buf[9]]);
    if v != VERSION {
        return Err(format!("stream: version {v}, expected {VERSION}"));
    }
    let mut off = HEADER_LEN;
    let mut recs = Vec::new();
    while off < buf.len() {
        if partial && off + RECORD_HEADER_LEN > buf.len() {
            break;
        }
        let size = usize::try_from(le64(buf, off)?).map_err(|x| x.to_string())?;
        let r = Rec {
            off,
            size,
            flags: le32(buf, off + 8)?,
            tag: le32(buf, off + 12)?,
        };
        if r.end() > buf.len() && !partial {
            return Err(format!(
                "stream: record {} ({}) at {off}: {size} bytes run past the end ({} bytes)",
                recs.len(),
                tag_name(r.tag),
                buf.len()
            ));
        }
        recs.push(r);
        if r.tag == tag::END {
            break;
        }
        off = r.end();
    }
    Ok(recs)
}

/// A namespace a stream describes (NS_DESC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsDesc {
    /// NSID.
    pub nsid: u32,
    /// log2 of the block size.
    pub lbads: u8,
    /// Size in blocks.
    pub nsze: u64,
}

/// The fields of a DATA record (data not included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data {
    /// NSID.
    pub nsid: u32,
    /// Blocks (1-based).
    pub nlb: u32,
    /// First block.
    pub slba: u64,
    /// CRC32C of the data.
    pub crc: u32,
}

/// The NS_DESC at `r`.
pub fn ns_desc(buf: &[u8], r: &Rec) -> Result<NsDesc, String> {
    let p = r.payload();
    Ok(NsDesc {
        nsid: le32(buf, p)?,
        lbads: *buf.get(p + 4).ok_or("stream: NS_DESC truncated")?,
        nsze: le64(buf, p + 8)?,
    })
}

/// The DATA fields at `r`.
pub fn data(buf: &[u8], r: &Rec) -> Result<Data, String> {
    let p = r.payload();
    Ok(Data {
        nsid: le32(buf, p)?,
        nlb: le32(buf, p + 4)?,
        slba: le64(buf, p + 8)?,
        crc: le32(buf, p + 16)?,
    })
}

/// The (nsid, slba, nlb) of the ZERO at `r`.
pub fn zero(buf: &[u8], r: &Rec) -> Result<(u32, u64, u64), String> {
    let p = r.payload();
    Ok((le32(buf, p)?, le64(buf, p + 8)?, le64(buf, p + 16)?))
}

/// CRC32C of every byte before the end record at `end_off` except DATA
/// records' data bytes: what the end record must carry.
pub fn end_crc(buf: &[u8], recs: &[Rec], end_off: usize) -> u32 {
    let mut crc = 0;
    let mut from = 0;
    for r in recs
        .iter()
        .filter(|r| r.tag == tag::DATA && r.off < end_off)
    {
        let data_at = r.payload() + DATA_HEADER_LEN;
        crc = crc32c(crc, &buf[from..data_at.min(end_off)]);
        from = (r.payload() + r.size).min(end_off);
    }
    crc32c(crc, &buf[from..end_off])
}

/// CRC32C of a DATA record's data (table driven: streams carry MiBs).
pub fn data_crc(data: &[u8]) -> u32 {
    crate::fuzz::mutate::crc32c(data)
}

/// What a stream carries.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Stream length.
    pub bytes: usize,
    /// Records by tag, in first-seen order: (tag, count, bytes with headers).
    pub by_tag: Vec<(u32, usize, usize)>,
    /// The namespaces described.
    pub namespaces: Vec<NsDesc>,
    /// DATA records.
    pub data_records: usize,
    /// Blocks and bytes of data they carry.
    pub data_blocks: u64,
    /// Data bytes (nlb << lbads).
    pub data_bytes: u64,
    /// ZERO records.
    pub zero_records: usize,
    /// Blocks they zero.
    pub zero_blocks: u64,
    /// Zeroed bytes.
    pub zero_bytes: u64,
    /// The compatibility record says media: on.
    pub media: bool,
    /// The end record's CRC matches [`end_crc`].
    pub end_crc_ok: bool,
}

/// Walks a complete stream and counts what it carries; checks each DATA
/// record's data CRC and the end CRC.
pub fn summarize(buf: &[u8]) -> Result<Summary, String> {
    let recs = walk(buf, false)?;
    let mut s = Summary {
        bytes: buf.len(),
        ..Summary::default()
    };
    for (i, r) in recs.iter().enumerate() {
        match s.by_tag.iter_mut().find(|x| x.0 == r.tag) {
            Some(x) => {
                x.1 += 1;
                x.2 += r.end() - r.off;
            }
            None => s.by_tag.push((r.tag, 1, r.end() - r.off)),
        }
        match r.tag {
            tag::COMPAT => {
                s.media = buf
                    .get(r.payload() + COMPAT_MEDIA_BYTE)
                    .is_some_and(|b| b & 1 != 0)
            }
            tag::NS_DESC => s.namespaces.push(ns_desc(buf, r)?),
            tag::DATA => {
                let d = data(buf, r)?;
                let lbads = s
                    .namespaces
                    .iter()
                    .find(|n| n.nsid == d.nsid)
                    .map(|n| n.lbads)
                    .ok_or_else(|| {
                        format!(
                            "stream: DATA record {i} for NSID {} before its NS_DESC",
                            d.nsid
                        )
                    })?;
                let len = u64::from(d.nlb) << lbads;
                let at = r.payload() + DATA_HEADER_LEN;
                let bytes = usize::try_from(len)
                    .ok()
                    .and_then(|l| buf.get(at..at + l))
                    .ok_or_else(|| {
                        format!("stream: DATA record {i}: {len} data bytes do not fit")
                    })?;
                if data_crc(bytes) != d.crc {
                    return Err(format!(
                        "stream: DATA record {i} (NSID {} LBA {} +{}): data CRC mismatch",
                        d.nsid, d.slba, d.nlb
                    ));
                }
                s.data_records += 1;
                s.data_blocks += u64::from(d.nlb);
                s.data_bytes += len;
            }
            tag::ZERO => {
                let (nsid, _, nlb) = zero(buf, r)?;
                let lbads = s
                    .namespaces
                    .iter()
                    .find(|n| n.nsid == nsid)
                    .map_or(9, |n| n.lbads);
                s.zero_records += 1;
                s.zero_blocks += nlb;
                s.zero_bytes += nlb << lbads;
            }
            tag::END => {
                s.end_crc_ok = le32(buf, r.payload())? == end_crc(buf, &recs, r.off);
            }
            _ => {}
        }
    }
    if recs.last().map(|r| r.tag) != Some(tag::END) {
        return Err("stream: no end record".into());
    }
    Ok(s)
}

impl Summary {
    /// The printed table.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "stream: {} bytes, media {}, end CRC {}",
            self.bytes,
            if self.media { "on" } else { "off" },
            if self.end_crc_ok { "ok" } else { "MISMATCH" }
        );
        for (t, n, b) in &self.by_tag {
            let _ = writeln!(o, "  records {:10} {n:8}  {b:12} bytes", tag_name(*t));
        }
        for n in &self.namespaces {
            let _ = writeln!(
                o,
                "  namespace NSID {}: {} blocks of {} bytes ({} MiB)",
                n.nsid,
                n.nsze,
                1u64 << n.lbads,
                (n.nsze << n.lbads) >> 20
            );
        }
        let _ = writeln!(
            o,
            "DATA: {} records, {} blocks, {} data bytes; ZERO: {} records, {} blocks, {} bytes",
            self.data_records,
            self.data_blocks,
            self.data_bytes,
            self.zero_records,
            self.zero_blocks,
            self.zero_bytes
        );
        o
    }
}

/// The bad streams of `tests/vm/media.sh`, each made from a real stream.
pub const MUTATIONS: &[&str] = &[
    "beyond_capacity",
    "unknown_nsid",
    "huge_nlb",
    "truncated",
    "after_end",
];

/// A bad stream made from `good` by `how` (one of [`MUTATIONS`]), and the
/// index of the record the destination must refuse (the one changed or
/// added; for `truncated`, the record the stream ends in).
pub fn mutate(good: &[u8], how: &str) -> Result<(Vec<u8>, usize), String> {
    let recs = walk(good, false)?;
    let (di, dr) = recs
        .iter()
        .enumerate()
        .find(|(_, r)| r.tag == tag::DATA)
        .ok_or("the stream has no DATA record to change")?;
    let d = data(good, dr)?;
    let ns = recs
        .iter()
        .filter(|r| r.tag == tag::NS_DESC)
        .map(|r| ns_desc(good, r))
        .collect::<Result<Vec<_>, _>>()?;
    let desc = *ns
        .iter()
        .find(|n| n.nsid == d.nsid)
        .ok_or("the first DATA record's NSID has no NS_DESC")?;
    let mut out = good.to_vec();
    let p = dr.payload();
    match how {
        "beyond_capacity" => {
            // Straddles the end: starts inside, its last block is the one
            // past it (a one-block record starts past it).
            let slba = (desc.nsze + 1).saturating_sub(u64::from(d.nlb)).max(1);
            out[p + 8..p + 16].copy_from_slice(&slba.to_le_bytes());
        }
        "unknown_nsid" => {
            let nsid = ns.iter().map(|n| n.nsid).max().unwrap_or(0) + 100;
            out[p..p + 4].copy_from_slice(&nsid.to_le_bytes());
        }
        "huge_nlb" => {
            // A well-formed DATA record (size, data CRC) of more than 1 MiB
            // of data, in place of the first.
            let nlb = u32::try_from((MAX_DATA_LEN >> desc.lbads) + 1).map_err(|x| x.to_string())?;
            let len = (u64::from(nlb) << desc.lbads) as usize;
            let old = &good[p + DATA_HEADER_LEN..p + dr.size];
            let bytes: Vec<u8> = old.iter().copied().cycle().take(len).collect();
            let mut rec = Vec::with_capacity(RECORD_HEADER_LEN + DATA_HEADER_LEN + len);
            rec.extend_from_slice(&((DATA_HEADER_LEN + len) as u64).to_le_bytes());
            rec.extend_from_slice(&0u32.to_le_bytes());
            rec.extend_from_slice(&tag::DATA.to_le_bytes());
            rec.extend_from_slice(&d.nsid.to_le_bytes());
            rec.extend_from_slice(&nlb.to_le_bytes());
            rec.extend_from_slice(&0u64.to_le_bytes());
            rec.extend_from_slice(&data_crc(&bytes).to_le_bytes());
            rec.extend_from_slice(&0u32.to_le_bytes());
            rec.extend_from_slice(&bytes);
            out.splice(dr.off..dr.end(), rec);
        }
        "truncated" => {
            out.truncate(p + DATA_HEADER_LEN + (dr.size - DATA_HEADER_LEN) / 2);
            return Ok((out, di));
        }
        "after_end" => {
            out.extend_from_slice(&good[dr.off..dr.end()]);
            return Ok((out, recs.len()));
        }
        _ => {
            return Err(format!(
                "no mutation '{how}' (one of {})",
                MUTATIONS.join(", ")
            ))
        }
    }
    fix_end(&mut out)?;
    Ok((out, di))
}

/// Recomputes the end record's CRC of `buf` (after a change before it).
pub fn fix_end(buf: &mut [u8]) -> Result<(), String> {
    let recs = walk(buf, false)?;
    let end = *recs
        .last()
        .filter(|r| r.tag == tag::END)
        .ok_or("stream: no end record")?;
    let crc = end_crc(buf, &recs, end.off);
    buf[end.payload()..end.payload() + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(out: &mut Vec<u8>, t: u32, payload: &[u8]) {
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(payload);
        while out.len() % 8 != 0 {
            out.push(0);
        }
    }

    /// A small v3 stream: one namespace of 64 blocks of 512 bytes, a DATA
    /// record of 2 blocks at 4, a ZERO of the rest.
    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&MAGIC);
        s.extend_from_slice(&VERSION.to_le_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&16u32.to_le_bytes());
        let mut compat = vec![0u8; 32];
        compat[COMPAT_MEDIA_BYTE] = 1;
        rec(&mut s, tag::COMPAT, &compat);
        let mut nd = vec![0u8; 16];
        nd[0..4].copy_from_slice(&2u32.to_le_bytes());
        nd[4] = 9;
        nd[8..16].copy_from_slice(&64u64.to_le_bytes());
        rec(&mut s, tag::NS_DESC, &nd);
        let bytes = vec![0xabu8; 1024];
        let mut d = Vec::new();
        d.extend_from_slice(&2u32.to_le_bytes());
        d.extend_from_slice(&2u32.to_le_bytes());
        d.extend_from_slice(&4u64.to_le_bytes());
        d.extend_from_slice(&data_crc(&bytes).to_le_bytes());
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&bytes);
        rec(&mut s, tag::DATA, &d);
        let mut z = Vec::new();
        z.extend_from_slice(&2u32.to_le_bytes());
        z.extend_from_slice(&0u32.to_le_bytes());
        z.extend_from_slice(&6u64.to_le_bytes());
        z.extend_from_slice(&58u64.to_le_bytes());
        rec(&mut s, tag::ZERO, &z);
        rec(&mut s, tag::CTRL_STATE, &[1, 2, 3]);
        rec(&mut s, tag::END, &[0, 0, 0, 0]);
        fix_end(&mut s).unwrap();
        s
    }

    #[test]
    fn summary_counts_and_crc() {
        let s = summarize(&sample()).unwrap();
        assert!(s.media && s.end_crc_ok);
        assert_eq!((s.data_records, s.data_bytes), (1, 1024));
        assert_eq!((s.zero_records, s.zero_blocks), (1, 58));
        // The END CRC skips data bytes: changing them keeps it valid.
        let mut b = sample();
        let recs = walk(&b, false).unwrap();
        let d = recs.iter().find(|r| r.tag == tag::DATA).unwrap();
        b[d.payload() + DATA_HEADER_LEN] ^= 1;
        let r = walk(&b, false).unwrap();
        let end = r.last().unwrap();
        assert_eq!(le32(&b, end.payload()).unwrap(), end_crc(&b, &r, end.off));
    }

    #[test]
    fn mutations() {
        let good = sample();
        let n = walk(&good, false).unwrap().len();
        for how in MUTATIONS {
            let (bad, at) = mutate(&good, how).unwrap();
            assert_ne!(bad, good, "{how}");
            match *how {
                "truncated" => assert!(walk(&bad, false).is_err()),
                "after_end" => assert_eq!(at, n),
                _ => {
                    let s = summarize(&bad);
                    if *how == "unknown_nsid" {
                        assert!(s.is_err());
                    } else {
                        assert!(s.unwrap().end_crc_ok, "{how}");
                    }
                }
            }
        }
        let (bad, _) = mutate(&good, "beyond_capacity").unwrap();
        let r = walk(&bad, false).unwrap();
        let d = data(&bad, r.iter().find(|r| r.tag == tag::DATA).unwrap()).unwrap();
        assert!(d.slba < 64 && d.slba + u64::from(d.nlb) > 64);
        let (bad, _) = mutate(&good, "huge_nlb").unwrap();
        let s = summarize(&bad).unwrap();
        assert!(s.data_bytes > MAX_DATA_LEN);
    }
}
