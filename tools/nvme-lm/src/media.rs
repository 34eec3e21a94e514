// SPDX-License-Identifier: GPL-2.0

//! Media migration from userspace: `nvme-lm media-migrate` moves a VF
//! whose storage is a private namespace to a VF of another subsystem, the
//! namespace's data in the migration stream, while the client runs a mixed
//! load (random writes, Write Zeroes, deallocates) through several PRE_COPY
//! rounds; then stops, finishes, switches to the destination and verifies
//! its model of every block. `nvme-lm media-resume` feeds a captured stream
//! (or a bad one made from it) to a destination and reports how it was
//! refused. `tests/vm/media.sh` runs both.

use crate::dma::Arena;
use crate::fuzz::mutate::Rng;
use crate::kmsg::KmsgTail;
use crate::media_stream::{self, Summary};
use crate::migration::{
    errno_of,
    DataFd,
    State, //
};
use crate::selftest::guest::{
    Guest,
    FULL_QUEUES, //
};
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::collections::BTreeSet;
use std::io::{
    Read,
    Write, //
};
use std::path::{
    Path,
    PathBuf, //
};
use std::rc::Rc;
use std::time::{
    Duration,
    Instant, //
};

/// What `nvme-lm media-migrate` does.
pub struct Options {
    /// Source VF cdev.
    pub a: PathBuf,
    /// Destination VF cdev.
    pub b: PathBuf,
    /// The namespace the client runs on (the VFs' private one).
    pub nsid: u32,
    /// PRE_COPY rounds with the load running.
    pub rounds: usize,
    /// I/O commands the client issues before each read of the stream (a
    /// burst of 8 times as many opens each loaded round); 0: no load.
    pub rate: usize,
    /// Instead of `rate`: a steady load of about this many bytes a second
    /// written, zeroed or deallocated through the loaded rounds (commands
    /// issued before each read of the stream as the time since PRE_COPY
    /// began asks for), whatever the size of the reads.
    pub load_bps: u64,
    /// A PRE_COPY round longer than this fails (naming how far it got);
    /// zero: no limit.
    pub round_limit: Duration,
    /// With `load_bps`: the load alone (no read) for this long at the start
    /// of each loaded round after the first.
    pub round_gap: Duration,
    /// Bytes of each read of the source's data_fd and of each write to the
    /// destination's.
    pub chunk: usize,
    /// Fail unless the kernel logs that the dirty-LBA queue filled up.
    pub expect_cdq_full: bool,
    /// Keep the stream here.
    pub save: Option<PathBuf>,
    /// Write the LBA ranges of the commands in flight at the stop here.
    pub in_flight_ranges: Option<PathBuf>,
    /// The namespace reads zeroes now (never written): no clearing first.
    pub fresh: bool,
    /// The namespace holds data written before (e.g. through the PF): no
    /// clearing first, and blocks the client did not write are not checked
    /// on the destination.
    pub keep: bool,
    /// MiB written before the migration, in 256 KiB extents at random
    /// places.
    pub prefill_mib: u64,
    /// Random blocks read back on the destination (besides every block
    /// the client wrote).
    pub samples: usize,
    /// Seed of the load.
    pub seed: u64,
    /// Converged: a round ends with initial_bytes 0 and at most this many
    /// dirty bytes.
    pub converge_bytes: u64,
    /// Rounds after the loaded ones allowed to converge.
    pub quiet_rounds: usize,
    /// Only read the source's PRE_COPY stream (no destination), then put
    /// the source back to RUNNING: the source's throughput alone.
    pub source_only: bool,
    /// Stop the device in PRE_COPY round 1 as soon as `initial_bytes` is
    /// at most this (the bulk copy part done), converged or not.
    pub stop_at_initial: Option<u64>,
}

fn e(x: std::io::Error) -> String {
    x.to_string()
}

/// The name of an errno.
pub fn errno_name(n: i32) -> String {
    let names = [
        (libc::EINVAL, "EINVAL"),
        (libc::ERANGE, "ERANGE"),
        (libc::EBUSY, "EBUSY"),
        (libc::ENOMSG, "ENOMSG"),
        (libc::EIO, "EIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::EFAULT, "EFAULT"),
        (libc::EPERM, "EPERM"),
        (libc::ENODEV, "ENODEV"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
    ];
    names
        .iter()
        .find(|(v, _)| *v == n)
        .map_or_else(|| format!("errno {n}"), |(_, s)| (*s).to_string())
}

/// One PRE_COPY round: read until the source has nothing more for now.
struct Round {
    loaded: bool,
    ops: usize,
    reads: usize,
    bytes: usize,
    /// Time in the source's data_fd reads and in the destination's writes.
    io: PumpTime,
    initial: u64,
    dirty: u64,
    took: Duration,
}

/// Time spent in `pump`'s read of the source and write of the
/// destination.
#[derive(Default, Clone, Copy)]
struct PumpTime {
    read: Duration,
    write: Duration,
}

/// The client's load: random writes, Write Zeroes and deallocates, the
/// commands of one burst on disjoint blocks (8-block slots), waited for.
struct Load {
    rng: Rng,
    /// Blocks of an 8-block slot.
    slot: u64,
    slots: u64,
    /// Every block the client wrote data to.
    written: BTreeSet<u64>,
    /// The (SLBA, NLB) ranges of the commands of the last burst left in
    /// flight.
    in_flight: Vec<(u64, u64)>,
    /// The arena's mark before the burst left in flight, if one is.
    in_flight_mark: Option<usize>,
    writes: usize,
    zeroes: usize,
    deallocates: usize,
    /// Blocks the bursts wrote, zeroed or deallocated (with repeats): what
    /// the load dirtied.
    touched: u64,
}

impl Load {
    fn new(g: &Guest, seed: u64) -> Self {
        let slot = (crate::dma::PAGE / g.lba_size) as u64;
        Self {
            rng: Rng::new(seed),
            slot,
            slots: g.nsze / slot,
            written: BTreeSet::new(),
            in_flight: Vec::new(),
            in_flight_mark: None,
            writes: 0,
            zeroes: 0,
            deallocates: 0,
            touched: 0,
        }
    }

    /// Queues `n` commands on distinct slots (70% writes of 1 to 8
    /// blocks, 15% Write Zeroes of 1 to 4 slots, 15% deallocates of 1 or 2
    /// ranges of 1 to 4 slots), rings, and waits for them unless
    /// `in_flight`.
    fn burst(&mut self, g: &mut Guest, n: usize, in_flight: bool) -> Result<usize, String> {
        // The burst before, if left in flight, ends first: the commands of
        // one burst only are on disjoint blocks.
        self.settle(g)?;
        let mut used = BTreeSet::new();
        let nq = g.io.len();
        let mut free = |rng: &mut Rng, len: u64| -> Option<u64> {
            for _ in 0..8 {
                let s = rng.u64() % (self.slots - len + 1);
                if (s..s + len).all(|x| !used.contains(&x)) {
                    used.extend(s..s + len);
                    return Some(s);
                }
            }
            None
        };
        let mark = g.arena.used();
        let mut done = 0;
        let mut ranges_of_burst = Vec::new();
        for i in 0..n {
            let qi = i % nq;
            let kind = self.rng.below(100);
            if kind < 70 {
                let Some(s) = free(&mut self.rng, 1) else {
                    continue;
                };
                let nlb = 1 + self.rng.below(self.slot as usize) as u64;
                let slba = s * self.slot + self.rng.u64() % (self.slot - nlb + 1);
                g.submit_write_blocks(qi, slba, nlb as u16, false)
                    .map_err(e)?;
                self.written.extend(slba..slba + nlb);
                ranges_of_burst.push((slba, nlb));
                self.writes += 1;
                self.touched += nlb;
            } else if kind < 85 {
                let len = 1 + self.rng.below(4) as u64;
                let Some(s) = free(&mut self.rng, len) else {
                    continue;
                };
                g.submit_write_zeroes(qi, s * self.slot, (len * self.slot) as u16, false)
                    .map_err(e)?;
                ranges_of_burst.push((s * self.slot, len * self.slot));
                self.zeroes += 1;
                self.touched += len * self.slot;
            } else {
                let mut ranges = Vec::new();
                for _ in 0..1 + self.rng.below(2) {
                    let len = 1 + self.rng.below(4) as u64;
                    if let Some(s) = free(&mut self.rng, len) {
                        ranges.push((s * self.slot, (len * self.slot) as u32));
                    }
                }
                if ranges.is_empty() {
                    continue;
                }
                g.submit_deallocate(qi, &ranges, false).map_err(e)?;
                ranges_of_burst.extend(ranges.iter().map(|r| (r.0, u64::from(r.1))));
                self.deallocates += 1;
                self.touched += ranges.iter().map(|r| u64::from(r.1)).sum::<u64>();
            }
            done += 1;
        }
        g.ring_all().map_err(e)?;
        self.in_flight = ranges_of_burst;
        self.in_flight_mark = Some(mark);
        if !in_flight {
            self.settle(g)?;
        }
        Ok(done)
    }

    /// Waits for the burst left in flight, if any.
    fn settle(&mut self, g: &mut Guest) -> Result<(), String> {
        if let Some(mark) = self.in_flight_mark.take() {
            g.drain(20_000)
                .map_err(|x| format!("the load on the source: {x}"))?;
            g.arena.rewind(mark).map_err(e)?;
            self.in_flight.clear();
        }
        Ok(())
    }

    /// Writes `mib` MiB before the migration: 256 KiB extents at distinct
    /// random 256 KiB-aligned places, one page per command.
    fn prefill(&mut self, g: &mut Guest, mib: u64) -> Result<u64, String> {
        let ext_blocks = (256 << 10) / g.lba_size as u64;
        let places = g.nsze / ext_blocks;
        let want = (mib * 4).min(places);
        let mut chosen = BTreeSet::new();
        while (chosen.len() as u64) < want {
            chosen.insert(self.rng.u64() % places);
        }
        let mark = g.arena.used();
        let nq = g.io.len();
        let mut i = 0;
        for x in chosen {
            let mut slba = x * ext_blocks;
            while slba < (x + 1) * ext_blocks {
                g.submit_write_blocks(i % nq, slba, self.slot as u16, true)
                    .map_err(e)?;
                self.written.extend(slba..slba + self.slot);
                slba += self.slot;
                i += 1;
                if g.pending.len() >= 64 {
                    g.drain(20_000).map_err(|x| format!("prefill: {x}"))?;
                    g.arena.rewind(mark).map_err(e)?;
                }
            }
        }
        g.drain(20_000).map_err(|x| format!("prefill: {x}"))?;
        g.arena.rewind(mark).map_err(e)?;
        Ok(want * (256 << 10))
    }
}

/// Reads once (up to `buf.len()` bytes) from the source and writes what
/// came to the destination (if any) in `chunk`-byte writes. `Ok(None)`:
/// ENOMSG (no more for now); `Ok(Some(0))`: the permanent end.
fn pump(
    a: &mut DataFd,
    b: Option<&mut DataFd>,
    buf: &mut [u8],
    chunk: usize,
    stream: &mut Vec<u8>,
    time: &mut PumpTime,
) -> Result<Option<usize>, String> {
    let t = Instant::now();
    let r = a.0.read(buf);
    time.read += t.elapsed();
    let n = match r {
        Ok(n) => n,
        Err(x) if x.raw_os_error() == Some(libc::ENOMSG) => return Ok(None),
        Err(x) => return Err(format!("read of the source's data_fd: {x}")),
    };
    let at = stream.len();
    stream.extend_from_slice(&buf[..n]);
    let Some(b) = b else {
        return Ok(Some(n));
    };
    let t = Instant::now();
    let w = b.write_chunked(&buf[..n], chunk).map_err(|x| {
        format!(
            "the destination refused the stream at bytes {at}..{} ({}): {x}",
            at + n,
            errno_of(&x).map_or_else(|| "?".into(), errno_name)
        )
    });
    time.write += t.elapsed();
    w?;
    Ok(Some(n))
}

/// `nvme-lm media-migrate`: prints its report; fails naming what went
/// wrong.
pub fn migrate(o: &Options) -> Result<(), String> {
    let iommufd = Iommufd::open().map_err(e)?;
    let arena = Arena::new(&iommufd, 64 << 20, 0x6_0000_0000).map_err(e)?;
    let da = Device::open(&o.a, &iommufd).map_err(e)?;
    let db = Device::open(&o.b, &iommufd).map_err(e)?;
    let mut kmsg = if o.expect_cdq_full {
        Some(KmsgTail::open().map_err(|x| format!("/dev/kmsg: {x}"))?)
    } else {
        None
    };
    da.reset().map_err(e)?;
    let mut g = Guest::start_ns(&da, Rc::clone(&arena), FULL_QUEUES, 256, 256, o.nsid)
        .map_err(|x| format!("the client on the source, NSID {}: {x}", o.nsid))?;
    println!(
        "media-migrate: {} -> {}, NSID {}: {} blocks of {} bytes ({} MiB), DLFEAT {:#x} (deallocated blocks {})",
        o.a.display(),
        o.b.display(),
        o.nsid,
        g.nsze,
        g.lba_size,
        (g.nsze * g.lba_size as u64) >> 20,
        g.dlfeat,
        if g.deallocate_reads_zero() { "read zeroes, but deallocate is advisory: unchecked" } else { "unchecked" }
    );
    let t = Instant::now();
    if o.fresh {
        g.zero_default = true;
    } else if o.keep {
        println!(
            "kept: the namespace's data as it was (blocks the client does not write unchecked)"
        );
    } else {
        g.clear_namespace()
            .map_err(|x| format!("clearing the namespace: {x}"))?;
        println!(
            "cleared: Write Zeroes over the namespace ({:.0} ms)",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let mut load = Load::new(&g, o.seed);
    let prefill = load.prefill(&mut g, o.prefill_mib)?;
    println!(
        "prefill: {prefill} bytes in {} extents of 256 KiB",
        prefill >> 18
    );

    db.reset().map_err(e)?;
    let irqs_b = Guest::destination(&db).map_err(e)?;
    let mut fd_b = if o.source_only {
        None
    } else {
        Some(
            db.set_mig_state(State::Resuming)
                .map_err(e)?
                .ok_or("no data_fd for RESUMING")?,
        )
    };
    let mut fd_a = da
        .set_mig_state(State::PreCopy)
        .map_err(e)?
        .ok_or("no data_fd for PRE_COPY")?;
    let mut stream = Vec::new();
    let mut buf = vec![0u8; o.chunk.max(4096)];
    let mut rounds: Vec<Round> = Vec::new();
    let t_pre = Instant::now();
    let info0 = fd_a.precopy_info().map_err(e)?;
    println!(
        "PRE_COPY entered: initial_bytes {} dirty_bytes {}",
        info0.initial_bytes, info0.dirty_bytes
    );
    let ns_bytes = g.nsze * g.lba_size as u64;
    let pre: Result<(), String> = (|| loop {
        let r = rounds.len() + 1;
        let loaded = r <= o.rounds && (o.rate > 0 || o.load_bps > 0);
        let t = Instant::now();
        let mut early = false;
        let mut round = Round {
            loaded,
            ops: 0,
            reads: 0,
            bytes: 0,
            io: PumpTime::default(),
            initial: 0,
            dirty: 0,
            took: Duration::ZERO,
        };
        if loaded && o.load_bps == 0 {
            round.ops += load.burst(&mut g, o.rate * 8, false)?;
        }
        // Behind the steady rate: about one command per 4 KiB owed (a
        // command touches 4 to 10 KiB on average), at most 256. A guest's
        // I/O does not wait for its VMM: the burst runs while the stream
        // is read (the next burst waits for it).
        let steady = |g: &mut Guest, load: &mut Load| -> Result<usize, String> {
            let owed = (t_pre.elapsed().as_secs_f64() * o.load_bps as f64) as u64;
            let done = load.touched * g.lba_size as u64;
            if owed <= done {
                return Ok(0);
            }
            load.burst(g, ((owed - done) / 4096).clamp(1, 256) as usize, true)
        };
        if loaded && o.load_bps > 0 && r > 1 {
            while t.elapsed() < o.round_gap {
                round.ops += steady(&mut g, &mut load)?;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        loop {
            if loaded && o.load_bps > 0 {
                round.ops += steady(&mut g, &mut load)?;
            } else if loaded {
                round.ops += load.burst(&mut g, o.rate, false)?;
            }
            match pump(
                &mut fd_a,
                fd_b.as_mut(),
                &mut buf,
                o.chunk,
                &mut stream,
                &mut round.io,
            )
            .map_err(|x| format!("PRE_COPY round {r}: {x}"))?
            {
                None => break,
                Some(0) => {
                    return Err(format!(
                        "PRE_COPY round {r}: the source's data_fd ended (read 0) in PRE_COPY"
                    ))
                }
                Some(n) => {
                    round.reads += 1;
                    round.bytes += n;
                }
            }
            if let Some(at) = o.stop_at_initial {
                if fd_a.precopy_info().map_err(e)?.initial_bytes <= at {
                    early = true;
                    break;
                }
            }
            if !o.round_limit.is_zero() && t.elapsed() > o.round_limit {
                let info = fd_a.precopy_info().map_err(e)?;
                return Err(format!(
                    "PRE_COPY round {r}: no ENOMSG after {:.0} s: {} bytes read in {} reads, {} load commands; initial_bytes {} dirty_bytes {} now",
                    t.elapsed().as_secs_f64(),
                    round.bytes,
                    round.reads,
                    round.ops,
                    info.initial_bytes,
                    info.dirty_bytes
                ));
            }
            if round.bytes as u64 > 4 * ns_bytes + (64 << 20) {
                return Err(format!(
                        "PRE_COPY round {r}: {} bytes read in {} reads without an ENOMSG (the namespace has {ns_bytes}; {} load commands)",
                        round.bytes, round.reads, round.ops
                    ));
            }
        }
        let info = fd_a.precopy_info().map_err(e)?;
        round.initial = info.initial_bytes;
        round.dirty = info.dirty_bytes;
        round.took = t.elapsed();
        rounds.push(round);
        if early {
            println!(
                "stopping early: {} bytes read, initial_bytes {} dirty_bytes {}",
                stream.len(),
                info.initial_bytes,
                info.dirty_bytes
            );
            return Ok(());
        }
        if r >= o.rounds && info.initial_bytes == 0 && info.dirty_bytes <= o.converge_bytes {
            return Ok(());
        }
        if r >= o.rounds + o.quiet_rounds {
            return Err(format!(
                    "PRE_COPY did not converge in {r} rounds: initial_bytes {} dirty_bytes {} (converged: 0 and <= {})",
                    info.initial_bytes, info.dirty_bytes, o.converge_bytes
                ));
        }
    })();
    let pre_time = t_pre.elapsed();
    load.settle(&mut g)?;
    print_rounds(&rounds);
    if let Some(r) = rounds.first() {
        // Round 1 carries the namespace's initial copy: the bulk part.
        let rate = |d: Duration| r.bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9);
        println!(
            "bulk: round 1, {} bytes; source reads {:.0} ms ({:.1} MB/s), destination writes {:.0} ms, end to end {:.0} ms ({:.1} MB/s)",
            r.bytes,
            r.io.read.as_secs_f64() * 1e3,
            rate(r.io.read),
            r.io.write.as_secs_f64() * 1e3,
            r.took.as_secs_f64() * 1e3,
            rate(r.took)
        );
    }
    if let Err(x) = pre {
        return failed_before_stop(&da, &mut g, &load, &x);
    }
    let Some(mut fd_b) = fd_b else {
        da.set_mig_state(State::Running)
            .map_err(|x| format!("source only: PRE_COPY -> RUNNING: {x}"))?;
        println!(
            "source only: {} bytes read in PRE_COPY, no destination; the source is RUNNING again",
            stream.len()
        );
        return Ok(());
    };
    let pre_bytes = stream.len();
    let (initial, dirty) = rounds.last().map_or((0, 0), |r| (r.initial, r.dirty));
    if initial == 0 && dirty <= o.converge_bytes {
        println!(
            "pre-copy: {pre_bytes} bytes in {} rounds, {:.0} ms (converged: initial_bytes 0, dirty_bytes {dirty} <= {})",
            rounds.len(),
            pre_time.as_secs_f64() * 1e3,
            o.converge_bytes
        );
    } else {
        println!(
            "pre-copy: {pre_bytes} bytes in {} rounds, {:.0} ms (stopped before converging: initial_bytes {initial}, dirty_bytes {dirty})",
            rounds.len(),
            pre_time.as_secs_f64() * 1e3
        );
    }

    // Commands in flight at the stop, on disjoint blocks: the source
    // completes those it fetched before the suspend returns, the
    // destination the others.
    let in_flight = load.burst(&mut g, 16, true)?;
    if let Some(p) = &o.in_flight_ranges {
        let text: String = load
            .in_flight
            .iter()
            .map(|(slba, nlb)| format!("{slba} {nlb}\n"))
            .collect();
        std::fs::write(p, text).map_err(|x| format!("{}: {x}", p.display()))?;
    }
    let down = Instant::now();
    da.set_mig_state(State::PreCopyP2p)
        .map_err(|x| format!("stop: PRE_COPY -> PRE_COPY_P2P: {x}"))?;
    let t_suspend = down.elapsed();
    let data_size = da
        .mig_data_size()
        .map_err(|x| format!("MIG_DATA_SIZE after the stop: {x}"))?;
    if da.set_mig_state(State::StopCopy).map_err(e)?.is_some() {
        return Err("PRE_COPY_P2P -> STOP_COPY opened a second data_fd".into());
    }
    let mut stop_reads = 0;
    let mut stop_io = PumpTime::default();
    loop {
        match pump(
            &mut fd_a,
            Some(&mut fd_b),
            &mut buf,
            o.chunk,
            &mut stream,
            &mut stop_io,
        )
        .map_err(|x| format!("STOP_COPY: {x}"))?
        {
            None => {
                return Err(format!(
                    "STOP_COPY: read ended with ENOMSG after {} bytes",
                    stream.len() - pre_bytes
                ))
            }
            Some(0) => break,
            Some(_) => stop_reads += 1,
        }
    }
    let stop_bytes = stream.len() - pre_bytes;
    let t_load = Instant::now();
    db.set_mig_state(State::Stop)
        .map_err(|x| format!("load: RESUMING -> STOP: {x}"))?;
    let load_time = t_load.elapsed();
    db.set_mig_state(State::Running)
        .map_err(|x| format!("start: STOP -> RUNNING: {x}"))?;
    let downtime = down.elapsed();
    drop(fd_b);
    da.set_mig_state(State::Stop).map_err(e)?;
    drop(fd_a);
    println!(
        "stop-copy: {stop_bytes} bytes in {stop_reads} reads (reads {:.1} ms, writes {:.1} ms); MIG_DATA_SIZE after the stop {data_size}; {in_flight} commands in flight at the stop",
        stop_io.read.as_secs_f64() * 1e3,
        stop_io.write.as_secs_f64() * 1e3
    );
    println!(
        "downtime: {:.2} ms (suspend {:.2} ms, destination load {:.2} ms)",
        downtime.as_secs_f64() * 1e3,
        t_suspend.as_secs_f64() * 1e3,
        load_time.as_secs_f64() * 1e3
    );
    if let Some(p) = &o.save {
        std::fs::write(p, &stream).map_err(|x| format!("{}: {x}", p.display()))?;
        println!("stream saved: {} ({} bytes)", p.display(), stream.len());
    }

    g.switch_to(&db, irqs_b).map_err(e)?;
    g.drain(20_000)
        .map_err(|x| format!("on the destination, the commands in flight at the stop: {x}"))?;
    let mut lbas: BTreeSet<u64> = g.model.keys().copied().collect();
    let data_blocks = lbas.len();
    let mut rng = Rng::new(o.seed ^ 0x5a5a);
    for _ in 0..o.samples {
        lbas.insert(rng.u64() % g.nsze);
    }
    for lba in load.written.iter().step_by(7) {
        lbas.insert(*lba);
    }
    let lbas: Vec<u64> = lbas.into_iter().collect();
    let t_verify = Instant::now();
    let checked = g
        .verify_lbas(&lbas)
        .map_err(|x| format!("on the destination, the client's model: {x}"))?;
    println!(
        "verify: {} blocks read back on the destination ({data_blocks} holding written data, the rest random or zeroed/deallocated), {checked} checked against the model, {} unchecked (deallocated: advisory, contents unknown), {:.0} ms",
        lbas.len(),
        lbas.len() - checked,
        t_verify.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "load: {} writes, {} Write Zeroes, {} deallocates; {} blocks written ({} bytes)",
        load.writes,
        load.zeroes,
        load.deallocates,
        load.written.len(),
        load.written.len() * g.lba_size
    );
    let loaded_ms: f64 = rounds
        .iter()
        .filter(|r| r.loaded)
        .map(|r| r.took.as_secs_f64() * 1e3)
        .sum();
    println!(
        "load-touched: {} bytes written, zeroed or deallocated by the load in {loaded_ms:.0} ms of loaded rounds",
        load.touched * g.lba_size as u64
    );
    da.reset().map_err(e)?;
    db.reset().map_err(e)?;

    let s: Summary = media_stream::summarize(&stream)?;
    print!("{}", s.render());
    let written = load.written.len() as u64 * g.lba_size as u64;
    println!("written-bytes: {written}");
    println!("data-bytes: {}", s.data_bytes);
    let mut bad = Vec::new();
    if stop_bytes as u64 != data_size {
        let whole = if data_size == stream.len() as u64 {
            " (the whole stream, the PRE_COPY bytes read before included)"
        } else {
            ""
        };
        bad.push(format!(
            "STOP_COPY read {stop_bytes} bytes, MIG_DATA_SIZE after the stop said {data_size}{whole}"
        ));
    }
    if !s.media {
        bad.push("the compatibility record does not say media: on".into());
    }
    if !s.end_crc_ok {
        bad.push(
            "the end record's CRC is not the CRC32C of the stream without DATA data bytes".into(),
        );
    }
    if !s.namespaces.iter().any(|n| n.nsid == o.nsid) {
        bad.push(format!("no NS_DESC for NSID {}", o.nsid));
    }
    if let Some(k) = kmsg.as_mut() {
        let lines = k.lines();
        match lines.iter().find(|l| l.contains("the dirty-LBA queue filled up")) {
            Some(l) => println!("kernel log: {l}"),
            None => bad.push(format!(
                "--expect-cdq-full: no \"the dirty-LBA queue filled up\" in the {} kernel log lines of the migration",
                lines.len()
            )),
        }
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    println!("result: OK, the destination holds the client's model");
    Ok(())
}

fn print_rounds(rounds: &[Round]) {
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "round {}: load {}, {} commands, {} bytes in {} reads, then initial_bytes {} dirty_bytes {}, {:.0} ms (reads {:.0} ms, writes {:.0} ms)",
            i + 1,
            if r.loaded { "on" } else { "off" },
            r.ops,
            r.bytes,
            r.reads,
            r.initial,
            r.dirty,
            r.took.as_secs_f64() * 1e3,
            r.io.read.as_secs_f64() * 1e3,
            r.io.write.as_secs_f64() * 1e3
        );
    }
}

/// A migration that failed before the source stopped: the source goes
/// back to RUNNING (a VMM's cancel) and the client goes on there.
fn failed_before_stop(da: &Device, g: &mut Guest, load: &Load, why: &str) -> Result<(), String> {
    println!("migration failed: {why}");
    let st = da.mig_state().map_err(e)?;
    println!("source after the failure: {st:?}");
    if st != State::Running {
        da.set_mig_state(State::Running).map_err(e)?;
    }
    g.drain(20_000).map_err(e)?;
    let mark = g.arena.used();
    let lba = load.written.first().copied().unwrap_or(0) & !7;
    g.submit_write_blocks(0, lba, 1, true).map_err(e)?;
    g.drain(20_000).map_err(e)?;
    g.arena.rewind(mark).map_err(e)?;
    g.verify_lbas(&[lba, lba + 1]).map_err(e)?;
    println!("source after the failure: I/O written and verified");
    Err(format!("migration failed: {why}"))
}

/// What `nvme-lm media-resume` expects of the destination.
pub enum Expect {
    /// The stream loads (RESUMING -> STOP succeeds).
    Ok,
    /// A write() fails with this errno (at the changed record, for a
    /// mutation).
    Write(i32),
    /// Every write() succeeds and RESUMING -> STOP fails (with this errno,
    /// if given).
    Stop(Option<i32>),
}

/// Parses "ok", "write:ERRNO" or "stop[:ERRNO]".
pub fn parse_expect(s: &str) -> Result<Expect, String> {
    let errno = |n: &str| -> Result<i32, String> {
        match n {
            "EINVAL" => Ok(libc::EINVAL),
            "ERANGE" => Ok(libc::ERANGE),
            "EIO" => Ok(libc::EIO),
            "EBUSY" => Ok(libc::EBUSY),
            _ => Err(format!("--expect: unknown errno {n}")),
        }
    };
    match s.split_once(':') {
        None if s == "ok" => Ok(Expect::Ok),
        None if s == "stop" => Ok(Expect::Stop(None)),
        Some(("write", n)) => Ok(Expect::Write(errno(n)?)),
        Some(("stop", n)) => Ok(Expect::Stop(Some(errno(n)?))),
        _ => Err(format!("--expect {s}: ok, write:ERRNO, stop or stop:ERRNO")),
    }
}

/// What feeding a stream gave.
struct Fed {
    /// (record index or None for the stream header, errno) of the refused
    /// write, and the errno of one more write after it.
    refused: Option<(Option<usize>, i32, Option<i32>)>,
    /// RESUMING -> STOP when every write passed.
    load: Option<Result<(), i32>>,
}

/// Feeds `s` to `d` in RESUMING, one write per record (the header alone
/// first); resets `d` afterwards (it never runs).
fn feed(d: &Device, s: &[u8]) -> Result<Fed, String> {
    let recs = media_stream::walk(s, true)?;
    let mut fd = d
        .set_mig_state(State::Resuming)
        .map_err(|x| format!("RUNNING -> RESUMING: {x}"))?
        .ok_or("RUNNING -> RESUMING returned no data_fd")?;
    let mut pieces = vec![(None, 0, crate::codec::stream::HEADER_LEN.min(s.len()))];
    for (i, r) in recs.iter().enumerate() {
        pieces.push((Some(i), r.off, r.end().min(s.len())));
    }
    // Bytes after the end record: one more write, as record recs.len().
    let done = pieces.last().map_or(0, |p| p.2);
    if done < s.len() {
        pieces.push((Some(recs.len()), done, s.len()));
    }
    let mut fed = Fed {
        refused: None,
        load: None,
    };
    for (i, from, to) in pieces {
        if let Err(x) = fd.0.write_all(&s[from..to]) {
            let errno = x.raw_os_error().unwrap_or(0);
            let again =
                fd.0.write(&s[..8.min(s.len())])
                    .err()
                    .map(|y| y.raw_os_error().unwrap_or(0));
            fed.refused = Some((i, errno, again));
            break;
        }
    }
    if fed.refused.is_none() {
        fed.load = Some(
            d.set_mig_state(State::Stop)
                .map(drop)
                .map_err(|x| errno_of(&x).unwrap_or(0)),
        );
    }
    drop(fd);
    d.reset()
        .map_err(|x| format!("device reset after the stream: {x}"))?;
    let st = d.mig_state().map_err(e)?;
    if st != State::Running {
        return Err(format!(
            "after the reset the destination is in {st:?}, not RUNNING"
        ));
    }
    Ok(fed)
}

/// `nvme-lm media-resume`: feeds the stream in `file` (changed by
/// `mutation`, if any) to the VF `vf` and checks the outcome against
/// `expect`; then, if `then_good`, feeds the unchanged stream, which must
/// load. After a refused write one more write must fail too, unless `plain`
/// (a destination without media keeps its session as before the refusal).
pub fn resume(
    vf: &Path,
    file: &Path,
    mutation: Option<&str>,
    expect: &Expect,
    then_good: bool,
    plain: bool,
) -> Result<(), String> {
    let good = std::fs::read(file).map_err(|x| format!("{}: {x}", file.display()))?;
    let (input, at) = match mutation {
        Some(m) => {
            let (b, at) = media_stream::mutate(&good, m)?;
            (b, Some(at))
        }
        None => (good.clone(), None),
    };
    let recs = media_stream::walk(&input, true)?;
    let name = |i: Option<usize>| match i {
        None => "the stream header".to_string(),
        Some(i) => recs.get(i).map_or_else(
            || format!("record {i}"),
            |r| {
                format!(
                    "record {i} ({}, at byte {})",
                    media_stream::tag_name(r.tag),
                    r.off
                )
            },
        ),
    };
    println!(
        "{}: {} bytes, {} records{}",
        mutation.unwrap_or("unchanged"),
        input.len(),
        recs.len(),
        at.map_or(String::new(), |i| format!("; changed: {}", name(Some(i))))
    );
    let iommufd = Iommufd::open().map_err(e)?;
    let d = Device::open(vf, &iommufd).map_err(e)?;
    d.reset().map_err(e)?;
    let fed = feed(&d, &input)?;
    let got = match (&fed.refused, &fed.load) {
        (Some((i, errno, again)), _) => {
            println!(
                "refused: write of {} failed with {}; one more write: {}",
                name(*i),
                errno_name(*errno),
                again.map_or_else(|| "ACCEPTED".into(), errno_name)
            );
            if again.is_none() && !plain {
                return Err(format!(
                    "after the refusal of {}, a later write was accepted",
                    name(*i)
                ));
            }
            match expect {
                Expect::Write(want) if want == errno => {
                    if at.is_some() && *i != at {
                        Err(format!(
                            "refused at {}, not at the changed {}",
                            name(*i),
                            name(at)
                        ))
                    } else {
                        Ok(())
                    }
                }
                _ => Err(format!(
                    "write of {} failed with {}",
                    name(*i),
                    errno_name(*errno)
                )),
            }
        }
        (None, Some(Ok(()))) => {
            println!("accepted: every write, and RESUMING -> STOP loaded the state");
            match expect {
                Expect::Ok => Ok(()),
                _ => Err("the destination accepted the stream and loaded it".into()),
            }
        }
        (None, Some(Err(errno))) => {
            println!(
                "every write accepted; RESUMING -> STOP failed with {}",
                errno_name(*errno)
            );
            match expect {
                Expect::Stop(None) => Ok(()),
                Expect::Stop(Some(want)) if want == errno => Ok(()),
                _ => Err(format!(
                    "every write accepted, RESUMING -> STOP failed with {}",
                    errno_name(*errno)
                )),
            }
        }
        (None, None) => Err("nothing happened".into()),
    };
    if let Err(x) = got {
        let want = match expect {
            Expect::Ok => "a load".to_string(),
            Expect::Write(n) => format!("a write refused with {}", errno_name(*n)),
            Expect::Stop(n) => format!(
                "RESUMING -> STOP to fail{}",
                n.map_or(String::new(), |n| format!(" with {}", errno_name(n)))
            ),
        };
        return Err(format!("{x}; expected {want}"));
    }
    println!("after the reset: RUNNING");
    if then_good {
        let fed = feed(&d, &good)?;
        match (fed.refused, fed.load) {
            (None, Some(Ok(()))) => println!(
                "after the reset: the good stream ({} bytes) loaded",
                good.len()
            ),
            (Some((i, errno, _)), _) => {
                return Err(format!(
                    "after the reset, the good stream was refused at {} with {}",
                    name(i),
                    errno_name(errno)
                ))
            }
            (None, r) => {
                return Err(format!(
                    "after the reset, the good stream did not load: {:?}",
                    r.map(|x| x.map_err(errno_name))
                ))
            }
        }
    }
    Ok(())
}
