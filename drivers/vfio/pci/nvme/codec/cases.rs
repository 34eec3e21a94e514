// SPDX-License-Identifier: GPL-2.0

//! Test cases of the codec, shared by the kernel's KUnit suite and the host
//! tool's `cargo test`. Each returns `Err` naming the first broken
//! expectation instead of panicking, so it runs the same in both places.

use super::codec::cmd::{
    AdminCmd,
    Sequence,
    SuspendType, //
};
use super::codec::identify::{
    SecondaryList,
    StateFormats,
    EMULATED_VENDOR_FORMAT, //
};
use super::codec::namespaces::{
    Namespace,
    Namespaces,
    MAX_NAMESPACES, //
};
use super::codec::state::{
    encode_v0,
    ControllerState,
    CqState,
    Header,
    QueueLimits,
    QueueStateV0,
    SqState,
    HEADER_LEN, //
};
use super::codec::udmq::{
    Change,
    Entry,
    Marker, //
};
use super::codec::Error;

/// Result of one case.
pub type CaseResult = Result<(), &'static str>;

fn ensure(cond: bool, what: &'static str) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(what)
    }
}

const LIMITS: QueueLimits = QueueLimits {
    max_qid: 4,
    mqes: 1023,
    vectors: 2,
    contiguous_only: true,
    page_size: 4096,
};

fn sample_queues() -> ([SqState; 2], [CqState; 2]) {
    let cq = |qid: u16, vector: u16| CqState {
        prp1: 0x10_0000 * u64::from(qid),
        qsize: 63,
        qid,
        head: 5,
        tail: 6,
        contiguous: true,
        interrupts: true,
        slot0_phase: qid == 2,
        vector,
    };
    let sq = |qid: u16| SqState {
        prp1: 0x20_0000 * u64::from(qid),
        qsize: 63,
        qid,
        cqid: qid,
        contiguous: true,
        priority: 0,
        head: 7,
        tail: 9,
    };
    ([sq(1), sq(2)], [cq(1, 0), cq(2, 1)])
}

/// Writes a full controller state (header + v0 state of the sample queues +
/// `vendor` bytes) into `buf`; returns its length.
fn sample_state(buf: &mut [u8], vendor: &[u8]) -> Result<usize, Error> {
    let (sqs, cqs) = sample_queues();
    let body = buf.get_mut(HEADER_LEN..).ok_or(Error::Overflow)?;
    let nvme_len = encode_v0(&sqs, &cqs, body)?;
    let end = nvme_len + vendor.len();
    body.get_mut(nvme_len..end)
        .ok_or(Error::Overflow)?
        .copy_from_slice(vendor);
    let h = Header {
        version: 0,
        suspended: true,
        nvme_dwords: u32::try_from(nvme_len / 4).map_err(|_| Error::Overflow)?,
        vendor_dwords: u32::try_from(vendor.len() / 4).map_err(|_| Error::Overflow)?,
    };
    buf.get_mut(..HEADER_LEN)
        .ok_or(Error::Overflow)?
        .copy_from_slice(&h.encode());
    Ok(HEADER_LEN + end)
}

/// Header fields survive encode and parse.
pub fn header_round_trip() -> CaseResult {
    let h = Header {
        version: 0,
        suspended: true,
        nvme_dwords: 26,
        vendor_dwords: 3,
    };
    let raw = h.encode();
    ensure(Header::parse(&raw) == Ok(h), "header did not round-trip")?;
    ensure(h.total_len() == Ok(48 + 104 + 12), "total length wrong")
}

/// A short header, reserved bits, 128-bit sizes and absurd sizes are refused.
pub fn header_rejects_malformed() -> CaseResult {
    let h = Header {
        version: 0,
        suspended: false,
        nvme_dwords: 2,
        vendor_dwords: 0,
    };
    let raw = h.encode();
    ensure(
        matches!(
            Header::parse(&raw[..47]),
            Err(Error::Truncated { need: 48, have: 47 })
        ),
        "short header accepted",
    )?;
    let mut bad = raw;
    bad[0] = 1;
    ensure(Header::parse(&bad).is_err(), "header version 1 accepted")?;
    let mut bad = raw;
    bad[2] = 2;
    ensure(Header::parse(&bad).is_err(), "CSATTR reserved bit accepted")?;
    let mut bad = raw;
    bad[10] = 1;
    ensure(Header::parse(&bad).is_err(), "reserved byte accepted")?;
    let mut bad = raw;
    bad[31] = 1;
    ensure(
        Header::parse(&bad).is_err(),
        "NVMECSS high 64 bits accepted",
    )?;
    let mut bad = raw;
    bad[36] = 1;
    ensure(
        matches!(Header::parse(&bad), Err(Error::Overflow)),
        "VSS above u32 accepted",
    )?;
    let mut bad = raw;
    bad[18] = 0x20;
    ensure(
        matches!(Header::parse(&bad), Err(Error::OutOfLimits(_))),
        "8 MiB state accepted",
    )
}

/// A state must be exactly as long as its header says.
pub fn state_length_must_match() -> CaseResult {
    let mut buf = [0u8; 256];
    let len = sample_state(&mut buf, &[1, 2, 3, 4, 5, 6, 7, 8]).map_err(|e| e.reason())?;
    let st = ControllerState::parse(&buf[..len]).map_err(|e| e.reason())?;
    ensure(st.vendor == [1, 2, 3, 4, 5, 6, 7, 8], "vendor part wrong")?;
    ensure(st.nvme.len() == 8 + 4 * 24, "NVMe part wrong")?;
    ensure(
        matches!(
            ControllerState::parse(&buf[..len - 1]),
            Err(Error::Truncated { .. })
        ),
        "truncated state accepted",
    )?;
    ensure(
        matches!(
            ControllerState::parse(&buf[..len + 4]),
            Err(Error::TrailingBytes { .. })
        ),
        "state with trailing bytes accepted",
    )
}

/// Queue entries survive encode and parse, SQs first, then CQs.
pub fn v0_round_trip() -> CaseResult {
    let mut buf = [0u8; 256];
    let len = sample_state(&mut buf, &[]).map_err(|e| e.reason())?;
    let st = ControllerState::parse(&buf[..len]).map_err(|e| e.reason())?;
    let v0 = QueueStateV0::parse(st.nvme).map_err(|e| e.reason())?;
    let (sqs, cqs) = sample_queues();
    ensure(
        v0.sq_count() == 2 && v0.cq_count() == 2,
        "queue counts wrong",
    )?;
    for (i, q) in (0u16..).zip(sqs.iter()) {
        ensure(v0.sq(i) == Ok(*q), "SQ did not round-trip")?;
    }
    for (i, q) in (0u16..).zip(cqs.iter()) {
        ensure(v0.cq(i) == Ok(*q), "CQ did not round-trip")?;
    }
    ensure(
        v0.sq(2).is_err() && v0.cq(2).is_err(),
        "index past the end accepted",
    )?;
    // Spot-check the layout against the specification's byte offsets.
    let cq1 = &st.nvme[8 + 2 * 24..8 + 3 * 24];
    ensure(
        cq1[12] == 5 && cq1[14] == 6,
        "CQ head/tail not at bytes 12/14",
    )?;
    ensure(
        cq1[16] == 0x3 && cq1[18] == 0,
        "CQ attributes not at byte 16",
    )?;
    ensure(
        st.nvme[8 + 16] == 7 && st.nvme[8 + 18] == 9,
        "SQ head/tail not at 16/18",
    )
}

/// Entry counts that do not fit the declared size are refused.
pub fn v0_rejects_counts_beyond_size() -> CaseResult {
    let mut buf = [0u8; 256];
    let len = sample_state(&mut buf, &[]).map_err(|e| e.reason())?;
    let mut nvme = [0u8; 8 + 4 * 24];
    nvme.copy_from_slice(&buf[HEADER_LEN..len]);
    nvme[2] = 3;
    ensure(
        matches!(QueueStateV0::parse(&nvme), Err(Error::Truncated { .. })),
        "entry count beyond NVMECSS accepted",
    )?;
    nvme[2] = 2;
    nvme[7] = 1;
    ensure(
        QueueStateV0::parse(&nvme).is_err(),
        "reserved bytes 7:6 accepted",
    )?;
    nvme[7] = 0;
    nvme[0] = 1;
    ensure(
        QueueStateV0::parse(&nvme).is_err(),
        "version 1 accepted as version 0",
    )
}

/// A change to the sample queues that breaks one validation rule.
type Mutation = fn(&mut [SqState; 2], &mut [CqState; 2]);

fn validate_modified(f: impl Fn(&mut [SqState; 2], &mut [CqState; 2])) -> Result<(), Error> {
    let (mut sqs, mut cqs) = sample_queues();
    f(&mut sqs, &mut cqs);
    let mut nvme = [0u8; 8 + 4 * 24];
    encode_v0(&sqs, &cqs, &mut nvme)?;
    QueueStateV0::parse(&nvme)?.validate(&LIMITS)
}

/// A good state validates; each broken rule is caught.
pub fn v0_validate() -> CaseResult {
    ensure(validate_modified(|_, _| {}).is_ok(), "good state rejected")?;
    let bad: [(&'static str, Mutation); 10] = [
        ("duplicate SQ id accepted", |s, _| s[1].qid = 1),
        ("duplicate CQ id accepted", |_, c| c[1].qid = 1),
        ("SQ to missing CQ accepted", |s, _| s[1].cqid = 3),
        ("queue id 0 accepted", |s, _| s[0].qid = 0),
        ("queue id above limit accepted", |_, c| c[0].qid = 5),
        ("queue size above MQES accepted", |s, _| s[0].qsize = 1024),
        ("head beyond queue accepted", |_, c| c[0].head = 64),
        ("vector out of range accepted", |_, c| c[1].vector = 2),
        ("unaligned base accepted", |s, _| s[0].prp1 += 8),
        ("non-contiguous queue accepted", |_, c| {
            c[0].contiguous = false
        }),
    ];
    for (what, f) in bad {
        ensure(validate_modified(f).is_err(), what)?;
    }
    // A vector past the limit is fine while interrupts are off.
    ensure(
        validate_modified(|_, c| {
            c[1].vector = 9;
            c[1].interrupts = false;
        })
        .is_ok(),
        "vector checked with interrupts off",
    )
}

/// CNS 20h: versions and UUIDs by 1-based index.
pub fn state_formats() -> CaseResult {
    let mut raw = [0u8; 2 + 4 + 16];
    raw[0] = 2;
    raw[1] = 1;
    raw[2..4].copy_from_slice(&0u16.to_le_bytes());
    raw[4..6].copy_from_slice(&7u16.to_le_bytes());
    raw[6..22].copy_from_slice(&[0xab; 16]);
    let f = StateFormats::parse(&raw).map_err(|e| e.reason())?;
    ensure(
        f.version_count() == 2 && f.uuid_count() == 1,
        "counts wrong",
    )?;
    ensure(f.version(0).is_none(), "index 0 is not 'none'")?;
    ensure(
        f.version(1) == Some(0) && f.version(2) == Some(7),
        "versions wrong",
    )?;
    ensure(f.version(3).is_none(), "index past the end accepted")?;
    ensure(f.find_version(7) == Some(2), "find_version wrong")?;
    ensure(f.find_uuid(&[0xab; 16]) == Some(1), "find_uuid wrong")?;
    ensure(f.find_uuid(&[0xac; 16]).is_none(), "unknown UUID found")?;
    ensure(
        f.complete_vendor_format().is_none(),
        "an unknown vendor format taken as complete",
    )?;
    ensure(
        StateFormats::parse(&raw[..21]).is_err(),
        "truncated formats accepted",
    )?;
    // The known complete format is found behind an unknown one.
    let mut two = [0u8; 2 + 2 + 32];
    two[0] = 1;
    two[1] = 2;
    two[4..20].copy_from_slice(&[0xab; 16]);
    two[20..36].copy_from_slice(&EMULATED_VENDOR_FORMAT);
    let f = StateFormats::parse(&two).map_err(|e| e.reason())?;
    ensure(
        f.complete_vendor_format() == Some((2, EMULATED_VENDOR_FORMAT)),
        "complete vendor format not found at CSUUIDI 2",
    )
}

/// CNS 15h: entries are matched by VFN, never by position.
pub fn secondary_list() -> CaseResult {
    let mut raw = [0u8; 32 * 4];
    raw[0] = 3;
    for (i, (scid, vfn)) in [(0x41u16, 2u16), (0x40, 1), (0x42, 3)].iter().enumerate() {
        let e = &mut raw[32 * (i + 1)..32 * (i + 2)];
        e[0..2].copy_from_slice(&scid.to_le_bytes());
        e[4] = u8::from(*vfn != 3);
        e[8..10].copy_from_slice(&vfn.to_le_bytes());
        e[10..12].copy_from_slice(&3u16.to_le_bytes());
    }
    let l = SecondaryList::parse(&raw).map_err(|e| e.reason())?;
    ensure(l.len() == 3, "entry count wrong")?;
    let c = l.find_vfn(1).ok_or("VFN 1 not found")?;
    ensure(c.scid == 0x40 && c.online && c.vq == 3, "VFN 1 entry wrong")?;
    ensure(
        l.find_vfn(3).is_some_and(|c| !c.online),
        "VFN 3 entry wrong",
    )?;
    ensure(
        l.find_vfn(0).is_none() && l.find_vfn(4).is_none(),
        "absent VFN found",
    )?;
    ensure(
        SecondaryList::parse(&raw[..100]).is_err(),
        "truncated list accepted",
    )?;
    raw[0] = 128;
    ensure(SecondaryList::parse(&raw).is_err(), "128 entries accepted")
}

/// UDMQ entries: fields, markers, and reserved values.
pub fn udmq_entries() -> CaseResult {
    let mut raw = [0u8; 32];
    raw[0..4].copy_from_slice(&1u32.to_le_bytes());
    raw[4..8].copy_from_slice(&7u32.to_le_bytes());
    raw[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
    raw[31] = 1;
    let e = Entry::parse(&raw).map_err(|e| e.reason())?;
    ensure(e.nsid == 1 && e.nlb == 7 && e.slba == 0x1234, "range wrong")?;
    ensure(
        e.phase && e.marker == Marker::None && e.change == Change::Range,
        "attr wrong",
    )?;
    raw[31] = (7 << 1) | (2 << 6);
    let e = Entry::parse(&raw).map_err(|e| e.reason())?;
    ensure(
        !e.phase && e.marker == Marker::Full && e.change == Change::Unchanged,
        "full",
    )?;
    raw[31] = 4 << 1;
    ensure(Entry::parse(&raw).is_err(), "reserved ESA accepted")?;
    raw[31] = 3 << 6;
    ensure(Entry::parse(&raw).is_err(), "reserved LBACI accepted")?;
    ensure(Entry::parse(&raw[..31]).is_err(), "short entry accepted")
}

/// Command dwords match the reference migration flow.
pub fn command_encoding() -> CaseResult {
    let c = AdminCmd::suspend(5, SuspendType::Suspend, true);
    ensure(c.opcode == 0x41 && c.cdw(10) == 0, "suspend SEL")?;
    ensure(c.cdw(11) == (1 << 31) | (1 << 16) | 5, "suspend CDW11")?;
    ensure(
        AdminCmd::resume(5).cdw(10) == 1 && AdminCmd::resume(5).cdw(11) == 5,
        "resume",
    )?;
    let c = AdminCmd::get_state(5, 1, 0, 0, 152);
    ensure(
        c.opcode == 0x42 && c.cdw(10) == 1 << 16,
        "get state CSVI in MOS",
    )?;
    ensure(
        c.cdw(11) == 5 && c.cdw(15) == 152 / 4 - 1,
        "get state NUMD is 0's based",
    )?;
    let c = AdminCmd::set_state(5, Sequence::Only, 1, 0, 0x1_0000_0004, 152);
    ensure(c.cdw(10) == (3 << 16) | 2, "set state SEL/SEQIND")?;
    ensure(
        c.cdw(11) == (1 << 16) | 5 && c.cdw(15) == 152 / 4,
        "set state CSVI/NUMD",
    )?;
    ensure(c.cdw(12) == 4 && c.cdw(13) == 1, "set state offset")?;
    let c = AdminCmd::cdq_create(5, true, 1024);
    ensure(
        c.opcode == 0x45 && c.cdw(11) == (5 << 16) | 1 && c.cdw(12) == 1024,
        "cdq",
    )?;
    ensure(
        AdminCmd::track_user_data(3, true).cdw(10) == 1 << 16,
        "track start",
    )?;
    let c = AdminCmd::cdq_set_head(3, 10, Some(20));
    ensure(
        c.cdw(10) == 0x21 && c.cdw(11) == (1 << 31) | 3,
        "set features CDQ",
    )?;
    ensure(
        c.cdw(12) == 10 && c.cdw(13) == 20 && c.cdw(9) == 0,
        "HP/TPT",
    )
}

fn sample_namespace(nsid: u32) -> Namespace {
    Namespace {
        nsid,
        lbads: 9,
        ms: 0,
        nsze: 0x2_0000,
        // CAST: test NSIDs are small.
        nguid: [nsid as u8; 16],
        eui64: [0xe0 | nsid as u8; 8],
    }
}

fn sample_compat() -> super::codec::stream::Compat {
    super::codec::stream::Compat {
        namespaces: Namespaces::new(&[sample_namespace(1), sample_namespace(3)])
            .unwrap_or_default(),
        vendor: 0x1b36,
        device: 0x0010,
        nvme_version: 0,
        io_queues: 2,
        vectors: 2,
        mqes: 2047,
        vendor_uuid: [0x1c; 16],
        model: [b'M'; 40],
        firmware: [b'F'; 8],
        nqn_hash: super::codec::stream::fnv1a64(b"nqn.2026-11.io.nvme-vfio:subsys0"),
        media: false,
    }
}

/// Writes a whole stream carrying `state` into `out`; returns its length.
fn sample_stream(out: &mut [u8], state: &[u8]) -> Result<usize, Error> {
    super::codec::stream::write_stream(out, &sample_compat(), state)
}

/// A stream survives write and parse; its length is what `stream_len` says.
pub fn stream_round_trip() -> CaseResult {
    use super::codec::stream::{
        crc32c,
        stream_len,
        Stream, //
    };
    ensure(crc32c(0, b"123456789") == 0xe306_9283, "CRC32C check value")?;
    let mut state = [0u8; 256];
    let slen = sample_state(&mut state, &[9, 9, 9, 9]).map_err(|e| e.reason())?;
    let mut buf = [0u8; 1024];
    let len = sample_stream(&mut buf, &state[..slen]).map_err(|e| e.reason())?;
    ensure(
        stream_len(slen) == Ok(len),
        "stream_len disagrees with the writer",
    )?;
    let s = Stream::parse(&buf[..len]).map_err(|e| e.reason())?;
    ensure(s.compat == sample_compat(), "compatibility record changed")?;
    ensure(s.state == &state[..slen], "controller state changed")?;
    ControllerState::parse(s.state).map_err(|e| e.reason())?;
    Ok(())
}

/// Every malformed stream is refused.
pub fn stream_rejects_malformed() -> CaseResult {
    use super::codec::stream::{
        tag,
        write_end,
        write_prefix,
        write_record,
        Stream,
        COMPAT_LEN,
        FLAG_OPTIONAL, //
    };
    let state = [7u8; 60];
    let mut good = [0u8; 1024];
    let len = sample_stream(&mut good, &state).map_err(|e| e.reason())?;
    let bad = |f: &dyn Fn(&mut [u8])| {
        let mut b = good;
        f(&mut b);
        Stream::parse(&b[..len]).is_err()
    };
    ensure(bad(&|b| b[0] = b'X'), "bad magic accepted")?;
    ensure(bad(&|b| b[8] = 1), "version 1 accepted")?;
    ensure(bad(&|b| b[8] = 3), "version 3 accepted")?;
    ensure(
        bad(&|b| b[40] ^= 1),
        "corrupt compatibility record accepted",
    )?;
    ensure(
        bad(&|b| b[16 + 16 + COMPAT_LEN + 16 + 5] ^= 1),
        "corrupt state accepted",
    )?;
    ensure(bad(&|b| b[len - 8] ^= 1), "bad checksum accepted")?;
    ensure(
        bad(&|b| b[16 + 12] = 9),
        "unknown mandatory record accepted",
    )?;
    ensure(bad(&|b| b[16 + 8] = 2), "reserved record flag accepted")?;
    ensure(
        bad(&|b| b[16 + 8] = 1),
        "compatibility record marked optional accepted",
    )?;
    ensure(
        bad(&|b| b[len - 24 + 8] = 1),
        "end record marked optional accepted",
    )?;
    ensure(bad(&|b| b[16] = 0xff), "oversized record accepted")?;
    for cut in [0, 15, 16, 100, len - 1] {
        ensure(
            Stream::parse(&good[..cut]).is_err(),
            "truncated stream accepted",
        )?;
    }
    let mut longer = [0u8; 1032];
    longer[..len].copy_from_slice(&good[..len]);
    ensure(
        Stream::parse(&longer[..len + 8]).is_err(),
        "trailing bytes accepted",
    )?;
    // An unknown optional record is skipped; a repeated or missing
    // mandatory one is not.
    let mut b = [0u8; 1280];
    let compat = sample_compat();
    let w = |b: &mut [u8], extra: Option<(u32, u32)>, states: usize| -> Result<usize, Error> {
        let mut off = write_prefix(b, &compat)?;
        if let Some((t, f)) = extra {
            off = write_record(b, off, t, f, &[1, 2, 3])?;
        }
        for _ in 0..states {
            off = write_record(b, off, tag::CTRL_STATE, 0, &state)?;
        }
        write_end(b, off)
    };
    let n = w(&mut b, Some((77, FLAG_OPTIONAL)), 1).map_err(|e| e.reason())?;
    ensure(
        Stream::parse(&b[..n]).is_ok(),
        "unknown optional record not skipped",
    )?;
    let n = w(&mut b, Some((77, 0)), 1).map_err(|e| e.reason())?;
    ensure(
        Stream::parse(&b[..n]).is_err(),
        "unknown mandatory record accepted",
    )?;
    let n = w(&mut b, None, 2).map_err(|e| e.reason())?;
    ensure(
        Stream::parse(&b[..n]).is_err(),
        "repeated state record accepted",
    )?;
    let n = w(&mut b, None, 0).map_err(|e| e.reason())?;
    ensure(
        Stream::parse(&b[..n]).is_err(),
        "stream without state accepted",
    )
}

/// A destination accepts only a compatible source.
pub fn compat_rules() -> CaseResult {
    let src = sample_compat();
    ensure(src.accepts(&src).is_ok(), "identical controllers refused")?;
    let mut bigger = src;
    bigger.io_queues = 8;
    ensure(
        bigger.accepts(&src).is_ok(),
        "destination with more queues refused",
    )?;
    ensure(
        src.accepts(&bigger).is_err(),
        "destination with fewer queues accepted",
    )?;
    let change: [fn(&mut super::codec::stream::Compat); 5] = [
        |c| c.device = 1,
        |c| c.model[0] = b'X',
        |c| c.firmware[0] = b'X',
        |c| c.nqn_hash ^= 1,
        |c| c.vendor_uuid = [0; 16],
    ];
    for f in change {
        let mut d = src;
        f(&mut d);
        ensure(
            d.accepts(&src).is_err(),
            "incompatible destination accepted",
        )?;
    }
    let raw = src.encode();
    ensure(
        super::codec::stream::Compat::parse(&raw) == Ok(src),
        "compat round trip",
    )?;
    let mut r = raw;
    r[90] = 1;
    ensure(
        super::codec::stream::Compat::parse(&r).is_err(),
        "reserved compat bytes accepted",
    )
}

/// Migration never swaps storage: a destination accepts only the source's
/// namespaces (the same NSIDs, each the same namespace, format and size);
/// the table round-trips and rejects malformed entries.
pub fn namespace_rules() -> CaseResult {
    use super::codec::stream::{
        Compat,
        COMPAT_NAMESPACES, //
    };
    let src = sample_compat();
    ensure(
        src.namespaces.as_slice().len() == 2,
        "sample has two namespaces",
    )?;
    let with = |list: &[Namespace]| -> Result<Compat, &'static str> {
        let mut c = src;
        c.namespaces = Namespaces::new(list).map_err(|_| "valid list refused")?;
        Ok(c)
    };
    let (a, b) = (sample_namespace(1), sample_namespace(3));
    // Fewer, more, or other NSIDs.
    for list in [
        &[a][..],
        &[a, b, sample_namespace(4)][..],
        &[a, sample_namespace(2)][..],
        &[][..],
    ] {
        ensure(with(list)?.accepts(&src).is_err(), "other NSIDs accepted")?;
    }
    // The same NSIDs, another namespace or format behind one of them.
    let change: [fn(&mut Namespace); 5] = [
        |n| n.nguid[15] ^= 1,
        |n| n.eui64[0] ^= 1,
        |n| n.lbads = 12,
        |n| n.ms = 8,
        |n| n.nsze -= 1,
    ];
    for f in change {
        let mut m = b;
        f(&mut m);
        let d = with(&[a, m])?;
        ensure(
            d.accepts(&src).is_err(),
            "another namespace under the same NSID accepted",
        )?;
        ensure(src.accepts(&d).is_err(), "check is not symmetric")?;
    }
    ensure(
        with(&[a, b])?.accepts(&src).is_ok(),
        "the same namespaces refused",
    )?;
    // The list must be in ascending NSID order, valid, and not too long.
    ensure(
        Namespaces::new(&[b, a]).is_err(),
        "descending NSIDs accepted",
    )?;
    ensure(Namespaces::new(&[a, a]).is_err(), "repeated NSID accepted")?;
    ensure(
        Namespaces::new(&[sample_namespace(0)]).is_err(),
        "NSID 0 accepted",
    )?;
    let mut tiny = a;
    tiny.lbads = 8;
    ensure(Namespaces::new(&[tiny]).is_err(), "LBADS 8 accepted")?;
    let many = [a; MAX_NAMESPACES + 1];
    ensure(
        Namespaces::new(&many) == Err(Error::OutOfLimits("more than 8 namespaces attached")),
        "nine namespaces accepted",
    )?;
    // Encoded: count byte, then entries; unused entries zero.
    let raw = src.encode();
    ensure(raw[12] == 2, "namespace count byte")?;
    ensure(
        raw[COMPAT_NAMESPACES..COMPAT_NAMESPACES + 4] == 1u32.to_le_bytes(),
        "first entry's NSID",
    )?;
    ensure(Compat::parse(&raw) == Ok(src), "namespace table round trip")?;
    let mut r = raw;
    r[12] = 1;
    ensure(
        Compat::parse(&r).is_err(),
        "an entry beyond the count accepted",
    )?;
    let mut r = raw;
    r[12] = 9;
    ensure(Compat::parse(&r).is_err(), "count 9 accepted")?;
    let mut r = raw;
    r[COMPAT_NAMESPACES + 5] = 1;
    ensure(Compat::parse(&r).is_err(), "entry reserved byte accepted")?;
    let mut r = raw;
    r[13] = 2;
    ensure(
        Compat::parse(&r).is_err(),
        "compat reserved byte 13 accepted",
    )?;
    r[13] = 1;
    ensure(
        Compat::parse(&r).map(|c| c.media) == Ok(true),
        "compat byte 13 bit 0 is not the media flag",
    )
}

/// Identify limits of Track Memory Changes: absent, valid, inconsistent.
pub fn track_limits() -> CaseResult {
    use super::codec::track::*;
    let mut id = [0u8; 4096];
    ensure(
        Limits::parse(&id) == Ok(None),
        "THMCS clear must mean no tracking",
    )?;
    id[ID_CTRL_TRATTR] = TRATTR_THMCS;
    ensure(
        Limits::parse(&id).is_err(),
        "THMCS with CMMRTD 0 must be refused",
    )?;
    id[ID_CTRL_CMMRTD] = 16;
    id[ID_CTRL_NMMRTD] = 64;
    id[ID_CTRL_MINMRTG] = 12;
    id[ID_CTRL_MAXMRTG] = 21;
    let l = Limits::parse(&id)
        .ok()
        .flatten()
        .ok_or("valid limits refused")?;
    ensure(
        l.ranges == 16 && l.subsystem_ranges == 64,
        "CMMRTD/NMMRTD misread",
    )?;
    ensure(
        l.granularity_for(9) == 12 && l.granularity_for(16) == 16 && l.granularity_for(30) == 21,
        "granularity not clamped to MINMRTG..MAXMRTG",
    )?;
    id[ID_CTRL_MINMRTG] = 22;
    ensure(Limits::parse(&id).is_err(), "MINMRTG > MAXMRTG accepted")?;
    id[ID_CTRL_MINMRTG] = 11;
    ensure(Limits::parse(&id).is_err(), "MINMRTG below 4 KiB accepted")?;
    ensure(
        Limits::parse(&id[..100]).is_err(),
        "truncated Identify accepted",
    )
}

/// Track Memory Changes start data and Tracked Memory Change data: round
/// trips, byte positions, and what is refused.
pub fn track_round_trip() -> CaseResult {
    use super::codec::track::*;
    let ranges = [
        Range {
            addr: 0x10_0000,
            granules: 4,
        },
        Range {
            addr: 0x20_0000,
            granules: 1,
        },
    ];
    let mut buf = [0u8; 64];
    let n = encode_start(&mut buf, 12, &ranges).map_err(|_| "start refused")?;
    ensure(n == 8 + 2 * 12, "start length")?;
    ensure(
        buf[3] == 12 && buf[4] == 2 && buf[8..16] == 0x10_0000u64.to_le_bytes(),
        "start bytes misplaced",
    )?;
    let s = Start::parse(&buf[..n]).map_err(|_| "start does not parse")?;
    ensure(
        s.granularity == 12 && s.ranges().eq(ranges.iter().copied()),
        "start round trip",
    )?;
    let bad = [Range {
        addr: 0x10_0800,
        granules: 1,
    }];
    ensure(
        encode_start(&mut buf, 12, &bad).is_err(),
        "misaligned range",
    )?;
    let empty = [Range {
        addr: 0,
        granules: 0,
    }];
    ensure(encode_start(&mut buf, 12, &empty).is_err(), "empty range")?;
    let overlap = [
        ranges[0],
        Range {
            addr: 0x10_3000,
            granules: 1,
        },
    ];
    ensure(encode_start(&mut buf, 12, &overlap).is_err(), "overlap")?;
    ensure(encode_start(&mut buf, 12, &[]).is_err(), "no range")?;

    let mut rep = [0u8; 64];
    let n = encode_changes(&mut rep, 7, 13, true, &ranges).map_err(|_| "report refused")?;
    ensure(n == 16 + 2 * 16, "report length")?;
    ensure(
        rep[1] == ATTRB_MORE && rep[2] == 7 && rep[4] == 2 && rep[8] == 13,
        "report bytes misplaced",
    )?;
    let c = Changes::parse(&rep[..n]).map_err(|_| "report does not parse")?;
    ensure(
        c.more() && c.cntlid == 7 && c.granularity == 13 && c.len() == 2,
        "report header round trip",
    )?;
    ensure(c.ranges().eq(ranges.iter().copied()), "report ranges")?;
    ensure(
        Changes::parse(&rep[..n - 1]).is_err(),
        "NTMCD beyond the buffer accepted",
    )?;
    rep[8] = 11;
    ensure(Changes::parse(&rep[..n]).is_err(), "RPMPG below 4 KiB")?;
    rep[8] = 13;
    rep[0] = 1;
    ensure(Changes::parse(&rep[..n]).is_err(), "VER 1 accepted")?;
    ensure(
        ranges[0].bytes(12) == Some((0x10_0000, 0x10_3fff))
            && Range {
                addr: u64::MAX - 0xfff,
                granules: 2,
            }
            .bytes(12)
            .is_none(),
        "range byte bounds",
    )
}
