// SPDX-License-Identifier: GPL-2.0

//! Randomised test of the version-3 (media migration) stream reader:
//! random valid media streams, fed in random chunks to a bounded-memory
//! reader built like the destination's (`record_need`, `parse_record`,
//! `Checker`), must load and reproduce the source's namespaces; mutated
//! ones (bit flips, boundary values, truncation, records dropped,
//! duplicated or swapped, CRCs recomputed so that the semantic checks are
//! reached) must never panic, must be judged the same by the streaming
//! reader and `Stream::parse`, and whatever is accepted must satisfy the
//! rules the driver relies on. Deterministic (fixed seed);
//! `MEDIA_FUZZ_INPUTS=n` runs longer.

use nvme_lm::codec::media::{
    parse_record,
    record_need,
    write_data,
    write_ns_desc,
    write_zero,
    Checker,
    DataHeader,
    NsDesc,
    Record,
    ZeroRange, //
};
use nvme_lm::codec::namespaces::{
    Namespace,
    Namespaces, //
};
use nvme_lm::codec::stream::{
    crc32c,
    stream_crc,
    tag,
    write_end,
    write_prefix,
    write_record,
    Compat,
    Stream,
    MAX_STATE_LEN,
    RECORD_HEADER_LEN, //
};
use nvme_lm::codec::Error;
use std::collections::{
    BTreeMap,
    HashMap, //
};

mod common;
use common::Rng;

/// The namespaces' content: LBA -> its data (absent: zeroes).
type Image = HashMap<(u32, u64), Vec<u8>>;

fn compat(r: &mut Rng) -> Compat {
    let n = 1 + r.below(3) as u32;
    Compat {
        vendor: 0x1b36,
        device: 0x10,
        nvme_version: 0,
        io_queues: 4,
        vectors: 4,
        mqes: 255,
        vendor_uuid: [1; 16],
        model: [b'm'; 40],
        firmware: [b'f'; 8],
        nqn_hash: r.next(),
        media: true,
        namespaces: Namespaces::new(
            &(1..=n)
                .map(|i| Namespace {
                    nsid: i * 2 - 1,
                    lbads: 9 + r.below(4) as u8,
                    ms: 0,
                    nsze: 1 + (r.next() % (1 << 20)),
                    nguid: [i as u8; 16],
                    eui64: [i as u8; 8],
                })
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    }
}

/// A valid media stream of `c` and the image it carries.
fn valid(r: &mut Rng, c: &Compat) -> (Vec<u8>, Image) {
    let mut out = vec![0u8; 1 << 20];
    let mut img = Image::new();
    let mut off = write_prefix(&mut out, c).unwrap();
    let nss = c.namespaces.as_slice();
    let mut order: Vec<usize> = (0..nss.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, r.below(i + 1));
    }
    let mut described = Vec::new();
    for &i in &order {
        let ns = nss[i];
        off = write_ns_desc(
            &mut out,
            off,
            &NsDesc {
                nsid: ns.nsid,
                lbads: ns.lbads,
                nsze: ns.nsze,
            },
        )
        .unwrap();
        described.push(ns);
        for _ in 0..r.below(4) {
            let ns = described[r.below(described.len())];
            let nlb = 1 + r.below(4) as u64;
            let nlb = nlb.min(ns.nsze);
            let slba = r.next() % (ns.nsze - nlb + 1);
            match r.below(8) {
                0 => {
                    off = write_zero(
                        &mut out,
                        off,
                        &ZeroRange {
                            nsid: ns.nsid,
                            slba,
                            nlb,
                        },
                    )
                    .unwrap();
                    for l in slba..slba + nlb {
                        img.remove(&(ns.nsid, l));
                    }
                }
                1 => {
                    off = write_record(&mut out, off, 0x77, 1, &[5; 11]).unwrap();
                }
                _ => {
                    let lb = 1usize << ns.lbads;
                    let data: Vec<u8> = (0..nlb as usize * lb).map(|_| r.next() as u8).collect();
                    let h = DataHeader {
                        nsid: ns.nsid,
                        slba,
                        nlb: nlb as u32,
                        crc: 0,
                    };
                    off = write_data(&mut out, off, &h, &data).unwrap();
                    for (k, l) in (slba..slba + nlb).enumerate() {
                        img.insert((ns.nsid, l), data[k * lb..(k + 1) * lb].to_vec());
                    }
                }
            }
        }
    }
    let state: Vec<u8> = (0..r.below(200)).map(|_| r.next() as u8).collect();
    off = write_record(&mut out, off, tag::CTRL_STATE, 0, &state).unwrap();
    let len = write_end(&mut out, off).unwrap();
    out.truncate(len);
    (out, img)
}

/// What a destination made of a stream.
#[derive(Debug, Default)]
struct Loaded {
    img: Image,
    /// Most bytes the reader held at once.
    max_held: usize,
}

/// The destination's reader: bytes arrive in `chunks`; a record is parsed,
/// checked and applied as soon as it is complete; memory is one record.
fn feed(dest: &Compat, s: &[u8], chunks: &[usize]) -> Result<Loaded, Error> {
    let mut c = Checker::new(dest);
    let mut held: Vec<u8> = Vec::new();
    let mut out = Loaded::default();
    let mut header = false;
    let mut pos = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while pos < s.len() {
        let n = sizes.next().unwrap_or(1).clamp(1, s.len() - pos);
        held.extend_from_slice(&s[pos..pos + n]);
        pos += n;
        out.max_held = out.max_held.max(held.len());
        if !header {
            if held.len() < 16 {
                continue;
            }
            c.header(&held[..16])?;
            held.drain(..16);
            header = true;
        }
        while let Some(need) = record_need(&held)? {
            if held.len() < need {
                break;
            }
            if c.ended() {
                return Err(Error::InvalidField("bytes after the end record"));
            }
            let (rec, len) = parse_record(&held[..need])?;
            assert_eq!(len, need);
            c.check(&rec, &held[..need])?;
            apply(&mut out.img, &c, &rec);
            held.drain(..need);
        }
        if c.ended() && !held.is_empty() {
            return Err(Error::InvalidField("bytes after the end record"));
        }
    }
    if !c.ended() {
        return Err(Error::Truncated {
            need: s.len() + 1,
            have: s.len(),
        });
    }
    Ok(out)
}

/// Applies an accepted media record, re-checking independently what the
/// driver relies on: the namespace exists, the range fits, the length.
fn apply(img: &mut Image, c: &Checker, rec: &Record<'_>) {
    let src = c
        .source()
        .expect("media record before the compatibility record");
    let ns = |nsid| {
        *src.namespaces
            .as_slice()
            .iter()
            .find(|n| n.nsid == nsid)
            .expect("accepted a range of an NSID the source lacks")
    };
    match *rec {
        Record::Data { header, data } => {
            let n = ns(header.nsid);
            assert!(header.nlb >= 1 && header.slba + u64::from(header.nlb) <= n.nsze);
            assert_eq!(data.len(), (header.nlb as usize) << n.lbads);
            assert_eq!(crc32c(0, data), header.crc);
            let lb = 1usize << n.lbads;
            for k in 0..header.nlb as usize {
                img.insert(
                    (header.nsid, header.slba + k as u64),
                    data[k * lb..(k + 1) * lb].to_vec(),
                );
            }
        }
        Record::Zero(z) => {
            let n = ns(z.nsid);
            assert!(z.nlb >= 1 && z.slba + z.nlb <= n.nsze);
            for l in z.slba..z.slba + z.nlb.min(1 << 16) {
                img.remove(&(z.nsid, l));
            }
        }
        _ => {}
    }
}

fn chunks(r: &mut Rng) -> Vec<usize> {
    (0..1 + r.below(6))
        .map(|_| match r.below(3) {
            0 => 1 + r.below(16),
            1 => 1 + r.below(700),
            _ => 1 + r.below(1 << 14),
        })
        .collect()
}

/// The records of a valid stream: `(offset, length)`.
fn records(s: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut off = 16;
    while off < s.len() {
        let n = record_need(&s[off..]).unwrap().unwrap();
        v.push((off, n));
        off += n;
    }
    v
}

/// Rewrites the END CRC (and, if `data`, each DATA record's) so that a
/// mutation reaches the semantic checks.
fn fix_crcs(s: &mut [u8], data: bool) {
    let Ok((Record::End(_), _)) = s
        .len()
        .checked_sub(24)
        .map_or(Err(Error::Overflow), |e| parse_record(&s[e..]))
    else {
        return;
    };
    if data {
        let mut off = 16;
        while let Ok(Some(n)) = record_need(s.get(off..).unwrap_or(&[])) {
            if off + n > s.len() {
                break;
            }
            if u32::from_le_bytes(s[off + 12..off + 16].try_into().unwrap()) == tag::DATA {
                let size = u64::from_le_bytes(s[off..off + 8].try_into().unwrap()) as usize;
                let crc = crc32c(0, &s[off + 40..off + 16 + size]);
                s[off + 32..off + 36].copy_from_slice(&crc.to_le_bytes());
            }
            off += n;
        }
    }
    let end = s.len() - 24;
    if let Ok(crc) = stream_crc(&s[..end]) {
        s[end + 16..end + 20].copy_from_slice(&crc.to_le_bytes());
    }
}

fn mutate(r: &mut Rng, s: &mut Vec<u8>) -> &'static str {
    let recs = records(s);
    let body = &recs[1..recs.len() - 1];
    match r.below(8) {
        0 => {
            let i = r.below(s.len());
            s[i] ^= 1 << r.below(8);
            "bit-flip"
        }
        1 => {
            let i = (16 + r.below(s.len() - 16)) & !3;
            let v: u32 = *[0, 1, u32::MAX, 0x8000_0000, 0x1_0000, 0x10_0018, 0x10_0019]
                .get(r.below(7))
                .unwrap();
            if i + 4 <= s.len() {
                s[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            "boundary"
        }
        2 => {
            s.truncate(r.below(s.len()));
            "truncate"
        }
        3 if !body.is_empty() => {
            let (o, n) = body[r.below(body.len())];
            s.drain(o..o + n);
            "drop-record"
        }
        4 if !body.is_empty() => {
            let (o, n) = recs[r.below(recs.len() - 1)];
            let rec = s[o..o + n].to_vec();
            let at = recs[1 + r.below(recs.len() - 1)].0;
            s.splice(at..at, rec);
            "duplicate-record"
        }
        5 if body.len() >= 2 => {
            let a = r.below(body.len() - 1);
            let (oa, na) = body[a];
            let (ob, nb) = body[a + 1];
            let mut v = s[ob..ob + nb].to_vec();
            v.extend_from_slice(&s[oa..oa + na]);
            s.splice(oa..ob + nb, v);
            "swap-records"
        }
        6 => {
            // A field of a media record's payload.
            let (o, n) = body[r.below(body.len().max(1)).min(body.len().saturating_sub(1))];
            let i = o + RECORD_HEADER_LEN + r.below((n - RECORD_HEADER_LEN).max(1));
            let i = i.min(s.len() - 1);
            s[i] = s[i].wrapping_add(1 + r.below(255) as u8);
            "payload-field"
        }
        _ => {
            // A size field of a record header.
            let (o, _) = recs[r.below(recs.len())];
            let size: u64 = *[
                0u64,
                4,
                16,
                24,
                25,
                1 << 20,
                (1 << 20) + 24,
                (1 << 20) + 25,
                MAX_STATE_LEN as u64 + 1,
                u64::MAX,
            ]
            .get(r.below(10))
            .unwrap();
            s[o..o + 8].copy_from_slice(&size.to_le_bytes());
            "record-size"
        }
    }
}

#[test]
fn media_streams_load_and_mutations_are_judged_alike() {
    let inputs: usize = std::env::var("MEDIA_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut r = Rng(0x5eed_0013_cafe_f00d);
    let mut outcome: BTreeMap<(&'static str, bool), usize> = BTreeMap::new();
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let max_record = RECORD_HEADER_LEN + MAX_STATE_LEN + 8;
    for _ in 0..inputs {
        let c = compat(&mut r);
        let (s, img) = valid(&mut r, &c);
        let got = feed(&c, &s, &chunks(&mut r)).expect("a valid media stream was refused");
        assert!(
            Stream::parse(&s).is_ok(),
            "Stream::parse refused a valid stream"
        );
        assert!(
            got.img == img,
            "the destination's image differs from the source's"
        );
        assert!(got.max_held <= max_record + (1 << 14));
        // One bit flipped, CRCs untouched: always caught (the DATA CRC
        // covers its data, the END CRC every other byte).
        let mut f = s.clone();
        let i = r.below(f.len());
        f[i] ^= 1 << r.below(8);
        assert!(Stream::parse(&f).is_err(), "bit flip at {i} accepted");
        assert!(
            feed(&c, &f, &[4096]).is_err(),
            "bit flip at {i} accepted by the reader"
        );
        // A mutation, its CRCs recomputed most of the time.
        let mut m = s.clone();
        let kind = mutate(&mut r, &mut m);
        if r.below(4) != 0 {
            fix_crcs(&mut m, r.below(2) == 0);
        }
        // The whole-buffer parser, plus the destination's acceptance.
        let whole = Stream::parse(&m).and_then(|p| c.accepts(&p.compat));
        let streamed = feed(&c, &m, &chunks(&mut r));
        assert_eq!(
            whole.is_ok(),
            streamed.is_ok(),
            "{kind}: Stream::parse {:?} but the reader {:?}",
            whole,
            streamed.map(|_| ())
        );
        *outcome.entry((kind, streamed.is_ok())).or_default() += 1;
        if let Err(e) = streamed {
            *reasons.entry(e.reason()).or_default() += 1;
        }
    }
    eprintln!("{inputs} valid media streams loaded; mutations (kind, accepted): {outcome:?}");
    eprintln!("refusals by reason: {reasons:#?}");
}

#[test]
fn crc32c_matches_a_bytewise_reference_on_random_data() {
    let mut r = Rng(0xc0ff_ee00_1234_5678);
    for _ in 0..2000 {
        let len = match r.below(3) {
            0 => r.below(16),
            1 => r.below(4096),
            _ => r.below(1 << 17),
        };
        let data: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
        let from = r.below(len.max(1)).min(len);
        let whole = crc32c(0, &data);
        assert_eq!(whole, nvme_lm::fuzz::mutate::crc32c(&data), "length {len}");
        assert_eq!(crc32c(crc32c(0, &data[..from]), &data[from..]), whole);
    }
}

/// The dirty set, word at a time, against one `bool` a granule: random
/// geometries, marks, `mark_below`, `mark_all` and runs taken.
#[test]
fn dirty_set_matches_a_bit_by_bit_model() {
    use nvme_lm::codec::dirty::{
        count,
        mark,
        mark_all,
        mark_below,
        peek_run,
        take_run,
        Geometry, //
    };
    let mut r = Rng(0xd127_5e75_0000_0001);
    for _ in 0..3000 {
        let nsze = 1 + r.next() % 5000;
        let g = Geometry::new(nsze, 9, 512 << r.below(4), 1 + r.next() % 400).unwrap();
        let gl = g.granule_lbas();
        let bits = g.bits() as usize;
        assert!(bits as u64 * gl >= nsze && (bits as u64 - 1) * gl < nsze);
        let mut w = vec![0u64; g.words()];
        let mut m = vec![false; bits];
        for _ in 0..40 {
            match r.below(10) {
                0..=4 => {
                    let slba = r.next() % (nsze + 2);
                    let nlb = r.next() % 300;
                    let ok = nlb > 0 && slba + nlb <= nsze;
                    assert_eq!(mark(&mut w, &g, slba, nlb).is_ok(), ok);
                    if ok {
                        for b in (slba / gl)..=((slba + nlb - 1) / gl) {
                            m[b as usize] = true;
                        }
                    }
                }
                5 => {
                    let limit = r.next() % (nsze + 10);
                    mark_below(&mut w, &g, limit);
                    for (b, v) in m.iter_mut().enumerate() {
                        *v |= (b as u64) * gl < limit;
                    }
                }
                6 if r.below(4) == 0 => {
                    mark_all(&mut w, &g);
                    m.fill(true);
                }
                _ => {
                    let from = r.below(bits + 2) as u64;
                    let max = r.next() % 150;
                    let got = take_run(&mut w, &g, from, max);
                    let first = (from as usize..bits).find(|&b| m[b]);
                    match (got, first) {
                        (None, None) => {}
                        (None, Some(_)) if max == 0 => {}
                        (Some((slba, nlb)), Some(b)) => {
                            let mut n = 0;
                            while b + n < bits && m[b + n] && (n as u64) < max {
                                m[b + n] = false;
                                n += 1;
                            }
                            let end = (((b + n) as u64) * gl).min(nsze);
                            assert_eq!((slba, nlb), (b as u64 * gl, end - b as u64 * gl));
                        }
                        other => panic!("take_run {other:?}"),
                    }
                }
            }
            assert_eq!(count(&w), m.iter().filter(|&&v| v).count() as u64);
            for (b, &v) in m.iter().enumerate() {
                assert_eq!(w[b / 64] >> (b % 64) & 1 == 1, v, "bit {b}");
            }
            // The read-only walk sees exactly the runs taking them would
            // take, and leaves the set as it was.
            let max = 1 + r.next() % 150;
            let before = w.clone();
            let (mut peeked, mut bit) = (Vec::new(), 0);
            while let Some(run) = peek_run(&w, &g, bit, max) {
                assert!(run.next_bit > bit);
                peeked.push((run.slba, run.nlb));
                bit = run.next_bit;
            }
            assert_eq!(w, before);
            let (mut taken, mut copy) = (Vec::new(), w.clone());
            while let Some(run) = take_run(&mut copy, &g, 0, max) {
                taken.push(run);
            }
            assert_eq!(peeked, taken);
            assert_eq!(count(&copy), 0);
        }
    }
}
