// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm bench`: repeated live migrations of a VF running I/O between two
//! VFs (ping-pong), with the distribution of the downtime and of each
//! phase, and the cost of `MIG_DATA_SIZE`. Numbers only: no pass/fail.

use crate::dma::Arena;
use crate::migrate::{migrate, INFLIGHT};
use crate::selftest::guest::Guest;
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{
    Duration,
    Instant, //
};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// min, median, p99 and max of `v` (sorted in place), in milliseconds.
fn summary(v: &mut [Duration]) -> String {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {:7.2}  median {:7.2}  p99 {:7.2}  max {:7.2} ms",
        ms(v[0]),
        ms(at(0.5)),
        ms(at(0.99)),
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
