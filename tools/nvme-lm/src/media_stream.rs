// SPDX-License-Identifier: GPL-2.0

//! The media records of migration stream format v3, from the test side:
//! walk a captured stream record by record, count what it carries, and
//! build the bad streams of `tests/vm/media.sh` from a real one.
//!
//! The format itself is the shared codec's ([`crate::codec::stream`],
//! [`crate::codec::media`]): tags, lengths, payload types and their
//! parsers, the writers and the end record's CRC rule are used from there.
//! What is the tool's own is leniency: [`walk`] frames records by their
//! size fields alone, without the per-tag limits of
//! [`record_need`](crate::codec::stream::record_need) or the order rules
//! of [`Checker`](crate::codec::stream::Checker), and [`end_crc`] applies
//! the codec's [`crc_record`] to what it framed, so that the bad streams
//! [`mutate`] builds (a DATA record of more than 1 MiB, a range beyond the
//! capacity, a record after the end record, a truncated last record) can
//! still be split into records, given a right end CRC, and the record the
//! destination refused named.

use crate::codec::media::{
    begin_data,
    end_data,
    DataHeader,
    NsDesc,
    ZeroRange,
    DATA_HEADER_LEN,
    MAX_DATA_LEN, //
};
use crate::codec::stream::{
    crc32c,
    crc_record,
    pad8,
    parse_header,
    parse_record,
    record_header,
    tag,
    write_end_crc,
    write_record,
    Compat,
    Record,
    HEADER_LEN,
    RECORD_HEADER_LEN,
    VERSION, //
};
use crate::codec::Error;
use std::fmt::Write as _;

/// What the codec refused, for a message.
fn why(x: Error) -> String {
    match x {
        Error::Truncated { need, have } => format!("truncated ({need} bytes needed, {have} there)"),
        x => x.reason().into(),
    }
}

/// One record of a stream, framed by [`walk`].
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
    /// Offset after it (padding included); `usize::MAX` if its size field
    /// puts it beyond any buffer.
    pub fn end(&self) -> usize {
        pad8(self.size)
            .ok()
            .and_then(|p| self.payload().checked_add(p))
            .unwrap_or(usize::MAX)
    }
}

/// The payload of `r` (whole: `r` from a [`walk`] that is not partial).
fn payload<'a>(buf: &'a [u8], r: &Rec) -> Result<&'a [u8], String> {
    r.payload()
        .checked_add(r.size)
        .and_then(|to| buf.get(r.payload()..to))
        .ok_or_else(|| {
            format!(
                "stream: {} at {}: payload truncated",
                tag_name(r.tag),
                r.off
            )
        })
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

/// The records of `buf` up to and including the end record (or up to
/// where `buf` ends, if `partial`): checks the stream header (version 3)
/// and that each record fits; frames records by their size fields only
/// (a bad stream's records too).
pub fn walk(buf: &[u8], partial: bool) -> Result<Vec<Rec>, String> {
    let v = parse_header(buf).map_err(|x| format!("stream header: {}", why(x)))?;
    if v != VERSION {
        return Err(format!("stream: version {v}, expected {VERSION}"));
    }
    let mut off = HEADER_LEN;
    let mut recs = Vec::new();
    while off < buf.len() {
        if partial && off + RECORD_HEADER_LEN > buf.len() {
            break;
        }
        let (size, flags, t) = record_header(buf, off)
            .map_err(|x| format!("stream: record {} at {off}: {}", recs.len(), why(x)))?;
        let size = usize::try_from(size).map_err(|x| x.to_string())?;
        let r = Rec {
            off,
            size,
            flags,
            tag: t,
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

/// The CRC the end record at `end_off` must carry: the codec's version-3
/// rule ([`crc_record`]: every byte before it except DATA records' data
/// bytes) over the whole records of `recs` before it, as [`walk`] framed
/// them (so also over records the codec's reader refuses to frame).
pub fn end_crc(buf: &[u8], recs: &[Rec], end_off: usize) -> Result<u32, String> {
    let mut crc = crc32c(0, buf.get(..HEADER_LEN).ok_or("stream: no header")?);
    for r in recs.iter().filter(|r| r.off < end_off) {
        let raw = buf
            .get(r.off..r.end())
            .ok_or_else(|| format!("stream: {} at {}: truncated", tag_name(r.tag), r.off))?;
        crc = crc_record(crc, raw).map_err(|x| format!("stream: CRC: {}", why(x)))?;
    }
    Ok(crc)
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

/// Walks a complete stream and counts what it carries; decodes each
/// record's payload with the codec (which checks each DATA record's data
/// CRC) and checks the end CRC. Neither the order rules nor the records'
/// size limits are checked: a mutated stream is summarized too.
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
        let bad = |x: Error| format!("stream: {} record {i}: {}", tag_name(r.tag), why(x));
        let p = payload(buf, r)?;
        match r.tag {
            tag::COMPAT => s.media = Compat::parse(p).map_err(bad)?.media,
            tag::NS_DESC => s.namespaces.push(NsDesc::parse(p).map_err(bad)?),
            tag::DATA => {
                let (d, bytes) = DataHeader::parse(p).map_err(bad)?;
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
                if u64::try_from(bytes.len()).ok() != Some(len) {
                    return Err(format!(
                        "stream: DATA record {i} (NSID {} LBA {} +{}): {} data bytes, not the {len} of its blocks",
                        d.nsid,
                        d.slba,
                        d.nlb,
                        bytes.len()
                    ));
                }
                s.data_records += 1;
                s.data_blocks += u64::from(d.nlb);
                s.data_bytes += len;
            }
            tag::ZERO => {
                let z = ZeroRange::parse(p).map_err(bad)?;
                let lbads = s
                    .namespaces
                    .iter()
                    .find(|n| n.nsid == z.nsid)
                    .map_or(9, |n| n.lbads);
                s.zero_records += 1;
                s.zero_blocks += z.nlb;
                s.zero_bytes += z.nlb << lbads;
            }
            tag::END => {
                let raw = buf.get(r.off..r.end()).unwrap_or_default();
                let crc = match parse_record(raw).map_err(bad)? {
                    (Record::End(crc), _) => crc,
                    _ => return Err(format!("stream: record {i} is not an end record")),
                };
                s.end_crc_ok = crc == end_crc(buf, &recs, r.off)?;
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

/// Rewrites the headers of the DATA record `r` with `h` (its `data_len`
/// data bytes stay), with the codec's writer.
fn rewrite_data(out: &mut [u8], r: &Rec, h: &DataHeader, data_len: usize) -> Result<(), String> {
    let at = begin_data(out, r.off, h, data_len).map_err(why)?;
    end_data(out, at + data_len).map_err(why)?;
    Ok(())
}

/// A whole DATA record (header, padding) carrying `data` under `h`, its
/// data CRC right (`h.crc` is ignored), whatever the size: the codec's
/// record writer, as its DATA writers refuse more than 1 MiB of data.
pub fn data_record(h: &DataHeader, data: &[u8]) -> Result<Vec<u8>, String> {
    let h = DataHeader {
        crc: crc32c(0, data),
        ..*h
    };
    let mut p = Vec::with_capacity(DATA_HEADER_LEN + data.len());
    p.extend_from_slice(&h.encode());
    p.extend_from_slice(data);
    let mut rec = vec![0; RECORD_HEADER_LEN + pad8(p.len()).map_err(why)?];
    write_record(&mut rec, 0, tag::DATA, 0, &p).map_err(why)?;
    Ok(rec)
}

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
    let (d, data) = DataHeader::parse(payload(good, dr)?)
        .map_err(|x| format!("the first DATA record (record {di}): {}", why(x)))?;
    let ns = recs
        .iter()
        .filter(|r| r.tag == tag::NS_DESC)
        .map(|r| NsDesc::parse(payload(good, r)?).map_err(why))
        .collect::<Result<Vec<_>, _>>()?;
    let desc = *ns
        .iter()
        .find(|n| n.nsid == d.nsid)
        .ok_or("the first DATA record's NSID has no NS_DESC")?;
    let mut out = good.to_vec();
    match how {
        "beyond_capacity" => {
            // Straddles the end: starts inside, its last block is the one
            // past it (a one-block record starts past it).
            let slba = (desc.nsze + 1).saturating_sub(u64::from(d.nlb)).max(1);
            rewrite_data(&mut out, dr, &DataHeader { slba, ..d }, data.len())?;
        }
        "unknown_nsid" => {
            let nsid = ns.iter().map(|n| n.nsid).max().unwrap_or(0) + 100;
            rewrite_data(&mut out, dr, &DataHeader { nsid, ..d }, data.len())?;
        }
        "huge_nlb" => {
            // A well-formed DATA record (size, data CRC) of more than 1 MiB
            // of data, in place of the first: the codec's record writer,
            // as its DATA writers refuse that size.
            let nlb = u32::try_from((MAX_DATA_LEN >> desc.lbads) + 1).map_err(|x| x.to_string())?;
            let len = usize::try_from(u64::from(nlb) << desc.lbads).map_err(|x| x.to_string())?;
            let bytes: Vec<u8> = data.iter().copied().cycle().take(len).collect();
            let h = DataHeader { slba: 0, nlb, ..d };
            out.splice(dr.off..dr.end(), data_record(&h, &bytes)?);
        }
        "truncated" => {
            out.truncate(dr.payload() + DATA_HEADER_LEN + data.len() / 2);
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

/// A smaller stream with the same shape as `good` (a whole v3 stream):
/// its first `data_records` DATA records, each cut to its first
/// `max_blocks` blocks, its first `zero_records` ZERO records, and every
/// other record as it was; the end CRC recomputed. The fuzzer's material:
/// each of its inputs is written to a destination's namespace, so fewer
/// bytes make more inputs a second, and a real stream thinned out is still
/// one the destination must load.
pub fn trim(
    good: &[u8],
    data_records: usize,
    max_blocks: u32,
    zero_records: usize,
) -> Result<Vec<u8>, String> {
    let recs = walk(good, false)?;
    let mut out = good[..HEADER_LEN].to_vec();
    let (mut data, mut zero) = (0, 0);
    for r in &recs {
        let raw = &good[r.off..r.end()];
        match r.tag {
            tag::DATA => {
                data += 1;
                if data > data_records {
                    continue;
                }
                let (h, d) = DataHeader::parse(payload(good, r)?).map_err(why)?;
                // The block size: a valid record carries `nlb` blocks.
                let block = d.len() / usize::try_from(h.nlb.max(1)).map_err(|x| x.to_string())?;
                let nlb = h.nlb.min(max_blocks.max(1));
                let d = d
                    .get(..block * nlb as usize)
                    .ok_or("DATA shorter than its NLB")?;
                out.extend_from_slice(&data_record(&DataHeader { nlb, ..h }, d)?);
            }
            tag::ZERO => {
                zero += 1;
                if zero <= zero_records {
                    out.extend_from_slice(raw);
                }
            }
            _ => out.extend_from_slice(raw),
        }
    }
    fix_end(&mut out)?;
    Ok(out)
}

/// Rewrites the end record of `buf` with [`end_crc`] (after a change
/// before it).
pub fn fix_end(buf: &mut [u8]) -> Result<(), String> {
    let recs = walk(buf, false)?;
    let end = *recs
        .last()
        .filter(|r| r.tag == tag::END)
        .ok_or("stream: no end record")?;
    let crc = end_crc(buf, &recs, end.off)?;
    write_end_crc(buf, end.off, crc).map_err(|x| format!("stream: end record: {}", why(x)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::media::{
        record_need,
        write_data,
        write_ns_desc,
        write_zero,
        Checker, //
    };
    use crate::codec::stream::{
        stream_crc,
        write_end,
        write_prefix,
        Stream, //
    };

    /// The source (and destination) of [`sample`]: the fuzzer's, with
    /// media migration and one namespace, NSID 2, 64 blocks of 512 bytes.
    fn compat() -> Compat {
        crate::fuzz::tests::media_compat_of(64)
    }

    /// A small v3 stream written by the codec: the namespace of
    /// [`compat`], a DATA record of 2 blocks at 4, a ZERO of the rest, a
    /// controller state; and the offsets the writers returned (each
    /// record's, then the stream's end).
    fn sample() -> (Vec<u8>, Vec<usize>) {
        let mut s = vec![0u8; 4096];
        let mut offs = vec![HEADER_LEN];
        let mut at = |r: Result<usize, Error>| {
            let o = r.unwrap();
            offs.push(o);
            o
        };
        let o = at(write_prefix(&mut s, &compat()));
        let d = NsDesc {
            nsid: 2,
            lbads: 9,
            nsze: 64,
        };
        let o = at(write_ns_desc(&mut s, o, &d));
        let h = DataHeader {
            nsid: 2,
            slba: 4,
            nlb: 2,
            crc: 0,
        };
        let o = at(write_data(&mut s, o, &h, &[0xab; 1024]));
        let z = ZeroRange {
            nsid: 2,
            slba: 6,
            nlb: 58,
        };
        let o = at(write_zero(&mut s, o, &z));
        let o = at(write_record(&mut s, o, tag::CTRL_STATE, 0, &[1, 2, 3]));
        let o = at(write_end(&mut s, o));
        s.truncate(o);
        (s, offs)
    }

    /// The index of the record a destination refuses, fed `s` one
    /// [`walk`]ed record a write (the bytes after the end record as one
    /// more), checked by the codec's reader and [`Checker`]; `None` if it
    /// loads.
    fn refused_at(s: &[u8]) -> Option<usize> {
        let mut c = Checker::new(&compat());
        c.header(&s[..HEADER_LEN]).unwrap();
        let recs = walk(s, true).unwrap();
        let done = recs.last().map_or(HEADER_LEN, |r| r.end().min(s.len()));
        let pieces = recs
            .iter()
            .map(|r| (r.off, r.end().min(s.len())))
            .chain((done < s.len()).then_some((done, s.len())));
        for (i, (from, to)) in pieces.enumerate() {
            let raw = &s[from..to];
            let ok = match record_need(raw) {
                Ok(Some(n)) if n == raw.len() => parse_record(raw)
                    .and_then(|(rec, _)| c.check(&rec, raw))
                    .is_ok(),
                _ => false,
            };
            if !ok {
                return Some(i);
            }
        }
        assert!(c.ended());
        None
    }

    #[test]
    fn summary_counts_and_crc() {
        let (good, _) = sample();
        let s = summarize(&good).unwrap();
        assert!(s.media && s.end_crc_ok);
        assert_eq!((s.data_records, s.data_bytes), (1, 1024));
        assert_eq!((s.zero_records, s.zero_blocks), (1, 58));
        assert_eq!(
            s.namespaces,
            [NsDesc {
                nsid: 2,
                lbads: 9,
                nsze: 64
            }]
        );
        // The END CRC skips data bytes: changing them keeps it valid (and
        // the DATA CRC catches them).
        let mut b = good.clone();
        let recs = walk(&b, false).unwrap();
        let d = recs.iter().find(|r| r.tag == tag::DATA).unwrap();
        b[d.payload() + DATA_HEADER_LEN] ^= 1;
        let r = walk(&b, false).unwrap();
        let end = r.last().unwrap();
        assert_eq!(end_crc(&b, &r, end.off), end_crc(&good, &recs, end.off));
        assert!(summarize(&b).unwrap_err().contains("checksum mismatch"));
        // Any other byte changes it.
        b[d.payload()] ^= 1;
        assert_ne!(end_crc(&b, &r, end.off), end_crc(&good, &recs, end.off));
    }

    #[test]
    fn trimmed_stream_is_valid_and_smaller() {
        let (good, _) = sample();
        // Unchanged when nothing is over the limits.
        assert_eq!(trim(&good, 1, 2, 1).unwrap(), good);
        let t = trim(&good, 1, 1, 0).unwrap();
        let s = summarize(&t).unwrap();
        assert!(s.end_crc_ok);
        assert_eq!((s.data_records, s.data_blocks, s.zero_records), (1, 1, 0));
        assert!(Stream::parse(&t).is_ok());
        assert_eq!(refused_at(&t), None);
        // The kept block is the first of the original record's.
        let recs = walk(&t, false).unwrap();
        let d = recs.iter().find(|r| r.tag == tag::DATA).unwrap();
        let (h, data) = DataHeader::parse(payload(&t, d).unwrap()).unwrap();
        assert_eq!((h.slba, h.nlb, data), (4, 1, &[0xab; 512][..]));
        // No DATA at all is a valid stream too.
        let t = trim(&good, 0, 1, 1).unwrap();
        assert_eq!(summarize(&t).unwrap().data_records, 0);
        assert_eq!(refused_at(&t), None);
    }

    #[test]
    fn mutations() {
        let (good, _) = sample();
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
        let d = r.iter().find(|r| r.tag == tag::DATA).unwrap();
        let (d, _) = DataHeader::parse(payload(&bad, d).unwrap()).unwrap();
        assert!(d.slba < 64 && d.slba + u64::from(d.nlb) > 64);
        let (bad, _) = mutate(&good, "huge_nlb").unwrap();
        let s = summarize(&bad).unwrap();
        assert!(s.data_bytes > MAX_DATA_LEN as u64);
        assert!(mutate(&good, "nonsense").is_err());
    }

    #[test]
    fn codec_stream_round_trips_through_walk_and_mutations() {
        let (good, offs) = sample();
        assert!(Stream::parse(&good).is_ok());
        assert_eq!(refused_at(&good), None);
        // The framing is the writers'.
        let recs = walk(&good, false).unwrap();
        assert_eq!(walk(&good, true).unwrap(), recs);
        let tags = [
            tag::COMPAT,
            tag::NS_DESC,
            tag::DATA,
            tag::ZERO,
            tag::CTRL_STATE,
            tag::END,
        ];
        assert_eq!(recs.iter().map(|r| r.tag).collect::<Vec<_>>(), tags);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!((r.off, r.end(), r.flags), (offs[i], offs[i + 1], 0));
        }
        let end = recs[5];
        let crc = end_crc(&good, &recs, end.off).unwrap();
        assert_eq!(Ok(crc), stream_crc(&good[..end.off]));
        assert_eq!(parse_record(&good[end.off..]), Ok((Record::End(crc), 24)));
        let mut again = good.clone();
        fix_end(&mut again).unwrap();
        assert_eq!(again, good);

        for how in MUTATIONS {
            let (bad, at) = mutate(&good, how).unwrap();
            assert_ne!(bad, good, "{how}");
            // The destination refuses the record named.
            assert_eq!(refused_at(&bad), Some(at), "{how}");
            let r = walk(&bad, true).unwrap();
            // Records follow one another from the header on.
            let mut o = HEADER_LEN;
            for x in &r {
                assert_eq!(x.off, o, "{how}");
                o = x.end();
            }
            // Those before the changed one are unchanged.
            for x in &r[..at.min(r.len())] {
                assert_eq!(bad[x.off..x.end()], good[x.off..x.end()], "{how}");
            }
            match *how {
                "truncated" => {
                    assert_eq!((r.len(), at), (3, 2));
                    assert!(r[2].end() > bad.len() && bad.len() > r[2].payload());
                    assert!(walk(&bad, false).is_err());
                }
                "after_end" => {
                    assert_eq!((r.len(), at), (6, 6));
                    assert_eq!(bad[..good.len()], good[..]);
                    assert_eq!(bad[good.len()..], good[offs[2]..offs[3]]);
                }
                _ => {
                    assert_eq!((r.len(), at), (6, 2), "{how}");
                    assert_eq!(o, bad.len(), "{how}");
                    let e = r[5];
                    let crc = end_crc(&bad, &r, e.off).unwrap();
                    assert_eq!(parse_record(&bad[e.off..]), Ok((Record::End(crc), 24)));
                    let (h, data) = DataHeader::parse(payload(&bad, &r[2]).unwrap()).unwrap();
                    match *how {
                        "beyond_capacity" => {
                            assert_eq!(stream_crc(&bad[..e.off]), Ok(crc));
                            assert!(h.slba < 64 && h.slba + u64::from(h.nlb) > 64);
                        }
                        "unknown_nsid" => {
                            assert_eq!(stream_crc(&bad[..e.off]), Ok(crc));
                            assert_eq!(h.nsid, 102);
                        }
                        _ => {
                            // Beyond the codec's framing, not its CRC rule.
                            assert!(record_need(&bad[r[2].off..]).is_err());
                            assert_eq!((h.nsid, h.slba), (2, 0));
                            assert_eq!(data.len(), usize::try_from(h.nlb).unwrap() << 9);
                            assert!(data.len() > MAX_DATA_LEN);
                        }
                    }
                    // The records after the changed one are the good ones.
                    let shift = r[3].off as isize - offs[3] as isize;
                    for (x, y) in r[3..5].iter().zip(&recs[3..5]) {
                        assert_eq!(x.off as isize - shift, y.off as isize, "{how}");
                        assert_eq!(bad[x.off..x.end()], good[y.off..y.end()], "{how}");
                    }
                }
            }
        }
    }
}
