// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm bench`: repeated live migrations of a VF running I/O between two
//! VFs (ping-pong), with the distribution of the downtime and of each
//! phase, and the cost of `MIG_DATA_SIZE`; and `nvme-lm bench-dma-log`:
//! the cost of one DMA-log sync (`DMA_LOGGING_REPORT`) as a function of
//! the pages dirtied since the last; and `nvme-lm bench-dirty` (no device):
//! UDMQ entries applied to a media-migration dirty set per second, and
//! CRC32C throughput. Numbers only: no pass/fail.

use crate::dma::Arena;
use crate::migrate::{migrate, INFLIGHT};
use crate::selftest::guest::{
    Guest,
    FULL_DEPTH,
    FULL_QUEUES, //
};
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::fmt::Write as _;
use std::path::Path;
use std::rc::Rc;
use std::time::{
    Duration,
    Instant, //
};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q` quantile of `v` (sorted, not empty).
fn quantile(v: &[Duration], q: f64) -> Duration {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// min, median, p99 and max of `v` (sorted in place), in milliseconds.
fn summary(v: &mut [Duration]) -> String {
    v.sort_unstable();
    format!(
        "min {:7.2}  median {:7.2}  p99 {:7.2}  max {:7.2} ms",
        ms(v[0]),
        ms(quantile(v, 0.5)),
        ms(quantile(v, 0.99)),
        ms(v[v.len() - 1])
    )
}

/// Runs `rounds` migrations, alternately A→B and B→A; returns the report.
pub fn run(a: &Path, b: &Path, rounds: usize, blocks: u64) -> Result<String, String> {
    let e = |x: std::io::Error| x.to_string();
    if rounds == 0 {
        return Err("at least one round".into());
    }
    let iommufd = Iommufd::open().map_err(e)?;
    let arena = Arena::new(&iommufd, 32 << 20, 0x7_0000_0000).map_err(e)?;
    let devs = [
        Device::open(a, &iommufd).map_err(e)?,
        Device::open(b, &iommufd).map_err(e)?,
    ];
    devs[0].reset().map_err(e)?;
    let mut g = Guest::start(
        &devs[0],
        arena,
        crate::selftest::guest::FULL_QUEUES,
        crate::selftest::guest::FULL_DEPTH,
    )
    .map_err(e)?;

    // MIG_DATA_SIZE while running: QEMU asks it often during pre-copy.
    let t = Instant::now();
    let queries = 100;
    for _ in 0..queries {
        devs[0].mig_data_size().map_err(e)?;
    }
    let per_query = t.elapsed() / queries;

    let mut downtime = Vec::new();
    let mut phases: Vec<(&'static str, Vec<Duration>)> = Vec::new();
    let mut bytes = 0;
    let mut moved = 0;
    for round in 0..rounds {
        let (src, dst) = (&devs[round % 2], &devs[(round + 1) % 2]);
        let r = migrate(src, dst, &mut g, blocks, 64 << 10)
            .map_err(|x| format!("round {round}: {x}"))?;
        r.check().map_err(|x| format!("round {round}: {x}"))?;
        downtime.push(r.downtime);
        bytes = r.stream.len();
        moved += r.on_source.len() + r.on_destination.len();
        for (name, d) in r.phases {
            match phases.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(d),
                None => phases.push((name, vec![d])),
            }
        }
    }
    devs[rounds % 2].reset().map_err(e)?;

    let mut o = String::new();
    let _ = writeln!(
        o,
        "{rounds} migrations (ping-pong between two VFs), {blocks} blocks written and {INFLIGHT} commands in flight each time; every block verified after each"
    );
    let _ = writeln!(
        o,
        "stream: {bytes} bytes; {moved} in-flight commands moved in all"
    );
    let _ = writeln!(
        o,
        "MIG_DATA_SIZE while running: {:.3} ms per query ({queries} queries)",
        ms(per_query)
    );
    let _ = writeln!(
        o,
        "downtime (stop -> destination RUNNING): {}",
        summary(&mut downtime)
    );
    for (name, v) in &mut phases {
        let _ = writeln!(o, "  {name:34} {}", summary(v));
    }
    Ok(o)
}

/// Pages dirtied before each timed sync: reads of that many distinct
/// blocks into as many distinct pages.
pub const DMA_LOG_DIRTY: [usize; 5] = [0, 1, 16, 128, 1024];
/// The DMA-log bench's arena: below 4 GiB, so inside the range QEMU logs
/// by default for 32-bit guest memory.
const DL_ARENA_BASE: u64 = 0x4000_0000;
const DL_ARENA_LEN: usize = 16 << 20;
/// The first block read (the VF's namespace is scratch; never written).
const DL_FIRST_LBA: u64 = 8000;
const PG: u64 = 4096;
const FOUR_GIB: u64 = 4 << 30;

/// Every timed sync of one dirty-page count.
#[derive(Default)]
struct Syncs {
    times: Vec<Duration>,
    dirty: Vec<usize>,
}

impl Syncs {
    fn median(&self) -> Duration {
        quantile(&self.times, 0.5)
    }

    /// The dirty units reported: the median, or the spread if they varied.
    fn dirty(&self) -> (usize, String) {
        let mut d = self.dirty.clone();
        d.sort_unstable();
        let (lo, mid, hi) = (d[0], d[d.len() / 2], d[d.len() - 1]);
        let shown = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        };
        (mid, shown)
    }
}

/// One logging session: what was logged, the granularity granted, the
/// syncs of each [`DMA_LOG_DIRTY`] count.
struct Session {
    range: (u64, u64),
    granted: u64,
    syncs: Vec<Syncs>,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `nvme-lm bench-dma-log`: on the VF whose VFIO cdev is `cdev` (bound to
/// nvme-vfio-pci), for each count of [`DMA_LOG_DIRTY`], `repeats` times:
/// reads dirtying that many pages, then one timed `DMA_LOGGING_REPORT`;
/// with logging and the report (a) over the guest's arena and (b) over
/// [0, 4 GiB). Returns the table.
pub fn dma_log(cdev: &Path, repeats: usize) -> Result<String, String> {
    let e = |x: std::io::Error| x.to_string();
    if repeats == 0 {
        return Err("at least one repeat".into());
    }
    let iommufd = Iommufd::open().map_err(e)?;
    let arena = Arena::new(&iommufd, DL_ARENA_LEN, DL_ARENA_BASE).map_err(e)?;
    let dev = Device::open(cdev, &iommufd).map_err(|x| format!("{}: {x}", cdev.display()))?;
    let r = dma_log_sessions(&dev, &arena, repeats);
    // Stops the controller (and any logging) before the arena goes away.
    let _ = dev.reset();
    let sessions = r?;
    Ok(render_dma_log(&sessions, repeats))
}

fn dma_log_sessions(
    dev: &Device,
    arena: &Rc<Arena>,
    repeats: usize,
) -> Result<Vec<Session>, String> {
    let e = |x: std::io::Error| x.to_string();
    dev.reset().map_err(e)?;
    let mut g = Guest::start(dev, Rc::clone(arena), FULL_QUEUES, FULL_DEPTH).map_err(e)?;
    let most = DMA_LOG_DIRTY.iter().copied().max().unwrap_or(0);
    let room = g.io.len() * (usize::from(FULL_DEPTH) - 1);
    let base = arena.used();
    let buf = g.lba_size.div_ceil(crate::dma::PAGE) * crate::dma::PAGE;
    if most > room || base + most * buf > arena.len() {
        return Err(format!(
            "{most} reads at once: {room} queue slots, arena of {} bytes ({base} used)",
            arena.len()
        ));
    }
    let mut out = Vec::new();
    for range in [(arena.iova_base(), arena.len() as u64), (0, FOUR_GIB)] {
        let granted = dev.dma_logging_start(PG, &[range]).map_err(|x| {
            let hint = match crate::migration::errno_of(&x) {
                Some(libc::ENOTTY) => " (is the VF bound to nvme-vfio-pci?)",
                _ => "",
            };
            format!("{x}{hint}")
        })?;
        let syncs = measure(dev, &mut g, base, range, granted, repeats);
        let stop = dev
            .dma_logging_stop()
            .map_err(|x| format!("after logging over {range:x?}: {x}"));
        out.push(Session {
            range,
            granted,
            syncs: syncs?,
        });
        stop?;
    }
    Ok(out)
}

/// The syncs of one logging session over `range` (reported in units of
/// `unit`): the read buffers reuse the arena from offset `base` on.
fn measure(
    dev: &Device,
    g: &mut Guest,
    base: usize,
    (iova, len): (u64, u64),
    unit: u64,
    repeats: usize,
) -> Result<Vec<Syncs>, String> {
    let e = |x: std::io::Error| x.to_string();
    let mut bitmap = vec![0u64; Device::report_words(iova, len, unit).map_err(e)?];
    // Nothing was written since START (the guest is idle); this REPORT
    // takes any one-time cost out of the first timed one.
    dev.dma_logging_report_into(iova, len, unit, &mut bitmap)
        .map_err(e)?;
    let queues = g.io.len();
    let mut out = Vec::new();
    for &n in &DMA_LOG_DIRTY {
        let mut s = Syncs::default();
        for _ in 0..repeats {
            g.arena.rewind(base).map_err(e)?;
            for i in 0..n {
                g.submit_read(i % queues, DL_FIRST_LBA + i as u64, false)
                    .map_err(e)?;
            }
            if n > 0 {
                g.ring_all().map_err(e)?;
                g.drain(20_000).map_err(e)?;
            }
            bitmap.fill(0);
            let t = Instant::now();
            dev.dma_logging_report_into(iova, len, unit, &mut bitmap)
                .map_err(e)?;
            s.times.push(t.elapsed());
            s.dirty
                .push(bitmap.iter().map(|w| w.count_ones() as usize).sum());
        }
        s.times.sort_unstable();
        out.push(s);
    }
    Ok(out)
}

fn render_dma_log(sessions: &[Session], repeats: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "DMA-log sync: N reads of distinct blocks into distinct 4 KiB buffers ({FULL_QUEUES} I/O queues; their CQ pages get dirty too), then one timed DMA_LOGGING_REPORT ioctl (bitmap preallocated); {repeats} repeats each"
    );
    for (name, s) in ["(a)", "(b)"].iter().zip(sessions) {
        let (iova, len) = s.range;
        let _ = writeln!(
            o,
            "{name} logging and REPORT over [{iova:#x}, {:#x}), {} MiB, page size {} granted",
            iova + len,
            len >> 20,
            s.granted
        );
    }
    let _ = writeln!(
        o,
        "dirty: units reported; us/page: (median - median at N=0) / dirty"
    );
    let mut line = format!("{:>5} ", "N");
    for name in ["(a)", "(b)"].iter().take(sessions.len()) {
        let _ = write!(
            line,
            "| {name} {:>9} {:>9} {:>9} {:>8} ",
            "dirty", "median us", "p99 us", "us/page"
        );
    }
    let _ = writeln!(o, "{}", line.trim_end());
    for (i, n) in DMA_LOG_DIRTY.iter().enumerate() {
        let mut line = format!("{n:>5} ");
        for s in sessions {
            let x = &s.syncs[i];
            let (dirty, shown) = x.dirty();
            let per = if dirty > 0 {
                let extra = us(x.median()) - us(s.syncs[0].median());
                format!("{:.3}", extra / dirty as f64)
            } else {
                "-".into()
            };
            let _ = write!(
                line,
                "|     {shown:>9} {:>9.1} {:>9.1} {per:>8} ",
                us(x.median()),
                us(quantile(&x.times, 0.99))
            );
        }
        let _ = writeln!(o, "{}", line.trim_end());
    }
    if let Some(s) = sessions.iter().find(|s| s.range == (0, FOUR_GIB)) {
        let empty = &s.syncs[0];
        let _ = writeln!(
            o,
            "empty REPORT of [0, 4 GiB) (the floor of each section's sync): median {:.1} us, p99 {:.1} us",
            us(empty.median()),
            us(quantile(&empty.times, 0.99))
        );
    }
    o
}

/// Pseudo-random raw UDMQ entries of namespace 1: ranges of 1 to 64 LBAs
/// anywhere below `nsze`, one in 64 of another namespace.
fn udmq_entries(n: usize, nsze: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut raw = vec![0u8; n * crate::codec::udmq::ENTRY_LEN];
    for e in raw.chunks_exact_mut(crate::codec::udmq::ENTRY_LEN) {
        let r = next();
        let nlb0 = (r >> 58) as u32;
        let nsid: u32 = if r & 63 == 0 { 2 } else { 1 };
        let slba = next() % (nsze - 64);
        e[0..4].copy_from_slice(&nsid.to_le_bytes());
        e[4..8].copy_from_slice(&nlb0.to_le_bytes());
        e[8..16].copy_from_slice(&slba.to_le_bytes());
        e[31] = 1;
    }
    raw
}

/// Entries per second of `udmq::Entry::parse` + `dirty::apply_entry` on a
/// namespace of `bytes` (512-byte LBAs, 4 KiB granules), half copied; the
/// best of three passes over `entries` entries.
fn dirty_rate(bytes: u64, entries: usize) -> Result<(f64, u64, u64), String> {
    use crate::codec::dirty::{apply_entry, count, Geometry};
    use crate::codec::udmq::{Entry, ENTRY_LEN};
    let nsze = bytes >> 9;
    let g = Geometry::new(nsze, 9, 4096, 1 << 30).map_err(|e| e.reason().to_string())?;
    let mut words = vec![0u64; g.words()];
    let raw = udmq_entries(entries, nsze, bytes ^ 0x9e37_79b9_7f4a_7c15);
    let mut best = Duration::MAX;
    for _ in 0..3 {
        words.fill(0);
        let t = Instant::now();
        for e in raw.chunks_exact(ENTRY_LEN) {
            let e = Entry::parse(e).map_err(|e| e.reason().to_string())?;
            apply_entry(&mut words, &g, 1, nsze / 2, &e).map_err(|e| e.reason().to_string())?;
        }
        best = best.min(t.elapsed());
        std::hint::black_box(&words);
    }
    Ok((entries as f64 / best.as_secs_f64(), count(&words), g.bits()))
}

/// MiB/s of `f` over `buf` (best of three).
fn crc_rate(buf: &[u8], f: fn(u32, &[u8]) -> u32) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(f(0, std::hint::black_box(buf)));
        best = best.min(t.elapsed());
    }
    buf.len() as f64 / f64::from(1u32 << 20) / best.as_secs_f64()
}

/// `nvme-lm bench-dirty`: UDMQ entries/s into the dirty set of 256 MiB to
/// 1 TiB namespaces, and CRC32C MiB/s (goal: at least 4 M entries/s).
pub fn dirty(entries: usize) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "UDMQ entry parse + dirty::apply_entry, {entries} random ranges of 1-64 LBAs, half copied, best of 3 (goal >= 4 M/s):"
    );
    for (name, bytes) in [
        ("256 MiB", 256u64 << 20),
        ("16 GiB", 16 << 30),
        ("1 TiB", 1 << 40),
    ] {
        let (rate, dirty, bits) = dirty_rate(bytes, entries)?;
        let _ = writeln!(
            out,
            "  {name:>8}: {:6.2} M entries/s  ({dirty} of {bits} granules dirty)",
            rate / 1e6
        );
    }
    let buf: Vec<u8> = udmq_entries(1 << 20, 1 << 20, 7);
    let _ = writeln!(
        out,
        "CRC32C (slicing-by-8) over 32 MiB: {:8.1} MiB/s",
        crc_rate(&buf, crate::codec::stream::crc32c)
    );
    Ok(out)
}
