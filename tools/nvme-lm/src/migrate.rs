// SPDX-License-Identifier: GPL-2.0

//! One live migration of a VF running I/O to another VF, through the VFIO
//! migration uAPI only, the way a VMM drives it (QEMU's order of steps),
//! with the timing of each phase. `nvme-lm migrate` prints its report; the
//! `vfio_migration` suite checks it.

use crate::codec::stream::{self, Stream};
use crate::migration::State;
use crate::selftest::guest::Guest;
use crate::vfio::Device;
use std::fmt::Write as _;
use std::time::{
    Duration,
    Instant, //
};

/// What one migration moved and how long each phase took.
pub struct Report {
    /// The whole stream the source produced.
    pub stream: Vec<u8>,
    /// Bytes read in PRE_COPY (the compatibility record).
    pub precopy_bytes: usize,
    /// `MIG_DATA_SIZE` once the source was stopped.
    pub data_size: u64,
    /// Phases in order, with their duration.
    pub phases: Vec<(&'static str, Duration)>,
    /// From the source's stop to the destination's start.
    pub downtime: Duration,
    /// Commands in flight at the stop, (qid, cid): rung before it, and
    /// rung while the source was suspended.
    pub rung_before_stop: Vec<(u16, u16)>,
    /// Commands rung while the source was suspended.
    pub rung_while_stopped: Vec<(u16, u16)>,
    /// Completions the source posted (the guest had not consumed them at
    /// the switchover), from its CQEs.
    pub on_source: Vec<(u16, u16)>,
    /// Completions the destination posted, from its CQEs.
    pub on_destination: Vec<(u16, u16)>,
    /// Vectors the source signalled that were not serviced before the
    /// switchover (a queue's vector is its ID): serviced on the destination.
    pub pending_at_switch: Vec<u16>,
    /// Vectors the destination signalled by the end of its drain.
    pub destination_signalled: Vec<u16>,
    /// After the destination's drain: (qid, SQ head it reported, host tail).
    pub sq_heads: Vec<(u16, u16, u16)>,
    /// Blocks read back and verified on the destination.
    pub verified: usize,
}

/// Commands in flight at the stop: 8 writes and 8 reads rung before it, 8
/// writes rung while the source is suspended.
pub const INFLIGHT: usize = 24;

fn timed<T>(
    phases: &mut Vec<(&'static str, Duration)>,
    name: &'static str,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let t = Instant::now();
    let r = f()?;
    phases.push((name, t.elapsed()));
    Ok(r)
}

/// Migrates the controller `g` runs I/O on from `a` to `b`: writes
/// `blocks` blocks first, leaves commands in flight at the stop (some
/// fetched, some rung while suspended) and the source's completion
/// interrupts unserviced, moves the state, continues on `b` and verifies
/// every block. `chunk` is the size of the destination's
/// writes. The source is reset afterwards.
pub fn migrate(
    a: &Device,
    b: &Device,
    g: &mut Guest,
    blocks: u64,
    chunk: usize,
) -> Result<Report, String> {
    let e = |x: std::io::Error| x.to_string();
    let base = 5000u64;
    let nq = g.io.len() as u64;
    if nq == 0 {
        return Err("the guest has no I/O queues".into());
    }
    let q = |lba: u64| (lba % nq) as usize;
    for lba in base..base + blocks {
        g.submit_write(q(lba), lba, true).map_err(e)?;
        if g.pending.len() >= 16 {
            g.drain(20_000).map_err(e)?;
        }
    }
    g.drain(20_000).map_err(e)?;

    let mut phases = Vec::new();
    // Destination first, as QEMU's load_setup does: RESUMING from RUNNING.
    b.reset().map_err(e)?;
    let irqs_b = Guest::destination(b).map_err(e)?;
    let mut fd_b = timed(&mut phases, "destination -> RESUMING", || {
        b.set_mig_state(State::Resuming)
            .map_err(e)?
            .ok_or("no data_fd for RESUMING".to_string())
    })?;
    let mut fd_a = timed(&mut phases, "source -> PRE_COPY", || {
        a.set_mig_state(State::PreCopy)
            .map_err(e)?
            .ok_or("no data_fd for PRE_COPY".to_string())
    })?;
    let pre = timed(&mut phases, "pre-copy: read + send", || {
        let info = fd_a.precopy_info().map_err(e)?;
        let (pre, end) = fd_a.read_available(1 << 20).map_err(e)?;
        if end || pre.len() as u64 != info.initial_bytes {
            return Err(format!(
                "PRE_COPY: read {} bytes (permanent end: {end}), initial_bytes said {}",
                pre.len(),
                info.initial_bytes
            ));
        }
        fd_b.write_chunked(&pre, chunk).map_err(|x| {
            format!(
                "the destination refused the source in PRE_COPY, before the source stopped: {x}"
            )
        })?;
        Ok(pre)
    })?;

    // In flight at the stop: rung and fetched...
    for lba in base + blocks..base + blocks + 8 {
        g.submit_write(q(lba), lba, false).map_err(e)?;
        g.submit_read(q(lba), lba - blocks, false).map_err(e)?;
    }
    g.ring_all().map_err(e)?;
    let rung_before_stop: Vec<_> = g.pending.keys().copied().collect();
    let down = Instant::now();
    timed(&mut phases, "stop: -> PRE_COPY_P2P (suspend)", || {
        a.set_mig_state(State::PreCopyP2p).map_err(e).map(drop)
    })?;
    // ...and rung while the source is suspended.
    for lba in base + blocks + 8..base + blocks + 16 {
        g.submit_write(q(lba), lba, false).map_err(e)?;
    }
    g.ring_all().map_err(e)?;
    let rung_while_stopped: Vec<_> = g
        .pending
        .keys()
        .filter(|k| !rung_before_stop.contains(k))
        .copied()
        .collect();
    // Stopped means stopped: what the source fetched completed before the
    // suspend returned; nothing rung since may complete now (Report::check).
    // The guest looks at its CQs without consuming anything: the source's
    // completions and their interrupts stay pending across the switchover.
    let watch = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    let on_source = g.posted();
    // The watch is the test's, not the migration's: not downtime.
    let watched = watch.elapsed();
    let data_size = a.mig_data_size().map_err(e)?;
    let rest = timed(&mut phases, "-> STOP_COPY + read", || {
        if a.set_mig_state(State::StopCopy).map_err(e)?.is_some() {
            return Err("PRE_COPY_P2P -> STOP_COPY opened a second data_fd".into());
        }
        let (rest, end) = fd_a.read_available(1 << 20).map_err(e)?;
        if !end {
            return Err("STOP_COPY read ended with ENOMSG".into());
        }
        Ok(rest)
    })?;
    timed(&mut phases, "send to destination", || {
        fd_b.write_chunked(&rest, chunk).map_err(e)
    })?;
    timed(&mut phases, "load: RESUMING -> STOP", || {
        b.set_mig_state(State::Stop).map_err(e).map(drop)
    })?;
    timed(&mut phases, "start: -> RUNNING", || {
        b.set_mig_state(State::Running).map_err(e).map(drop)
    })?;
    let downtime = down.elapsed().saturating_sub(watched);
    drop(fd_b);
    a.set_mig_state(State::Stop).map_err(e)?;
    drop(fd_a);

    let mut stream = pre;
    stream.extend_from_slice(&rest);
    g.completions.clear();
    let pending_at_switch = g.switch_to(b, irqs_b).map_err(e)?;
    timed(&mut phases, "destination: drain in-flight", || {
        g.drain(20_000)
            .map_err(|x| format!("on the destination: {x}"))
    })?;
    // A completion posted twice would come now (an error: not in flight).
    g.collect(20)
        .map_err(|x| format!("on the destination, after the drain: {x}"))?;
    let on_destination: Vec<_> = std::mem::take(&mut g.completions)
        .into_iter()
        .filter(|k| !on_source.contains(k))
        .collect();
    let destination_signalled: Vec<u16> =
        g.io.iter()
            .map(|q| q.qid)
            .filter(|&v| g.irqs.count(v) > 0)
            .collect();
    let sq_heads = g.sq_heads();
    let verified = timed(&mut phases, "destination: verify all blocks", || {
        g.verify_all().map_err(e)
    })?;
    // The source must not run the same queues: a VMM tears it down.
    a.reset().map_err(e)?;
    Ok(Report {
        precopy_bytes: stream.len() - rest.len(),
        stream,
        data_size,
        phases,
        downtime,
        rung_before_stop,
        rung_while_stopped,
        on_source,
        on_destination,
        pending_at_switch,
        destination_signalled,
        sq_heads,
        verified,
    })
}

impl Report {
    /// Checks, from the completions each controller posted, what every
    /// migration must give: the stopped source completed only commands it
    /// had fetched before the stop, the destination every command rung
    /// while the source was stopped, each queue went on from the source's
    /// SQ head (every entry consumed once), and as many bytes streamed as
    /// `MIG_DATA_SIZE` announced. (Each completion's status, SQ and read
    /// data, and that none came twice, are checked as it is reaped; every
    /// block's data by the verify.)
    pub fn check(&self) -> Result<(), String> {
        if let Some(k) = self
            .on_source
            .iter()
            .find(|k| !self.rung_before_stop.contains(k))
        {
            return Err(format!(
                "the source completed (qid, cid) {k:?}, rung after PRE_COPY_P2P (suspended)"
            ));
        }
        let missing: Vec<_> = self
            .rung_while_stopped
            .iter()
            .filter(|k| !self.on_destination.contains(k))
            .collect();
        if !missing.is_empty() || self.rung_while_stopped.is_empty() {
            return Err(format!(
                "of {} commands rung while the source was stopped, (qid, cid) {missing:?} did not complete on the destination",
                self.rung_while_stopped.len()
            ));
        }
        if let Some((qid, cid)) = self
            .on_source
            .iter()
            .find(|(qid, _)| !self.pending_at_switch.contains(qid))
        {
            return Err(format!(
                "the source posted the completion of (qid, cid) ({qid}, {cid}) without an interrupt on vector {qid}"
            ));
        }
        if let Some((qid, cid)) = self
            .on_destination
            .iter()
            .find(|(qid, _)| !self.destination_signalled.contains(qid))
        {
            return Err(format!(
                "the destination posted the completion of (qid, cid) ({qid}, {cid}) without an interrupt on vector {qid}"
            ));
        }
        crate::selftest::guest::heads_at_tail(&self.sq_heads)
            .map_err(|x| format!("on the destination: {x}"))?;
        if self.stream.len() as u64 != self.data_size {
            return Err(format!(
                "{} bytes streamed, MIG_DATA_SIZE {}",
                self.stream.len(),
                self.data_size
            ));
        }
        Ok(())
    }

    /// The printed report.
    pub fn render(&self) -> Result<String, String> {
        let s = Stream::parse(&self.stream).map_err(|x| format!("stream: {}", x.reason()))?;
        let mut o = String::new();
        let pad = |n: usize| n.div_ceil(8) * 8;
        let _ = writeln!(
            o,
            "migration stream: {} bytes (MIG_DATA_SIZE said {})",
            self.stream.len(),
            self.data_size
        );
        let _ = writeln!(
            o,
            "  header                     {:6} bytes",
            stream::HEADER_LEN
        );
        let _ = writeln!(
            o,
            "  compatibility record       {:6} bytes  (PRE_COPY: {} bytes read before the stop)",
            stream::RECORD_HEADER_LEN + stream::COMPAT_LEN,
            self.precopy_bytes
        );
        let _ = writeln!(
            o,
            "  controller state record    {:6} bytes  ({} bytes of controller state)",
            stream::RECORD_HEADER_LEN + pad(s.state.len()),
            s.state.len()
        );
        let _ = writeln!(
            o,
            "  end record (CRC32C)        {:6} bytes",
            stream::RECORD_HEADER_LEN + 8
        );
        let _ = writeln!(o, "phases:");
        for (name, d) in &self.phases {
            let _ = writeln!(o, "  {name:34} {:8.2} ms", d.as_secs_f64() * 1e3);
        }
        let _ = writeln!(
            o,
            "downtime (source stop -> destination RUNNING): {:.2} ms",
            self.downtime.as_secs_f64() * 1e3
        );
        let _ = writeln!(
            o,
            "I/O: {} commands in flight at the stop: {} finished by the source while suspending, {} on the destination (each once); {} blocks verified",
            self.rung_before_stop.len() + self.rung_while_stopped.len(),
            self.on_source.len(),
            self.on_destination.len(),
            self.verified
        );
        let _ = writeln!(
            o,
            "interrupts: vectors {:?} signalled by the source and pending at the switchover (serviced on the destination); vectors {:?} signalled by the destination",
            self.pending_at_switch, self.destination_signalled
        );
        Ok(o)
    }
}
