// SPDX-License-Identifier: GPL-2.0

//! Mutations of real migration streams: where every field of a stream
//! lies (from the shared codec's layout), and the ways `fuzz-resume`
//! changes a stream: bit flips, boundary values in every field, truncation,
//! records duplicated, dropped, swapped or added, splices of two streams,
//! trailing bytes, random bytes, and consistent resizes of the controller
//! state. Deterministic: one seed gives the same inputs from the same
//! streams.

use crate::codec::media::{
    DataHeader,
    DATA_HEADER_LEN,
    MAX_DATA_LEN, //
};
use crate::codec::state::{
    HEADER_LEN as STATE_HEADER_LEN,
    QUEUE_ENTRY_LEN,
    V0_PREFIX_LEN, //
};
use crate::codec::stream::{
    self,
    tag,
    HEADER_LEN,
    MAX_STATE_LEN,
    PREFIX_LEN,
    RECORD_HEADER_LEN, //
};
use crate::media_stream::data_record;

/// xorshift64* seeded through splitmix64.
#[derive(Clone, Debug)]
pub struct Rng(u64);

/// splitmix64: spreads a seed (or a seed and an index) over 64 bits.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Self(splitmix64(seed) | 1)
    }

    /// The generator of input `index` of a run with `seed`.
    pub fn for_input(seed: u64, index: u64) -> Self {
        Self::new(seed ^ splitmix64(index.wrapping_add(0x5eed)))
    }

    /// The next 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// `true` with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    /// One element of `v` (not empty).
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u64() as u8).collect()
    }
}

/// CRC32C, table driven a byte at a time: an independent reference for
/// the codec's slicing-by-8 one.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = (c >> 1) ^ (0x82f6_3b78 & 0u32.wrapping_sub(c & 1));
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// What part of a stream a byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Region {
    /// The 16-byte stream header.
    StreamHeader,
    /// A record header.
    RecordHeader,
    /// The compatibility record's payload.
    Compat,
    /// The controller state header (48 bytes).
    StateHeader,
    /// The NVMe-defined (version-0 queue) state.
    QueueState,
    /// The vendor-specific state (opaque to the driver).
    Vendor,
    /// The end record's payload (the checksum and its padding).
    End,
    /// Record padding.
    Padding,
    /// A namespace descriptor's payload (NS_DESC).
    NsDesc,
    /// A DATA record's data header or a ZERO record's payload.
    MediaHeader,
    /// A DATA record's data (covered by its own CRC, not the stream's).
    MediaData,
}

impl Region {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Region::StreamHeader => "stream-header",
            Region::RecordHeader => "record-header",
            Region::Compat => "compat",
            Region::StateHeader => "state-header",
            Region::QueueState => "queue-state",
            Region::Vendor => "vendor-state",
            Region::End => "end",
            Region::Padding => "padding",
            Region::NsDesc => "ns-desc",
            Region::MediaHeader => "media-header",
            Region::MediaData => "media-data",
        }
    }

    /// Whether the driver is meant to check every byte of this region
    /// itself (everything but the vendor state, which only the device
    /// understands, and the checksum).
    pub fn driver_checked(self) -> bool {
        !matches!(self, Region::Vendor | Region::End)
    }
}

/// One field of a stream.
#[derive(Clone, Debug)]
pub struct Field {
    /// Offset in the stream.
    pub off: usize,
    /// Width in bytes: 1, 2, 4 or 8 (little endian).
    pub width: usize,
    /// Its name, e.g. `sq[1].qid`.
    pub name: String,
}

/// A record of a stream: offset, whole length (header, payload, padding)
/// and tag.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Offset of its header.
    pub off: usize,
    /// Bytes from its header to the next record.
    pub len: usize,
    /// Its tag.
    pub tag: u32,
}

/// Where everything lies in one well-formed stream.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Every field.
    pub fields: Vec<Field>,
    /// The records in order.
    pub records: Vec<Record>,
    /// Byte ranges and their regions, in order, covering the stream.
    pub regions: Vec<(usize, usize, Region)>,
    /// Offsets where a structure starts or ends.
    pub boundaries: Vec<usize>,
    /// Offset and length of the controller state payload.
    pub state: (usize, usize),
    /// Offset of the checksum.
    pub crc_off: usize,
    /// A media stream (version 3: namespaces' data in it).
    pub media: bool,
}

fn le(b: &[u8], off: usize, width: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(&b[off..off + width]);
    u64::from_le_bytes(v)
}

fn put(b: &mut [u8], off: usize, width: usize, v: u64) {
    b[off..off + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// The vendor state of the reference emulation (QEMU's "QNLM" format),
/// version 1: its fixed header's fields.
const QNLM_FIELDS: &[(usize, usize, &str)] = &[
    (0, 4, "magic"),
    (4, 2, "version"),
    (6, 2, "rsvd6"),
    (8, 4, "length"),
    (12, 4, "cc"),
    (16, 4, "aqa"),
    (20, 4, "intms"),
    (24, 8, "asq"),
    (32, 8, "acq"),
    (40, 2, "asq_head"),
    (42, 2, "asq_tail"),
    (44, 2, "acq_head"),
    (46, 2, "acq_tail"),
    (48, 1, "acq_phase"),
    (49, 1, "qs_created"),
    (50, 1, "aer_mask"),
    (51, 1, "outstanding_aers"),
    (52, 1, "nr_events"),
    (53, 1, "smart_critical_warning"),
    (54, 2, "temp_thresh_hi"),
    (56, 2, "temp_thresh_low"),
    (60, 4, "async_config"),
    (64, 4, "dn"),
    (68, 8, "timestamp"),
    (76, 8, "hbs"),
    (84, 8, "changed_nsids"),
    (124, 4, "rsvd124"),
];
const QNLM_MAGIC: u32 = 0x4d4c_4e51;

impl Layout {
    /// The layout of `s`, a stream the codec accepts.
    pub fn of(s: &[u8]) -> Result<Self, String> {
        stream::Stream::parse(s).map_err(|e| format!("not a valid stream: {}", e.reason()))?;
        let mut l = Layout {
            fields: Vec::new(),
            records: Vec::new(),
            regions: vec![(0, HEADER_LEN, Region::StreamHeader)],
            boundaries: vec![0, 8, 10, 12, HEADER_LEN, PREFIX_LEN, s.len()],
            state: (0, 0),
            crc_off: 0,
            media: le(s, 8, 2) == u64::from(stream::VERSION),
        };
        let mut count = [0usize; 3];
        let mut f = |l: &mut Layout, off: usize, width: usize, name: String| {
            l.fields.push(Field { off, width, name });
        };
        f(&mut l, 0, 8, "stream.magic".into());
        f(&mut l, 8, 2, "stream.version".into());
        f(&mut l, 10, 2, "stream.flags".into());
        f(&mut l, 12, 4, "stream.header_len".into());
        let mut off = HEADER_LEN;
        while off < s.len() {
            let size = le(s, off, 8) as usize;
            let t = le(s, off + 12, 4) as u32;
            let name = match t {
                tag::COMPAT => "compat".to_string(),
                tag::CTRL_STATE => "state".into(),
                tag::END => "end".into(),
                tag::NS_DESC => format!("ns_desc[{}]", count[0]),
                tag::DATA => format!("data[{}]", count[1]),
                tag::ZERO => format!("zero[{}]", count[2]),
                _ => "record".into(),
            };
            f(&mut l, off, 8, format!("{name}.rec.size"));
            f(&mut l, off + 8, 4, format!("{name}.rec.flags"));
            f(&mut l, off + 12, 4, format!("{name}.rec.tag"));
            let p = off + RECORD_HEADER_LEN;
            let len = RECORD_HEADER_LEN + pad8(size);
            l.records.push(Record { off, len, tag: t });
            l.boundaries.extend([off, p, p + size, off + len]);
            l.regions.push((off, p, Region::RecordHeader));
            match t {
                tag::COMPAT => {
                    l.regions.push((p, p + size, Region::Compat));
                    for (o, w, n) in [
                        (0, 2, "vendor"),
                        (2, 2, "device"),
                        (4, 2, "nvme_version"),
                        (6, 2, "io_queues"),
                        (8, 2, "vectors"),
                        (10, 2, "mqes"),
                        (12, 1, "ns_count"),
                        (13, 1, "media"),
                        (14, 2, "rsvd14"),
                        (16, 8, "vendor_uuid"),
                        (24, 8, "vendor_uuid+8"),
                        (32, 8, "model"),
                        (64, 8, "model+32"),
                        (72, 8, "firmware"),
                        (80, 8, "nqn_hash"),
                        (88, 8, "rsvd88"),
                    ] {
                        f(&mut l, p + o, w, format!("compat.{n}"));
                    }
                    // The entries in use and the first unused one.
                    let used = usize::from(s[p + 12]).min(7);
                    for i in 0..=used {
                        let e = p + stream::COMPAT_NAMESPACES + 40 * i;
                        l.boundaries.push(e);
                        for (o, w, n) in [
                            (0, 4, "nsid"),
                            (4, 1, "lbads"),
                            (5, 1, "rsvd5"),
                            (6, 2, "ms"),
                            (8, 8, "nsze"),
                            (16, 8, "nguid"),
                            (24, 8, "nguid+8"),
                            (32, 8, "eui64"),
                        ] {
                            f(&mut l, e + o, w, format!("compat.ns[{i}].{n}"));
                        }
                    }
                }
                tag::CTRL_STATE => {
                    l.state = (p, size);
                    l.layout_state(s, p, size, &mut f);
                }
                tag::END => {
                    l.regions.push((p, p + size, Region::End));
                    l.crc_off = p;
                    f(&mut l, p, 4, "end.crc32c".into());
                }
                tag::NS_DESC | tag::DATA | tag::ZERO => {
                    let (k, fields): (usize, &[(usize, usize, &str)]) = match t {
                        tag::NS_DESC => (
                            0,
                            &[
                                (0, 4, "nsid"),
                                (4, 1, "lbads"),
                                (5, 1, "rsvd5"),
                                (6, 2, "rsvd6"),
                                (8, 8, "nsze"),
                            ],
                        ),
                        tag::DATA => (
                            1,
                            &[
                                (0, 4, "nsid"),
                                (4, 4, "nlb"),
                                (8, 8, "slba"),
                                (16, 4, "crc"),
                                (20, 4, "rsvd20"),
                            ],
                        ),
                        _ => (
                            2,
                            &[
                                (0, 4, "nsid"),
                                (4, 4, "rsvd4"),
                                (8, 8, "slba"),
                                (16, 8, "nlb"),
                            ],
                        ),
                    };
                    count[k] += 1;
                    let head = if t == tag::DATA {
                        DATA_HEADER_LEN.min(size)
                    } else {
                        size
                    };
                    let region = if t == tag::NS_DESC {
                        Region::NsDesc
                    } else {
                        Region::MediaHeader
                    };
                    l.regions.push((p, p + head, region));
                    if head < size {
                        l.regions.push((p + head, p + size, Region::MediaData));
                    }
                    l.boundaries.push(p + head);
                    for &(o, w, n) in fields {
                        if o + w <= head {
                            f(&mut l, p + o, w, format!("{name}.{n}"));
                        }
                    }
                }
                _ => l.regions.push((p, p + size, Region::Vendor)),
            }
            if pad8(size) > size {
                l.regions.push((p + size, p + pad8(size), Region::Padding));
                f(&mut l, p + size, 1, format!("{name}.padding"));
            }
            off += len;
        }
        l.boundaries.sort_unstable();
        l.boundaries.dedup();
        Ok(l)
    }

    fn layout_state(
        &mut self,
        s: &[u8],
        p: usize,
        size: usize,
        f: &mut impl FnMut(&mut Layout, usize, usize, String),
    ) {
        for (o, w, n) in [
            (0, 2, "ver"),
            (2, 1, "csattr"),
            (3, 1, "rsvd3"),
            (4, 4, "rsvd4"),
            (8, 8, "rsvd8"),
            (16, 8, "nvmecss"),
            (24, 8, "nvmecss.hi"),
            (32, 8, "vss"),
            (40, 8, "vss.hi"),
        ] {
            f(self, p + o, w, format!("state.{n}"));
        }
        let nvme_len = 4 * le(s, p + 16, 8) as usize;
        let v = p + STATE_HEADER_LEN;
        self.regions.push((p, v, Region::StateHeader));
        self.regions.push((v, v + nvme_len, Region::QueueState));
        self.regions.push((v + nvme_len, p + size, Region::Vendor));
        self.boundaries
            .extend([v, v + V0_PREFIX_LEN, v + nvme_len, p + size]);
        for (o, w, n) in [(0, 2, "ver"), (2, 2, "nsq"), (4, 2, "ncq"), (6, 2, "rsvd6")] {
            f(self, v + o, w, format!("v0.{n}"));
        }
        let nsq = le(s, v + 2, 2) as usize;
        let ncq = le(s, v + 4, 2) as usize;
        for i in 0..nsq + ncq {
            let e = v + V0_PREFIX_LEN + QUEUE_ENTRY_LEN * i;
            self.boundaries.push(e);
            let (kind, idx, names): (&str, usize, &[(usize, usize, &str)]) = if i < nsq {
                (
                    "sq",
                    i,
                    &[
                        (0, 8, "prp1"),
                        (8, 2, "qsize"),
                        (10, 2, "qid"),
                        (12, 2, "cqid"),
                        (14, 2, "attr"),
                        (16, 2, "head"),
                        (18, 2, "tail"),
                        (20, 4, "rsvd20"),
                    ],
                )
            } else {
                (
                    "cq",
                    i - nsq,
                    &[
                        (0, 8, "prp1"),
                        (8, 2, "qsize"),
                        (10, 2, "qid"),
                        (12, 2, "head"),
                        (14, 2, "tail"),
                        (16, 2, "attr"),
                        (18, 2, "vector"),
                        (20, 4, "rsvd20"),
                    ],
                )
            };
            for (o, w, n) in names {
                f(self, e + o, *w, format!("{kind}[{idx}].{n}"));
            }
        }
        let vend = v + nvme_len;
        if p + size >= vend + 128 && le(s, vend, 4) as u32 == QNLM_MAGIC {
            for (o, w, n) in QNLM_FIELDS {
                f(self, vend + o, *w, format!("vendor.{n}"));
            }
            self.boundaries.push(vend + 128);
        }
    }

    /// The region of byte `off` (`None` past the stream).
    pub fn region_of(&self, off: usize) -> Option<Region> {
        self.regions
            .iter()
            .find(|(a, b, _)| (*a..*b).contains(&off))
            .map(|r| r.2)
    }

    /// The byte ranges of `r`.
    pub fn ranges(&self, r: Region) -> Vec<(usize, usize)> {
        self.regions
            .iter()
            .filter(|x| x.2 == r && x.1 > x.0)
            .map(|x| (x.0, x.1))
            .collect()
    }
}

/// A real stream and its layout.
#[derive(Clone, Debug)]
pub struct Base {
    /// What it is (how it was taken).
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its layout.
    pub layout: Layout,
}

impl Base {
    /// `bytes` (a stream the codec accepts) with its layout.
    pub fn new(name: &str, bytes: Vec<u8>) -> Result<Self, String> {
        let layout = Layout::of(&bytes).map_err(|e| format!("{name}: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            bytes,
            layout,
        })
    }

    /// Its checksum.
    pub fn crc(&self) -> u32 {
        le(&self.bytes, self.layout.crc_off, 4) as u32
    }
}

/// How an input was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A real stream, unchanged: must load.
    Identity,
    /// Random bit flips anywhere.
    BitFlips,
    /// Random bit flips within one region.
    RegionFlips,
    /// One to three fields set to boundary values.
    FieldValue,
    /// Cut at a structure boundary (or one byte either side).
    TruncateBoundary,
    /// Cut at a random point.
    TruncateRandom,
    /// A record repeated.
    DuplicateRecord,
    /// A record left out.
    DropRecord,
    /// Two records swapped.
    SwapRecords,
    /// A record of another tag added (optional or mandatory).
    InsertRecord,
    /// The start of one stream and the end of another.
    Splice,
    /// Bytes after the end record.
    Trailing,
    /// Random bytes (sometimes behind a valid start).
    RandomBytes,
    /// A range overwritten with random, zero or 0xff bytes.
    Overwrite,
    /// The controller state grown or shrunk with a consistent header.
    StateResize,
    /// Queue entries removed, repeated, swapped or changed with
    /// consistent counts.
    QueueEdit,
    /// Lengths around the largest stream the driver takes.
    TooLong,
    /// A media record (NS_DESC, DATA, ZERO) changed consistently: ranges
    /// at and past the namespace's capacity, lengths at the limits, a
    /// DATA record moved, grown or repeated with its own CRC right.
    MediaEdit,
    /// A replayed file.
    Replay,
}

impl Kind {
    /// Every kind that mutates, with its weight.
    pub const WEIGHTS: [(Kind, u32); 17] = [
        (Kind::Identity, 10),
        (Kind::BitFlips, 100),
        (Kind::RegionFlips, 80),
        (Kind::FieldValue, 300),
        (Kind::TruncateBoundary, 50),
        (Kind::TruncateRandom, 30),
        (Kind::DuplicateRecord, 30),
        (Kind::DropRecord, 20),
        (Kind::SwapRecords, 15),
        (Kind::InsertRecord, 40),
        (Kind::Splice, 50),
        (Kind::Trailing, 30),
        (Kind::RandomBytes, 30),
        (Kind::Overwrite, 40),
        (Kind::StateResize, 50),
        (Kind::QueueEdit, 60),
        (Kind::TooLong, 3),
    ];

    /// Media streams: every kind, and consistent media edits.
    pub const MEDIA_WEIGHTS: [(Kind, u32); 18] = {
        let mut w = [(Kind::MediaEdit, 200); 18];
        let mut i = 0;
        while i < Self::WEIGHTS.len() {
            w[i] = Self::WEIGHTS[i];
            i += 1;
        }
        w
    };

    /// A random kind, by weight (`media`: for a media stream).
    pub fn random(r: &mut Rng, media: bool) -> Kind {
        let weights: &[(Kind, u32)] = if media {
            &Self::MEDIA_WEIGHTS
        } else {
            &Self::WEIGHTS
        };
        let total: u32 = weights.iter().map(|w| w.1).sum();
        let mut x = r.below(total as usize) as u32;
        for &(k, w) in weights {
            if x < w {
                return k;
            }
            x -= w;
        }
        Kind::FieldValue
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Identity => "identity",
            Kind::BitFlips => "bit_flips",
            Kind::RegionFlips => "region_flips",
            Kind::FieldValue => "field_value",
            Kind::TruncateBoundary => "truncate_boundary",
            Kind::TruncateRandom => "truncate_random",
            Kind::DuplicateRecord => "duplicate_record",
            Kind::DropRecord => "drop_record",
            Kind::SwapRecords => "swap_records",
            Kind::InsertRecord => "insert_record",
            Kind::Splice => "splice",
            Kind::Trailing => "trailing_bytes",
            Kind::RandomBytes => "random_bytes",
            Kind::Overwrite => "overwrite",
            Kind::StateResize => "state_resize",
            Kind::QueueEdit => "queue_edit",
            Kind::TooLong => "too_long",
            Kind::MediaEdit => "media_edit",
            Kind::Replay => "replay",
        }
    }
}

/// One fuzz input.
#[derive(Clone, Debug)]
pub struct Input {
    /// How it was made.
    pub kind: Kind,
    /// The stream it was made from (index into the bases).
    pub base: usize,
    /// What was done, for reports (fields changed, cut points...).
    pub what: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Whether the checksum was recomputed after the mutation (else the
    /// base's is left in place).
    pub crc_fixed: bool,
    /// The sizes of the writes that carry it to the destination.
    pub chunks: Vec<usize>,
}

/// Boundary values for a field of `width` bytes holding `orig`.
fn boundary_value(r: &mut Rng, width: usize, orig: u64) -> u64 {
    let bits = 8 * width as u32;
    let max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let top = 1u64 << (bits - 1);
    let v = match r.below(16) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => max,
        4 => max - 1,
        5 => top,
        6 => top - 1,
        7 => orig.wrapping_add(1),
        8 => orig.wrapping_sub(1),
        9 => orig ^ top,
        10 => orig << 1,
        11 => orig >> 1,
        // Values near the test bed's limits: queues, vectors, MQES,
        // page size, the 4 MiB state limit (in bytes and dwords).
        12 => *r.pick(&[7, 8, 9, 10, 16, 0x3ff, 0x400, 0x7ff, 0x800]),
        13 => *r.pick(&[
            0x1000,
            0xfff,
            0x1001,
            (MAX_STATE_LEN / 4) as u64,
            (MAX_STATE_LEN / 4 + 1) as u64,
            MAX_STATE_LEN as u64,
            MAX_STATE_LEN as u64 + 1,
            0x1_0000_0000,
            0xffff_ffff,
        ]),
        14 => orig ^ (1 << r.below(bits as usize)),
        _ => r.u64(),
    };
    v & max
}

/// Byte ranges of `l` a record-level mutation may take whole.
fn boundary(r: &mut Rng, l: &Layout) -> usize {
    let b = *r.pick(&l.boundaries);
    match r.below(4) {
        0 => b.saturating_sub(1),
        1 => b + 1,
        _ => b,
    }
}

/// The end-record CRC of `b` by the rule of its version (version 3 skips
/// DATA's data bytes), or of every byte if `b` is too broken to walk.
fn end_crc(b: &[u8]) -> u32 {
    stream::stream_crc(b).unwrap_or_else(|_| crc32c(b))
}

/// Recomputes the checksum of the first end record, found the way the
/// driver walks records; `false` if there is none to fix.
pub fn fix_crc(b: &mut [u8]) -> bool {
    match find_end(b) {
        Some(off) => {
            let crc = end_crc(&b[..off]);
            b[off + RECORD_HEADER_LEN..off + RECORD_HEADER_LEN + 4]
                .copy_from_slice(&crc.to_le_bytes());
            true
        }
        None => false,
    }
}

/// Puts `crc` into the first end record (a stale checksum).
pub fn set_crc(b: &mut [u8], crc: u32) {
    if let Some(off) = find_end(b) {
        b[off + RECORD_HEADER_LEN..off + RECORD_HEADER_LEN + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The offset of the first end record whose checksum lies in `b`.
fn find_end(b: &[u8]) -> Option<usize> {
    let mut off = HEADER_LEN;
    loop {
        if off + RECORD_HEADER_LEN > b.len() {
            return None;
        }
        let size = le(b, off, 8);
        if size > MAX_STATE_LEN as u64 {
            return None;
        }
        if le(b, off + 12, 4) as u32 == tag::END {
            return (off + RECORD_HEADER_LEN + 4 <= b.len()).then_some(off);
        }
        off += RECORD_HEADER_LEN + pad8(size as usize);
    }
}

/// A record of `tag` with `payload`, padded.
fn record(tag: u32, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECORD_HEADER_LEN + pad8(payload.len()));
    v.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(payload);
    v.resize(RECORD_HEADER_LEN + pad8(payload.len()), 0);
    v
}

/// A stream with `base`'s records up to its controller state (the
/// compatibility record; a media stream's namespace records too) and
/// `state`.
fn with_state(base: &Base, state: &[u8]) -> Vec<u8> {
    let mut v = base.bytes[..base.layout.state.0 - RECORD_HEADER_LEN].to_vec();
    v.extend(record(tag::CTRL_STATE, 0, state));
    let crc = end_crc(&v);
    v.extend(record(tag::END, 0, &crc.to_le_bytes()));
    v
}

/// Sizes of the writes that carry `len` bytes: mostly one write, else
/// random sizes (tiny ones only over the stream's first bytes).
pub fn chunking(r: &mut Rng, len: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut left = len;
    match r.below(20) {
        0..=10 => {
            if len > 0 {
                v.push(len);
            }
            return v;
        }
        11..=14 => {
            let size = *r.pick(&[1, 3, 7, 16, 100, 447, 448, 449, 4095, 4096, 65536]);
            while left > 0 {
                let n = if size < 64 && len - left >= 2 * PREFIX_LEN {
                    left
                } else {
                    size.min(left)
                };
                v.push(n);
                left -= n;
            }
        }
        _ => {
            while left > 0 {
                let n = match r.below(10) {
                    0 | 1 if len - left < 2 * PREFIX_LEN => r.range(1, 16),
                    0..=5 => r.range(17, 4096),
                    _ => r.range(4097, 65536),
                }
                .min(left);
                v.push(n);
                left -= n;
            }
        }
    }
    v
}

/// Makes input `index` of a run with `seed` from `bases` (at least one);
/// the checksum is recomputed in `fix_percent` % of the inputs.
pub fn make(seed: u64, index: u64, bases: &[Base], fix_percent: u32) -> Input {
    let mut r = Rng::for_input(seed, index);
    let bi = r.below(bases.len());
    let base = &bases[bi];
    // A mutation that changes nothing (a swap of a record with itself, a
    // queue edit of a stream without queues, a checksum fix that undoes
    // the change...) is drawn again: the real streams are fed on purpose
    // (`Kind::Identity`), not by chance.
    let mut tries = 0;
    loop {
        tries += 1;
        let kind = Kind::random(&mut r, base.layout.media);
        let mut what = String::new();
        let mut b = mutate(&mut r, kind, bi, bases, &mut what);
        let crc_fixed = r.chance(fix_percent);
        if crc_fixed {
            fix_crc(&mut b);
        } else {
            set_crc(&mut b, base.crc());
        }
        if b == base.bytes && kind != Kind::Identity && tries < 10 {
            continue;
        }
        let chunks = chunking(&mut r, b.len());
        return Input {
            kind: if b == base.bytes {
                Kind::Identity
            } else {
                kind
            },
            base: bi,
            what,
            bytes: b,
            crc_fixed,
            chunks,
        };
    }
}

fn flip_in(r: &mut Rng, b: &mut [u8], lo: usize, hi: usize) -> usize {
    let i = r.range(lo, hi - 1);
    b[i] ^= 1 << r.below(8);
    i
}

fn mutate(r: &mut Rng, kind: Kind, bi: usize, bases: &[Base], what: &mut String) -> Vec<u8> {
    use std::fmt::Write as _;
    let base = &bases[bi];
    let l = &base.layout;
    let mut b = base.bytes.clone();
    match kind {
        Kind::Identity | Kind::Replay => {
            let _ = write!(what, "{}", base.name);
        }
        Kind::BitFlips => {
            let n = 1 + r.below(8);
            let _ = write!(what, "{n} flips:");
            for _ in 0..n {
                let len = b.len();
                let i = flip_in(r, &mut b, 0, len);
                let _ = write!(what, " {i}");
            }
        }
        Kind::RegionFlips => {
            let regions = [
                Region::StreamHeader,
                Region::RecordHeader,
                Region::Compat,
                Region::StateHeader,
                Region::QueueState,
                Region::Vendor,
                Region::Padding,
                Region::NsDesc,
                Region::MediaHeader,
                Region::MediaData,
            ];
            let reg = *r.pick(&regions[..if l.media { 10 } else { 7 }]);
            let ranges = l.ranges(reg);
            if ranges.is_empty() {
                let _ = write!(what, "no {} region", reg.name());
                return b;
            }
            let (lo, hi) = *r.pick(&ranges);
            let n = 1 + r.below(4);
            let _ = write!(what, "{n} flips in {}:", reg.name());
            for _ in 0..n {
                let i = flip_in(r, &mut b, lo, hi);
                let _ = write!(what, " {i}");
            }
        }
        Kind::FieldValue => {
            let n = 1 + usize::from(r.chance(25)) + usize::from(r.chance(10));
            for k in 0..n {
                let f = r.pick(&l.fields);
                let orig = le(&b, f.off, f.width);
                let v = boundary_value(r, f.width, orig);
                put(&mut b, f.off, f.width, v);
                let _ = write!(
                    what,
                    "{}{} {:#x} -> {:#x}",
                    if k > 0 { ", " } else { "" },
                    f.name,
                    orig,
                    v
                );
            }
        }
        Kind::TruncateBoundary => {
            let at = boundary(r, l).min(b.len());
            b.truncate(at);
            let _ = write!(what, "cut at {at}");
        }
        Kind::TruncateRandom => {
            let at = r.below(b.len());
            b.truncate(at);
            let _ = write!(what, "cut at {at}");
        }
        Kind::DuplicateRecord => {
            let rec = *r.pick(&l.records);
            let copy = b[rec.off..rec.off + rec.len].to_vec();
            let to = r.pick(&l.records);
            let at = if r.chance(50) {
                rec.off + rec.len
            } else {
                to.off
            };
            b.splice(at..at, copy);
            let _ = write!(
                what,
                "record tag {:#x} at {} repeated at {at}",
                rec.tag, rec.off
            );
        }
        Kind::DropRecord => {
            let rec = *r.pick(&l.records);
            b.drain(rec.off..rec.off + rec.len);
            let _ = write!(what, "record tag {:#x} at {} dropped", rec.tag, rec.off);
        }
        Kind::SwapRecords => {
            let i = r.below(l.records.len());
            let j = r.below(l.records.len());
            let (i, j) = (i.min(j), i.max(j));
            if i == j {
                let _ = write!(what, "record {i} swapped with itself");
                return b;
            }
            let (x, y) = (l.records[i], l.records[j]);
            let mut v = b[..x.off].to_vec();
            v.extend_from_slice(&b[y.off..y.off + y.len]);
            v.extend_from_slice(&b[x.off + x.len..y.off]);
            v.extend_from_slice(&b[x.off..x.off + x.len]);
            v.extend_from_slice(&b[y.off + y.len..]);
            b = v;
            let _ = write!(what, "records {i} and {j} swapped");
        }
        Kind::InsertRecord => {
            let t = match r.below(6) {
                0 => tag::COMPAT,
                1 => tag::CTRL_STATE,
                2 => tag::END,
                3 => 0,
                4 => 0x8000_0000 | r.u64() as u32,
                _ => 3 + r.below(100) as u32,
            };
            let flags = *r.pick(&[0, 1, 1, 1, 2, 3, 0x8000_0001]);
            let any = r.below(20_000);
            let len = *r.pick(&[0, 1, 4, 7, 8, 64, 4096, any]);
            let payload = if r.chance(50) {
                vec![0; len]
            } else {
                r.bytes(len)
            };
            let mut rec = record(t, flags, &payload);
            if r.chance(10) && rec.len() > RECORD_HEADER_LEN + len {
                // Non-zero padding.
                let last = rec.len() - 1;
                rec[last] = 0xa5;
            }
            let at = r.pick(&l.records).off;
            let at = if r.chance(20) { b.len() } else { at };
            b.splice(at..at, rec);
            let _ = write!(
                what,
                "record tag {t:#x} flags {flags:#x} of {len} bytes inserted at {at}"
            );
        }
        Kind::Splice => {
            let oi = r.below(bases.len());
            let o = &bases[oi];
            let cut_a = if r.chance(60) {
                r.pick(&l.records).off
            } else {
                boundary(r, l).min(b.len())
            };
            let cut_b = if r.chance(60) {
                r.pick(&o.layout.records).off
            } else if r.chance(50) {
                cut_a.min(o.bytes.len())
            } else {
                boundary(r, &o.layout).min(o.bytes.len())
            };
            b.truncate(cut_a);
            b.extend_from_slice(&o.bytes[cut_b..]);
            let _ = write!(what, "{}[..{cut_a}] + {}[{cut_b}..]", base.name, o.name);
        }
        Kind::Trailing => {
            let any = r.range(1, 4096);
            let n = *r.pick(&[1, 3, 4, 8, 16, 64, any]);
            let extra = if r.chance(50) { vec![0; n] } else { r.bytes(n) };
            b.extend(extra);
            let _ = write!(what, "{n} bytes appended");
        }
        Kind::RandomBytes => {
            let keep = *r.pick(&[
                0,
                0,
                8,
                HEADER_LEN,
                HEADER_LEN + RECORD_HEADER_LEN,
                PREFIX_LEN,
            ]);
            let most = if r.chance(80) { 1024 } else { 200_000 };
            let n = r.below(most);
            b.truncate(keep);
            b.extend(r.bytes(n));
            let _ = write!(what, "{keep} real bytes, then {n} random");
        }
        Kind::Overwrite => {
            let at = r.below(b.len());
            let n = r.range(1, 64).min(b.len() - at);
            let fill = r.below(3);
            for x in &mut b[at..at + n] {
                *x = match fill {
                    0 => 0,
                    1 => 0xff,
                    _ => r.u64() as u8,
                };
            }
            let _ = write!(
                what,
                "{n} bytes at {at} ({}) overwritten with {}",
                l.region_of(at).map_or("?", Region::name),
                ["zeros", "0xff", "random bytes"][fill]
            );
        }
        Kind::StateResize => {
            b = state_resize(r, base, what);
        }
        Kind::QueueEdit => {
            b = queue_edit(r, base, what);
        }
        Kind::MediaEdit => {
            b = media_edit(r, base, what);
        }
        Kind::TooLong => {
            let max = stream::stream_len(MAX_STATE_LEN).unwrap_or(usize::MAX);
            let target = match r.below(4) {
                0 => max,
                1 => max + 1,
                2 => max - 1,
                _ => max + r.range(2, 70_000),
            };
            if r.chance(50) {
                // A state record that claims (and carries) 4 MiB or more.
                let size = (target - PREFIX_LEN - 2 * RECORD_HEADER_LEN - 8) as u64;
                b.truncate(PREFIX_LEN);
                b.extend_from_slice(&size.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&tag::CTRL_STATE.to_le_bytes());
            }
            b.resize(target, 0);
            let _ = write!(what, "{target} bytes (largest taken: {max})");
        }
    }
    b
}

/// `base` (a media stream) with one media record changed consistently:
/// a DATA record rewritten (moved to the capacity's edge or past it, grown
/// to the 1 MiB limit or past it, of no block, of another namespace, or
/// repeated elsewhere) with its data CRC and size right; a ZERO range or a
/// namespace descriptor set to values around the namespace's capacity.
fn media_edit(r: &mut Rng, base: &Base, what: &mut String) -> Vec<u8> {
    use std::fmt::Write as _;
    let l = &base.layout;
    let mut b = base.bytes.clone();
    let media: Vec<Record> = l
        .records
        .iter()
        .filter(|x| matches!(x.tag, tag::NS_DESC | tag::DATA | tag::ZERO))
        .copied()
        .collect();
    if media.is_empty() {
        let _ = write!(what, "no media record");
        return b;
    }
    let rec = *r.pick(&media);
    let p = rec.off + RECORD_HEADER_LEN;
    // The first namespace described: its capacity and block size.
    let (nsid, lbads, nsze) = l
        .records
        .iter()
        .find(|x| x.tag == tag::NS_DESC)
        .map(|x| {
            let q = x.off + RECORD_HEADER_LEN;
            (
                le(&b, q, 4) as u32,
                le(&b, q + 4, 1) as u32,
                le(&b, q + 8, 8),
            )
        })
        .unwrap_or((1, 9, 1 << 20));
    let lbads = lbads.min(16);
    let edge = |r: &mut Rng, nlb: u64| -> u64 {
        match r.below(6) {
            0 => nsze.saturating_sub(nlb),
            1 => nsze.saturating_sub(nlb).saturating_add(1),
            2 => nsze,
            3 => u64::MAX - r.below(4) as u64,
            4 => 0,
            _ => r.u64() % nsze.saturating_add(2),
        }
    };
    match rec.tag {
        tag::DATA => {
            let size = le(&b, rec.off, 8) as usize;
            let Ok((h, data)) = DataHeader::parse(&b[p..p + size]) else {
                let _ = write!(what, "DATA at {} unreadable", rec.off);
                return b;
            };
            let data = data.to_vec();
            let max_nlb = (MAX_DATA_LEN >> lbads) as u32;
            let (nh, len) = match r.below(6) {
                0 | 1 => {
                    let slba = edge(r, u64::from(h.nlb));
                    let _ = write!(what, "DATA at {} moved to slba {slba:#x}", rec.off);
                    (DataHeader { slba, ..h }, data.len())
                }
                2 => {
                    let nlb = *r.pick(&[
                        max_nlb,
                        max_nlb + 1,
                        h.nlb.saturating_add(1),
                        h.nlb.saturating_mul(2),
                    ]);
                    let _ = write!(what, "DATA at {} grown to {nlb} blocks", rec.off);
                    (
                        DataHeader { nlb, ..h },
                        ((nlb as usize) << lbads).min(2 * MAX_DATA_LEN),
                    )
                }
                3 => {
                    let _ = write!(what, "DATA at {} of no block", rec.off);
                    (DataHeader { nlb: 0, ..h }, 0)
                }
                4 => {
                    let other = *r.pick(&[0, nsid.wrapping_add(1), nsid.wrapping_sub(1), u32::MAX]);
                    let _ = write!(what, "DATA at {} of NSID {other}", rec.off);
                    (DataHeader { nsid: other, ..h }, data.len())
                }
                _ => {
                    // A copy elsewhere (overlapping or not): valid if in range.
                    let slba = edge(r, u64::from(h.nlb));
                    let copy = data_record(&DataHeader { slba, ..h }, &data).unwrap_or_default();
                    let at = rec.off + rec.len;
                    b.splice(at..at, copy);
                    let _ = write!(what, "DATA at {} repeated at slba {slba:#x}", rec.off);
                    return b;
                }
            };
            let bytes: Vec<u8> = data
                .iter()
                .copied()
                .chain(std::iter::repeat(0x5a))
                .take(len)
                .collect();
            let new = data_record(&nh, &bytes).unwrap_or_default();
            b.splice(rec.off..rec.off + rec.len, new);
        }
        tag::ZERO => {
            let nlb = le(&b, p + 16, 8);
            if r.chance(50) {
                let slba = edge(r, nlb);
                put(&mut b, p + 8, 8, slba);
                let _ = write!(what, "ZERO at {} moved to slba {slba:#x}", rec.off);
            } else {
                let n = *r.pick(&[0, 1, nsze, nsze.saturating_add(1), u64::MAX, 1 << 32]);
                put(&mut b, p + 16, 8, n);
                let _ = write!(what, "ZERO at {} of {n:#x} blocks", rec.off);
            }
        }
        _ => {
            if r.chance(50) {
                let n = *r.pick(&[
                    0,
                    1,
                    nsze.saturating_sub(1),
                    nsze.saturating_add(1),
                    u64::MAX,
                ]);
                put(&mut b, p + 8, 8, n);
                let _ = write!(what, "NS_DESC at {} capacity {n:#x}", rec.off);
            } else {
                let x = *r.pick(&[0, 12, lbads + 1, 255]);
                put(&mut b, p + 4, 1, u64::from(x));
                let _ = write!(what, "NS_DESC at {} lbads {x}", rec.off);
            }
        }
    }
    b
}

/// The controller state of `base` with its NVMe-defined or vendor part
/// grown or shrunk, the header's sizes kept consistent (or, sometimes,
/// deliberately one dword off).
fn state_resize(r: &mut Rng, base: &Base, what: &mut String) -> Vec<u8> {
    use std::fmt::Write as _;
    let (p, size) = base.layout.state;
    let mut st = base.bytes[p..p + size].to_vec();
    let nvme = le(&st, 16, 8) as usize;
    let vendor = le(&st, 32, 8) as usize;
    let nvme_part = r.chance(50);
    let dw = match r.below(6) {
        0 => -1i64,
        1 => 1,
        2 => -(r.range(1, 64) as i64),
        3 => r.range(1, 64) as i64,
        4 => -(if nvme_part { nvme } else { vendor } as i64),
        _ => r.range(1, 40_000) as i64,
    };
    let cur = if nvme_part { nvme } else { vendor } as i64;
    let new = (cur + dw).max(0) as usize;
    let at = STATE_HEADER_LEN
        + if nvme_part {
            4 * nvme
        } else {
            4 * (nvme + vendor)
        };
    if new < cur as usize {
        st.drain(at - 4 * (cur as usize - new)..at);
    } else {
        let extra = if r.chance(50) {
            vec![0; 4 * (new - cur as usize)]
        } else {
            r.bytes(4 * (new - cur as usize))
        };
        st.splice(at..at, extra);
    }
    let field = if nvme_part { 16 } else { 32 };
    let declared = match r.below(10) {
        0 => new + 1,
        1 => new.saturating_sub(1),
        _ => new,
    };
    put(&mut st, field, 8, declared as u64);
    let _ = write!(
        what,
        "{} part {cur} -> {new} dwords (header says {declared})",
        if nvme_part { "NVMe" } else { "vendor" }
    );
    with_state(base, &st)
}

/// The controller state of `base` with its queue entries edited and the
/// counts and sizes kept consistent.
fn queue_edit(r: &mut Rng, base: &Base, what: &mut String) -> Vec<u8> {
    use std::fmt::Write as _;
    let (p, size) = base.layout.state;
    let st = &base.bytes[p..p + size];
    let nvme = 4 * le(st, 16, 8) as usize;
    let v0 = &st[STATE_HEADER_LEN..STATE_HEADER_LEN + nvme];
    let nsq = le(v0, 2, 2) as usize;
    let ncq = le(v0, 4, 2) as usize;
    let entry = |i: usize| v0[V0_PREFIX_LEN + QUEUE_ENTRY_LEN * i..][..QUEUE_ENTRY_LEN].to_vec();
    let mut sqs: Vec<Vec<u8>> = (0..nsq).map(entry).collect();
    let mut cqs: Vec<Vec<u8>> = (nsq..nsq + ncq).map(entry).collect();
    let tail = v0[V0_PREFIX_LEN + QUEUE_ENTRY_LEN * (nsq + ncq)..].to_vec();
    let sq_side = r.chance(50);
    let list = if sq_side { &mut sqs } else { &mut cqs };
    let side = if sq_side { "SQ" } else { "CQ" };
    match r.below(7) {
        0 if !list.is_empty() => {
            let i = r.below(list.len());
            list.remove(i);
            let _ = write!(what, "{side} entry {i} removed");
        }
        1 if !list.is_empty() => {
            let i = r.below(list.len());
            let e = list[i].clone();
            list.insert(r.below(list.len() + 1), e);
            let _ = write!(what, "{side} entry {i} repeated");
        }
        2 if list.len() >= 2 => {
            let i = r.below(list.len());
            let j = r.below(list.len());
            list.swap(i, j);
            let _ = write!(what, "{side} entries {i} and {j} swapped");
        }
        3 if !list.is_empty() => {
            // A fresh entry: the last one with a new queue ID.
            let mut e = list[list.len() - 1].clone();
            let any = r.u64() as u16;
            let qid = *r.pick(&[0u16, 8, 9, 16, 0xffff, any]);
            e[10..12].copy_from_slice(&qid.to_le_bytes());
            list.push(e);
            let _ = write!(what, "{side} entry with qid {qid} added");
        }
        4 => {
            list.clear();
            let _ = write!(what, "every {side} entry removed");
        }
        5 if !list.is_empty() => {
            // Many entries: more queues than any controller of the bed.
            let n = *r.pick(&[9usize, 64, 1000, 65535 - list.len()]);
            let e = list[0].clone();
            for k in 0..n {
                let mut e = e.clone();
                e[10..12].copy_from_slice(&((k % 0xffff) as u16 + 1).to_le_bytes());
                list.push(e);
            }
            let _ = write!(what, "{n} {side} entries added");
        }
        _ => {
            // Move an entry from one list to the other.
            if let Some(e) = list.pop() {
                if sq_side {
                    cqs.push(e);
                } else {
                    sqs.push(e);
                }
                let _ = write!(what, "last {side} entry moved to the other list");
            } else {
                let _ = write!(what, "no {side} entry to move");
            }
        }
    }
    let mut nv = Vec::new();
    nv.extend_from_slice(&v0[..2]);
    nv.extend_from_slice(&(sqs.len() as u16).to_le_bytes());
    nv.extend_from_slice(&(cqs.len() as u16).to_le_bytes());
    nv.extend_from_slice(&v0[6..8]);
    for e in sqs.iter().chain(cqs.iter()) {
        nv.extend_from_slice(e);
    }
    nv.extend_from_slice(&tail);
    let mut out = st[..STATE_HEADER_LEN].to_vec();
    put(&mut out, 16, 8, (nv.len() / 4) as u64);
    out.extend(nv);
    out.extend_from_slice(&st[STATE_HEADER_LEN + nvme..]);
    let _ = write!(what, " ({} SQs, {} CQs)", sqs.len(), cqs.len());
    if out.len() > MAX_STATE_LEN + 4096 {
        out.truncate(MAX_STATE_LEN + 4096);
    }
    with_state(base, &out)
}

/// The fields of `base` whose bytes differ in `input` (same length only;
/// `None` otherwise), with their regions; the checksum left out (a fixed
/// one differs whenever anything else does). A changed byte outside every
/// named field is named by its region and offset.
pub fn changed_fields(base: &Base, input: &[u8]) -> Option<Vec<(String, Region)>> {
    if input.len() != base.bytes.len() {
        return None;
    }
    let l = &base.layout;
    let mut v: Vec<(String, Region)> = Vec::new();
    for (i, _) in input
        .iter()
        .zip(&base.bytes)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
    {
        let Some(region) = l.region_of(i) else {
            continue;
        };
        if region == Region::End {
            continue;
        }
        let name = match l
            .fields
            .iter()
            .find(|f| (f.off..f.off + f.width).contains(&i))
        {
            Some(f) => f.name.clone(),
            None => format!("{}@{i}", region.name()),
        };
        if !v.iter().any(|(n, _)| *n == name) {
            v.push((name, region));
        }
    }
    Some(v)
}

/// A field's name without its indexes: "sq[].qid" of "sq[3].qid".
pub fn generic_name(name: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in name.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push(c);
            }
            ']' => {
                in_index = false;
                out.push(c);
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}
