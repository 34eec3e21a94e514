// SPDX-License-Identifier: GPL-2.0

//! VFIO device DMA logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_START`,
//! `_STOP`, `_REPORT`) of `nvme_vfio_pci`, backed by NVMe Track Memory
//! Changes on the PF, from userspace as a VMM drives it: the feature, the
//! granularity granted, exact dirty pages (the pages the VF wrote by DMA,
//! nothing it only read), clear on read, several ranges, coarser report
//! units, the refusals and their errnos, and logging ending at a reset and
//! at close.
//!
//! The "guest" is [`Guest`] on a VF: its queues and buffers live in an
//! arena at a known IOVA, so each case knows which pages the controller
//! writes: read data buffers and the CQ entries it posts. Every expected
//! page set is computed from that layout, and a mismatch names each page
//! missing or unexpected (read buffer of LBA n, CQ of queue q page p, SQ
//! page, write buffer...).

use super::guest::Guest;
use super::{
    ensure,
    CaseResult,
    Ktap, //
};
use crate::dma::Arena;
use crate::fail;
use crate::migration::errno_of;
use crate::nvme::QueuePair;
use crate::vfio::{
    bitmap_iovas,
    Device,
    Iommufd, //
};
use std::collections::{
    BTreeMap,
    BTreeSet, //
};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

/// What the suite runs on.
pub struct Setup {
    /// The VF every case but `close_stops_logging` uses: its VFIO cdev
    /// (bound to nvme-vfio-pci, PF with Track Memory Changes).
    pub a: PathBuf,
    /// A second VF bound to nvme-vfio-pci (not open): `close_stops_logging`.
    pub c: PathBuf,
    /// A VF bound to plain vfio-pci: no DMA logging (`ENOTTY`).
    pub plain: PathBuf,
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

/// The tracking and report unit the cases ask for.
const PG: u64 = 4096;
const SZ_64K: u64 = 64 << 10;
const SZ_2M: u64 = 2 << 20;
/// The arena of queues and buffers: the range logging tracks. 2 MiB
/// aligned, a multiple of 2 MiB long (2 MiB report units tile it).
const ARENA_BASE: u64 = 0x1_0000_0000;
const ARENA_LEN: usize = 32 << 20;
/// A second mapping, tracked as a second range in `several_ranges`.
const SECOND_BASE: u64 = 0x1_4000_0000;
const SECOND_LEN: usize = 4 << 20;
/// A mapping the device may write but logging never tracks.
const UNTRACKED_BASE: u64 = 0x1_8000_0000;
const UNTRACKED_LEN: usize = 2 << 20;
/// I/O queue pairs of the guest.
pub(crate) const QUEUES: u16 = 2;
/// Entries per queue: each CQ is two pages (256 entries a page), so which
/// of its pages the controller posted to is visible.
pub(crate) const DEPTH: u16 = 512;
const CQE_PER_PAGE: u16 = (PG / 16) as u16;

struct Env {
    iommufd: Iommufd,
    arena: Rc<Arena>,
    second: Rc<Arena>,
    untracked: Rc<Arena>,
    a: Device,
    cdev_c: PathBuf,
    plain: PathBuf,
}

impl Env {
    /// The IOVA range of the main arena.
    fn tracked(&self) -> (u64, u64) {
        range(&self.arena)
    }

    /// A fresh guest on A (see [`guest`]).
    fn guest(&self) -> Result<Guest, String> {
        guest(&self.a, &self.arena)
    }
}

/// The arena the guests run in, mapped in `iommufd`'s IOAS at
/// `ARENA_BASE`.
pub(crate) fn arena(iommufd: &Iommufd) -> Result<Rc<Arena>, String> {
    Arena::new(iommufd, ARENA_LEN, ARENA_BASE).map_err(e)
}

/// A fresh guest on `d` in `arena`: function reset (which also ends any
/// logging left on), controller enabled, `QUEUES` I/O queues of `DEPTH`.
pub(crate) fn guest(d: &Device, arena: &Rc<Arena>) -> Result<Guest, String> {
    d.reset().map_err(e)?;
    Guest::start(d, Rc::clone(arena), QUEUES, DEPTH).map_err(e)
}

pub(crate) fn e(x: io::Error) -> String {
    x.to_string()
}

/// The IOVA range (start, length) of `a`.
pub(crate) fn range(a: &Arena) -> (u64, u64) {
    (a.iova_base(), a.len() as u64)
}

fn errno_name(n: i32) -> &'static str {
    match n {
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::EOVERFLOW => "EOVERFLOW",
        _ => "that errno",
    }
}

fn expect_errno<T>(r: io::Result<T>, want: i32, what: &str) -> CaseResult {
    match r {
        Ok(_) => fail!("{what}: succeeded, expected {}", errno_name(want)),
        Err(x) if errno_of(&x) == Some(want) => Ok(()),
        Err(x) => fail!("{what}: {x}, expected {}", errno_name(want)),
    }
}

/// The pages `[iova, iova + len)` touches.
fn pages(iova: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = iova / PG;
    let last = (iova + len.max(1) - 1) / PG;
    (first..=last).map(|p| p * PG)
}

/// What each page the case knows about holds, for failure messages.
#[derive(Default)]
pub(crate) struct Labels(BTreeMap<u64, String>);

impl Labels {
    fn queue(&mut self, q: &QueuePair) {
        let kind = if q.qid == 0 { "admin" } else { "I/O" };
        for (i, p) in pages(q.sq_iova(), q.sq_bytes() as u64).enumerate() {
            self.0
                .insert(p, format!("{kind} SQ {} page {i} (device reads)", q.qid));
        }
        for (i, p) in pages(q.cq_iova(), q.cq_bytes() as u64).enumerate() {
            self.0.insert(p, format!("{kind} CQ {} page {i}", q.qid));
        }
    }

    /// Every queue page of `g`.
    pub(crate) fn of(g: &Guest) -> Self {
        let mut l = Self::default();
        l.queue(&g.admin);
        for q in &g.io {
            l.queue(q);
        }
        l
    }

    fn add(&mut self, iova: u64, len: u64, what: String) {
        for p in pages(iova, len) {
            self.0.insert(p, what.clone());
        }
    }

    /// `unit` (an IOVA) and what the case placed in `[unit, unit + size)`.
    pub(crate) fn describe(&self, unit: u64, size: u64) -> String {
        let inside: Vec<&str> = self
            .0
            .range(unit..unit + size)
            .map(|(_, v)| v.as_str())
            .collect();
        match inside.len() {
            0 => format!("{unit:#x} (nothing the test placed)"),
            1..=4 => format!("{unit:#x} ({})", inside.join(", ")),
            n => format!("{unit:#x} ({}, and {} more)", inside[..4].join(", "), n - 4),
        }
    }

    fn list(&self, units: &BTreeSet<u64>, size: u64) -> String {
        let v: Vec<String> = units.iter().map(|&u| self.describe(u, size)).collect();
        v.join("; ")
    }
}

/// The report units (IOVAs) of `size` bytes counted from `base` that
/// contain `pages`.
pub(crate) fn units(pages: &BTreeSet<u64>, base: u64, size: u64) -> BTreeSet<u64> {
    pages
        .iter()
        .map(|&p| base + (p - base) / size * size)
        .collect()
}

/// DMA_LOGGING_REPORT of `(iova, len)` in units of `size`: the dirty
/// units' IOVAs. No bit may be set past the range.
pub(crate) fn report(
    d: &Device,
    (iova, len): (u64, u64),
    size: u64,
) -> Result<BTreeSet<u64>, String> {
    let bm = d.dma_logging_report(iova, len, size).map_err(e)?;
    let got: BTreeSet<u64> = bitmap_iovas(&bm, iova, size).into_iter().collect();
    let end = iova + len.div_ceil(size) * size;
    if let Some(x) = got.iter().find(|&&x| x >= end) {
        fail!("REPORT of [{iova:#x}, {end:#x}) set the bit of {x:#x}, past its end");
    }
    Ok(got)
}

/// Fails unless a REPORT of `range` in units of `size` is empty.
fn expect_none(
    what: &str,
    d: &Device,
    range: (u64, u64),
    size: u64,
    labels: &Labels,
) -> CaseResult {
    let got = report(d, range, size)?;
    ensure(got.is_empty(), || {
        format!(
            "{what}: {} units of {size:#x} bytes dirty: {}",
            got.len(),
            labels.list(&got, size)
        )
    })
}

/// Reads `lbas` and fails unless a REPORT of `range` in pages holds
/// exactly the read buffers and the CQ pages their completions went to.
fn reads_reported(
    what: &str,
    d: &Device,
    range: (u64, u64),
    g: &mut Guest,
    lbas: &[u64],
    labels: &mut Labels,
) -> CaseResult {
    let mark = cq_mark(g);
    let data = read_blocks(g, lbas, &[], labels)?;
    let want: BTreeSet<u64> = data
        .union(&cq_pages(g, &mark, lbas.len())?)
        .copied()
        .collect();
    let got = report(d, range, PG)?;
    expect_units(what, &got, &want, PG, labels)
}

/// Fails unless the units reported are exactly the units expected,
/// naming every unit missing and every unit unexpected.
fn expect_units(
    what: &str,
    got: &BTreeSet<u64>,
    want: &BTreeSet<u64>,
    size: u64,
    labels: &Labels,
) -> CaseResult {
    if got == want {
        println!(
            "# {what}: {} units of {size:#x} bytes dirty, as expected: {}",
            got.len(),
            labels.list(got, size)
        );
        return Ok(());
    }
    let missing: BTreeSet<u64> = want.difference(got).copied().collect();
    let extra: BTreeSet<u64> = got.difference(want).copied().collect();
    fail!(
        "{what}: {} of {} expected units of {size:#x} bytes not reported, {} reported that the device did not write\n\
         missing: {}\nunexpected: {}\nexpected: {}\nreported: {}",
        missing.len(),
        want.len(),
        extra.len(),
        labels.list(&missing, size),
        labels.list(&extra, size),
        labels.list(want, size),
        labels.list(got, size)
    )
}

/// DMA_LOGGING_START at 4 KiB over `ranges` on `d`; the device must grant
/// 4 KiB.
fn start(d: &Device, ranges: &[(u64, u64)]) -> CaseResult {
    let granted = d.dma_logging_start(PG, ranges).map_err(e)?;
    if granted != PG {
        let _ = d.dma_logging_stop();
        fail!("DMA_LOGGING_START at page_size 4096 granted page_size {granted}, expected 4096");
    }
    Ok(())
}

/// Each I/O queue's CQ head: where the next completions go.
pub(crate) fn cq_mark(g: &Guest) -> Vec<u16> {
    g.io.iter().map(QueuePair::cq_head).collect()
}

/// The CQ pages the controller posted to since `mark`; `n` completions
/// (fewer than a queue's depth) must have been consumed in all.
pub(crate) fn cq_pages(g: &Guest, mark: &[u16], n: usize) -> Result<BTreeSet<u64>, String> {
    let mut out = BTreeSet::new();
    let mut total = 0;
    for (q, &before) in g.io.iter().zip(mark) {
        let depth = q.cq_depth();
        let k = (q.cq_head() + depth - before) % depth;
        for i in 0..k {
            let slot = (before + i) % depth;
            out.insert((q.cq_iova() + u64::from(slot) * 16) / PG * PG);
        }
        total += usize::from(k);
    }
    ensure(total == n, || {
        format!("{total} completions consumed on the I/O queues, {n} commands issued")
    })?;
    Ok(out)
}

/// Writes `lbas` (round robin over the I/O queues) and waits for them.
pub(crate) fn write_blocks(g: &mut Guest, lbas: &[u64], labels: &mut Labels) -> CaseResult {
    let n = g.io.len();
    for (i, &lba) in lbas.iter().enumerate() {
        let qi = i % n;
        let cid = g.submit_write(qi, lba, false).map_err(e)?;
        let iova = g.pending[&(g.io[qi].qid, cid)].buf.iova();
        labels.add(
            iova,
            g.lba_size as u64,
            format!("write buffer of LBA {lba} (device reads)"),
        );
    }
    g.ring_all().map_err(e)?;
    g.drain(20_000).map_err(e)?;
    Ok(())
}

/// Reads `lbas` (round robin over the I/O queues; the buffer of the
/// `i`th at arena offset `at[i]` if `at` is not empty), waits for every
/// completion and checks the data; returns the pages the data went to.
pub(crate) fn read_blocks(
    g: &mut Guest,
    lbas: &[u64],
    at: &[usize],
    labels: &mut Labels,
) -> Result<BTreeSet<u64>, String> {
    let n = g.io.len();
    let mut out = BTreeSet::new();
    for (i, &lba) in lbas.iter().enumerate() {
        if let Some(&off) = at.get(i) {
            g.arena.skip_to(off).map_err(e)?;
        }
        let qi = i % n;
        let cid = g.submit_read(qi, lba, false).map_err(e)?;
        let iova = g.pending[&(g.io[qi].qid, cid)].buf.iova();
        let len = g.lba_size as u64;
        labels.add(iova, len, format!("read buffer of LBA {lba}"));
        out.extend(pages(iova, len));
    }
    g.ring_all().map_err(e)?;
    g.drain(20_000).map_err(e)?;
    Ok(out)
}

/// Flushes on I/O queue index `qi` until its CQ head is at `slot`: moves
/// where its next completions are posted.
fn advance_cq(g: &mut Guest, qi: usize, slot: u16) -> CaseResult {
    ensure(slot < g.io[qi].cq_depth(), || {
        format!("slot {slot} past the CQ")
    })?;
    while g.io[qi].cq_head() != slot {
        g.flush(qi).map_err(e)?;
    }
    Ok(())
}

fn probe(env: &Env) -> CaseResult {
    use crate::sys::{
        VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT as REPORT,
        VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP as STOP,
        VFIO_DEVICE_FEATURE_GET as GET,
        VFIO_DEVICE_FEATURE_SET as SET, //
    };
    env.a
        .dma_logging_probe()
        .map_err(|x| format!("nvme-vfio-pci VF: {x}"))?;
    for (flags, what) in [
        (SET | STOP, "SET | DMA_LOGGING_STOP"),
        (GET | REPORT, "GET | DMA_LOGGING_REPORT"),
    ] {
        env.a
            .dma_logging_probe_feature(flags)
            .map_err(|x| format!("nvme-vfio-pci VF: PROBE | {what}: {x}"))?;
    }
    let plain = Device::open(&env.plain, &env.iommufd).map_err(e)?;
    expect_errno(
        plain.dma_logging_probe(),
        libc::ENOTTY,
        "plain vfio-pci VF: PROBE | SET | DMA_LOGGING_START",
    )?;
    expect_errno(
        plain.dma_logging_start(PG, &[env.tracked()]),
        libc::ENOTTY,
        "plain vfio-pci VF: DMA_LOGGING_START",
    )?;
    drop(plain);
    // The granularity granted: 4 KiB as asked; below 4 KiB, 4 KiB (the
    // device's finest: coarser than asked, never finer than it tracks).
    for ask in [PG, 512] {
        let granted = env
            .a
            .dma_logging_start(ask, &[env.tracked()])
            .map_err(|x| format!("START at page_size {ask}: {x}"))?;
        env.a
            .dma_logging_stop()
            .map_err(|x| format!("STOP after START at page_size {ask}: {x}"))?;
        ensure(granted == PG, || {
            format!("START at page_size {ask} granted {granted}, expected 4096")
        })?;
        println!("# START at page_size {ask}: granted {granted}");
    }
    Ok(())
}

fn reads_reported_exactly(env: &Env) -> CaseResult {
    let mut g = env.guest()?;
    let mut labels = Labels::of(&g);
    let lbas: Vec<u64> = (1000..1012).collect();
    // Written before logging starts: neither these writes' completions nor
    // anything else before START is reported.
    write_blocks(&mut g, &lbas, &mut labels)?;
    // Queue 1's completions of the reads cross from the first page of its
    // CQ into the second; queue 2's stay in its first page.
    advance_cq(&mut g, 0, CQE_PER_PAGE - 3)?;
    let mark = cq_mark(&g);
    start(&env.a, &[env.tracked()])?;
    let data = read_blocks(&mut g, &lbas, &[], &mut labels)?;
    let cq = cq_pages(&g, &mark, lbas.len())?;
    let (q1, q2) = (g.io[0].cq_iova(), g.io[1].cq_iova());
    ensure(
        cq.contains(&q1) && cq.contains(&(q1 + PG)) && !cq.contains(&(q2 + PG)),
        || {
            format!("the test's layout: completions went to CQ pages {cq:x?}, expected both of queue 1's, one of queue 2's")
        },
    )?;
    let want: BTreeSet<u64> = data.union(&cq).copied().collect();
    let got = report(&env.a, env.tracked(), PG)?;
    expect_units(&format!("{} reads", lbas.len()), &got, &want, PG, &labels)?;
    env.a.dma_logging_stop().map_err(e)
}

fn clear_on_read(env: &Env) -> CaseResult {
    let mut g = env.guest()?;
    let mut labels = Labels::of(&g);
    let first: Vec<u64> = (2000..2006).collect();
    let second: Vec<u64> = (2006..2012).collect();
    write_blocks(
        &mut g,
        &[first.clone(), second.clone()].concat(),
        &mut labels,
    )?;
    start(&env.a, &[env.tracked()])?;
    reads_reported(
        "first reads",
        &env.a,
        env.tracked(),
        &mut g,
        &first,
        &mut labels,
    )?;
    // Nothing written since: every REPORT is empty, at any unit.
    for size in [PG, SZ_2M] {
        expect_none(
            "REPORT with no I/O since the last REPORT",
            &env.a,
            env.tracked(),
            size,
            &labels,
        )?;
    }
    // New writes are reported, the ones already reported are not again.
    reads_reported(
        "second reads",
        &env.a,
        env.tracked(),
        &mut g,
        &second,
        &mut labels,
    )?;
    env.a.dma_logging_stop().map_err(e)
}

fn writes_not_reported(env: &Env) -> CaseResult {
    let mut g = env.guest()?;
    let mut labels = Labels::of(&g);
    let lbas: Vec<u64> = (3000..3010).collect();
    start(&env.a, &[env.tracked()])?;
    let mark = cq_mark(&g);
    write_blocks(&mut g, &lbas, &mut labels)?;
    g.flush(0).map_err(e)?;
    // The device read the SQ entries and the data; it wrote only CQ entries.
    let want = cq_pages(&g, &mark, lbas.len() + 1)?;
    let got = report(&env.a, env.tracked(), PG)?;
    expect_units(
        &format!("{} writes and a flush", lbas.len()),
        &got,
        &want,
        PG,
        &labels,
    )?;
    env.a.dma_logging_stop().map_err(e)?;
    // The writes did land.
    g.verify_all().map_err(e)?;
    Ok(())
}

fn several_ranges(env: &Env) -> CaseResult {
    let mut g = env.guest()?;
    let mut labels = Labels::of(&g);
    let lbas: Vec<u64> = (4000..4008).collect();
    write_blocks(&mut g, &lbas, &mut labels)?;
    let (first, second) = (env.tracked(), range(&env.second));
    start(&env.a, &[first, second])?;
    let mark = cq_mark(&g);
    // Data into the second range, then into a mapping no range covers;
    // the queues stay in the first.
    g.arena = Rc::clone(&env.second);
    let in_second = read_blocks(&mut g, &lbas[..4], &[], &mut labels);
    g.arena = Rc::clone(&env.untracked);
    let mut outside = Labels::default();
    let in_untracked = read_blocks(&mut g, &lbas[4..], &[], &mut outside);
    g.arena = Rc::clone(&env.arena);
    let in_second = in_second?;
    in_untracked?;
    for (p, what) in outside.0 {
        labels.0.insert(p, format!("{what}, untracked mapping"));
    }
    let cq = cq_pages(&g, &mark, lbas.len())?;
    // A REPORT over each range, the second first: each clears only its own.
    let got = report(&env.a, second, PG)?;
    expect_units("second range", &got, &in_second, PG, &labels)?;
    let got = report(&env.a, first, PG)?;
    expect_units("first range", &got, &cq, PG, &labels)?;
    expect_errno(
        env.a
            .dma_logging_report(UNTRACKED_BASE, UNTRACKED_LEN as u64, PG),
        libc::EINVAL,
        "REPORT over the untracked mapping",
    )?;
    env.a.dma_logging_stop().map_err(e)
}

fn coarse_report_page(env: &Env) -> CaseResult {
    let mut g = env.guest()?;
    let mut labels = Labels::of(&g);
    let lbas: Vec<u64> = (5000..5006).collect();
    write_blocks(&mut g, &lbas, &mut labels)?;
    start(&env.a, &[env.tracked()])?;
    let (base, _) = env.tracked();
    // 64 KiB units: two reads in one unit, one two units further (the
    // unit between them stays clean).
    let u = g.arena.used().next_multiple_of(SZ_64K as usize);
    let k = SZ_64K as usize;
    let mark = cq_mark(&g);
    let data = read_blocks(&mut g, &lbas[..3], &[u, u + 4096, u + 2 * k], &mut labels)?;
    let cq = cq_pages(&g, &mark, 3)?;
    let want = units(&data.union(&cq).copied().collect(), base, SZ_64K);
    let got = report(&env.a, env.tracked(), SZ_64K)?;
    expect_units("64 KiB units", &got, &want, SZ_64K, &labels)?;
    // 2 MiB units: the first and last page of one unit, then a read two
    // units further.
    let m = SZ_2M as usize;
    let v = g.arena.used().next_multiple_of(m);
    let mark = cq_mark(&g);
    let data = read_blocks(
        &mut g,
        &lbas[3..],
        &[v, v + m - 4096, v + 2 * m],
        &mut labels,
    )?;
    let cq = cq_pages(&g, &mark, 3)?;
    let want = units(&data.union(&cq).copied().collect(), base, SZ_2M);
    let got = report(&env.a, env.tracked(), SZ_2M)?;
    expect_units("2 MiB units", &got, &want, SZ_2M, &labels)?;
    // The coarse REPORTs cleared every page they reported.
    expect_none(
        "4 KiB REPORT after the coarse ones",
        &env.a,
        env.tracked(),
        PG,
        &labels,
    )?;
    env.a.dma_logging_stop().map_err(e)
}

fn refusals(env: &Env) -> CaseResult {
    let a = &env.a;
    a.reset().map_err(e)?;
    let (base, _) = env.tracked();
    let first = (base, 8 << 20);
    let second = (base + (16 << 20), 8 << 20);
    expect_errno(a.dma_logging_stop(), libc::EINVAL, "STOP without START")?;
    expect_errno(
        a.dma_logging_report(base, 16 * PG, PG),
        libc::EINVAL,
        "REPORT without START",
    )?;
    // A refused START starts nothing: the STOP after it fails too.
    let bad: [(&str, Vec<(u64, u64)>); 4] = [
        (
            "a range IOVA not page_size aligned",
            vec![(base + 512, 2 * PG)],
        ),
        (
            "a range length not page_size aligned",
            vec![(base, PG + 512)],
        ),
        (
            "overlapping ranges",
            vec![(base, 4 * PG), (base + 2 * PG, 4 * PG)],
        ),
        ("no range", vec![]),
    ];
    for (what, ranges) in &bad {
        expect_errno(
            a.dma_logging_start(PG, ranges),
            libc::EINVAL,
            &format!("START with {what}"),
        )?;
        expect_errno(
            a.dma_logging_stop(),
            libc::EINVAL,
            &format!("STOP after the refused START with {what}"),
        )?;
    }
    start(a, &[first, second])?;
    expect_errno(
        a.dma_logging_start(PG, &[first, second]),
        libc::EINVAL,
        "second START while logging",
    )?;
    expect_errno(
        a.dma_logging_start(PG, &[range(&env.untracked)]),
        libc::EINVAL,
        "second START (other ranges) while logging",
    )?;
    let outside: [(&str, u64, u64); 5] = [
        (
            "a mapped IOVA range no range covers",
            UNTRACKED_BASE,
            16 * PG,
        ),
        (
            "a range straddling the end of the first",
            first.0 + first.1 - 2 * PG,
            4 * PG,
        ),
        (
            "the gap between the ranges",
            first.0 + first.1,
            second.0 - first.0 - first.1,
        ),
        (
            "a range straddling the start of the second",
            second.0 - PG,
            2 * PG,
        ),
        (
            "both ranges and the gap",
            first.0,
            second.0 + second.1 - first.0,
        ),
    ];
    for (what, iova, len) in outside {
        expect_errno(
            a.dma_logging_report(iova, len, PG),
            libc::EINVAL,
            &format!("REPORT of {what} [{iova:#x}, {:#x})", iova + len),
        )?;
    }
    expect_errno(
        a.dma_logging_report(first.0, first.1, 2048),
        libc::EINVAL,
        "REPORT at page_size 2048",
    )?;
    // The refusals left logging on: both ranges report (nothing: the
    // controller is disabled since the reset and wrote nothing), STOP works once.
    for r in [first, second] {
        let got = report(a, r, PG).map_err(|x| format!("REPORT after the refusals: {x}"))?;
        ensure(got.is_empty(), || {
            format!("{} pages dirty with no I/O: {got:x?}", got.len())
        })?;
    }
    a.dma_logging_stop().map_err(e)?;
    expect_errno(a.dma_logging_stop(), libc::EINVAL, "STOP after STOP")?;
    expect_errno(
        a.dma_logging_report(first.0, first.1, PG),
        libc::EINVAL,
        "REPORT after STOP",
    )
}

fn reset_stops_logging(env: &Env) -> CaseResult {
    let mut g = env.guest()?;
    let mut labels = Labels::of(&g);
    let lbas: Vec<u64> = (6000..6004).collect();
    write_blocks(&mut g, &lbas, &mut labels)?;
    start(&env.a, &[env.tracked()])?;
    // Dirty pages are logged, unreported, when the reset comes.
    read_blocks(&mut g, &lbas, &[], &mut labels)?;
    drop(g);
    env.a.reset().map_err(e)?;
    expect_errno(
        env.a.dma_logging_report(ARENA_BASE, ARENA_LEN as u64, PG),
        libc::EINVAL,
        "REPORT after VFIO_DEVICE_RESET",
    )?;
    expect_errno(
        env.a.dma_logging_stop(),
        libc::EINVAL,
        "STOP after VFIO_DEVICE_RESET",
    )?;
    // START works again, from a clean log.
    let mut g = env.guest()?;
    let mut labels = Labels::of(&g);
    start(&env.a, &[env.tracked()]).map_err(|x| format!("START after the reset: {x}"))?;
    expect_none(
        "REPORT right after the new START",
        &env.a,
        env.tracked(),
        PG,
        &labels,
    )?;
    reads_reported(
        "reads after the reset",
        &env.a,
        env.tracked(),
        &mut g,
        &lbas,
        &mut labels,
    )?;
    env.a.dma_logging_stop().map_err(e)
}

fn close_stops_logging(env: &Env) -> CaseResult {
    let c = Device::open(&env.cdev_c, &env.iommufd).map_err(e)?;
    let mut g = guest(&c, &env.arena)?;
    let mut labels = Labels::of(&g);
    let lbas: Vec<u64> = (7000..7004).collect();
    write_blocks(&mut g, &lbas, &mut labels)?;
    start(&c, &[env.tracked()])?;
    read_blocks(&mut g, &lbas, &[], &mut labels)?;
    // Closed while logging, with dirty pages unreported. The guest's
    // register access holds the device file too.
    drop(g);
    drop(c);
    let c = Device::open(&env.cdev_c, &env.iommufd).map_err(e)?;
    start(&c, &[env.tracked()]).map_err(|x| format!("START after close and reopen: {x}"))?;
    let r = expect_none(
        "REPORT right after START on the reopened device",
        &c,
        env.tracked(),
        PG,
        &labels,
    );
    c.dma_logging_stop().map_err(e)?;
    r
}

/// A case of the suite.
type Case = fn(&Env) -> CaseResult;

/// The cases, in order (the KTAP plan is their number).
const CASES: [(&str, Case); 9] = [
    ("probe", probe),
    ("reads_reported_exactly", reads_reported_exactly),
    ("clear_on_read", clear_on_read),
    ("writes_not_reported", writes_not_reported),
    ("several_ranges", several_ranges),
    ("coarse_report_page", coarse_report_page),
    ("refusals", refusals),
    ("reset_stops_logging", reset_stops_logging),
    ("close_stops_logging", close_stops_logging),
];

/// Runs the suite; returns the number of failed cases.
pub fn run(s: &Setup) -> usize {
    let mut k = Ktap::begin("dma_logging", CASES.len(), s.filter.clone());
    let open = || -> Result<Env, String> {
        let iommufd = Iommufd::open().map_err(e)?;
        let arena = arena(&iommufd)?;
        let second = Arena::new(&iommufd, SECOND_LEN, SECOND_BASE).map_err(e)?;
        let untracked = Arena::new(&iommufd, UNTRACKED_LEN, UNTRACKED_BASE).map_err(e)?;
        let a = Device::open(&s.a, &iommufd).map_err(e)?;
        Ok(Env {
            iommufd,
            arena,
            second,
            untracked,
            a,
            cdev_c: s.c.clone(),
            plain: s.plain.clone(),
        })
    };
    let env = match open() {
        Ok(env) => env,
        Err(x) => {
            k.case("setup", || Err(x.clone()));
            return k.failed().max(1);
        }
    };
    for (name, f) in CASES {
        k.case(name, || f(&env));
        // A failed case may leave logging on: the next starts clean.
        let _ = env.a.dma_logging_stop();
    }
    let _ = env.a.reset();
    k.failed()
}
