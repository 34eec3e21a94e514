// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm`: host-side tool for nvme-vfio.

use clap::{
    Parser,
    Subcommand, //
};
use nvme_lm::vfio::{
    Device,
    DmaBuffer,
    Iommufd, //
};
use std::path::{
    Path,
    PathBuf, //
};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "nvme-lm", about = "nvme-vfio host tool", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open a VFIO device cdev, bind it to iommufd, attach it to a new IOAS,
    /// map a DMA buffer and read its PCI identity.
    VfioProbe {
        /// The device cdev, e.g. /dev/vfio/devices/vfio0.
        cdev: PathBuf,
        /// Fail unless config space reads this VENDOR:DEVICE (hex).
        #[arg(long)]
        expect_id: Option<String>,
    },
    /// Live-migration capabilities of an NVMe controller (a PF's /dev/nvmeN).
    Caps {
        /// The controller's character device.
        dev: PathBuf,
    },
    /// Decode a migration stream (or a bare controller state) from a file.
    Inspect {
        /// The file ("-" for standard input).
        file: PathBuf,
    },
    /// Migration features and state of a VFIO device (plain vfio-pci
    /// devices have none).
    MigInfo {
        /// The device's VFIO cdev.
        cdev: PathBuf,
    },
    /// Live-migrate a VF running I/O to another VF through the VFIO
    /// migration uAPI (both bound to nvme-vfio-pci, no VMM) and report.
    Migrate {
        /// Source VF: its VFIO cdev.
        #[arg(long)]
        vf_a: PathBuf,
        /// Destination VF: its VFIO cdev.
        #[arg(long)]
        vf_b: PathBuf,
        /// Blocks to write (and verify on the destination) before the move.
        #[arg(long, default_value_t = 256)]
        blocks: u64,
    },
    /// Media migration: a VF whose storage is a private namespace moves to
    /// a VF of another subsystem with the namespace's data in the stream
    /// (both VFs opted in: media_migration), the client running random
    /// writes, Write Zeroes and deallocates through the PRE_COPY rounds;
    /// then the client verifies its model on the destination. Prints the
    /// rounds, the bytes of each phase, the downtime and the records.
    MediaMigrate {
        /// Source VF: its VFIO cdev.
        #[arg(long)]
        vf_a: PathBuf,
        /// Destination VF: its VFIO cdev.
        #[arg(long)]
        vf_b: PathBuf,
        /// The namespace the client runs on: the VFs' private one.
        #[arg(long)]
        nsid: u32,
        /// PRE_COPY rounds with the load running (then rounds without it
        /// until the source converges).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Commands the client issues before each read of the stream (a
        /// burst of 8 times as many opens each loaded round); 0: no load.
        #[arg(long, default_value_t = 8)]
        rate: usize,
        /// Instead of --rate: a steady load of about this many MB (10^6
        /// bytes) a second written, zeroed or deallocated through the
        /// loaded rounds, whatever the size of the reads of the stream.
        #[arg(long)]
        load_mbps: Option<f64>,
        /// A PRE_COPY round that takes longer than this many seconds fails,
        /// naming how far it got (0: no limit).
        #[arg(long, default_value_t = 0)]
        round_seconds: u64,
        /// With --load-mbps: each loaded round after the first begins with
        /// this many milliseconds of the load alone (no read), as a guest
        /// writes on between a VMM's iterations, so that every round has
        /// dirty data to send.
        #[arg(long, default_value_t = 1000)]
        round_gap_ms: u64,
        /// Bytes of each data_fd read and destination write.
        #[arg(long, default_value_t = 1 << 20)]
        chunk: usize,
        /// Fail unless the kernel logs that the dirty-LBA queue filled up.
        #[arg(long)]
        expect_cdq_full: bool,
        /// Keep the stream in this file.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Write here the LBA ranges ("SLBA NLB" lines) of the commands in
        /// flight at the stop: those the source had not fetched run on the
        /// destination only, so the two namespaces may differ there (the
        /// client's model checks them on the destination).
        #[arg(long)]
        in_flight_ranges: Option<PathBuf>,
        /// The namespace was never written (reads zeroes): do not clear it
        /// with Write Zeroes first.
        #[arg(long)]
        fresh: bool,
        /// The namespace holds data written before (e.g. through the PF):
        /// do not clear it; blocks the client does not write are not
        /// checked on the destination.
        #[arg(long, conflicts_with = "fresh")]
        keep: bool,
        /// MiB the client writes before the migration (256 KiB extents at
        /// random places).
        #[arg(long, default_value_t = 4)]
        prefill_mib: u64,
        /// Random blocks read back on the destination, besides the written
        /// ones.
        #[arg(long, default_value_t = 4096)]
        samples: usize,
        /// Seed of the load (decimal or 0x hex); random if absent.
        #[arg(long)]
        seed: Option<String>,
        /// Converged: a round ends with initial_bytes 0 and at most this
        /// many dirty bytes.
        #[arg(long, default_value_t = 1 << 20)]
        converge_bytes: u64,
        /// Rounds without load allowed to converge.
        #[arg(long, default_value_t = 8)]
        quiet_rounds: usize,
        /// Only read the source's stream in PRE_COPY (no destination, no
        /// stop), then put the source back to RUNNING: the source alone.
        #[arg(long)]
        source_only: bool,
        /// Stop the device in PRE_COPY round 1 as soon as initial_bytes is
        /// at most this many MiB (the bulk copy under way), converged or
        /// not.
        #[arg(long)]
        stop_at_initial_mib: Option<u64>,
    },
    /// Feeds a captured media-migration stream, or a bad stream made from
    /// it, to a destination VF in RESUMING (one write per record) and
    /// checks how it ends; the destination is reset afterwards.
    MediaResume {
        /// The destination VF: its VFIO cdev.
        #[arg(long)]
        vf: PathBuf,
        /// The stream (from media-migrate --save).
        #[arg(long)]
        stream: PathBuf,
        /// Change it first: beyond_capacity, unknown_nsid, huge_nlb,
        /// truncated or after_end.
        #[arg(long)]
        mutate: Option<String>,
        /// ok, write:ERRNO (refused at the changed record), stop or
        /// stop:ERRNO (every write accepted, RESUMING -> STOP fails).
        #[arg(long, default_value = "ok")]
        expect: String,
        /// Then feed the unchanged stream, which must load.
        #[arg(long)]
        then_good: bool,
        /// The destination is not opted in to media migration: a refused
        /// write leaves its session as it was (later writes may pass).
        #[arg(long)]
        plain: bool,
    },
    /// Repeated live migrations between two VFs (ping-pong) with I/O in
    /// flight: the distribution of downtime and of each phase.
    Bench {
        /// First VF: its VFIO cdev.
        #[arg(long)]
        vf_a: PathBuf,
        /// Second VF: its VFIO cdev.
        #[arg(long)]
        vf_b: PathBuf,
        /// Migrations to run.
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Blocks written (and verified) around each migration.
        #[arg(long, default_value_t = 16)]
        blocks: u64,
    },
    /// The cost of one DMA-log sync (DMA_LOGGING_REPORT) against the
    /// pages dirtied since the last (0 to 1024 reads into distinct
    /// pages), logging over the guest's memory and over [0, 4 GiB).
    BenchDmaLog {
        /// The VF: its VFIO cdev (bound to nvme-vfio-pci).
        #[arg(long)]
        vf: PathBuf,
        /// Timed syncs per dirty-page count.
        #[arg(long, default_value_t = 20)]
        repeats: usize,
    },
    /// No device: UDMQ entries applied to a media-migration dirty set per
    /// second (256 MiB to 1 TiB namespaces; goal >= 4 M/s) and CRC32C
    /// throughput.
    BenchDirty {
        /// Entries per pass.
        #[arg(long, default_value_t = 4 << 20)]
        entries: usize,
    },
    /// VFIO DMA logging of one VF, no VMM (debugging): start logging over
    /// a guest arena, write then read blocks from LBA 8000 (overwritten),
    /// print every dirty page of one REPORT by what it holds; fails if a
    /// page is missing or unexpected.
    DmaLog {
        /// The VF: its VFIO cdev (bound to nvme-vfio-pci).
        #[arg(long)]
        vf: PathBuf,
        /// Blocks to write then read.
        #[arg(long, default_value_t = 4)]
        reads: usize,
        /// The tracking granularity to ask for, in bytes (the REPORT uses
        /// the one granted).
        #[arg(long, default_value_t = 4096)]
        page_size: u64,
    },
    /// Fuzz the destination's RESUMING path: mutations of real streams of
    /// the source (bit flips, boundary values in every field, truncations,
    /// records repeated, dropped or added, splices, trailing and random
    /// bytes), most with their checksum recomputed, fed through the VFIO
    /// migration uAPI; each must be refused as the driver's codec says (or
    /// load), and the destination, reset after every input and never run,
    /// must stay usable. Both VFs bound to nvme-vfio-pci.
    FuzzResume {
        /// Source VF: its VFIO cdev (saved to get real streams; not used
        /// with --replay or --media-stream).
        #[arg(long, required_unless_present_any = ["replay", "media_stream"])]
        vf_a: Option<PathBuf>,
        /// Destination VF: its VFIO cdev (resumed with each input).
        #[arg(long)]
        vf_b: PathBuf,
        /// The seed (decimal or 0x hex); random (and printed) if absent.
        #[arg(long)]
        seed: Option<String>,
        /// Inputs to feed.
        #[arg(long, default_value_t = 1000)]
        inputs: u64,
        /// Index of the first input (reproduce one: --first N --inputs 1).
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// Real I/O through the destination every this many inputs (and
        /// at the start and the end).
        #[arg(long, default_value_t = 500)]
        io_every: u64,
        /// Longest one input may take, in seconds (then: a hang).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Percentage of inputs whose checksum is recomputed.
        #[arg(long, default_value_t = 90)]
        fix_percent: u32,
        /// Write inputs with an unexpected outcome (and a hanging one) here.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Follow the kernel log: count the driver's refusals, fail on
        /// warnings, BUGs, oopses, lockdep and the like.
        #[arg(long)]
        kmsg: bool,
        /// Feed these files as they are instead (the source is not used).
        #[arg(long)]
        replay: Vec<PathBuf>,
        /// Mutate this media stream (saved by media-migrate --save),
        /// thinned out, instead of the source's streams: the destination
        /// has media migration on (repeatable).
        #[arg(long)]
        media_stream: Vec<PathBuf>,
        /// Also fail when the device refuses a stream the driver let
        /// through that differs only in fields the driver checks.
        #[arg(long)]
        strict_gaps: bool,
        /// Print the outcomes of field mutations per field.
        #[arg(long)]
        by_field: bool,
        /// A field the driver is known not to check that the device does
        /// (its name without indexes, e.g. state.ver): a stream changed
        /// there is reported, not failed, under --strict-gaps.
        #[arg(long)]
        known_gap: Vec<String>,
    },
    /// In-VM test suites against the emulated controller (KTAP output).
    Selftest {
        #[command(subcommand)]
        suite: Suite,
    },
}

#[derive(Subcommand)]
enum Suite {
    /// Host Managed Live Migration: conformance and a full migration.
    Hmlm {
        /// The PF's controller device (bound to nvme).
        #[arg(long)]
        pf: PathBuf,
        /// Source VF: its VFIO cdev.
        #[arg(long)]
        vf_a: PathBuf,
        /// Source VF: its secondary controller ID.
        #[arg(long)]
        scid_a: u16,
        /// Destination VF: its VFIO cdev.
        #[arg(long)]
        vf_b: PathBuf,
        /// Destination VF: its secondary controller ID.
        #[arg(long)]
        scid_b: u16,
        /// Run only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// nvme-vfio-pci under concurrency: two PFs' VFs migrating at once,
    /// and racing requests on one device (four VFs bound to it).
    Concurrency {
        /// First PF: source VF's VFIO cdev.
        #[arg(long)]
        vf_a: PathBuf,
        /// First PF: destination VF's VFIO cdev.
        #[arg(long)]
        vf_b: PathBuf,
        /// Second PF: source VF's VFIO cdev.
        #[arg(long)]
        vf_c: PathBuf,
        /// Second PF: destination VF's VFIO cdev.
        #[arg(long)]
        vf_d: PathBuf,
        /// Run only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// The fault matrix of nvme-vfio-pci: resets, timeouts and killed
    /// processes in every migration state (two VFs bound to it).
    Faults {
        /// Source VF: its PCI address (bound to nvme-vfio-pci).
        #[arg(long)]
        vf_a: String,
        /// Destination VF: its PCI address (likewise).
        #[arg(long)]
        vf_b: String,
        /// The VFs' PF: its PCI address (bound to nvme).
        #[arg(long)]
        pf: String,
        /// VQ resources per VF (to bring VFs back after a PF reset).
        #[arg(long)]
        vq: u16,
        /// VI resources per VF.
        #[arg(long)]
        vi: u16,
        /// Run only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// The VFIO migration uAPI of nvme-vfio-pci (three VFs bound to it).
    Migration {
        /// Source VF: its VFIO cdev.
        #[arg(long)]
        vf_a: PathBuf,
        /// Destination VF: its VFIO cdev.
        #[arg(long)]
        vf_b: PathBuf,
        /// A third VF: its VFIO cdev.
        #[arg(long)]
        vf_c: PathBuf,
        /// The most bytes one admin command of the VFs' PF transfers (the
        /// kernel's limit from MDTS).
        #[arg(long)]
        pf_max_transfer: usize,
        /// The VFs' PF (/dev/nvmeN).
        #[arg(long)]
        pf: PathBuf,
        /// Run only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// VFIO DMA logging of nvme-vfio-pci (Track Memory Changes): exact
    /// dirty pages, refusals, reset and close.
    DmaLogging {
        /// The VF the cases use: its VFIO cdev (bound to nvme-vfio-pci).
        #[arg(long)]
        vf: PathBuf,
        /// A second VF bound to nvme-vfio-pci (closed and reopened).
        #[arg(long)]
        vf_c: PathBuf,
        /// A VF bound to plain vfio-pci (no DMA logging).
        #[arg(long)]
        vf_plain: PathBuf,
        /// Run only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Plain I/O through a VFIO device (write, flush, read back, verify).
    Io {
        /// The device's VFIO cdev.
        #[arg(long)]
        vf: PathBuf,
    },
    /// The nvme-pci live migration service, through its test driver.
    Service {
        /// Source VF: its VFIO cdev.
        #[arg(long)]
        vf_a: PathBuf,
        /// Source VF: the test driver's debugfs directory.
        #[arg(long)]
        dbg_a: PathBuf,
        /// Destination VF: its VFIO cdev.
        #[arg(long)]
        vf_b: PathBuf,
        /// Destination VF: the test driver's debugfs directory.
        #[arg(long)]
        dbg_b: PathBuf,
        /// Run only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Controller Data Queue (dirty LBA logging), PF driven from userspace.
    Cdq {
        /// The PF's PCI address (bound to vfio-pci).
        #[arg(long)]
        pf_bdf: String,
        /// The PF's VFIO cdev.
        #[arg(long)]
        pf_cdev: PathBuf,
        /// Run only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
}

fn parse_id(s: &str) -> Result<(u16, u16), String> {
    let (v, d) = s.split_once(':').ok_or("expected VENDOR:DEVICE")?;
    let hex = |x: &str| u16::from_str_radix(x, 16).map_err(|e| format!("{x}: {e}"));
    Ok((hex(v)?, hex(d)?))
}

fn vfio_probe(cdev: &Path, expect: Option<&str>) -> Result<(), String> {
    let iommufd = Iommufd::open().map_err(|e| e.to_string())?;
    let dev = Device::open(cdev, &iommufd).map_err(|e| e.to_string())?;
    let info = dev.info();
    println!(
        "{}: devid {} ioas {} regions {} irqs {} flags {:#x}",
        cdev.display(),
        dev.devid(),
        iommufd.ioas(),
        info.num_regions,
        info.num_irqs,
        info.flags
    );
    let bar0 = dev
        .region(nvme_lm::sys::VFIO_PCI_BAR0_REGION_INDEX)
        .map_err(|e| e.to_string())?;
    println!("BAR0: {} bytes, flags {:#x}", bar0.size, bar0.flags);
    let buf = DmaBuffer::new(2 << 20).map_err(|e| e.to_string())?;
    let iova = 0x1000_0000;
    iommufd.map(&buf, iova).map_err(|e| e.to_string())?;
    iommufd
        .unmap(iova, buf.len() as u64)
        .map_err(|e| e.to_string())?;
    println!(
        "mapped and unmapped {} bytes at IOVA {:#x}",
        buf.len(),
        iova
    );
    let (v, d) = dev.pci_id().map_err(|e| e.to_string())?;
    println!("config space: {v:04x}:{d:04x}");
    if let Some(want) = expect {
        let (wv, wd) = parse_id(want)?;
        if (v, d) != (wv, wd) {
            return Err(format!(
                "config space reads {v:04x}:{d:04x}, expected {want}"
            ));
        }
    }
    Ok(())
}

fn mig_info(cdev: &Path) -> Result<(), String> {
    let iommufd = Iommufd::open().map_err(|e| e.to_string())?;
    let dev = Device::open(cdev, &iommufd).map_err(|e| e.to_string())?;
    match dev.migration_flags() {
        Ok(flags) => {
            let names = [(1, "STOP_COPY"), (2, "P2P"), (4, "PRE_COPY")];
            let set: Vec<_> = names
                .iter()
                .filter(|(b, _)| flags & b != 0)
                .map(|(_, n)| *n)
                .collect();
            println!("migration: {}", set.join(" | "));
            let state = dev.mig_state().map_err(|e| e.to_string())?;
            let size = dev.mig_data_size().map_err(|e| e.to_string())?;
            println!("state: {state:?}\nstop-copy size: {size} bytes");
        }
        Err(e) if nvme_lm::migration::errno_of(&e) == Some(libc::ENOTTY) => {
            println!("migration: none")
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

fn migrate(a: &Path, b: &Path, blocks: u64) -> Result<(), String> {
    use nvme_lm::selftest::guest::Guest;
    let e = |x: std::io::Error| x.to_string();
    let iommufd = Iommufd::open().map_err(e)?;
    let arena = nvme_lm::dma::Arena::new(&iommufd, 32 << 20, 0x6_0000_0000).map_err(e)?;
    let da = Device::open(a, &iommufd).map_err(e)?;
    let db = Device::open(b, &iommufd).map_err(e)?;
    da.reset().map_err(e)?;
    let mut g = Guest::start(
        &da,
        arena,
        nvme_lm::selftest::guest::FULL_QUEUES,
        nvme_lm::selftest::guest::FULL_DEPTH,
    )
    .map_err(e)?;
    println!(
        "source {} -> destination {}: {blocks} blocks written first, {} commands left in flight",
        a.display(),
        b.display(),
        nvme_lm::migrate::INFLIGHT
    );
    let r = match nvme_lm::migrate::migrate(&da, &db, &mut g, blocks, 64 << 10) {
        Ok(r) => r,
        Err(x) => {
            // What a VMM does when a migration fails: the source goes back
            // to RUNNING and its guest goes on. Show that it can.
            let st = da.mig_state().map_err(e)?;
            println!("migration failed: {x}");
            println!("source after the failure: {st:?}");
            if st != nvme_lm::migration::State::Running {
                da.set_mig_state(nvme_lm::migration::State::Running)
                    .map_err(e)?;
            }
            g.drain(20_000).map_err(e)?;
            g.write_range(0, 9000, 8).map_err(e)?;
            g.verify_all().map_err(e)?;
            g.sq_heads_at_tail()?;
            println!("source after the failure: I/O written and verified");
            return Err(format!("migration failed: {x}"));
        }
    };
    print!("{}", r.render()?);
    r.check()
        .map_err(|x| format!("migration check failed: {x}"))?;
    println!("result: OK, every in-flight command completed once, all data verified");
    db.reset().map_err(e)
}

/// A seed from the command line (decimal or 0x hex), or a random one.
fn seed_of(s: Option<&str>) -> Result<u64, String> {
    match s {
        Some(s) => match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        }
        .map_err(|e| format!("--seed {s}: {e}")),
        None => {
            let mut b = [0u8; 8];
            // SAFETY: `b` is 8 writable bytes.
            let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
            if n != 8 {
                return Err(format!("getrandom: {}", std::io::Error::last_os_error()));
            }
            Ok(u64::from_ne_bytes(b))
        }
    }
}

/// A suite's exit: failed cases make the command fail.
fn suite_result(failed: usize) -> Result<(), String> {
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} test cases failed")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::VfioProbe { cdev, expect_id } => vfio_probe(cdev, expect_id.as_deref()),
        Cmd::Inspect { file } => {
            let data = if file.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
            } else {
                std::fs::read(file)
            };
            data.map_err(|e| format!("{}: {e}", file.display()))
                .and_then(|d| nvme_lm::inspect::describe(&d))
                .map(|r| print!("{r}"))
        }
        Cmd::Caps { dev } => nvme_lm::passthru::Passthru::open(dev)
            .map_err(|e| e.to_string())
            .and_then(|p| nvme_lm::caps::report(&p))
            .map(|r| print!("{r}")),
        Cmd::Selftest {
            suite:
                Suite::Hmlm {
                    pf,
                    vf_a,
                    scid_a,
                    vf_b,
                    scid_b,
                    filter,
                },
        } => {
            let setup = nvme_lm::selftest::hmlm::Setup {
                pf: pf.clone(),
                a: (vf_a.clone(), *scid_a),
                b: (vf_b.clone(), *scid_b),
                filter: filter.clone(),
            };
            suite_result(nvme_lm::selftest::hmlm::run(&setup))
        }
        Cmd::Selftest {
            suite:
                Suite::Service {
                    vf_a,
                    dbg_a,
                    vf_b,
                    dbg_b,
                    filter,
                },
        } => {
            let setup = nvme_lm::selftest::service::Setup {
                a: (vf_a.clone(), dbg_a.clone()),
                b: (vf_b.clone(), dbg_b.clone()),
                filter: filter.clone(),
            };
            suite_result(nvme_lm::selftest::service::run(&setup))
        }
        Cmd::MigInfo { cdev } => mig_info(cdev),
        Cmd::Bench {
            vf_a,
            vf_b,
            rounds,
            blocks,
        } => nvme_lm::bench::run(vf_a, vf_b, *rounds, *blocks).map(|r| print!("{r}")),
        Cmd::BenchDmaLog { vf, repeats } => {
            nvme_lm::bench::dma_log(vf, *repeats).map(|r| print!("{r}"))
        }
        Cmd::BenchDirty { entries } => nvme_lm::bench::dirty(*entries).map(|r| print!("{r}")),
        Cmd::Migrate { vf_a, vf_b, blocks } => migrate(vf_a, vf_b, *blocks),
        Cmd::MediaMigrate {
            vf_a,
            vf_b,
            nsid,
            rounds,
            rate,
            load_mbps,
            round_seconds,
            round_gap_ms,
            chunk,
            expect_cdq_full,
            save,
            in_flight_ranges,
            fresh,
            keep,
            prefill_mib,
            samples,
            seed,
            converge_bytes,
            quiet_rounds,
            source_only,
            stop_at_initial_mib,
        } => seed_of(seed.as_deref()).and_then(|seed| {
            println!("media-migrate: seed {seed:#x}");
            nvme_lm::media::migrate(&nvme_lm::media::Options {
                a: vf_a.clone(),
                b: vf_b.clone(),
                nsid: *nsid,
                rounds: *rounds,
                rate: *rate,
                load_bps: load_mbps.map_or(0, |m| (m * 1e6) as u64),
                round_limit: std::time::Duration::from_secs(*round_seconds),
                round_gap: std::time::Duration::from_millis(*round_gap_ms),
                chunk: *chunk,
                expect_cdq_full: *expect_cdq_full,
                save: save.clone(),
                in_flight_ranges: in_flight_ranges.clone(),
                fresh: *fresh,
                keep: *keep,
                prefill_mib: *prefill_mib,
                samples: *samples,
                seed,
                converge_bytes: *converge_bytes,
                quiet_rounds: *quiet_rounds,
                source_only: *source_only,
                stop_at_initial: stop_at_initial_mib.map(|m| m << 20),
            })
        }),
        Cmd::MediaResume {
            vf,
            stream,
            mutate,
            expect,
            then_good,
            plain,
        } => nvme_lm::media::parse_expect(expect).and_then(|x| {
            nvme_lm::media::resume(vf, stream, mutate.as_deref(), &x, *then_good, *plain)
        }),
        Cmd::FuzzResume {
            vf_a,
            vf_b,
            seed,
            inputs,
            first,
            io_every,
            timeout,
            fix_percent,
            dump,
            kmsg,
            replay,
            media_stream,
            strict_gaps,
            by_field,
            known_gap,
        } => seed_of(seed.as_deref()).and_then(|seed| {
            println!("fuzz-resume: seed {seed:#x}");
            let o = nvme_lm::fuzz::Options {
                a: vf_a.clone().unwrap_or_default(),
                b: vf_b.clone(),
                seed,
                inputs: *inputs,
                first: *first,
                io_every: *io_every,
                timeout: std::time::Duration::from_secs(*timeout),
                fix_percent: (*fix_percent).min(100),
                dump: dump.clone(),
                kmsg: *kmsg,
                replay: replay.clone(),
                media_streams: media_stream.clone(),
                strict_gaps: *strict_gaps,
                by_field: *by_field,
                known_gaps: known_gap.clone(),
            };
            match nvme_lm::fuzz::run(&o)? {
                true => Ok(()),
                false => Err("fuzz-resume: unexpected outcomes (see the verdicts)".into()),
            }
        }),
        Cmd::DmaLog {
            vf,
            reads,
            page_size,
        } => nvme_lm::dma_log_cmd::run(vf, *reads, *page_size),
        Cmd::Selftest {
            suite:
                Suite::DmaLogging {
                    vf,
                    vf_c,
                    vf_plain,
                    filter,
                },
        } => {
            let setup = nvme_lm::selftest::dma_logging::Setup {
                a: vf.clone(),
                c: vf_c.clone(),
                plain: vf_plain.clone(),
                filter: filter.clone(),
            };
            suite_result(nvme_lm::selftest::dma_logging::run(&setup))
        }
        Cmd::Selftest {
            suite: Suite::Io { vf },
        } => suite_result(nvme_lm::selftest::io::run(vf)),
        Cmd::Selftest {
            suite:
                Suite::Concurrency {
                    vf_a,
                    vf_b,
                    vf_c,
                    vf_d,
                    filter,
                },
        } => {
            let setup = nvme_lm::selftest::concurrency::Setup {
                first: (vf_a.clone(), vf_b.clone()),
                second: (vf_c.clone(), vf_d.clone()),
                filter: filter.clone(),
            };
            suite_result(nvme_lm::selftest::concurrency::run(&setup))
        }
        Cmd::Selftest {
            suite:
                Suite::Faults {
                    vf_a,
                    vf_b,
                    pf,
                    vq,
                    vi,
                    filter,
                },
        } => {
            let setup = nvme_lm::selftest::faults::Setup {
                a: vf_a.clone(),
                b: vf_b.clone(),
                pf: pf.clone(),
                vq: *vq,
                vi: *vi,
                filter: filter.clone(),
            };
            suite_result(nvme_lm::selftest::faults::run(&setup))
        }
        Cmd::Selftest {
            suite:
                Suite::Migration {
                    vf_a,
                    vf_b,
                    vf_c,
                    pf_max_transfer,
                    pf,
                    filter,
                },
        } => {
            let setup = nvme_lm::selftest::migration::Setup {
                a: vf_a.clone(),
                b: vf_b.clone(),
                c: vf_c.clone(),
                pf_max_transfer: *pf_max_transfer,
                pf: pf.clone(),
                filter: filter.clone(),
            };
            suite_result(nvme_lm::selftest::migration::run(&setup))
        }
        Cmd::Selftest {
            suite:
                Suite::Cdq {
                    pf_bdf,
                    pf_cdev,
                    filter,
                },
        } => {
            let setup = nvme_lm::selftest::cdq::Setup {
                pf_bdf: pf_bdf.clone(),
                pf_cdev: pf_cdev.clone(),
                filter: filter.clone(),
            };
            suite_result(nvme_lm::selftest::cdq::run(&setup))
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvme-lm: error: {e}");
            ExitCode::FAILURE
        }
    }
}
