// SPDX-License-Identifier: GPL-2.0

//! Randomised robustness test of the shared codec (the kernel driver's own
//! parsers): random and mutated inputs never panic, and whatever a parser
//! accepts satisfies the invariants the driver relies on. Deterministic
//! (fixed seeds), so a failure reproduces.

use nvme_lm::codec::identify::{
    SecondaryList,
    StateFormats, //
};
use nvme_lm::codec::namespaces::{
    Namespace,
    Namespaces, //
};
use nvme_lm::codec::state::{
    encode_v0,
    ControllerState,
    CqState,
    Header,
    QueueLimits,
    QueueStateV0,
    SqState,
    HEADER_LEN,
    MAX_STATE_LEN, //
};
use nvme_lm::codec::stream::{
    write_stream,
    Compat,
    Stream, //
};
use nvme_lm::codec::udmq::Entry;

mod common;
use common::Rng;

const LIMITS: QueueLimits = QueueLimits {
    max_qid: 8,
    mqes: 255,
    vectors: 4,
    contiguous_only: true,
    page_size: 4096,
};

fn valid_state(r: &mut Rng) -> Vec<u8> {
    let n = 1 + r.below(4) as u16;
    let cqs: Vec<CqState> = (1..=n)
        .map(|qid| CqState {
            prp1: 0x1000 * (u64::from(qid) + 1),
            qsize: 63,
            qid,
            head: r.below(64) as u16,
            tail: r.below(64) as u16,
            contiguous: true,
            interrupts: r.below(2) == 0,
            slot0_phase: r.below(2) == 0,
            vector: r.below(4) as u16,
        })
        .collect();
    let sqs: Vec<SqState> = (1..=n)
        .map(|qid| SqState {
            prp1: 0x10_0000 * u64::from(qid),
            qsize: 31,
            qid,
            cqid: 1 + r.below(n as usize) as u16,
            contiguous: true,
            priority: 0,
            head: r.below(32) as u16,
            tail: r.below(32) as u16,
        })
        .collect();
    let mut body = vec![0u8; 8 + 24 * 2 * usize::from(n)];
    let len = encode_v0(&sqs, &cqs, &mut body).expect("encode");
    let vendor = 4 * r.below(8);
    let h = Header {
        version: 0,
        suspended: true,
        nvme_dwords: (len / 4) as u32,
        vendor_dwords: (vendor / 4) as u32,
    };
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&body[..len]);
    out.extend(std::iter::repeat_n(0xa5, vendor));
    out
}

/// Re-checks what `validate` promised, independently.
fn check_accepted(v0: &QueueStateV0<'_>) {
    for i in 0..v0.cq_count() {
        let c = v0.cq(i).expect("accepted CQ parses");
        assert!(c.qid >= 1 && c.qid <= LIMITS.max_qid && c.qsize >= 1 && c.qsize <= LIMITS.mqes);
        assert!(c.head <= c.qsize && c.tail <= c.qsize && c.prp1 % 4096 == 0 && c.prp1 != 0);
        assert!(!c.interrupts || c.vector < LIMITS.vectors);
    }
    for i in 0..v0.sq_count() {
        let s = v0.sq(i).expect("accepted SQ parses");
        assert!(s.qid >= 1 && s.qid <= LIMITS.max_qid && s.head <= s.qsize && s.tail <= s.qsize);
        assert!((0..v0.cq_count()).any(|j| v0.cq(j).expect("cq").qid == s.cqid));
    }
}

/// Track Memory Changes: whatever parses has every descriptor inside the
/// buffer and a granularity a u64 can hold.
fn exercise_track(buf: &[u8]) {
    use nvme_lm::codec::track::{Changes, Limits, Start, CHANGE_LEN, RANGE_LEN};
    if let Ok(c) = Changes::parse(buf) {
        assert!(16 + c.len() * CHANGE_LEN <= buf.len());
        assert!((12..=62).contains(&c.granularity));
        assert_eq!(c.ranges().count(), c.len());
    }
    if let Ok(s) = Start::parse(buf) {
        assert!(8 + s.ranges().count() * RANGE_LEN <= buf.len());
    }
    if let Ok(Some(l)) = Limits::parse(buf) {
        assert!(l.ranges > 0 && l.min_granularity <= l.max_granularity);
    }
}

fn exercise(buf: &[u8]) -> bool {
    let _ = Header::parse(buf);
    let _ = StateFormats::parse(buf);
    let _ = SecondaryList::parse(buf);
    let _ = Entry::parse(buf);
    let _ = Stream::parse(buf);
    exercise_track(buf);
    match ControllerState::parse(buf) {
        Ok(cs) => {
            let h = Header::parse(buf).expect("accepted state has a header");
            assert_eq!(h.total_len(), Ok(buf.len()));
            assert!(buf.len() <= MAX_STATE_LEN && buf.len() >= HEADER_LEN);
            if let Ok(v0) = QueueStateV0::parse(cs.nvme) {
                if v0.validate(&LIMITS).is_ok() {
                    check_accepted(&v0);
                    return true;
                }
            }
            false
        }
        Err(_) => false,
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let len = r.below(700);
        let buf: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
        exercise(&buf);
    }
}

#[test]
fn mutated_states_are_caught_or_consistent() {
    let mut r = Rng(0xdead_beef_cafe_f00d);
    let (mut accepted, mut rejected) = (0u32, 0u32);
    for _ in 0..200_000 {
        let mut s = valid_state(&mut r);
        assert!(exercise(&s), "a valid state was rejected");
        for _ in 0..1 + r.below(3) {
            if s.is_empty() {
                break;
            }
            match r.below(4) {
                0 => {
                    let i = r.below(s.len());
                    s[i] ^= 1 << r.below(8);
                }
                1 => {
                    let i = r.below(s.len());
                    s[i] = r.next() as u8;
                }
                2 => s.truncate(r.below(s.len())),
                _ => s.extend((0..1 + r.below(8)).map(|_| r.next() as u8)),
            }
        }
        if exercise(&s) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    // Most single mutations hit a checked field; some (head/tail values,
    // vendor bytes) legitimately stay valid.
    assert!(
        rejected > accepted / 4,
        "{rejected} rejected, {accepted} accepted"
    );
}

fn valid_stream(r: &mut Rng) -> Vec<u8> {
    let state = valid_state(r);
    let compat = Compat {
        vendor: 0x1b36,
        device: 0x10,
        nvme_version: 0,
        io_queues: 4,
        vectors: 4,
        mqes: 255,
        vendor_uuid: [r.next() as u8; 16],
        model: [b'm'; 40],
        firmware: [b'f'; 8],
        nqn_hash: r.next(),
        media: false,
        namespaces: Namespaces::new(
            &(1..=(r.next() % 4) as u32)
                .map(|nsid| Namespace {
                    nsid,
                    lbads: 9 + (r.next() % 4) as u8,
                    ms: 0,
                    nsze: r.next() >> 20,
                    nguid: [r.next() as u8; 16],
                    eui64: [r.next() as u8; 8],
                })
                .collect::<Vec<_>>(),
        )
        .expect("namespaces"),
    };
    let mut out = vec![0u8; 4096];
    let len = write_stream(&mut out, &compat, &state).expect("stream");
    out.truncate(len);
    out
}

#[test]
fn mutated_streams_are_refused() {
    let mut r = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..20_000 {
        let mut s = valid_stream(&mut r);
        let parsed = Stream::parse(&s).expect("a valid stream was refused");
        assert_eq!(ControllerState::parse(parsed.state).map(|_| ()), Ok(()));
        // Any single bit flip is caught: the checksum covers every byte
        // before the end record, which itself is checked, padding included.
        let i = r.below(s.len());
        s[i] ^= 1 << r.below(8);
        assert!(
            Stream::parse(&s).is_err(),
            "bit flip at byte {i} of {} accepted",
            s.len()
        );
    }
}
