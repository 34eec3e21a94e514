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
    let mut out = vec![0u8; stream::stream_len(state.len()).unwrap()];
    stream::write_stream(&mut out, &compat(), &state).unwrap();
    out
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
        if input.kind == Kind::Identity {
            assert_eq!(input.bytes, base.bytes);
            assert_eq!(exp, Expect::Device, "input {i}");
        }
        if !input.crc_fixed && input.bytes != base.bytes {
            assert_ne!(
                exp,
                Expect::Device,
                "input {i}: {}: stale checksum passed",
                input.what
            );
        }
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
