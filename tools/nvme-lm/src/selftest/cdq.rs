// SPDX-License-Identifier: GPL-2.0

//! Controller Data Queue tests. The ring must stay mapped for as long as
//! the controller writes to it, so here the PF itself is driven from
//! userspace: bound to vfio-pci (with SR-IOV enabled through it), its
//! admin queue, the CDQ ring and the VF's queues and data all live in one
//! IOAS-mapped arena.

use super::guest::Guest;
use super::{
    ensure,
    udmq_ranges,
    CaseResult,
    Ktap, //
};
use crate::codec::cmd::{
    status,
    AdminCmd,
    SuspendType, //
};
use crate::codec::identify::{
    SecondaryList,
    CNS_SECONDARY_CONTROLLER_LIST, //
};
use crate::codec::udmq::{
    Change,
    Entry,
    Marker, //
};
use crate::dma::{
    Arena,
    Chunk, //
};
use crate::fail;
use crate::nvme::sqe::admin_opcode;
use crate::nvme::{
    Controller,
    Cqe,
    QueuePair,
    Sqe, //
};
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::cell::RefCell;
use std::path::{
    Path,
    PathBuf, //
};
use std::rc::Rc;

const INVALID_FIELD: u16 = 0x002;
/// The VF token the test's PF driver sets and its VFs present.
const VF_TOKEN: [u8; 16] = *b"nvme-vfio-cdq-ts";

/// What the suite runs against.
pub struct Setup {
    /// The PF's PCI address (bound to vfio-pci, SR-IOV enabled in vfio-pci).
    pub pf_bdf: String,
    /// The PF's VFIO cdev.
    pub pf_cdev: PathBuf,
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

/// The test's PF driver: the PF's admin queue, from userspace.
struct Pf {
    ctrl: Controller,
    admin: RefCell<QueuePair>,
}

impl Pf {
    fn cmd(&self, c: &AdminCmd, prp1: u64) -> Result<Cqe, String> {
        let mut sqe = Sqe::from_admin(c);
        sqe.prp1 = prp1;
        self.ctrl
            .admin(&mut self.admin.borrow_mut(), sqe)
            .map_err(|e| format!("admin opcode {:#x}: {e}", c.opcode))
    }

    fn ok(&self, c: &AdminCmd, prp1: u64, what: &str) -> Result<Cqe, String> {
        let r = self.cmd(c, prp1)?;
        if r.code() != 0 {
            fail!("{what}: NVMe status {:#x}", r.status);
        }
        Ok(r)
    }

    fn expect(&self, c: &AdminCmd, prp1: u64, want: u16, what: &str) -> CaseResult {
        let r = self.cmd(c, prp1)?;
        ensure(r.code() == want, || {
            format!("{what}: status {:#x}, expected {want:#x}", r.status)
        })
    }

    /// Submits an Asynchronous Event Request, left outstanding.
    fn arm_aer(&self) -> Result<(), String> {
        let db = self.ctrl.doorbells();
        let sqe = Sqe {
            opcode: admin_opcode::ASYNC_EVENT,
            ..Sqe::default()
        };
        self.admin
            .borrow_mut()
            .submit(&db, sqe)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Completed asynchronous events: (type, info, dword 1).
    fn events(&self) -> Result<Vec<(u8, u8, u32)>, String> {
        let c = self
            .ctrl
            .take_async(&mut self.admin.borrow_mut())
            .map_err(|e| e.to_string())?;
        // CAST: event type bits 2:0, information bits 15:8.
        Ok(c.iter()
            .map(|c| ((c.dw0 & 7) as u8, (c.dw0 >> 8) as u8, c.dw1))
            .collect())
    }
}

/// A User Data Migration Queue and the host's consumer state.
struct Cdq {
    ring: Chunk,
    entries: u32,
    id: u16,
    head: u32,
    phase: bool,
}

impl Cdq {
    fn create(
        pf: &Pf,
        arena: &Rc<Arena>,
        scid: u16,
        entries: u32,
        contiguous: bool,
    ) -> Result<Self, String> {
        let e = |x: std::io::Error| x.to_string();
        // Each case starts from no queue, whatever an earlier one left.
        for id in 1..=16 {
            pf.cmd(&AdminCmd::cdq_delete(id), 0)?;
        }
        let ring = arena.alloc(entries as usize * 32).map_err(e)?;
        let prp1 = if contiguous {
            ring.iova()
        } else {
            // A PRP list of the ring's pages.
            let list = arena.alloc(4096).map_err(e)?;
            for p in 0..ring.len() / 4096 {
                list.write(8 * p, &(ring.iova() + 4096 * p as u64).to_le_bytes());
            }
            list.iova()
        };
        let c = pf.ok(
            &AdminCmd::cdq_create(scid, contiguous, entries * 8),
            prp1,
            "CDQ create",
        )?;
        Ok(Self {
            ring,
            entries,
            // CAST: the CDQID is completion dword 0 bits 15:0.
            id: c.dw0 as u16,
            head: 0,
            phase: true,
        })
    }

    /// New entries, consumed (the head is not returned to the controller).
    fn consume(&mut self) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        loop {
            // The attribute byte (phase tag) first, then the entry.
            let mut attr = [0u8; 1];
            self.ring.read(self.head as usize * 32 + 31, &mut attr);
            if (attr[0] & 1 != 0) != self.phase {
                return Ok(out);
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            let mut raw = [0u8; 32];
            self.ring.read(self.head as usize * 32, &mut raw);
            out.push(
                Entry::parse(&raw).map_err(|e| format!("entry {}: {}", self.head, e.reason()))?,
            );
            self.head = (self.head + 1) % self.entries;
            if self.head == 0 {
                self.phase = !self.phase;
            }
        }
    }

    fn give_head(&self, pf: &Pf, trigger: Option<u32>) -> CaseResult {
        pf.ok(
            &AdminCmd::cdq_set_head(self.id, self.head, trigger),
            0,
            "Set Features 21h",
        )
        .map(|_| ())
    }

    /// Track Send: start (`true`) or stop logging into this queue.
    fn track(&self, pf: &Pf, start: bool) -> CaseResult {
        let what = if start {
            "Track Send start"
        } else {
            "Track Send stop"
        };
        pf.ok(&AdminCmd::track_user_data(self.id, start), 0, what)
            .map(|_| ())
    }

    fn delete(&self, pf: &Pf) -> CaseResult {
        pf.ok(&AdminCmd::cdq_delete(self.id), 0, "CDQ delete")
            .map(|_| ())
    }
}

fn marker(e: &Entry) -> Option<Marker> {
    (e.change == Change::Unchanged || e.marker == Marker::Full).then_some(e.marker)
}

struct Env {
    arena: Rc<Arena>,
    pf: Pf,
    guest: RefCell<Guest>,
    scid: u16,
    _vf: Device,
    _pfdev: Device,
    _iommufd: Iommufd,
}

fn sysfs_write(path: &Path, v: &str) -> Result<(), String> {
    std::fs::write(path, v).map_err(|e| format!("write {v:?} to {}: {e}", path.display()))
}

impl Env {
    fn open(s: &Setup) -> Result<Self, String> {
        let e = |x: std::io::Error| x.to_string();
        let iommufd = Iommufd::open().map_err(e)?;
        let arena = Arena::new(&iommufd, 32 << 20, 0x2_0000_0000).map_err(e)?;
        let pfdev = Device::open(&s.pf_cdev, &iommufd).map_err(e)?;
        pfdev.set_vf_token(&VF_TOKEN).map_err(e)?;
        pfdev.enable_bus_master().map_err(e)?;
        let ctrl = Controller::new(&pfdev).map_err(e)?;
        ctrl.disable().map_err(e)?;
        let mut admin = QueuePair::new(&arena, 0, 32).map_err(e)?;
        ctrl.enable(&admin).map_err(e)?;
        let id = ctrl.identify(&mut admin, &arena, 1, 0, 0).map_err(e)?;
        let pcid = u32::from(u16::from_le_bytes([id[78], id[79]]));
        // Give every flexible resource back, then reset so it takes effect.
        for rt in [0u32, 1] {
            let vm = Sqe {
                opcode: admin_opcode::VIRT_MGMT,
                cdw: [1 | (rt << 8) | (pcid << 16), 0, 0, 0, 0, 0],
                ..Sqe::default()
            };
            ctrl.admin_ok(&mut admin, vm, "release primary flexible resources")
                .map_err(e)?;
        }
        ctrl.disable().map_err(e)?;
        let mut admin = QueuePair::new(&arena, 0, 32).map_err(e)?;
        ctrl.enable(&admin).map_err(e)?;
        let dev = PathBuf::from(format!("/sys/bus/pci/devices/{}", s.pf_bdf));
        sysfs_write(&dev.join("sriov_numvfs"), "1")?;
        let list = ctrl
            .identify(&mut admin, &arena, CNS_SECONDARY_CONTROLLER_LIST, 0, 0)
            .map_err(e)?;
        let scid = SecondaryList::parse(&list)
            .map_err(|x| x.reason().to_string())?
            .find_vfn(1)
            .ok_or("no secondary controller for VF 1")?
            .scid;
        for (act, rt, nr) in [(7u32, 0u32, 0u32), (8, 0, 3), (8, 1, 2), (9, 0, 0)] {
            let vm = Sqe {
                opcode: admin_opcode::VIRT_MGMT,
                cdw: [act | (rt << 8) | (u32::from(scid) << 16), nr, 0, 0, 0, 0],
                ..Sqe::default()
            };
            ctrl.admin_ok(&mut admin, vm, "Virtualization Management")
                .map_err(e)?;
        }
        let vf_bdf = std::fs::read_link(dev.join("virtfn0")).map_err(e)?;
        let vf_sys = dev.join(&vf_bdf);
        let vf_name = vf_bdf
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("VF name")?
            .to_string();
        if std::fs::read_link(vf_sys.join("driver")).is_err() {
            sysfs_write(&vf_sys.join("driver_override"), "vfio-pci")?;
            sysfs_write(Path::new("/sys/bus/pci/drivers_probe"), &vf_name)?;
        }
        let cdev = std::fs::read_dir(vf_sys.join("vfio-dev"))
            .map_err(|x| format!("VF {vf_name} has no vfio cdev: {x}"))?
            .next()
            .ok_or("VF vfio-dev empty")?
            .map_err(e)?
            .file_name();
        let vf = Device::open_with_token(
            &Path::new("/dev/vfio/devices").join(cdev),
            &iommufd,
            Some(&VF_TOKEN),
        )
        .map_err(e)?;
        let guest = Guest::start(&vf, Rc::clone(&arena), 1, 64).map_err(e)?;
        println!(
            "# PF {} (CNTLID {pcid}) driven from userspace, VF {vf_name} = CNTLID {scid}",
            s.pf_bdf
        );
        Ok(Self {
            arena,
            pf: Pf {
                ctrl,
                admin: RefCell::new(admin),
            },
            guest: RefCell::new(guest),
            scid,
            _vf: vf,
            _pfdev: pfdev,
            _iommufd: iommufd,
        })
    }

    fn write(&self, slba: u64, nlb: u16) -> CaseResult {
        self.guest
            .borrow_mut()
            .write_range(0, slba, nlb)
            .map_err(|e| e.to_string())
    }
}

fn logs_every_write(env: &Env) -> CaseResult {
    let mut q = Cdq::create(&env.pf, &env.arena, env.scid, 256, true)?;
    q.track(&env.pf, true)?;
    let mut want = Vec::new();
    for i in 0..24u64 {
        let (slba, nlb) = (i * 37 % 500, (i % 8 + 1) as u16);
        env.write(slba, nlb)?;
        want.push((slba, u32::from(nlb) - 1));
    }
    let mut g = env.guest.borrow_mut();
    g.write_zeroes(0, 600, 4).map_err(|e| e.to_string())?;
    want.push((600, 3));
    g.deallocate(0, &[(700, 8), (720, 1)])
        .map_err(|e| e.to_string())?;
    want.extend([(700, 7), (720, 0)]);
    g.submit_read(0, 5, true).map_err(|e| e.to_string())?;
    g.drain(10_000).map_err(|e| e.to_string())?;
    drop(g);
    q.track(&env.pf, false)?;
    let got = q.consume()?;
    ensure(got.first().and_then(marker) == Some(Marker::First), || {
        "no ESA 1 entry first".into()
    })?;
    ensure(got.last().and_then(marker) == Some(Marker::Stopped), || {
        "no ESA 2 entry last".into()
    })?;
    ensure(
        got.iter().all(|e| e.change != Change::Range || e.nsid == 1),
        || "entry with wrong NSID".into(),
    )?;
    want.sort_unstable();
    let r = udmq_ranges(&got);
    ensure(r == want, || format!("logged {:?}\nexpected {want:?}", r))?;
    println!(
        "# {} entries: every write, write zeroes and deallocate range, no read",
        got.len()
    );
    q.give_head(&env.pf, None)?;
    // One UDMQ per controller: a second one names an invalid CQS.
    env.pf.expect(
        &AdminCmd::cdq_create(env.scid, true, 64),
        q.ring.iova(),
        INVALID_FIELD,
        "second UDMQ for the controller",
    )?;
    q.delete(&env.pf)
}

fn wraparound(env: &Env) -> CaseResult {
    let mut q = Cdq::create(&env.pf, &env.arena, env.scid, 16, true)?;
    q.track(&env.pf, true)?;
    let mut total = 0;
    let mut flips = 0;
    for round in 0..6u64 {
        let mut want = Vec::new();
        for i in 0..10u64 {
            let slba = 1000 + round * 10 + i;
            env.write(slba, 1)?;
            want.push((slba, 0));
        }
        let phase = q.phase;
        let got = q.consume()?;
        flips += usize::from(q.phase != phase);
        let r = udmq_ranges(&got);
        ensure(r == want, || {
            format!("round {round}: logged {r:?}, expected {want:?}")
        })?;
        q.give_head(&env.pf, None)?;
        total += got.len();
    }
    ensure(flips >= 3, || {
        format!("phase flipped {flips} times in {total} entries")
    })?;
    println!("# {total} entries through a 16-entry ring, {flips} wraps");
    q.track(&env.pf, false)?;
    q.delete(&env.pf)
}

fn full_condition(env: &Env) -> CaseResult {
    let mut q = Cdq::create(&env.pf, &env.arena, env.scid, 8, true)?;
    env.pf.arm_aer()?;
    q.track(&env.pf, true)?;
    for i in 0..9u64 {
        env.write(2000 + i, 1)?;
    }
    let got = q.consume()?;
    ensure(got.len() == 7, || {
        format!("{} entries in an 8-entry ring", got.len())
    })?;
    let last = got.last().ok_or("no entries")?;
    ensure(
        last.marker == Marker::Full && last.change == Change::WholeNamespace && last.nsid == 1,
        || format!("last entry {last:?}, expected ESA 7 / whole namespace"),
    )?;
    ensure(udmq_ranges(&got).len() == 5, || {
        format!("{} ranges logged before full", udmq_ranges(&got).len())
    })?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let ev = env.pf.events()?;
    ensure(ev == [(4, 1, u32::from(q.id))], || {
        format!("events {ev:?}, expected one-shot CDQ full")
    })?;
    env.pf.expect(
        &AdminCmd::track_user_data(q.id, true),
        0,
        status::CDQ_FULL,
        "restart while full",
    )?;
    q.give_head(&env.pf, None)?;
    env.pf.ok(
        &AdminCmd::track_user_data(q.id, true),
        0,
        "restart after consuming",
    )?;
    let got = q.consume()?;
    ensure(
        got.len() == 1 && marker(&got[0]) == Some(Marker::First),
        || format!("after restart: {got:?}"),
    )?;
    q.track(&env.pf, false)?;
    q.delete(&env.pf)
}

fn tail_trigger(env: &Env) -> CaseResult {
    let mut q = Cdq::create(&env.pf, &env.arena, env.scid, 64, true)?;
    q.track(&env.pf, true)?;
    q.consume()?;
    env.pf.arm_aer()?;
    q.give_head(&env.pf, Some(q.head + 3))?;
    env.write(3000, 1)?;
    env.write(3001, 1)?;
    ensure(env.pf.events()?.is_empty(), || {
        "event before the trigger".into()
    })?;
    env.write(3002, 1)?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let ev = env.pf.events()?;
    ensure(ev == [(4, 0, u32::from(q.id))], || {
        format!("events {ev:?}, expected one-shot tail trigger")
    })?;
    // The one-shot event disarmed the trigger: Get Features reports
    // ETPT 0 and TPT 0h.
    let f = get_feature(env, &q)?;
    ensure(f == (q.head, 0, false), || {
        format!(
            "Get Features after the event: {f:?}, expected ({}, 0, false)",
            q.head
        )
    })?;
    // Head pointer rules.
    env.pf.expect(
        &AdminCmd::cdq_set_head(q.id, 64, None),
        0,
        INVALID_FIELD,
        "HP beyond the ring",
    )?;
    env.pf.expect(
        &AdminCmd::cdq_set_head(q.id, q.head + 10, None),
        0,
        INVALID_FIELD,
        "HP past the tail",
    )?;
    env.pf.expect(
        &AdminCmd::cdq_set_head(q.id, q.head, Some(64)),
        0,
        INVALID_FIELD,
        "TPT beyond the ring",
    )?;
    q.consume()?;
    q.give_head(&env.pf, None)?;
    q.track(&env.pf, false)?;
    q.delete(&env.pf)
}

/// Get Features 21h: (HP, TPT, ETPT), after checking that the data is the
/// 512-byte Controller Data Queue data structure (NVMe 2.1 Figure 427):
/// bytes 511:8 reserved (zero), nothing written past them.
fn get_feature(env: &Env, q: &Cdq) -> Result<(u32, u32, bool), String> {
    let buf = env.arena.alloc(4096).map_err(|e| e.to_string())?;
    buf.fill(0xa5);
    let get = AdminCmd {
        opcode: admin_opcode::GET_FEATURES,
        cdw: [0x21, u32::from(q.id), 0, 0, 0, 0],
        ..AdminCmd::default()
    };
    let c = env.pf.ok(&get, buf.iova(), "Get Features 21h")?;
    let mut data = vec![0u8; 4096];
    buf.read(0, &mut data);
    let reserved = data[8..512].iter().position(|&b| b != 0);
    ensure(reserved.is_none(), || {
        format!(
            "Get Features 21h: reserved byte {:?} not zero",
            reserved.map(|i| i + 8)
        )
    })?;
    ensure(data[512..].iter().all(|&b| b == 0xa5), || {
        "Get Features 21h wrote past the 512-byte data structure".into()
    })?;
    ensure(c.dw0 & 0xffff == u32::from(q.id), || {
        format!("Get Features 21h: dword 0 {:#x}, CDQID {}", c.dw0, q.id)
    })?;
    Ok((buf.read_u32(0), buf.read_u32(4), c.dw0 >> 31 != 0))
}

/// Set Features 21h with ETPT cleared disarms an armed trigger (TPT "shall
/// be ignored", NVMe 2.1 Figure 426), whatever TPT it carries.
fn etpt_clear_disarms(env: &Env) -> CaseResult {
    let mut q = Cdq::create(&env.pf, &env.arena, env.scid, 64, true)?;
    q.track(&env.pf, true)?;
    q.consume()?;
    q.give_head(&env.pf, None)?;
    env.pf.arm_aer()?;
    let tpt = q.head + 3;
    q.give_head(&env.pf, Some(tpt))?;
    let f = get_feature(env, &q)?;
    ensure(f == (q.head, tpt, true), || {
        format!(
            "Get Features when armed: {f:?}, expected ({}, {tpt}, true)",
            q.head
        )
    })?;
    // A head update with ETPT 0 (and a TPT that must be ignored).
    env.write(6000, 1)?;
    q.consume()?;
    env.pf.ok(
        &AdminCmd {
            cdw: [0x21, u32::from(q.id), q.head, tpt, 0, 0],
            ..AdminCmd::cdq_set_head(q.id, q.head, None)
        },
        0,
        "Set Features 21h, ETPT 0",
    )?;
    let f = get_feature(env, &q)?;
    ensure(f == (q.head, 0, false), || {
        format!(
            "Get Features after ETPT 0: {f:?}, expected ({}, 0, false)",
            q.head
        )
    })?;
    // The tail passes the old trigger: no event.
    for i in 1..6u64 {
        env.write(6000 + i, 1)?;
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let ev = env.pf.events()?;
    ensure(ev.is_empty(), || {
        format!("events {ev:?} after the trigger was disarmed")
    })?;
    // The outstanding event request still works: arm one entry ahead.
    q.consume()?;
    q.give_head(&env.pf, Some((q.head + 1) % q.entries))?;
    env.write(6010, 1)?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let ev = env.pf.events()?;
    ensure(ev == [(4, 0, u32::from(q.id))], || {
        format!("events {ev:?}, expected the re-armed tail trigger")
    })?;
    q.consume()?;
    q.give_head(&env.pf, None)?;
    q.track(&env.pf, false)?;
    q.delete(&env.pf)
}

/// The NVM Command Set Identify Controller (CNS 06h, CSI 00h) reports
/// LBAMQF (byte 24) 0h: the UDMQ posts LBA Migration Queue Entry Type 0.
fn nvm_identify_lbamqf(env: &Env) -> CaseResult {
    let buf = env.arena.alloc(4096).map_err(|e| e.to_string())?;
    buf.fill(0xa5);
    let id = AdminCmd {
        opcode: admin_opcode::IDENTIFY,
        // CNS 06h; CDW11[31:24] CSI 00h (NVM).
        cdw: [0x06, 0, 0, 0, 0, 0],
        ..AdminCmd::default()
    };
    env.pf.ok(&id, buf.iova(), "Identify CNS 06h CSI 00h")?;
    let mut b = [0u8; 1];
    buf.read(24, &mut b);
    ensure(b[0] == 0, || {
        format!("LBAMQF {:#x}, expected 0h (Type 0)", b[0])
    })
}

fn suspend_markers(env: &Env) -> CaseResult {
    let mut q = Cdq::create(&env.pf, &env.arena, env.scid, 64, false)?;
    q.track(&env.pf, true)?;
    env.write(4000, 2)?;
    env.pf.ok(
        &AdminCmd::suspend(env.scid, SuspendType::Suspend, false),
        0,
        "Suspend",
    )?;
    env.pf.expect(
        &AdminCmd::track_user_data(q.id, true),
        0,
        status::CONTROLLER_SUSPENDED,
        "Track Send start while suspended",
    )?;
    env.pf.ok(&AdminCmd::resume(env.scid), 0, "Resume")?;
    env.write(4002, 1)?;
    let got = q.consume()?;
    let m: Vec<_> = got.iter().map(marker).collect();
    ensure(
        m == [
            Some(Marker::First),
            None,
            Some(Marker::Suspended),
            Some(Marker::First),
            None,
        ],
        || format!("entries {got:?}"),
    )?;
    ensure(udmq_ranges(&got) == [(4000, 1), (4002, 0)], || {
        format!("ranges {:?}", udmq_ranges(&got))
    })?;
    q.give_head(&env.pf, None)?;
    // Suspend with DUDMQ deletes the queue.
    env.pf.ok(
        &AdminCmd::suspend(env.scid, SuspendType::Suspend, true),
        0,
        "Suspend, DUDMQ",
    )?;
    env.pf.expect(
        &AdminCmd::cdq_delete(q.id),
        0,
        status::INVALID_CDQ,
        "delete after DUDMQ",
    )?;
    env.pf.ok(&AdminCmd::resume(env.scid), 0, "Resume")?;
    Ok(())
}

fn prp_list_ring(env: &Env) -> CaseResult {
    // 256 entries = two pages behind a PRP list; 140 writes cross the page.
    let mut q = Cdq::create(&env.pf, &env.arena, env.scid, 256, false)?;
    q.track(&env.pf, true)?;
    let mut want = Vec::new();
    for i in 0..140u64 {
        env.write(5000 + i, 1)?;
        want.push((5000 + i, 0));
    }
    let got = q.consume()?;
    ensure(udmq_ranges(&got) == want, || {
        format!("{} of 140 writes logged", udmq_ranges(&got).len())
    })?;
    q.give_head(&env.pf, None)?;
    q.track(&env.pf, false)?;
    q.delete(&env.pf)
}

/// Runs the suite; returns the number of failed cases.
pub fn run(s: &Setup) -> usize {
    let mut k = Ktap::begin("cdq", 8, s.filter.clone());
    let env = match Env::open(s) {
        Ok(env) => env,
        Err(e) => {
            k.case("setup", || Err(e.clone()));
            return k.failed().max(1);
        }
    };
    k.case("logs_every_write", || logs_every_write(&env));
    k.case("wraparound", || wraparound(&env));
    k.case("full_condition", || full_condition(&env));
    k.case("tail_trigger_and_head_rules", || tail_trigger(&env));
    k.case("suspend_markers_and_dudmq", || suspend_markers(&env));
    k.case("prp_list_ring", || prp_list_ring(&env));
    k.case("etpt_clear_disarms", || etpt_clear_disarms(&env));
    k.case("nvm_identify_lbamqf", || nvm_identify_lbamqf(&env));
    k.failed()
}
