// SPDX-License-Identifier: GPL-2.0

//! The PF-side live migration service of nvme-pci, end to end: two VFs are
//! bound to its test driver (a vfio-pci variant holding each VF's
//! migration handle, with the service's operations in debugfs) while the
//! userspace client drives them through VFIO. Writes the client makes must
//! appear in the kernel-owned CDQ, and a VF must migrate with every command
//! sent through the service.

use super::guest::Guest;
use super::{
    ensure,
    udmq_ranges,
    CaseResult,
    Ktap, //
};
use crate::codec::udmq::{
    Entry,
    Marker, //
};
use crate::dma::Arena;
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::io::Write;
use std::path::{
    Path,
    PathBuf, //
};
use std::rc::Rc;

/// What the suite runs against.
pub struct Setup {
    /// Source VF: VFIO cdev and test-driver debugfs directory.
    pub a: (PathBuf, PathBuf),
    /// Destination VF: the same.
    pub b: (PathBuf, PathBuf),
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

/// Runs a test-driver command; the write fails with the operation's errno.
fn cmd(dir: &Path, c: &str) -> CaseResult {
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cmd"))
        .and_then(|mut f| f.write_all(c.as_bytes()))
        .map_err(|e| format!("'{c}' on {}: {e}", dir.display()))
}

/// Consumes CDQ entries through the service.
fn cdq_entries(dir: &Path) -> Result<Vec<Entry>, String> {
    let raw = std::fs::read(dir.join("cdq")).map_err(|e| format!("read cdq: {e}"))?;
    raw.chunks(32)
        .map(|c| Entry::parse(c).map_err(|e| e.reason().to_string()))
        .collect()
}

struct Env {
    arena: Rc<Arena>,
    a: Device,
    b: Device,
    dir_a: PathBuf,
    dir_b: PathBuf,
    _iommufd: Iommufd,
}

fn cdq_logs_writes(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let d = &env.dir_a;
    let _ = cmd(d, "cdq-destroy");
    cmd(d, "cdq-create 16")?;
    cmd(d, "cdq-start")?;
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 32).map_err(e)?;
    let first = cdq_entries(d)?;
    ensure(first.len() == 1 && first[0].marker == Marker::First, || {
        format!("after start: {first:?}")
    })?;
    // 5 rounds of 6 writes through a 16-entry ring, consumed each round.
    let mut total = 0;
    for round in 0..5u64 {
        let mut want = Vec::new();
        for i in 0..6u64 {
            let (slba, nlb) = (100 * round + 7 * i, 1 + (i % 4) as u16);
            g.write_range(0, slba, nlb).map_err(e)?;
            want.push((slba, u32::from(nlb) - 1));
        }
        if round == 4 {
            g.write_zeroes(0, 900, 2).map_err(e)?;
            g.deallocate(0, &[(950, 3)]).map_err(e)?;
            want.extend([(900, 1), (950, 2)]);
        }
        want.sort_unstable();
        let got = cdq_entries(d)?;
        ensure(udmq_ranges(&got) == want, || {
            format!(
                "round {round}: logged {:?}, expected {want:?}",
                udmq_ranges(&got)
            )
        })?;
        total += got.len();
    }
    cmd(d, "cdq-stop")?;
    cmd(d, "cdq-destroy")?;
    println!("# {total} entries of the client's writes read back through the kernel service");
    Ok(())
}

fn migrate_through_service(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let (da, db) = (&env.dir_a, &env.dir_b);
    let _ = cmd(da, "resume");
    let _ = cmd(db, "resume");
    env.a.reset().map_err(e)?;
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 2, 32).map_err(e)?;
    for lba in 2000..2032u64 {
        g.submit_write((lba % 2) as usize, lba, true).map_err(e)?;
    }
    g.drain(20_000).map_err(e)?;
    for lba in 2032..2040u64 {
        g.submit_write((lba % 2) as usize, lba, false).map_err(e)?;
        g.submit_read((lba % 2) as usize, lba - 32, false)
            .map_err(e)?;
    }
    g.ring_all().map_err(e)?;
    cmd(da, "suspend")?;
    for lba in 2040..2048u64 {
        g.submit_write((lba % 2) as usize, lba, false).map_err(e)?;
    }
    g.ring_all().map_err(e)?;
    cmd(da, "get-state")?;
    let state = std::fs::read(da.join("state")).map_err(e)?;
    // The destination as a VMM leaves it: reset, bus master restored.
    env.b.reset().map_err(e)?;
    let irqs_b = Guest::destination(&env.b).map_err(e)?;
    cmd(db, "suspend")?;
    std::fs::write(db.join("state"), &state).map_err(e)?;
    cmd(db, "set-state 3")?;
    cmd(db, "resume")?;
    g.switch_to(&env.b, irqs_b).map_err(e)?;
    let inflight = g.pending.len();
    g.drain(20_000).map_err(|x| format!("on B: {x}"))?;
    // B went on from A's SQ heads: every entry consumed once.
    g.sq_heads_at_tail().map_err(|x| format!("on B: {x}"))?;
    let verified = g.verify_all().map_err(e)?;
    println!(
        "# {inflight} in-flight commands and {} bytes of state moved through the service; {verified} blocks verified on B",
        state.len()
    );
    env.a.reset().map_err(e)
}

/// Runs the suite; returns the number of failed cases.
pub fn run(s: &Setup) -> usize {
    let mut k = Ktap::begin("pf_service_io", 2, s.filter.clone());
    let open = || -> Result<Env, String> {
        let e = |x: std::io::Error| x.to_string();
        let iommufd = Iommufd::open().map_err(e)?;
        let arena = Arena::new(&iommufd, 32 << 20, 0x3_0000_0000).map_err(e)?;
        let a = Device::open(&s.a.0, &iommufd).map_err(e)?;
        let b = Device::open(&s.b.0, &iommufd).map_err(e)?;
        Ok(Env {
            arena,
            a,
            b,
            dir_a: s.a.1.clone(),
            dir_b: s.b.1.clone(),
            _iommufd: iommufd,
        })
    };
    let env = match open() {
        Ok(env) => env,
        Err(e) => {
            k.case("setup", || Err(e.clone()));
            return k.failed().max(1);
        }
    };
    k.case("cdq_logs_client_writes", || cdq_logs_writes(&env));
    k.case("migrate_through_service", || migrate_through_service(&env));
    k.failed()
}
