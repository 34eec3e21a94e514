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

/// `got` is exactly the error `want`.
fn expect_err<T>(got: Result<T, Error>, want: Error, what: &'static str) -> CaseResult {
    ensure(got.err() == Some(want), what)
}

/// The bitwise CRC32C the slicing-by-8 one replaced: the reference.
fn crc32c_bitwise(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = (c >> 1) ^ (0x82f6_3b78 & 0u32.wrapping_sub(c & 1));
        }
    }
    !c
}

/// Fills `buf` with the same pseudo-random bytes every time (xorshift64).
pub fn fill_pseudo_random(buf: &mut [u8]) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // CAST: the low byte.
        *b = x as u8;
    }
}

/// CRC32C: the check value, the RFC 3720 vectors, continuation, and the
/// bitwise reference on pseudo-random data of every length and alignment.
pub fn crc32c_vectors() -> CaseResult {
    use super::codec::stream::crc32c;
    ensure(crc32c(0, b"123456789") == 0xe306_9283, "check value")?;
    ensure(crc32c(0, &[]) == 0, "empty")?;
    ensure(crc32c(0, &[0; 32]) == 0x8a91_36aa, "32 zero bytes")?;
    ensure(crc32c(0, &[0xff; 32]) == 0x62a8_ab43, "32 FFh bytes")?;
    let mut up = [0u8; 32];
    for (i, b) in up.iter_mut().enumerate() {
        // CAST: below 32.
        *b = i as u8;
    }
    ensure(crc32c(0, &up) == 0x46dd_794e, "32 ascending bytes")?;
    let mut r = [0u8; 300];
    fill_pseudo_random(&mut r);
    for from in 0..9 {
        for to in (from..r.len()).step_by(7) {
            let s = &r[from..to];
            ensure(
                crc32c(0x1234_5678, s) == crc32c_bitwise(0x1234_5678, s),
                "differs from the bitwise reference",
            )?;
        }
    }
    let (a, b) = r.split_at(131);
    ensure(crc32c(crc32c(0, a), b) == crc32c(0, &r), "continuation")
}

fn media_compat() -> super::codec::stream::Compat {
    super::codec::stream::Compat {
        media: true,
        ..sample_compat()
    }
}

/// One record of a test stream.
#[derive(Clone, Copy)]
enum Rec<'a> {
    Desc(u32, u8, u64),
    Data(u32, u64, u32, &'a [u8]),
    Zero(u32, u64, u64),
    State,
    End,
    Raw(u32, u32, &'a [u8]),
}

const STATE: [u8; 60] = [7u8; 60];

/// Writes a stream of `compat` and `recs` into `out`; returns its length.
fn media_stream(
    out: &mut [u8],
    compat: &super::codec::stream::Compat,
    recs: &[Rec<'_>],
) -> Result<usize, Error> {
    use super::codec::media::{
        write_data,
        write_ns_desc,
        write_zero,
        DataHeader,
        NsDesc,
        ZeroRange, //
    };
    use super::codec::stream::{
        tag,
        write_end,
        write_prefix,
        write_record, //
    };
    let mut off = write_prefix(out, compat)?;
    for r in recs {
        off = match *r {
            Rec::Desc(nsid, lbads, nsze) => write_ns_desc(out, off, &NsDesc { nsid, lbads, nsze })?,
            Rec::Data(nsid, slba, nlb, data) => {
                let h = DataHeader {
                    nsid,
                    slba,
                    nlb,
                    crc: 0,
                };
                write_data(out, off, &h, data)?
            }
            Rec::Zero(nsid, slba, nlb) => write_zero(out, off, &ZeroRange { nsid, slba, nlb })?,
            Rec::State => write_record(out, off, tag::CTRL_STATE, 0, &STATE)?,
            Rec::End => write_end(out, off)?,
            Rec::Raw(t, f, p) => write_record(out, off, t, f, p)?,
        };
    }
    Ok(off)
}

/// Feeds `buf` to a [`Checker`] of `dest` a record at a time, as a
/// destination does; the stream must end with its end record.
fn check_all(dest: &super::codec::stream::Compat, buf: &[u8]) -> Result<(), Error> {
    use super::codec::media::{
        parse_record,
        record_need,
        Checker, //
    };
    let mut c = Checker::new(dest);
    c.header(buf.get(..16).ok_or(Error::Overflow)?)?;
    let mut off = 16;
    while off < buf.len() {
        let rest = buf.get(off..).ok_or(Error::Overflow)?;
        let need = record_need(rest)?.ok_or(Error::Overflow)?;
        let raw = rest.get(..need).ok_or(Error::Truncated {
            need,
            have: rest.len(),
        })?;
        let (rec, n) = parse_record(raw)?;
        c.check(&rec, raw)?;
        off += n;
    }
    if c.ended() {
        Ok(())
    } else {
        Err(Error::InvalidField("no end record"))
    }
}

/// The namespaces of [`sample_compat`], described.
const DESCS: [Rec<'static>; 2] = [Rec::Desc(1, 9, 0x2_0000), Rec::Desc(3, 9, 0x2_0000)];

/// The Checker's result on a media stream of `recs` (after the two
/// descriptors if `desc`), which `Stream::parse` must share.
fn media_result(desc: bool, recs: &[Rec<'_>]) -> Result<(), Error> {
    let mut all = [Rec::State; 12];
    let mut n = 0;
    for r in DESCS.iter().filter(|_| desc).chain(recs) {
        *all.get_mut(n).ok_or(Error::Overflow)? = *r;
        n += 1;
    }
    let mut buf = [0u8; 2048];
    let len = media_stream(&mut buf, &media_compat(), &all[..n])?;
    let got = check_all(&media_compat(), &buf[..len]);
    let whole = super::codec::stream::Stream::parse(&buf[..len]).map(|_| ());
    if got.is_ok() != whole.is_ok() {
        return Err(Error::InvalidField("Checker and Stream::parse disagree"));
    }
    got
}

/// Every record of version 3 survives write and parse; a media stream
/// passes `Checker` and `Stream::parse`; the three ways to write DATA
/// agree; the version follows the media flag.
pub fn media_round_trip() -> CaseResult {
    use super::codec::media::{
        begin_data,
        data_record_len,
        end_data,
        finish_data,
        parse_record,
        write_data,
        DataHeader,
        Record,
        MAX_DATA_LEN, //
    };
    use super::codec::stream::{
        parse_header,
        Stream,
        VERSION,
        VERSION_NO_MEDIA, //
    };
    let data = [0x5au8; 1024];
    let recs = [
        DESCS[0],
        Rec::Zero(1, 0, 0x2_0000),
        Rec::Data(1, 5, 2, &data),
        DESCS[1],
        Rec::Data(3, 0x1_ffff, 1, &data[..512]),
        Rec::State,
        Rec::End,
    ];
    let mut buf = [0u8; 2304];
    let len = media_stream(&mut buf, &media_compat(), &recs).map_err(|e| e.reason())?;
    ensure(
        parse_header(&buf) == Ok(VERSION),
        "media stream not version 3",
    )?;
    check_all(&media_compat(), &buf[..len]).map_err(|e| e.reason())?;
    let s = Stream::parse(&buf[..len]).map_err(|e| e.reason())?;
    ensure(
        s.version == VERSION && s.compat == media_compat() && s.state == STATE,
        "media stream content",
    )?;
    // The records, one by one.
    let mut off = 16 + 16 + super::codec::stream::COMPAT_LEN;
    let (r, n) = parse_record(&buf[off..len]).map_err(|e| e.reason())?;
    ensure(
        n == 32
            && r == Record::NsDesc(super::codec::media::NsDesc {
                nsid: 1,
                lbads: 9,
                nsze: 0x2_0000,
            }),
        "NS_DESC round trip",
    )?;
    off += n;
    let (r, n) = parse_record(&buf[off..len]).map_err(|e| e.reason())?;
    ensure(
        n == 40
            && r == Record::Zero(super::codec::media::ZeroRange {
                nsid: 1,
                slba: 0,
                nlb: 0x2_0000,
            }),
        "ZERO round trip",
    )?;
    off += n;
    let (r, n) = parse_record(&buf[off..len]).map_err(|e| e.reason())?;
    let want = DataHeader {
        nsid: 1,
        slba: 5,
        nlb: 2,
        crc: super::codec::stream::crc32c(0, &data),
    };
    ensure(
        data_record_len(1024) == Ok(n)
            && r == Record::Data {
                header: want,
                data: &data,
            },
        "DATA round trip",
    )?;
    // write_data == begin_data + copy + finish_data == begin + end_data.
    let odd = &data[..13];
    let mut a = [0xeeu8; 64];
    let mut b = [0xeeu8; 64];
    let end_a = write_data(&mut a, 0, &want, odd).map_err(|e| e.reason())?;
    let at = begin_data(&mut b, 0, &want, odd.len()).map_err(|e| e.reason())?;
    b[at..at + odd.len()].copy_from_slice(odd);
    let end_b = finish_data(&mut b, 0).map_err(|e| e.reason())?;
    ensure(
        end_a == 56 && end_b == end_a && a == b,
        "finish_data differs",
    )?;
    let mut c = [0xeeu8; 64];
    let h = DataHeader {
        crc: super::codec::stream::crc32c(0, odd),
        ..want
    };
    let at = begin_data(&mut c, 0, &h, odd.len()).map_err(|e| e.reason())?;
    c[at..at + odd.len()].copy_from_slice(odd);
    ensure(
        end_data(&mut c, at + odd.len()) == Ok(56) && a == c,
        "end_data differs",
    )?;
    ensure(
        parse_record(&a[..56]).map(|(_, n)| n) == Ok(56),
        "written DATA does not parse",
    )?;
    expect_err(
        begin_data(&mut c, 4, &h, 1),
        Error::InvalidField("record offset not a multiple of 8"),
        "unaligned DATA",
    )?;
    expect_err(
        data_record_len(MAX_DATA_LEN + 1),
        Error::OutOfLimits("data record larger than 1 MiB of data"),
        "DATA above 1 MiB",
    )?;
    ensure(
        data_record_len(0).is_err() && data_record_len(MAX_DATA_LEN) == Ok(16 + 24 + MAX_DATA_LEN),
        "data_record_len",
    )?;
    // Media off: a version-2 stream, byte for byte the old one.
    let mut v2 = [0u8; 1024];
    let n2 = sample_stream(&mut v2, &STATE).map_err(|e| e.reason())?;
    ensure(
        parse_header(&v2) == Ok(VERSION_NO_MEDIA)
            && v2[8] == 2
            && v2[16 + 16 + 13] == 0
            && super::codec::stream::crc32c(0, &v2[..n2 - 24])
                == u32::from_le_bytes([v2[n2 - 8], v2[n2 - 7], v2[n2 - 6], v2[n2 - 5]]),
        "media off is not the version-2 stream",
    )?;
    check_all(&sample_compat(), &v2[..n2]).map_err(|e| e.reason())
}

/// Each rule of the stream order and of the media records, broken once:
/// the specific error.
pub fn media_checker_rejects() -> CaseResult {
    let d = [0u8; 1024];
    let r = |desc: bool, recs: &[Rec<'_>]| media_result(desc, recs);
    let (s, e) = (Rec::State, Rec::End);
    r(true, &[s, e]).map_err(|e| e.reason())?;
    let inv = Error::InvalidField;
    expect_err(
        r(
            false,
            &[
                Rec::Desc(1, 9, 0x2_0000),
                Rec::Data(3, 0, 1, &d[..512]),
                s,
                e,
            ],
        ),
        inv("media record of a namespace not described"),
        "DATA of an NSID not described",
    )?;
    expect_err(
        r(true, &[Rec::Zero(2, 0, 1), s, e]),
        inv("media record of a namespace not described"),
        "ZERO of an NSID the source lacks",
    )?;
    expect_err(
        r(false, &[Rec::Desc(2, 9, 0x2_0000), s, e]),
        inv("namespace descriptor of a namespace the source does not have"),
        "NS_DESC of an NSID the source lacks",
    )?;
    let beyond = Error::OutOfLimits("media record beyond the namespace's capacity");
    expect_err(
        r(true, &[Rec::Zero(1, 0x1_ffff, 2), s, e]),
        beyond,
        "ZERO beyond",
    )?;
    expect_err(
        r(true, &[Rec::Zero(1, u64::MAX, 2), s, e]),
        beyond,
        "ZERO wraps",
    )?;
    expect_err(
        r(true, &[Rec::Data(1, 0x2_0000, 1, &d[..512]), s, e]),
        beyond,
        "DATA beyond",
    )?;
    ensure(
        r(true, &[Rec::Zero(1, 0x1_ffff, 1), s, e]).is_ok(),
        "the last LBA refused",
    )?;
    let none = inv("media record of no logical block");
    expect_err(r(true, &[Rec::Zero(1, 0, 0), s, e]), none, "ZERO nlb 0")?;
    expect_err(
        r(true, &[Rec::Data(1, 0, 0, &d[..512]), s, e]),
        none,
        "DATA nlb 0",
    )?;
    let len = inv("data length is not nlb logical blocks");
    expect_err(
        r(true, &[Rec::Data(1, 0, 1, &d[..511]), s, e]),
        len,
        "short DATA",
    )?;
    expect_err(
        r(true, &[Rec::Data(1, 0, 1, &d[..1024]), s, e]),
        len,
        "long DATA",
    )?;
    expect_err(
        r(true, &[Rec::Data(1, 0, 0x1000, &d[..512]), s, e]),
        len,
        "huge NLB, little data",
    )?;
    expect_err(
        r(true, &[Rec::Data(1, 0, u32::MAX, &d[..512]), s, e]),
        beyond,
        "NLB 2^32-1",
    )?;
    let twice = inv("namespace described twice");
    expect_err(r(true, &[DESCS[0], s, e]), twice, "NS_DESC repeated")?;
    for lbads in [8, 12] {
        expect_err(
            r(false, &[Rec::Desc(1, lbads, 0x2_0000), s, e]),
            inv("namespace descriptor LBA size differs from the compatibility record"),
            "NS_DESC lbads",
        )?;
    }
    for nsze in [0x1_ffff, 0x2_0001] {
        expect_err(
            r(false, &[Rec::Desc(1, 9, nsze), s, e]),
            inv("namespace descriptor capacity differs from the compatibility record"),
            "NS_DESC nsze",
        )?;
    }
    let order = inv("record out of order or repeated");
    expect_err(r(true, &[s, DESCS[0], e]), order, "NS_DESC after the state")?;
    expect_err(
        r(true, &[s, Rec::Zero(1, 0, 1), e]),
        order,
        "ZERO after the state",
    )?;
    expect_err(r(true, &[s, s, e]), order, "state repeated")?;
    expect_err(
        r(false, &[DESCS[0], s, e]),
        inv("a namespace of the source not described before the controller state"),
        "namespace never described",
    )?;
    expect_err(
        r(true, &[s, e, Rec::Zero(1, 0, 1)]),
        inv("record after the end record"),
        "record after END",
    )?;
    expect_err(
        r(true, &[Rec::Zero(1, 0, 1), e]),
        inv("stream lacks a mandatory record"),
        "no state",
    )?;
    // Framing: sizes above (or below) the tag's, flags.
    let big = inv("record length not the tag's");
    expect_err(
        r(true, &[Rec::Raw(3, 0, &d[..24]), s, e]),
        big,
        "NS_DESC of 24",
    )?;
    expect_err(
        r(true, &[Rec::Raw(5, 0, &d[..32]), s, e]),
        big,
        "ZERO of 32",
    )?;
    expect_err(
        r(true, &[Rec::Raw(4, 0, &d[..24]), s, e]),
        big,
        "DATA without data",
    )?;
    expect_err(
        r(true, &[Rec::Raw(0xffff_fff0, 0, &d[..8]), s, e]),
        big,
        "END of 8",
    )?;
    expect_err(
        r(true, &[Rec::Raw(3, 1, &d[..16]), s, e]),
        inv("mandatory record marked optional"),
        "optional NS_DESC",
    )?;
    expect_err(
        r(true, &[Rec::Raw(6, 0, &d[..16]), s, e]),
        inv("unknown mandatory record"),
        "unknown mandatory",
    )?;
    ensure(
        r(true, &[Rec::Raw(6, 1, &d[..16]), s, e]).is_ok(),
        "unknown optional not skipped",
    )?;
    // Reserved bytes of each payload.
    for byte in 5..8 {
        let mut nd = [0u8; 16];
        nd[0] = 1;
        nd[4] = 9;
        nd[10] = 2;
        nd[byte] = 1;
        expect_err(
            r(false, &[Rec::Raw(3, 0, &nd), DESCS[1], s, e]),
            inv("namespace descriptor reserved bytes"),
            "NS_DESC reserved",
        )?;
    }
    let mut z = [0u8; 24];
    z[0] = 1;
    z[16] = 1;
    z[4] = 1;
    expect_err(
        r(true, &[Rec::Raw(5, 0, &z), s, e]),
        inv("zero record reserved bytes"),
        "ZERO reserved",
    )?;
    header_checks()
}

/// Whole-record checks of `parse_record` and `record_need`: limits from
/// the header alone, truncation, padding, DATA's CRC and reserved bytes,
/// the version rules.
fn header_checks() -> CaseResult {
    use super::codec::media::{
        parse_record,
        record_need,
        write_data,
        DataHeader,
        MAX_DATA_LEN, //
    };
    use super::codec::stream::{
        crc32c,
        MAX_STATE_LEN, //
    };
    let hdr = |size: u64, flags: u32, tag: u32| {
        let mut h = [0u8; 16];
        h[..8].copy_from_slice(&size.to_le_bytes());
        h[8..12].copy_from_slice(&flags.to_le_bytes());
        h[12..].copy_from_slice(&tag.to_le_bytes());
        record_need(&h)
    };
    // CAST: a small constant.
    let data_max = (24 + MAX_DATA_LEN) as u64;
    ensure(
        hdr(data_max, 0, 4) == Ok(Some(16 + 24 + MAX_DATA_LEN)),
        "DATA max",
    )?;
    expect_err(
        hdr(data_max + 1, 0, 4),
        Error::OutOfLimits("data record larger than 1 MiB of data"),
        "DATA above max",
    )?;
    let big = Error::OutOfLimits("record larger than 4 MiB");
    // CAST: a small constant.
    let state_max = MAX_STATE_LEN as u64;
    expect_err(hdr(state_max + 1, 0, 2), big, "state above max")?;
    expect_err(hdr(state_max + 1, 1, 99), big, "optional above max")?;
    expect_err(
        hdr(u64::MAX, 0, 4),
        Error::OutOfLimits("data record larger than 1 MiB of data"),
        "DATA 2^64-1",
    )?;
    expect_err(
        hdr(417, 0, 1),
        Error::InvalidField("record length not the tag's"),
        "COMPAT 417",
    )?;
    expect_err(
        hdr(16, 2, 3),
        Error::InvalidField("reserved record flags"),
        "flags",
    )?;
    ensure(record_need(&[0u8; 15]) == Ok(None), "15 bytes framed")?;
    let mut b = [0u8; 64];
    let h = DataHeader {
        nsid: 1,
        slba: 0,
        nlb: 1,
        crc: 0,
    };
    let n = write_data(&mut b, 0, &h, &[1, 2, 3]).map_err(|e| e.reason())?;
    // The version-3 CRC covers the record and data headers and the
    // padding, not the data.
    ensure(
        super::codec::media::crc_record(7, &b[..n]) == Ok(crc32c(crc32c(7, &b[..40]), &b[43..n])),
        "crc_record coverage of a DATA record",
    )?;
    expect_err(
        parse_record(&b[..n - 1]),
        Error::Truncated {
            need: n,
            have: n - 1,
        },
        "truncated record",
    )?;
    let mut p = b;
    p[n - 1] = 1;
    expect_err(
        parse_record(&p[..n]),
        Error::InvalidField("record padding not zero"),
        "padding",
    )?;
    let mut p = b;
    p[16 + 24] ^= 1;
    expect_err(
        parse_record(&p[..n]),
        Error::InvalidField("data record checksum mismatch"),
        "DATA CRC",
    )?;
    let mut p = b;
    p[16 + 21] = 1;
    expect_err(
        parse_record(&p[..n]),
        Error::InvalidField("data record reserved bytes"),
        "DATA reserved",
    )?;
    version_rules()
}

/// Media records only in version 3; the media flag matches the version;
/// the version-3 END CRC skips DATA's data but covers its header.
fn version_rules() -> CaseResult {
    use super::codec::stream::{
        crc32c,
        tag,
        write_end,
        write_prefix,
        write_record, //
    };
    let inv = Error::InvalidField;
    let mut b = [0u8; 1280];
    let mut p = [0u8; 24 + 512];
    p[0] = 1;
    p[4] = 1;
    let crc = crc32c(0, &p[24..]).to_le_bytes();
    p[16..20].copy_from_slice(&crc);
    let f = |b: &mut [u8], media: bool, recs: &[(u32, &[u8])]| -> Result<usize, Error> {
        let compat = super::codec::stream::Compat {
            media,
            ..sample_compat()
        };
        let mut off = write_prefix(b, &compat)?;
        for (t, payload) in recs {
            off = write_record(b, off, *t, 0, payload)?;
        }
        write_end(b, off)
    };
    let n =
        f(&mut b, false, &[(tag::DATA, &p), (tag::CTRL_STATE, &STATE)]).map_err(|e| e.reason())?;
    expect_err(
        check_all(&sample_compat(), &b[..n]),
        inv("media record in a version-2 stream"),
        "DATA in version 2",
    )?;
    let n = f(
        &mut b,
        false,
        &[(tag::NS_DESC, &[0; 16]), (tag::CTRL_STATE, &STATE)],
    )
    .map_err(|e| e.reason())?;
    expect_err(
        super::codec::stream::Stream::parse(&b[..n]),
        inv("media record in a version-2 stream"),
        "NS_DESC in version 2",
    )?;
    let n = f(&mut b, false, &[(tag::CTRL_STATE, &STATE)]).map_err(|e| e.reason())?;
    let mismatch = inv("media migration flag does not match the stream version");
    b[8] = 3;
    expect_err(
        check_all(&sample_compat(), &b[..n]),
        mismatch,
        "version 3, media off",
    )?;
    let n = f(&mut b, true, &[(tag::CTRL_STATE, &STATE)]).map_err(|e| e.reason())?;
    b[8] = 2;
    expect_err(
        check_all(&media_compat(), &b[..n]),
        mismatch,
        "version 2, media on",
    )?;
    let one_end = Error::OutOfLimits(
        "media migration on at one end only (both or neither must copy the namespaces)",
    );
    let n = f(&mut b, false, &[(tag::CTRL_STATE, &STATE)]).map_err(|e| e.reason())?;
    expect_err(
        check_all(&media_compat(), &b[..n]),
        one_end,
        "media dest, plain source",
    )?;
    // Version 3: data bytes outside the END CRC, the rest inside it.
    let data = [9u8; 512];
    let recs = [
        DESCS[0],
        DESCS[1],
        Rec::Data(1, 0, 1, &data),
        Rec::State,
        Rec::End,
    ];
    let n = media_stream(&mut b, &media_compat(), &recs).map_err(|e| e.reason())?;
    let at = 16 + 16 + super::codec::stream::COMPAT_LEN + 64;
    let mut c = b;
    c[at + 16 + 24] = 8;
    let crc = crc32c(0, &c[at + 40..at + 40 + 512]).to_le_bytes();
    c[at + 32..at + 36].copy_from_slice(&crc);
    expect_err(
        check_all(&media_compat(), &c[..n]),
        inv("stream checksum mismatch"),
        "DATA CRC field outside the END CRC",
    )?;
    let mut c = b;
    c[at + 24] = 1;
    expect_err(
        check_all(&media_compat(), &c[..n]),
        inv("stream checksum mismatch"),
        "DATA header outside the END CRC",
    )?;
    let skip = super::codec::stream::stream_crc(&b[..n - 24]);
    let mut whole = crc32c(0, &b[..at + 40]);
    whole = crc32c(whole, &b[at + 40 + 512..n - 24]);
    ensure(
        skip == Ok(whole),
        "version-3 CRC is not every byte but the data",
    )
}

/// Media migration acceptance: both ends or neither; another subsystem;
/// the same NSIDs in order, the same format, at least the capacity.
pub fn media_compat_rules() -> CaseResult {
    let src = media_compat();
    ensure(src.accepts(&src).is_ok(), "identical media ends refused")?;
    let one_end = Error::OutOfLimits(
        "media migration on at one end only (both or neither must copy the namespaces)",
    );
    expect_err(sample_compat().accepts(&src), one_end, "plain dest")?;
    expect_err(src.accepts(&sample_compat()), one_end, "plain source")?;
    let mut d = src;
    d.nqn_hash ^= 1;
    ensure(d.accepts(&src).is_ok(), "media: another subsystem refused")?;
    let ns = |list: &[Namespace]| Namespaces::new(list).unwrap_or_default();
    let (a, b) = (sample_namespace(1), sample_namespace(3));
    let other = |n: Namespace| Namespace {
        nguid: [0x77; 16],
        eui64: [0x66; 8],
        ..n
    };
    d.namespaces = ns(&[other(a), other(b)]);
    ensure(d.accepts(&src).is_ok(), "media: other NGUID/EUI-64 refused")?;
    ensure(
        d.namespaces.accepts(&src.namespaces).is_err(),
        "plain: other NGUID/EUI-64 accepted",
    )?;
    let bigger = Namespace {
        nsze: a.nsze + 1,
        ..a
    };
    d.namespaces = ns(&[bigger, b]);
    ensure(d.accepts(&src).is_ok(), "media: larger destination refused")?;
    ensure(
        src.accepts(&d).is_err(),
        "media: smaller destination accepted",
    )?;
    let nsids =
        Error::OutOfLimits("different namespaces attached (NSIDs): no one-to-one media copy");
    let format =
        Error::OutOfLimits("different namespace format (LBA size or metadata) for a media copy");
    d.namespaces = ns(&[a]);
    expect_err(d.accepts(&src), nsids, "fewer namespaces")?;
    d.namespaces = ns(&[a, sample_namespace(4)]);
    expect_err(d.accepts(&src), nsids, "other NSID")?;
    d.namespaces = ns(&[Namespace { lbads: 12, ..a }, b]);
    expect_err(d.accepts(&src), format, "other LBA size")?;
    d.namespaces = ns(&[Namespace { ms: 8, ..a }, b]);
    expect_err(d.accepts(&src), format, "other metadata size")?;
    d.namespaces = ns(&[a, Namespace { nsze: 1, ..b }]);
    expect_err(
        d.accepts(&src),
        Error::OutOfLimits("destination namespace smaller than the source's"),
        "smaller namespace",
    )?;
    let mut plain = sample_compat();
    plain.nqn_hash ^= 1;
    ensure(
        plain.accepts(&sample_compat()).is_err(),
        "plain: another subsystem accepted",
    )
}

/// A UDMQ entry of `nsid`, `[slba, slba + nlb)`, `esa` and `lbaci`.
fn udmq(nsid: u32, slba: u64, nlb: u32, esa: u8, lbaci: u8) -> Result<Entry, Error> {
    let mut raw = [0u8; 32];
    raw[0..4].copy_from_slice(&nsid.to_le_bytes());
    raw[4..8].copy_from_slice(&nlb.wrapping_sub(1).to_le_bytes());
    raw[8..16].copy_from_slice(&slba.to_le_bytes());
    raw[31] = 1 | (esa << 1) | (lbaci << 6);
    Entry::parse(&raw)
}

/// The dirty set: geometry, marks and runs at word and capacity edges,
/// clipping, `mark_below`, and every kind of UDMQ entry.
pub fn dirty_set() -> CaseResult {
    use super::codec::dirty::{
        count,
        mark,
        mark_all,
        mark_below,
        peek_run,
        take_run,
        Geometry,
        Run, //
    };
    let g = |nsze, min, max| Geometry::new(nsze, 9, min, max).map_err(|e| e.reason());
    ensure(
        g(1000, 4096, 1 << 20)?
            == Geometry {
                nsze: 1000,
                shift: 3,
            },
        "4 KiB granule",
    )?;
    ensure(g(1000, 3000, 1 << 20)?.shift == 3, "granule not rounded up")?;
    ensure(g(1000, 256, 1 << 20)?.shift == 0, "granule below the LBA")?;
    let small = g(1000, 4096, 100)?;
    ensure(
        small.shift == 4 && small.bits() == 63 && small.words() == 1 && small.granule_lbas() == 16,
        "bits bound",
    )?;
    ensure(
        g(1 << 31, 4096, 1 << 20)?.bits() == 1 << 20,
        "1 TiB in 2^20 bits",
    )?;
    ensure(Geometry::new(1, 9, 512, 0).is_err(), "no bit accepted")?;
    // One LBA a bit, 200 LBAs: four words, the last partial.
    let g1 = g(200, 512, 1 << 20)?;
    let mut w = [0u64; 4];
    ensure(g1.bits() == 200 && g1.words() == 4, "200 bits")?;
    mark(&mut w, &g1, 63, 2).map_err(|e| e.reason())?;
    ensure(w[0] == 1 << 63 && w[1] == 1 && count(&w) == 2, "word edge")?;
    ensure(
        take_run(&mut w, &g1, 0, 100) == Some((63, 2)) && count(&w) == 0,
        "run across words",
    )?;
    ensure(
        take_run(&mut w, &g1, 0, 100).is_none(),
        "clean set has a run",
    )?;
    expect_err(
        mark(&mut w, &g1, 199, 2),
        Error::OutOfLimits("LBA range beyond the namespace"),
        "beyond nsze",
    )?;
    expect_err(
        mark(&mut w, &g1, u64::MAX, 2),
        Error::OutOfLimits("LBA range beyond the namespace"),
        "wraps",
    )?;
    ensure(
        mark(&mut w, &g1, 0, 0).is_err() && count(&w) == 0,
        "empty range",
    )?;
    mark(&mut w, &g1, 0, 200).map_err(|e| e.reason())?;
    ensure(count(&w) == 200 && w[3] == (1 << 8) - 1, "all 200")?;
    ensure(
        take_run(&mut w, &g1, 0, 10) == Some((0, 10))
            && take_run(&mut w, &g1, 0, 54) == Some((10, 54)),
        "run at most max_bits",
    )?;
    ensure(take_run(&mut w, &g1, 0, 0).is_none(), "max_bits 0")?;
    ensure(
        take_run(&mut w, &g1, 100, 1000) == Some((100, 100)),
        "run from the middle",
    )?;
    ensure(
        take_run(&mut w, &g1, 0, 1000) == Some((64, 36)),
        "run up to a clear bit",
    )?;
    ensure(
        count(&w) == 0 && take_run(&mut w, &g1, 200, 1).is_none(),
        "left over",
    )?;
    mark(&mut w, &g1, 127, 1).map_err(|e| e.reason())?;
    mark(&mut w, &g1, 129, 1).map_err(|e| e.reason())?;
    ensure(
        take_run(&mut w, &g1, 128, 9) == Some((129, 1)),
        "from_bit skips",
    )?;
    ensure(
        take_run(&mut w, &g1, 0, 9) == Some((127, 1)),
        "single bit at word end",
    )?;
    mark_all(&mut w, &g1);
    ensure(count(&w) == 200, "mark_all beyond the bits")?;
    // Eight LBAs a bit, 100 LBAs: the last granule is clipped.
    let g8 = g(100, 4096, 1 << 20)?;
    let mut w = [0u64; 1];
    mark(&mut w, &g8, 96, 4).map_err(|e| e.reason())?;
    ensure(w[0] == 1 << 12, "granule of LBA 96")?;
    ensure(
        peek_run(&w, &g8, 0, 10)
            == Some(Run {
                slba: 96,
                nlb: 4,
                next_bit: 13,
            })
            && w[0] == 1 << 12,
        "peek_run: clipped to nsze, nothing cleared",
    )?;
    ensure(peek_run(&w, &g8, 13, 10).is_none(), "peek_run past the run")?;
    ensure(
        take_run(&mut w, &g8, 0, 10) == Some((96, 4)),
        "clipped to nsze",
    )?;
    mark(&mut w, &g8, 7, 2).map_err(|e| e.reason())?;
    ensure(w[0] == 3, "range over two granules")?;
    ensure(take_run(&mut w, &g8, 0, 10) == Some((0, 16)), "granule run")?;
    mark_below(&mut w, &g8, 17);
    ensure(w[0] == 7, "mark_below 17: granules starting at 0, 8, 16")?;
    w[0] = 0;
    mark_below(&mut w, &g8, 0);
    ensure(w[0] == 0, "mark_below 0")?;
    mark_below(&mut w, &g8, u64::MAX);
    ensure(w[0] == (1 << 13) - 1, "mark_below all")?;
    w[0] = 0;
    mark_all(&mut w, &g8);
    ensure(count(&w) == 13, "mark_all")?;
    apply_entries()
}

/// `apply_entry` on every kind of entry.
fn apply_entries() -> CaseResult {
    use super::codec::dirty::{
        apply_entry,
        Applied,
        Geometry, //
    };
    let g = Geometry {
        nsze: 200,
        shift: 0,
    };
    let apply = |e: Result<Entry, Error>| -> Result<(Applied, [u64; 4]), Error> {
        let mut w = [0u64; 4];
        let a = apply_entry(&mut w, &g, 1, 100, &e?)?;
        Ok((a, w))
    };
    let r = |e| apply(e).map_err(|e| e.reason());
    ensure(
        r(udmq(1, 10, 2, 0, 0))? == (Applied::Marked, [3 << 10, 0, 0, 0]),
        "range below",
    )?;
    ensure(
        r(udmq(1, 98, 4, 0, 0))? == (Applied::Marked, [0, 3 << 34, 0, 0]),
        "range across the copy position",
    )?;
    ensure(
        r(udmq(1, 100, 4, 0, 0))?.0 == Applied::Ignored,
        "range not copied yet",
    )?;
    ensure(
        r(udmq(2, 10, 4, 0, 0))?.0 == Applied::Ignored,
        "other namespace",
    )?;
    expect_err(
        apply(udmq(1, 199, 2, 0, 0)),
        Error::OutOfLimits("LBA range beyond the namespace"),
        "range beyond nsze",
    )?;
    ensure(
        r(udmq(1, 0, 1, 0, 1))? == (Applied::Marked, [u64::MAX, (1 << 36) - 1, 0, 0]),
        "whole namespace: below the copy position",
    )?;
    ensure(r(udmq(7, 0, 1, 0, 2))?.0 == Applied::Ignored, "unchanged")?;
    ensure(
        r(udmq(0, 0, 1, 7, 2))? == (Applied::Marker(Marker::Full), [0; 4]),
        "full marker",
    )?;
    ensure(
        r(udmq(0, 0, 1, 3, 2))?.0 == Applied::Marker(Marker::Suspended),
        "suspended marker",
    )?;
    ensure(
        r(udmq(0, 0, 1, 2, 2))?.0 == Applied::Marker(Marker::Stopped),
        "stopped",
    )?;
    ensure(
        r(udmq(1, 5, 1, 1, 0))? == (Applied::Marker(Marker::First), [1 << 5, 0, 0, 0]),
        "first marker with a range",
    )
}
