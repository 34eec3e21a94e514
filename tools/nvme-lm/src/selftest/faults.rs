// SPDX-License-Identifier: GPL-2.0

//! The fault matrix of `nvme_vfio_pci`: a VF reset (FLR) and a PF
//! controller reset in every migration state a fault can meet, an admin
//! command that times out, the migrating process killed during Suspend and
//! during Set State, a destination abandoned with half a stream, and a PF
//! controller reset during a media migration's bulk copy. After
//! each, the device is either where the uAPI says or fails with an errno,
//! nothing hangs, and at most one `VFIO_DEVICE_RESET` makes it RUNNING and
//! working again. (Kernel warnings and leaks: the suite's shell wrapper and
//! run-tests.sh.)

use super::guest::Guest;
use super::migration::{arc, e, save, state_is};
use super::{ensure, CaseResult, Ktap};
use crate::codec::cmd::AdminCmd;
use crate::codec::identify::{SecondaryList, CNS_SECONDARY_CONTROLLER_LIST};
use crate::dma::Arena;
use crate::fail;
use crate::kmsg::KmsgTail;
use crate::media::errno_name;
use crate::migration::{errno_of, DataFd, State};
use crate::passthru::Passthru;
use crate::vfio::{Device, Iommufd};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What the suite runs on: PCI addresses, since a PF unbound and bound
/// again gets new device files (and its VFs new VFIO cdevs).
pub struct Setup {
    /// Source VF (bound to nvme-vfio-pci, not open).
    pub a: String,
    /// Destination VF (likewise).
    pub b: String,
    /// The VFs' PF (bound to nvme).
    pub pf: String,
    /// VQ and VI resources each VF gets when it is brought back online
    /// (VFs 1 to 4 of the PF, as tests/vm/lib/sriov.sh set them up).
    pub vq: u16,
    /// See `vq`.
    pub vi: u16,
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

/// Test knobs of the emulated PF.
const KNOB_DELAY_MS: u32 = 6;

/// Where a fault meets the device.
#[derive(Clone, Copy, Debug)]
enum At {
    RunningP2p,
    PreCopy,
    PreCopyP2p,
    Stop,
    /// STOP_COPY with half of the stream read.
    StopCopyMidRead,
    /// RESUMING (the destination) with half of a stream written.
    ResumingMidWrite,
}

const PLACES: [(At, &str); 6] = [
    (At::RunningP2p, "running_p2p"),
    (At::PreCopy, "pre_copy"),
    (At::PreCopyP2p, "pre_copy_p2p"),
    (At::Stop, "stop"),
    (At::StopCopyMidRead, "stop_copy_mid_read"),
    (At::ResumingMidWrite, "resuming_mid_write"),
];

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `VFIO_DEVICE_RESET` (a function-level reset) of the device.
    Flr,
    /// A controller reset of the PF (`nvme reset`): QEMU takes every
    /// secondary controller offline; the host brings them back.
    PfReset,
    /// The PF unbound from nvme: it releases the VFs' drivers, whose
    /// removal waits for their user (this program) to close the devices,
    /// as a VMM does when asked; then the PF and the VFs are bound again.
    PfUnbind,
}

/// Unbinds the PF while `rig` holds the VFs: the unbind must wait for
/// them, finish once they are closed, and leave the VFs unbound; then
/// binds everything back. The data file, if any, stays open until the PF
/// is unbound: it holds the driver's session, and with it the VF's
/// migration handle, past the VF driver's `remove()` and the PF's; it
/// must fail with `ENODEV` then and close safely.
fn pf_unbind(s: &Setup, rig: Rig, file: Option<DataFd>, g: Guest) -> CaseResult {
    let (tx, rx) = std::sync::mpsc::channel();
    let pf_bdf = s.pf.clone();
    let t = std::thread::spawn(move || {
        let r = std::fs::write(format!("{PCI}/drivers/nvme/unbind"), &pf_bdf);
        let _ = tx.send(r.map_err(|x| x.to_string()));
    });
    std::thread::sleep(Duration::from_millis(500));
    let waited = rx.try_recv().is_err();
    // The VMM lets go of the devices, as the device request asks (not of
    // the data file yet).
    drop(g);
    drop(rig);
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the PF unbind did not finish within 60 s of the close".to_string())?;
    let _ = t.join();
    r.map_err(|x| format!("PF unbind: {x}"))?;
    println!("# PF unbind waited for the open VFs: {waited}");
    ensure(waited, || {
        "the PF unbind did not wait for the VFs' user".into()
    })?;
    if let Some(mut f) = file {
        // A saving file reads, a resuming one writes (the other way is
        // EBADF, before the driver).
        let mut b = [0u8; 8];
        let r = match f.0.read(&mut b) {
            Err(x) if errno_of(&x) == Some(libc::EBADF) => f.0.write(&b),
            r => r,
        };
        let got = match r {
            Ok(n) => fail!("the data file after the PF unbind: {n} bytes, expected ENODEV"),
            Err(x) => errno_of(&x),
        };
        println!(
            "# the data file after the PF unbind: {}",
            got.map_or_else(|| "?".into(), errno_name)
        );
        ensure(got == Some(libc::ENODEV), || {
            "the data file after the PF unbind: expected ENODEV".into()
        })?;
        // The last reference to the handle goes now, the PF unbound.
        drop(f);
    }
    for vf in [&s.a, &s.b] {
        ensure(driver_of(vf).is_none(), || {
            format!(
                "{vf} still bound to {:?} after the PF unbind",
                driver_of(vf)
            )
        })?;
    }
    std::fs::write(format!("{PCI}/drivers/nvme/bind"), &s.pf)
        .map_err(|x| format!("PF bind: {x}"))?;
    pf_back(s)?;
    bind(&s.a, "nvme-vfio-pci")?;
    bind(&s.b, "nvme-vfio-pci")
}

/// One case's devices: its own IOAS, opened and closed by the case, so
/// that the last close is exercised too.
struct Rig {
    arena: Rc<Arena>,
    a: Device,
    b: Device,
    _iommufd: Iommufd,
}

impl Rig {
    fn open(s: &Setup) -> Result<Self, String> {
        let iommufd = Iommufd::open().map_err(e)?;
        let arena = Arena::new(&iommufd, 16 << 20, 0x6_0000_0000).map_err(e)?;
        let a = Device::open(&cdev(&s.a)?, &iommufd).map_err(e)?;
        let b = Device::open(&cdev(&s.b)?, &iommufd).map_err(e)?;
        Ok(Self {
            arena,
            a,
            b,
            _iommufd: iommufd,
        })
    }

    /// The device works: a guest writes and reads back.
    fn works(&self, d: &Device, lba: u64) -> CaseResult {
        let mut g = Guest::start(d, Rc::clone(&self.arena), 1, 16).map_err(e)?;
        g.write_range(0, lba, 2).map_err(e)?;
        g.verify_all().map_err(e)?;
        Ok(())
    }

    /// A VMM's recovery: one reset at most, then RUNNING and working.
    fn recovered(&self, d: &Device, lba: u64) -> CaseResult {
        d.reset()
            .map_err(|x| format!("reset after the fault: {x}"))?;
        state_is(d, State::Running)?;
        self.works(d, lba)
            .map_err(|x| format!("I/O after the reset: {x}"))
    }
}

const PCI: &str = "/sys/bus/pci";

/// The one entry of directory `dir`.
fn only_entry(dir: &str) -> Result<String, String> {
    let mut it = std::fs::read_dir(dir).map_err(|x| format!("{dir}: {x}"))?;
    match it.next() {
        Some(Ok(d)) => Ok(d.file_name().to_string_lossy().into_owned()),
        _ => fail!("{dir}: empty"),
    }
}

/// The VFIO cdev of VF `bdf`.
fn cdev(bdf: &str) -> Result<PathBuf, String> {
    let d = only_entry(&format!("{PCI}/devices/{bdf}/vfio-dev"))?;
    Ok(PathBuf::from(format!("/dev/vfio/devices/{d}")))
}

/// The PF's controller device, `/dev/nvmeN`.
fn pf(s: &Setup) -> Result<Passthru, String> {
    let n = only_entry(&format!("{PCI}/devices/{}/nvme", s.pf))?;
    Passthru::open(std::path::Path::new(&format!("/dev/{n}"))).map_err(e)
}

/// The driver `bdf` is bound to, if any.
fn driver_of(bdf: &str) -> Option<String> {
    std::fs::read_link(format!("{PCI}/devices/{bdf}/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Binds `bdf` to `driver` through driver_override.
fn bind(bdf: &str, driver: &str) -> CaseResult {
    let w = |f: String, v: &str| std::fs::write(&f, v).map_err(|x| format!("{f}: {x}"));
    w(format!("{PCI}/devices/{bdf}/driver_override"), driver)?;
    w(format!("{PCI}/drivers_probe"), bdf)?;
    ensure(driver_of(bdf).as_deref() == Some(driver), || {
        format!("{bdf} did not bind to {driver}")
    })
}

/// After a PF controller reset: wait until the PF answers, then bring
/// every secondary controller back online with its resources (what the
/// host's SR-IOV setup does).
fn pf_back(s: &Setup) -> CaseResult {
    let t0 = Instant::now();
    let p = loop {
        if let Ok(p) = pf(s) {
            let mut id = vec![0u8; 4096];
            if p.admin(&AdminCmd::identify(1, 0), Some(&mut id))
                .is_ok_and(|c| c.code() == 0)
            {
                break p;
            }
        }
        if t0.elapsed() > Duration::from_secs(30) {
            fail!("the PF did not come back within 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut buf = vec![0u8; 4096];
    let c = p
        .admin(
            &AdminCmd::identify(CNS_SECONDARY_CONTROLLER_LIST, 0),
            Some(&mut buf),
        )
        .map_err(e)?;
    ensure(c.code() == 0, || {
        format!("Secondary Controller List: {:#x}", c.status)
    })?;
    let list = SecondaryList::parse(&buf).map_err(|x| x.reason().to_string())?;
    for c in (0..list.len())
        .filter_map(|i| list.get(i))
        .filter(|c| (1..=4).contains(&c.vfn))
    {
        // Virtualization Management: offline, assign VQ and VI, online.
        for (act, rt, nr) in [
            (7u32, 0u32, 0u32),
            (8, 0, s.vq.into()),
            (8, 1, s.vi.into()),
            (9, 0, 0),
        ] {
            let cmd = AdminCmd {
                opcode: 0x1c,
                nsid: 0,
                cdw: [act | rt << 8 | u32::from(c.scid) << 16, nr, 0, 0, 0, 0],
            };
            let r = p.admin(&cmd, None).map_err(e)?;
            ensure(r.code() == 0, || {
                format!(
                    "Virtualization Management {act} of controller {}: {:#x}",
                    c.scid, r.status
                )
            })?;
        }
    }
    Ok(())
}

/// Brings `rig` to `at`; returns the device the fault is for and the
/// session's data file, if any.
fn reach(rig: &Rig, at: At) -> Result<(&Device, Option<DataFd>), String> {
    let (a, b) = (&rig.a, &rig.b);
    Ok(match at {
        At::RunningP2p => (a, arc(a, State::RunningP2p, false)?),
        At::PreCopy => (a, arc(a, State::PreCopy, true)?),
        At::PreCopyP2p => {
            let f = arc(a, State::PreCopy, true)?;
            arc(a, State::PreCopyP2p, false)?;
            (a, f)
        }
        At::Stop => (a, arc(a, State::Stop, false)?),
        At::StopCopyMidRead => {
            arc(a, State::Stop, false)?;
            let mut f = arc(a, State::StopCopy, true)?.ok_or("no fd")?;
            let len = usize::try_from(a.mig_data_size().map_err(e)?).map_err(e_str)?;
            let mut half = vec![0u8; len / 2];
            f.0.read_exact(&mut half).map_err(e)?;
            (a, Some(f))
        }
        At::ResumingMidWrite => {
            let stream = save(a)?;
            arc(a, State::Running, false)?;
            let mut f = arc(b, State::Resuming, true)?.ok_or("no fd")?;
            f.0.write_all(&stream[..stream.len() / 2]).map_err(e)?;
            (b, Some(f))
        }
    })
}

fn e_str(x: impl std::fmt::Display) -> String {
    x.to_string()
}

/// `fault` at `at` while A runs a guest: the data file fails or ends,
/// nothing hangs, and both VFs recover.
fn fault_at(s: &Setup, fault: Fault, at: At) -> CaseResult {
    let rig = Rig::open(s)?;
    rig.a.reset().map_err(e)?;
    rig.b.reset().map_err(e)?;
    let mut g = Guest::start(&rig.a, Rc::clone(&rig.arena), 1, 16).map_err(e)?;
    g.write_range(0, 900, 4).map_err(e)?;
    let (dev, file) = reach(&rig, at)?;
    match fault {
        Fault::Flr => dev.reset().map_err(|x| format!("FLR: {x}"))?,
        Fault::PfReset => {
            pf(s)?.reset_controller().map_err(e)?;
            pf_back(s)?;
        }
        Fault::PfUnbind => {
            pf_unbind(s, rig, file, g)?;
            let rig = Rig::open(s)?;
            rig.recovered(&rig.a, 910)?;
            return rig.recovered(&rig.b, 920);
        }
    }
    // The session is over: its file fails (or, after a PF reset that the
    // driver has not seen yet, still answers) but never hangs.
    if let Some(mut f) = file {
        let mut buf = [0u8; 64];
        let r = if matches!(at, At::ResumingMidWrite) {
            f.0.write(&buf)
        } else {
            f.0.read(&mut buf)
        };
        println!(
            "# {fault:?} at {at:?}: the data file then: {}",
            match &r {
                Ok(n) => format!("{n} bytes"),
                Err(x) => x.to_string(),
            }
        );
        if matches!(fault, Fault::Flr) {
            ensure(r.is_err(), || "the data file goes on after a reset".into())?;
        }
    }
    let st = dev.mig_state().map_err(e)?;
    println!("# {fault:?} at {at:?}: device in {st:?} before recovery");
    if matches!(fault, Fault::Flr) {
        ensure(st == State::Running, || format!("{st:?} after an FLR"))?;
    }
    drop(g);
    rig.recovered(&rig.a, 910)?;
    rig.recovered(&rig.b, 920)
}

/// A Suspend whose command times out on the PF's admin queue (the suite
/// binds the PF with `nvme_core.admin_timeout` 3 s): nvme-pci resets the
/// PF; the step fails with an errno, the device reports where it is (or
/// ERROR if the controller could not be asked), and recovers.
fn admin_timeout(s: &Setup) -> CaseResult {
    let rig = Rig::open(s)?;
    rig.a.reset().map_err(e)?;
    let p = pf(s)?;
    let delay = p.test_knob(KNOB_DELAY_MS, 8000).map_err(e)?;
    let t = Instant::now();
    let r = rig.a.set_mig_state(State::Stop);
    let took = t.elapsed();
    pf_back(s)?;
    delay.clear().map_err(e)?;
    let st = rig.a.mig_state().map_err(e)?;
    println!(
        "# STOP with the Suspend timing out: {} after {:.1} s, device in {st:?}",
        match &r {
            Ok(_) => "succeeded".to_string(),
            Err(x) => x.to_string(),
        },
        took.as_secs_f64()
    );
    ensure(r.is_err(), || "the timed-out Suspend succeeded".into())?;
    ensure(took < Duration::from_secs(7), || {
        format!("the step took {:.1} s: no timeout", took.as_secs_f64())
    })?;
    ensure(matches!(st, State::Running | State::Error), || {
        format!("{st:?}: neither where it was nor ERROR")
    })?;
    rig.recovered(&rig.a, 930)
}

/// Runs `child` in a forked process and SIGKILLs it `after` the child
/// says (through `ready`) that its blocking step starts; reaps it.
fn killed_during(after: Duration, child: impl FnOnce(&dyn Fn()) -> CaseResult) -> CaseResult {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        fail!("pipe: {}", std::io::Error::last_os_error());
    }
    let _ = std::io::stdout().flush();
    // SAFETY: the test program has no other thread; the child only runs
    // `child` and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let ready = || {
            // SAFETY: writing one byte from a live buffer to our pipe.
            unsafe { libc::write(fds[1], [1u8].as_ptr().cast(), 1) };
        };
        let code = i32::from(child(&ready).is_err());
        // SAFETY: leaving the child without running the parent's exit
        // handlers.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into a live buffer; EOF if the child died.
    let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
    // SAFETY: closing the read end.
    unsafe { libc::close(fds[0]) };
    std::thread::sleep(after);
    // SAFETY: `pid` is our child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let t = Instant::now();
    let mut status = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure(n == 1, || "the child died before its step".into())?;
    ensure(libc::WIFSIGNALED(status), || {
        format!("the child finished before the kill (status {status:#x})")
    })?;
    println!(
        "# child killed {:.1} s into its step, gone {:.1} s later",
        after.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The process migrating A is killed while its Suspend waits: once it is
/// gone, A is RUNNING (its last close reset it) and works.
fn sigkill_in_suspend(s: &Setup) -> CaseResult {
    let p = pf(s)?;
    let delay = p.test_knob(KNOB_DELAY_MS, 1500).map_err(e)?;
    let r = killed_during(Duration::from_millis(300), |ready| {
        let rig = Rig::open(s)?;
        ready();
        rig.a.set_mig_state(State::Stop).map_err(e)?;
        Ok(())
    });
    delay.clear().map_err(e)?;
    r?;
    let rig = Rig::open(s)?;
    state_is(&rig.a, State::Running)?;
    rig.works(&rig.a, 940)
}

/// The process resuming into B is killed while Set State runs: B is
/// RUNNING afterwards, works, and takes a whole stream again.
fn sigkill_in_set_state(s: &Setup) -> CaseResult {
    let stream = {
        let rig = Rig::open(s)?;
        rig.a.reset().map_err(e)?;
        save(&rig.a)?
    };
    let p = pf(s)?;
    let delay = p.test_knob(KNOB_DELAY_MS, 400).map_err(e)?;
    let r = killed_during(Duration::from_millis(200), |ready| {
        let rig = Rig::open(s)?;
        let mut f = arc(&rig.b, State::Resuming, true)?.ok_or("no fd")?;
        f.0.write_all(&stream).map_err(e)?;
        ready();
        rig.b.set_mig_state(State::Stop).map_err(e)?;
        Ok(())
    });
    delay.clear().map_err(e)?;
    r?;
    let rig = Rig::open(s)?;
    state_is(&rig.b, State::Running)?;
    rig.works(&rig.b, 950)?;
    rig.b.reset().map_err(e)?;
    let mut f = arc(&rig.b, State::Resuming, true)?.ok_or("no fd")?;
    f.0.write_all(&stream).map_err(e)?;
    drop(f);
    arc(&rig.b, State::Stop, false)?;
    rig.b.reset().map_err(e)
}

/// A destination whose data file is closed with half a stream: RESUMING
/// cannot load it (the uAPI: only a reset aborts), a reset does, and the
/// VF then takes a whole stream.
fn half_stream_then_reuse(s: &Setup) -> CaseResult {
    let rig = Rig::open(s)?;
    rig.a.reset().map_err(e)?;
    rig.b.reset().map_err(e)?;
    let stream = save(&rig.a)?;
    arc(&rig.a, State::Running, false)?;
    let mut f = arc(&rig.b, State::Resuming, true)?.ok_or("no fd")?;
    f.0.write_all(&stream[..stream.len() / 2]).map_err(e)?;
    drop(f);
    ensure(rig.b.set_mig_state(State::Stop).is_err(), || {
        "half a stream loaded".into()
    })?;
    state_is(&rig.b, State::Resuming)?;
    rig.b.reset().map_err(e)?;
    let mut f = arc(&rig.b, State::Resuming, true)?.ok_or("no fd")?;
    f.0.write_all(&stream).map_err(e)?;
    drop(f);
    arc(&rig.b, State::Stop, false)?;
    rig.recovered(&rig.b, 960)
}

/// VF `bdf`'s `media_migration` option on while this lives (its VFIO
/// device closed at either end: the option is fixed while it is open).
struct MediaOn(String);

impl MediaOn {
    fn path(bdf: &str) -> String {
        format!("{PCI}/devices/{bdf}/media_migration")
    }

    fn set(bdf: &str, on: bool) -> CaseResult {
        let f = Self::path(bdf);
        std::fs::write(&f, if on { "1" } else { "0" }).map_err(|x| format!("{f}: {x}"))?;
        let now = std::fs::read_to_string(&f).map_err(|x| format!("{f}: {x}"))?;
        ensure(now.trim() == if on { "1" } else { "0" }, || {
            format!("{f} reads {:?} after writing {on}", now.trim())
        })
    }

    fn on(bdf: &str) -> Result<Self, String> {
        Self::set(bdf, true)?;
        Ok(Self(bdf.to_string()))
    }

    /// Off again; an error if the option cannot be turned off.
    fn off(self) -> CaseResult {
        let r = Self::set(&self.0, false);
        std::mem::forget(self);
        r
    }
}

impl Drop for MediaOn {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::path(&self.0), "0");
    }
}

/// The PF's block device of namespace `nsid` (the multipath node if the
/// per-path disk is hidden), as `/dev/nvmeXnY`.
fn pf_blockdev(s: &Setup, nsid: u32) -> Result<String, String> {
    let ctrl = only_entry(&format!("{PCI}/devices/{}/nvme", s.pf))?;
    let dir = format!("/sys/class/nvme/{ctrl}");
    for d in std::fs::read_dir(&dir).map_err(|x| format!("{dir}: {x}"))? {
        let name = d.map_err(e)?.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("nvme") else {
            continue;
        };
        let Ok(id) = std::fs::read_to_string(format!("{dir}/{name}/nsid")) else {
            continue;
        };
        if id.trim() != nsid.to_string() {
            continue;
        }
        // nvmeXcYnZ (a path of subsystem X) is seen as nvmeXnZ.
        let dev = match rest
            .split_once('c')
            .and_then(|(x, r)| Some((x, r.split_once('n')?.1)))
        {
            Some((x, z)) => format!("/dev/nvme{x}n{z}"),
            None => format!("/dev/{name}"),
        };
        return Ok(dev);
    }
    fail!("{dir}: no block device of NSID {nsid}")
}

/// Bytes of the namespace the bulk copy must have read before the PF
/// reset (`initial_bytes` down by that much): a batch or two, well short
/// of NSID 1's 64 MiB. The stream's bytes say little: zero runs are
/// compacted, and dirty resends add to it.
const MEDIA_READ_BEFORE: u64 = 3 << 20;
/// Most bytes read after the reset before the case gives up: more than
/// the whole copy (the copy must fail before it ends).
const MEDIA_READ_AFTER_MAX: usize = 96 << 20;

/// A PF controller reset during a media migration's bulk copy: A opted
/// in (its namespace, NSID 1, is attached to the PF too), in PRE_COPY,
/// part of the bulk copy read. The reset deletes the dirty-LBA queue, so
/// writes from then on are logged nowhere: the copy cannot go on
/// correctly, and the next reads of the data file must fail with an errno
/// that the kernel log explains, without hanging. Then the usual recovery,
/// a new media session on A (the namespaces and the queue were let go),
/// the PF's block device free again, and the option off.
fn pf_reset_in_media_bulk_copy(s: &Setup) -> CaseResult {
    let media = MediaOn::on(&s.a)?;
    let mut log = KmsgTail::open().map_err(|x| format!("/dev/kmsg: {x}"))?;
    {
        let (rig, mut g, mut f) = media_pre_copy(s)?;
        let info = f.precopy_info().map_err(|x| format!("PRECOPY_INFO: {x}"))?;
        println!(
            "# media PRE_COPY: initial_bytes {}, dirty_bytes {}",
            info.initial_bytes, info.dirty_bytes
        );
        ensure(info.initial_bytes > MEDIA_READ_BEFORE * 2, || {
            format!(
                "initial_bytes {}: no bulk copy to interrupt (is media migration on?)",
                info.initial_bytes
            )
        })?;
        let full = info.initial_bytes;
        let mut buf = vec![0u8; 1 << 20];
        let mut before = 0usize;
        let mut reads = 0u64;
        let left = loop {
            let left = f
                .precopy_info()
                .map_err(|x| format!("PRECOPY_INFO: {x}"))?
                .initial_bytes;
            if full.saturating_sub(left) >= MEDIA_READ_BEFORE {
                break left;
            }
            match f.0.read(&mut buf) {
                Ok(0) => fail!("the stream ended after {before} bytes in PRE_COPY"),
                Ok(n) => before += n,
                Err(x) => fail!("read {before} bytes into the bulk copy: {x}"),
            }
            // The guest goes on writing, behind and ahead of the copy.
            reads += 1;
            g.write_range(0, 100 + reads * 8, 2).map_err(e)?;
        };
        ensure(left > 0, || {
            "the bulk copy ended before the PF reset".into()
        })?;
        println!(
            "# {before} stream bytes read, {} of the bulk copy's {full} bytes left: PF reset",
            left
        );
        pf(s)?.reset_controller().map_err(e)?;
        pf_back(s)?;
        let t = Instant::now();
        let mut after = 0usize;
        let first_err = loop {
            match f.0.read(&mut buf) {
                Ok(0) => fail!("the stream ended {after} bytes after the PF reset, in PRE_COPY"),
                Ok(n) => after += n,
                Err(x) if x.raw_os_error() == Some(libc::ENOMSG) => fail!(
                    "the bulk copy went on after the PF reset to its end ({after} bytes): \
                     the reset deleted the dirty-LBA queue, writes since are logged nowhere"
                ),
                Err(x) => break x,
            }
            if after > MEDIA_READ_AFTER_MAX {
                fail!("{after} bytes read after the PF reset without an error");
            }
            ensure(t.elapsed() < Duration::from_secs(120), || {
                format!("still reading {after} bytes and 120 s after the PF reset")
            })?;
        };
        println!("# after the PF reset: {after} bytes, then: {first_err}");
        let errno = first_err
            .raw_os_error()
            .ok_or("the read failed without an errno")?;
        ensure(errno != libc::EINTR && errno != libc::EAGAIN, || {
            format!("the read failed with {first_err}: not a failure of the copy")
        })?;
        // The failure stays: later reads and the queries fail too.
        let again = f.0.read(&mut buf);
        println!(
            "# the next read: {}",
            match &again {
                Ok(n) => format!("{n} bytes"),
                Err(x) => x.to_string(),
            }
        );
        ensure(again.is_err(), || "a later read succeeded again".into())?;
        let q = f.precopy_info();
        let sz = rig.a.mig_data_size();
        println!(
            "# then PRECOPY_INFO: {}; MIG_DATA_SIZE: {}",
            q.as_ref()
                .map_or_else(|x| x.to_string(), |i| format!("{i:?}")),
            sz.as_ref()
                .map_or_else(|x| x.to_string(), |n| format!("{n} bytes"))
        );
        ensure(q.is_err() && sz.is_err(), || {
            "PRECOPY_INFO or MIG_DATA_SIZE answers after the copy failed".into()
        })?;
        let why: Vec<String> = log
            .lines()
            .into_iter()
            .filter(|l| l.contains(s.a.as_str()) && l.contains("media migration"))
            .collect();
        for l in &why {
            println!("# kernel log: {l}");
        }
        ensure(
            why.iter()
                .any(|l| l.contains("failed") && l.contains("reset")),
            || format!("no line of {} naming the reset as the copy's failure", s.a),
        )?;
        let st = rig.a.mig_state().map_err(e)?;
        println!("# device in {st:?} before recovery");
        drop(f);
        drop(g);
        rig.recovered(&rig.a, 910)?;
        rig.recovered(&rig.b, 920)?;
        // A media session starts again: the claim and the queue were let go.
        let mut f = arc(&rig.a, State::PreCopy, true)?.ok_or("no fd")?;
        let full = f.precopy_info().map_err(e)?.initial_bytes;
        let (got, left) = read_bulk(&mut f, &mut buf, full)
            .map_err(|x| format!("a new media session after the recovery: {x}"))?;
        drop(f);
        rig.a.reset().map_err(e)?;
        state_is(&rig.a, State::Running)?;
        println!(
            "# after the recovery a new media session: {got} stream bytes read, {left} of {full} left"
        );
    }
    media_case_end(s, media, &mut log)
}

/// A (opted in) and B reset, a guest on A that wrote some blocks, and A in
/// PRE_COPY: its media session started (claim and dirty-LBA queue).
fn media_pre_copy(s: &Setup) -> Result<(Rig, Guest, DataFd), String> {
    let rig = Rig::open(s)?;
    rig.a.reset().map_err(e)?;
    rig.b.reset().map_err(e)?;
    let mut g = Guest::start(&rig.a, Rc::clone(&rig.arena), 1, 16).map_err(e)?;
    g.write_range(0, 900, 4).map_err(e)?;
    let f = arc(&rig.a, State::PreCopy, true)?.ok_or("no fd")?;
    Ok((rig, g, f))
}

/// Reads the media stream until `initial_bytes` (`full` at the start) is
/// down by [`MEDIA_READ_BEFORE`]; returns the bytes read and the
/// `initial_bytes` left.
fn read_bulk(f: &mut DataFd, buf: &mut [u8], full: u64) -> Result<(usize, u64), String> {
    let mut got = 0usize;
    loop {
        let left = f.precopy_info().map_err(e)?.initial_bytes;
        if full.saturating_sub(left) >= MEDIA_READ_BEFORE {
            return Ok((got, left));
        }
        match f.0.read(buf) {
            Ok(n) if n > 0 => got += n,
            r => fail!("read {got} bytes into the bulk copy: {r:?}"),
        }
    }
}

/// The end of a media case, every device closed: the PF's block device is
/// nobody's, the option goes off, and the kernel log since the case began
/// holds no warning.
fn media_case_end(s: &Setup, media: MediaOn, log: &mut KmsgTail) -> CaseResult {
    let dev = pf_blockdev(s, 1)?;
    let excl = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev);
    ensure(excl.is_ok(), || {
        format!("{dev} still claimed after the devices closed: {excl:?}")
    })?;
    drop(excl);
    media.off()?;
    let bad: Vec<String> = log
        .lines()
        .into_iter()
        .filter(|l| crate::fuzz::kmsg::is_bad(l))
        .collect();
    ensure(bad.is_empty(), || {
        format!("kernel log: {}", bad.join(" / "))
    })
}

/// A PF unbind during a media migration's bulk copy, the data file kept
/// open past it: the session holds the namespace's claim on the PF and
/// the dirty-LBA queue, and with them the VF's migration handle, after the
/// VF driver's `remove()` and the PF's (`pf_unbind`: ENODEV, then closed
/// with the PF unbound). Then everything is bound again, the PF's block
/// device is nobody's, and a new media session on A starts.
fn pf_unbind_in_media_bulk_copy(s: &Setup) -> CaseResult {
    let mut log = KmsgTail::open().map_err(|x| format!("/dev/kmsg: {x}"))?;
    let media = MediaOn::on(&s.a)?;
    let (rig, g, mut f) = media_pre_copy(s)?;
    let full = f.precopy_info().map_err(e)?.initial_bytes;
    ensure(full > MEDIA_READ_BEFORE * 2, || {
        format!("initial_bytes {full}: no bulk copy to interrupt (is media migration on?)")
    })?;
    let mut buf = vec![0u8; 1 << 20];
    let (before, left) = read_bulk(&mut f, &mut buf, full)?;
    ensure(left > 0, || {
        "the bulk copy ended before the PF unbind".into()
    })?;
    println!(
        "# {before} stream bytes read, {left} of the bulk copy's {full} bytes left: PF unbind, the data file kept open"
    );
    pf_unbind(s, rig, Some(f), g)?;
    // The option is the bound driver's: on again for the new binding.
    drop(media);
    let media = MediaOn::on(&s.a)?;
    {
        let rig = Rig::open(s)?;
        rig.a.reset().map_err(e)?;
        let mut f = arc(&rig.a, State::PreCopy, true)?.ok_or("no fd")?;
        let again = f.precopy_info().map_err(e)?.initial_bytes;
        let n = f.0.read(&mut buf).map_err(e)?;
        println!("# a new media session: initial_bytes {again}, first read {n} bytes");
        ensure(again == full && n > 0, || {
            format!("a new media session: initial_bytes {again} (was {full}), read {n}")
        })?;
        drop(f);
        rig.a.reset().map_err(e)?;
        rig.recovered(&rig.a, 930)?;
    }
    media_case_end(s, media, &mut log)
}

/// Runs the suite; returns the number of failed cases.
pub fn run(s: &Setup) -> usize {
    let faults = [
        (Fault::Flr, "flr"),
        (Fault::PfReset, "pf_reset"),
        (Fault::PfUnbind, "pf_unbind"),
    ];
    let mut k = Ktap::begin(
        "fault_matrix",
        faults.len() * PLACES.len() + 6,
        s.filter.clone(),
    );
    for (fault, fname) in faults {
        for (at, aname) in PLACES {
            k.case(&format!("{fname}_in_{aname}"), || fault_at(s, fault, at));
        }
    }
    k.case("admin_timeout_in_suspend", || admin_timeout(s));
    k.case("sigkill_in_suspend", || sigkill_in_suspend(s));
    k.case("sigkill_in_set_state", || sigkill_in_set_state(s));
    k.case("half_stream_then_reuse", || half_stream_then_reuse(s));
    k.case("pf_reset_in_media_bulk_copy", || {
        pf_reset_in_media_bulk_copy(s)
    });
    k.case("pf_unbind_in_media_bulk_copy", || {
        pf_unbind_in_media_bulk_copy(s)
    });
    k.failed()
}
