// SPDX-License-Identifier: GPL-2.0

//! `nvme_vfio_pci` under concurrency: migrations of VFs of two PFs at the
//! same time, each with I/O and on its own thread; and every request a
//! VMM can make on one device (state changes, resets, data file reads,
//! queries) racing from several threads. Nothing may hang or crash, and
//! the device is RUNNING and works after one reset. (Kernel warnings,
//! lockdep and leaks: the suite's shell wrapper and run-tests.sh.)

use super::guest::{Guest, FULL_DEPTH, FULL_QUEUES};
use super::migration::e;
use super::{ensure, CaseResult, Ktap};
use crate::dma::Arena;
use crate::fail;
use crate::migrate::migrate;
use crate::migration::State;
use crate::vfio::{Device, Iommufd};
use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the suite runs on: a source and a destination VF on each of two
/// PFs (all bound to nvme-vfio-pci, not open).
pub struct Setup {
    /// `(source, destination)` VFIO cdevs of the first PF.
    pub first: (PathBuf, PathBuf),
    /// `(source, destination)` VFIO cdevs of the second PF.
    pub second: (PathBuf, PathBuf),
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

/// One migration with I/O, on the calling thread (everything it uses is
/// made here: a guest's memory is not shared between threads).
fn migrate_pair(pair: &(PathBuf, PathBuf), iova: u64) -> Result<String, String> {
    let iommufd = Iommufd::open().map_err(e)?;
    let arena = Arena::new(&iommufd, 32 << 20, iova).map_err(e)?;
    let a = Device::open(&pair.0, &iommufd).map_err(e)?;
    let b = Device::open(&pair.1, &iommufd).map_err(e)?;
    a.reset().map_err(e)?;
    b.reset().map_err(e)?;
    let mut g = Guest::start(&a, Rc::clone(&arena), FULL_QUEUES, FULL_DEPTH).map_err(e)?;
    let r = migrate(&a, &b, &mut g, 64, 4096)?;
    r.check()?;
    let first = r.render()?.lines().next().unwrap_or_default().to_string();
    a.reset().map_err(e)?;
    b.reset().map_err(e)?;
    Ok(first)
}

/// VFs of both PFs migrate at the same time, three rounds.
fn parallel_migrations(s: &Setup) -> CaseResult {
    for round in 0..3 {
        let (r1, r2) = std::thread::scope(|sc| {
            let t1 = sc.spawn(|| migrate_pair(&s.first, 0x7_0000_0000));
            let t2 = sc.spawn(|| migrate_pair(&s.second, 0x7_8000_0000));
            (t1.join(), t2.join())
        });
        for (name, r) in [("first PF", r1), ("second PF", r2)] {
            match r {
                Ok(Ok(line)) => println!("# round {round}, {name}: {line}"),
                Ok(Err(x)) => fail!("round {round}, {name}: {x}"),
                Err(_) => fail!("round {round}, {name}: the thread panicked"),
            }
        }
    }
    Ok(())
}

/// The states a racing thread asks for, in turn.
const TARGETS: [State; 7] = [
    State::PreCopy,
    State::PreCopyP2p,
    State::StopCopy,
    State::Stop,
    State::Resuming,
    State::RunningP2p,
    State::Running,
];

/// State changes with data file reads, resets, and queries race on one
/// device for a few seconds.
fn racing_requests(s: &Setup) -> CaseResult {
    const RUN: Duration = Duration::from_secs(8);
    let iommufd = Iommufd::open().map_err(e)?;
    let arena = Arena::new(&iommufd, 16 << 20, 0x7_0000_0000).map_err(e)?;
    let a = Device::open(&s.first.0, &iommufd).map_err(e)?;
    a.reset().map_err(e)?;
    let stop = AtomicBool::new(false);
    let (steps, resets, queries, bytes) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for offset in 0..2 {
            let (a, stop, steps, bytes) = (&a, &stop, &steps, &bytes);
            sc.spawn(move || {
                let mut i = offset * 3;
                while !stop.load(Ordering::Relaxed) {
                    let to = TARGETS[i % TARGETS.len()];
                    i += 1;
                    if let Ok(Some(mut f)) = a.set_mig_state(to) {
                        let mut buf = [0u8; 4096];
                        if let Ok(n) = f.0.read(&mut buf) {
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                    steps.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        {
            let (a, stop, resets) = (&a, &stop, &resets);
            sc.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = a.reset();
                    resets.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        {
            let (a, stop, queries) = (&a, &stop, &queries);
            sc.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = a.mig_state();
                    let _ = a.mig_data_size();
                    queries.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
    });
    println!(
        "# {:.1} s: {} state changes, {} resets, {} queries, {} bytes read",
        t0.elapsed().as_secs_f64(),
        steps.load(Ordering::Relaxed),
        resets.load(Ordering::Relaxed),
        queries.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
    ensure(steps.load(Ordering::Relaxed) > 0, || "no step ran".into())?;
    a.reset().map_err(e)?;
    let st = a.mig_state().map_err(e)?;
    ensure(st == State::Running, || {
        format!("{st:?} after the final reset")
    })?;
    let mut g = Guest::start(&a, Rc::clone(&arena), 1, 16).map_err(e)?;
    g.write_range(0, 1000, 2).map_err(e)?;
    g.verify_all().map_err(e)?;
    drop(g);
    a.reset().map_err(e)
}

/// Runs the suite; returns the number of failed cases.
pub fn run(s: &Setup) -> usize {
    let mut k = Ktap::begin("concurrency", 2, s.filter.clone());
    k.case("parallel_migrations_two_pfs", || parallel_migrations(s));
    k.case("racing_requests_one_device", || racing_requests(s));
    k.failed()
}
