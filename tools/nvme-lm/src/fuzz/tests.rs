// SPDX-License-Identifier: GPL-2.0

//! The mutator and the oracle without a device: on synthetic streams shaped
//! like the test bed's.

use super::mutate::{
    self,
    Base,
    Kind,
    Region, //
};
use super::oracle::{
    self,
    Expect,
    Target, //
};
use crate::codec::media::{
    write_data,
    write_ns_desc,
    write_zero,
    DataHeader,
    NsDesc,
    ZeroRange, //
};
use crate::codec::namespaces::{
    Namespace,
    Namespaces, //
};
use crate::codec::state::{
    encode_v0,
    CqState,
    Header,
    SqState, //
};
use crate::codec::stream::{
    self,
    Compat,
    Stream, //
};

/// A source like the test bed's (also the fixture of `media_stream`'s tests).
pub(crate) fn compat() -> Compat {
    Compat {
        vendor: 0x1b36,
        device: 0x10,
        nvme_version: 0,
        io_queues: 8,
        vectors: 9,
        mqes: 2047,
        vendor_uuid: [0x1c; 16],
        model: [b'm'; 40],
        firmware: [b'f'; 8],
        nqn_hash: 0x1234_5678_9abc_def0,
        media: false,
        namespaces: Namespaces::new(&[Namespace {
            nsid: 1,
            lbads: 9,
            ms: 0,
            nsze: 1 << 17,
            nguid: [7; 16],
            eui64: [3; 8],
        }])
        .unwrap(),
    }
}

/// A stream with `n` queue pairs and a QNLM-like vendor part.
fn stream_with(n: u16, vendor_bytes: usize) -> Vec<u8> {
    let state = state_with(n, vendor_bytes);
    let mut out = vec![0u8; stream::stream_len(state.len()).unwrap()];
    stream::write_stream(&mut out, &compat(), &state).unwrap();
    out
}

/// A controller state with `n` queue pairs and a QNLM-like vendor part.
fn state_with(n: u16, vendor_bytes: usize) -> Vec<u8> {
    let cqs: Vec<CqState> = (1..=n)
        .map(|qid| CqState {
            prp1: 0x8_0000_0000 + 0x10_0000 * u64::from(qid),
            qsize: 1023,
            qid,
            head: 3,
            tail: 5,
            contiguous: true,
            interrupts: true,
            slot0_phase: false,
            vector: qid,
        })
        .collect();
    let sqs: Vec<SqState> = (1..=n)
        .map(|qid| SqState {
            prp1: 0x8_0800_0000 + 0x10_0000 * u64::from(qid),
            qsize: 1023,
            qid,
            cqid: qid,
            contiguous: true,
            priority: 0,
            head: 5,
            tail: 7,
        })
        .collect();
    let mut body = vec![0u8; 8 + 48 * usize::from(n)];
    let len = encode_v0(&sqs, &cqs, &mut body).unwrap();
    let h = Header {
        version: 0,
        suspended: true,
        nvme_dwords: (len / 4) as u32,
        vendor_dwords: (vendor_bytes / 4) as u32,
    };
    let mut state = h.encode().to_vec();
    state.extend_from_slice(&body[..len]);
    let mut vendor = vec![0u8; vendor_bytes];
    if vendor_bytes >= 128 {
        vendor[0..4].copy_from_slice(&0x4d4c_4e51u32.to_le_bytes());
        vendor[4..6].copy_from_slice(&1u16.to_le_bytes());
        vendor[8..12].copy_from_slice(&(vendor_bytes as u32).to_le_bytes());
    }
    state.extend(vendor);
    state
}

/// [`compat`] with media migration on and its namespace NSID 2, `nsze`
/// blocks of 512 bytes, as a media destination of the test bed (also the
/// fixture of `media_stream`'s tests).
pub(crate) fn media_compat_of(nsze: u64) -> Compat {
    let c = compat();
    let ns = Namespace {
        nsid: 2,
        lbads: 9,
        nsze,
        ..c.namespaces.as_slice()[0]
    };
    Compat {
        media: true,
        namespaces: Namespaces::new(&[ns]).unwrap(),
        ..c
    }
}

fn media_compat() -> Compat {
    media_compat_of(4096)
}

/// The rules every input keeps, whatever its kind: a real stream,
/// unchanged, passes every check of the driver; a changed one with a stale
/// checksum never does.
fn check_input(i: u64, input: &mutate::Input, base: &Base, exp: &Expect) {
    if input.kind == Kind::Identity {
        assert_eq!(input.bytes, base.bytes);
        assert_eq!(*exp, Expect::Device, "input {i}");
    }
    if !input.crc_fixed && input.bytes != base.bytes {
        assert_ne!(
            *exp,
            Expect::Device,
            "input {i}: {}: stale checksum passed",
            input.what
        );
    }
}

/// A media stream of [`media_compat`]: its namespace, `data` DATA records
/// of 4 blocks, a ZERO range, a state with `n` queue pairs.
fn media_stream_with(n: u16, data: u64) -> Vec<u8> {
    let mut s = vec![0u8; 1 << 20];
    let mut o = stream::write_prefix(&mut s, &media_compat()).unwrap();
    let d = NsDesc {
        nsid: 2,
        lbads: 9,
        nsze: 4096,
    };
    o = write_ns_desc(&mut s, o, &d).unwrap();
    for k in 0..data {
        let h = DataHeader {
            nsid: 2,
            slba: 100 * k,
            nlb: 4,
            crc: 0,
        };
        o = write_data(&mut s, o, &h, &[k as u8 + 1; 2048]).unwrap();
    }
    let z = ZeroRange {
        nsid: 2,
        slba: 1000,
        nlb: 3096,
    };
    o = write_zero(&mut s, o, &z).unwrap();
    o = stream::write_record(&mut s, o, stream::tag::CTRL_STATE, 0, &state_with(n, 256)).unwrap();
    o = stream::write_end(&mut s, o).unwrap();
    s.truncate(o);
    s
}

fn media_bases() -> Vec<Base> {
    vec![
        Base::new("media_two", media_stream_with(2, 3)).unwrap(),
        Base::new("media_none", media_stream_with(0, 1)).unwrap(),
    ]
}

fn bases() -> Vec<Base> {
    vec![
        Base::new("eight", stream_with(8, 4096)).unwrap(),
        Base::new("two", stream_with(2, 132)).unwrap(),
        Base::new("none", stream_with(0, 128)).unwrap(),
    ]
}

fn target() -> Target {
    Target::new(compat(), true)
}

#[test]
fn table_crc_is_the_codecs() {
    let mut r = mutate::Rng::new(1);
    for n in [0, 1, 7, 100, 4099] {
        let b = r.bytes(n);
        assert_eq!(mutate::crc32c(&b), stream::crc32c(0, &b));
    }
}

#[test]
fn layout_covers_the_stream() {
    for b in bases() {
        let l = &b.layout;
        let mut at = 0;
        for &(s, e, _) in &l.regions {
            assert_eq!(s, at, "{}: regions not contiguous", b.name);
            at = e;
        }
        assert_eq!(at, b.bytes.len());
        for f in &l.fields {
            assert!(f.off + f.width <= b.bytes.len(), "{}", f.name);
        }
        assert_eq!(l.records.len(), 3);
        assert_eq!(l.region_of(l.crc_off), Some(Region::End));
    }
}

#[test]
fn real_streams_are_valid_in_any_pieces() {
    let t = target();
    let mut r = mutate::Rng::new(7);
    for b in bases() {
        for _ in 0..50 {
            let chunks = mutate::chunking(&mut r, b.bytes.len());
            assert_eq!(chunks.iter().sum::<usize>(), b.bytes.len());
            assert_eq!(oracle::expect(&t, &b.bytes, &chunks), Expect::Device);
        }
    }
}

#[test]
fn inputs_are_what_they_claim() {
    let bases = bases();
    let t = target();
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..20_000u64 {
        let input = mutate::make(0xfeed, i, &bases, 90);
        let base = &bases[input.base];
        assert_eq!(input.chunks.iter().sum::<usize>(), input.bytes.len());
        let exp = oracle::expect(&t, &input.bytes, &input.chunks);
        *kinds.entry(input.kind).or_insert(0) += 1;
        check_input(i, &input, base, &exp);
        // A field changed in place with the checksum fixed reaches the
        // checks after the checksum.
        if input.crc_fixed && input.kind == Kind::FieldValue && !input.what.contains("rec.") {
            if let Err(e) = Stream::parse(&input.bytes) {
                assert_ne!(
                    e.reason(),
                    "stream checksum mismatch",
                    "input {i}: {}",
                    input.what
                );
            }
        }
        // Same input for the same seed and index.
        if i % 1000 == 0 {
            assert_eq!(mutate::make(0xfeed, i, &bases, 90).bytes, input.bytes);
        }
    }
    for (k, _) in Kind::WEIGHTS {
        assert!(
            kinds.contains_key(&k) || k == Kind::Identity,
            "{k:?} never made"
        );
    }
}

#[test]
fn refusals_at_the_right_write() {
    let t = target();
    let good = stream_with(2, 132);
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    // The header is complete after the write that covers byte 15.
    match oracle::expect(&t, &bad, &[10, 10, good.len() - 20]) {
        Expect::Write {
            chunk: 1,
            refusal,
            kept: 10,
        } => assert_eq!(refusal.errno, libc::EINVAL),
        x => panic!("{x:?}"),
    }
    // Another model: refused once the compatibility record is complete.
    let mut c = compat();
    c.model[0] ^= 1;
    let t2 = Target::new(c, true);
    match oracle::expect(
        &t2,
        &good,
        &[stream::PREFIX_LEN - 1, 1, good.len() - stream::PREFIX_LEN],
    ) {
        Expect::Write {
            chunk: 1, refusal, ..
        } => assert_eq!(refusal.errno, libc::ERANGE),
        x => panic!("{x:?}"),
    }
    // Too long: the write that crosses the limit.
    let max = oracle::max_len();
    let mut long = good[..stream::PREFIX_LEN].to_vec();
    long.resize(max + 1, 0);
    match oracle::expect(&t, &long, &[max, 1]) {
        Expect::Write {
            chunk: 1,
            refusal,
            kept,
        } => {
            assert_eq!((refusal.errno, kept), (libc::EFBIG, max))
        }
        x => panic!("{x:?}"),
    }
    // Trailing bytes: at the load.
    let mut tr = good.clone();
    tr.push(0);
    assert!(
        matches!(oracle::expect(&t, &tr, &[tr.len()]), Expect::Load(r) if r.errno == libc::EINVAL)
    );
}

#[test]
fn changed_fields_name_what_changed() {
    let b = &bases()[0];
    let mut x = b.bytes.clone();
    let (p, _) = b.layout.state;
    x[p] = 9; // state.ver
    x[p + 48 + 6] = 1; // v0.rsvd6
    mutate::fix_crc(&mut x);
    let f = mutate::changed_fields(b, &x).unwrap();
    let names: Vec<&str> = f.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["state.ver", "v0.rsvd6"]);
    assert!(f.iter().all(|f| f.1.driver_checked()));
    // The driver checks both since the first fuzz runs found them.
    assert!(
        matches!(oracle::expect(&target(), &x, &[x.len()]), Expect::Load(r) if r.errno == libc::EINVAL)
    );
    assert_eq!(mutate::generic_name("sq[12].qid"), "sq[].qid");
}

#[test]
fn media_layout_names_media_fields() {
    for b in media_bases() {
        let l = &b.layout;
        assert!(l.media);
        let mut at = 0;
        for &(s, e, _) in &l.regions {
            assert_eq!(s, at, "{}: regions not contiguous", b.name);
            at = e;
        }
        assert_eq!(at, b.bytes.len());
        let names: Vec<&str> = l.fields.iter().map(|f| f.name.as_str()).collect();
        for n in [
            "ns_desc[0].nsze",
            "data[0].slba",
            "data[0].crc",
            "zero[0].nlb",
        ] {
            assert!(names.contains(&n), "{}: no {n}", b.name);
        }
        assert!(!l.ranges(Region::MediaData).is_empty());
    }
}

#[test]
fn media_streams_are_valid_in_any_pieces() {
    let t = Target::new(media_compat(), true);
    let mut r = mutate::Rng::new(9);
    for b in media_bases() {
        for _ in 0..50 {
            let chunks = mutate::chunking(&mut r, b.bytes.len());
            assert_eq!(oracle::expect(&t, &b.bytes, &chunks), Expect::Device);
        }
    }
}

#[test]
fn media_refusals_where_the_sink_makes_them() {
    let t = Target::new(media_compat(), true);
    let good = media_stream_with(2, 3);
    let recs = crate::media_stream::walk(&good, false).unwrap();
    let data = recs.iter().find(|r| r.tag == stream::tag::DATA).unwrap();
    // A data byte flipped: refused once that DATA record is whole (its
    // own CRC), in the write that completes it, not before.
    let mut bad = good.clone();
    bad[data.payload() + 24 + 7] ^= 1;
    let cut = data.end() - 1;
    match oracle::expect(&t, &bad, &[cut, 1, bad.len() - cut - 1]) {
        Expect::Write {
            chunk: 1, refusal, ..
        } => assert_eq!(
            (refusal.errno, refusal.why),
            (libc::EINVAL, "data record checksum mismatch")
        ),
        x => panic!("{x:?}"),
    }
    // Past the capacity: ERANGE at that record.
    let mut bad = good.clone();
    bad[data.payload() + 8..data.payload() + 16].copy_from_slice(&4094u64.to_le_bytes());
    mutate::fix_crc(&mut bad);
    assert!(matches!(
        oracle::expect(&t, &bad, &[bad.len()]),
        Expect::Write { chunk: 0, refusal, .. } if refusal.errno == libc::ERANGE
    ));
    // No length limit but the records': a stream cut short is refused
    // at the load, as ended early.
    let short = &good[..recs[recs.len() - 1].off];
    assert!(matches!(
        oracle::expect(&t, short, &[short.len()]),
        Expect::Load(r) if r.why == "the stream ended early"
    ));
    // A state over the destination's limits: at the load.
    let mut limits = t;
    limits.limits.max_qid = 1;
    assert!(matches!(
        oracle::expect(&limits, &good, &[good.len()]),
        Expect::Load(r) if r.errno == libc::ERANGE
    ));
    // A plain destination refuses a media source at its compatibility
    // record.
    let plain = Target::new(compat(), true);
    assert!(matches!(
        oracle::expect(&plain, &good, &[good.len()]),
        Expect::Write { chunk: 0, refusal, .. } if refusal.errno == libc::ERANGE
    ));
}

#[test]
fn media_inputs_are_what_they_claim() {
    let bases = media_bases();
    let t = Target::new(media_compat(), true);
    let mut kinds = std::collections::BTreeMap::new();
    let mut outcomes = [0u32; 3];
    for i in 0..10_000u64 {
        let input = mutate::make(0xbeef, i, &bases, 90);
        let base = &bases[input.base];
        assert_eq!(input.chunks.iter().sum::<usize>(), input.bytes.len());
        let exp = oracle::expect(&t, &input.bytes, &input.chunks);
        *kinds.entry(input.kind).or_insert(0) += 1;
        outcomes[match exp {
            Expect::Write { .. } => 0,
            Expect::Load(_) => 1,
            Expect::Device => 2,
        }] += 1;
        check_input(i, &input, base, &exp);
    }
    for (k, _) in Kind::MEDIA_WEIGHTS {
        assert!(
            kinds.contains_key(&k) || k == Kind::Identity,
            "{k:?} never made"
        );
    }
    // Every outcome is reached, loads included (media edits in range).
    assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
}
