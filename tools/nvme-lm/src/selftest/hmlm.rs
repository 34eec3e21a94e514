// SPDX-License-Identifier: GPL-2.0

//! Conformance and end-to-end tests of the emulated controller's Host
//! Managed Live Migration, driven by admin passthrough on the PF (bound to
//! the kernel's nvme driver) and by the userspace client on two VFs bound
//! to vfio-pci and attached to one IOAS.

use super::guest::{
    pattern,
    Guest,
    NSID, //
};
use super::{
    ensure,
    CaseResult,
    Ktap, //
};
use crate::codec::cmd::{
    status,
    AdminCmd,
    Sequence,
    SuspendType, //
};
use crate::codec::identify::{
    StateFormats,
    ID_CTRL_OACS,
    OACS_HMLM, //
};
use crate::codec::state::{
    ControllerState,
    QueueLimits,
    QueueStateV0,
    HEADER_LEN, //
};
use crate::codec::track::{
    self,
    Range, //
};
use crate::dma::{
    Arena,
    Chunk, //
};
use crate::fail;
use crate::nvme::sqe::io_opcode;
use crate::nvme::Sqe;
use crate::passthru::{
    Completion,
    Passthru, //
};
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{
    Duration,
    Instant, //
};

/// The vendor-specific state format of the emulated controller.
pub const QEMU_VENDOR_UUID: [u8; 16] = [
    0x1c, 0x9f, 0x3a, 0x4e, 0x8b, 0x7d, 0x4e, 0x2a, 0x9f, 0x61, 0x6e, 0x76, 0x6d, 0x65, 0x2d, 0x6c,
];

const INVALID_OPCODE: u16 = 0x001;
const INVALID_FIELD: u16 = 0x002;
const CMD_SEQ_ERROR: u16 = 0x00c;
const INVALID_CTRL_ID: u16 = 0x11f;

/// What the suite runs against.
pub struct Setup {
    /// The PF's controller device, e.g. /dev/nvme0.
    pub pf: PathBuf,
    /// Source VF cdev and its secondary controller ID.
    pub a: (PathBuf, u16),
    /// Destination VF cdev and its secondary controller ID.
    pub b: (PathBuf, u16),
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

struct Env {
    pf: Passthru,
    pf_path: PathBuf,
    _iommufd: Iommufd,
    arena: Rc<Arena>,
    a: Device,
    b: Device,
    scid_a: u16,
    scid_b: u16,
}

fn expect_status(c: std::io::Result<Completion>, want: u16, what: &str) -> CaseResult {
    let c = c.map_err(|e| format!("{what}: {e}"))?;
    ensure(c.code() == want, || {
        format!("{what}: status {:#x}, expected {want:#x}", c.status)
    })
}

impl Env {
    fn open(s: &Setup) -> Result<Self, String> {
        let pf = Passthru::open(&s.pf).map_err(|e| e.to_string())?;
        let iommufd = Iommufd::open().map_err(|e| e.to_string())?;
        let arena = Arena::new(&iommufd, 64 << 20, 0x1_0000_0000).map_err(|e| e.to_string())?;
        let a = Device::open(&s.a.0, &iommufd).map_err(|e| e.to_string())?;
        let b = Device::open(&s.b.0, &iommufd).map_err(|e| e.to_string())?;
        Ok(Self {
            pf,
            pf_path: s.pf.clone(),
            _iommufd: iommufd,
            arena,
            a,
            b,
            scid_a: s.a.1,
            scid_b: s.b.1,
        })
    }

    fn admin(&self, cmd: &AdminCmd, data: Option<&mut [u8]>) -> std::io::Result<Completion> {
        self.pf.admin(cmd, data)
    }

    fn ok(
        &self,
        cmd: &AdminCmd,
        data: Option<&mut [u8]>,
        what: &str,
    ) -> Result<Completion, String> {
        let c = self.admin(cmd, data).map_err(|e| format!("{what}: {e}"))?;
        if c.code() != 0 {
            fail!("{what}: NVMe status {:#x}", c.status);
        }
        Ok(c)
    }

    fn suspend(&self, scid: u16) -> Result<(), String> {
        self.ok(
            &AdminCmd::suspend(scid, SuspendType::Suspend, false),
            None,
            "Suspend",
        )
        .map(|_| ())
    }

    fn resume(&self, scid: u16) -> Result<(), String> {
        self.ok(&AdminCmd::resume(scid), None, "Resume").map(|_| ())
    }

    /// Reads the whole state (CSVI 1, CSUUIDI 1): header first for sizes.
    fn get_state(&self, scid: u16) -> Result<(Vec<u8>, bool), String> {
        let mut h = vec![0u8; HEADER_LEN];
        self.ok(
            &AdminCmd::get_state(scid, 1, 1, 0, 48),
            Some(&mut h),
            "Get State header",
        )?;
        let hdr = crate::codec::state::Header::parse(&h).map_err(|e| e.reason().to_string())?;
        let len = hdr.total_len().map_err(|e| e.reason().to_string())?;
        let mut st = vec![0u8; len];
        let c = self.ok(
            &AdminCmd::get_state(scid, 1, 1, 0, len as u32),
            Some(&mut st),
            "Get State",
        )?;
        Ok((st, c.dw0 & 1 != 0))
    }

    fn set_state(
        &self,
        scid: u16,
        seq: Sequence,
        off: u64,
        data: &mut [u8],
    ) -> std::io::Result<Completion> {
        let cmd = AdminCmd::set_state(scid, seq, 1, 1, off, data.len() as u32);
        self.admin(&cmd, Some(data))
    }

    fn identify_pf(&self, cns: u8) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; 4096];
        self.ok(&AdminCmd::identify(cns, 0), Some(&mut buf), "Identify")?;
        Ok(buf)
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn pf_identify(env: &Env) -> CaseResult {
    let id = env.identify_pf(1)?;
    let oacs = u16_at(&id, ID_CTRL_OACS);
    ensure(oacs & OACS_HMLM != 0, || {
        format!("OACS {oacs:#x} lacks bit 11 (HMLMS)")
    })?;
    ensure(oacs & (1 << 8) == 0, || {
        "DBBUF advertised together with HMLM".into()
    })?;
    ensure(id[576] & 2 != 0, || {
        format!("TRATTR {:#x} lacks TUDCS", id[576])
    })?;
    for (name, off) in [
        ("MCUDMQ", 578),
        ("MNSUDMQ", 580),
        ("MCMR", 582),
        ("NMCMR", 584),
        ("MCDQPC", 586),
    ] {
        ensure(u16_at(&id, off) != 0, || format!("{name} is 0"))?;
    }
    println!(
        "# OACS {oacs:#x} TRATTR {:#x} MCUDMQ {} MNSUDMQ {} MCDQPC {}",
        id[576],
        u16_at(&id, 578),
        u16_at(&id, 580),
        u16_at(&id, 586)
    );
    Ok(())
}

fn pf_state_formats(env: &Env) -> CaseResult {
    let raw = env.identify_pf(0x20)?;
    let f = StateFormats::parse(&raw).map_err(|e| e.reason().to_string())?;
    ensure(f.version_count() == 1 && f.version(1) == Some(0), || {
        "NV/VERS: version 0 not listed first".into()
    })?;
    ensure(f.find_uuid(&QEMU_VENDOR_UUID) == Some(1), || {
        "vendor state UUID not listed".into()
    })?;
    // The same, as the `nvme-lm caps` report shows it.
    let r = crate::caps::report(&env.pf)?;
    for want in [
        "host managed live migration: yes",
        "state format csvi=1: NVMe version 0",
        "state format csuuidi=1: vendor 1c9f3a4e-8b7d-4e2a-9f61-6e766d652d6c",
    ] {
        ensure(r.contains(want), || {
            format!("caps report lacks {want:?}:\n{r}")
        })?;
    }
    Ok(())
}

fn vf_has_no_hmlm(env: &Env) -> CaseResult {
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16).map_err(|e| e.to_string())?;
    let id = g
        .ctrl
        .identify(&mut g.admin, &env.arena, 1, 0, 0)
        .map_err(|e| e.to_string())?;
    ensure(u16_at(&id, ID_CTRL_OACS) & OACS_HMLM == 0, || {
        "VF advertises HMLM".into()
    })?;
    for cmd in [
        AdminCmd::suspend(env.scid_b, SuspendType::Suspend, false),
        AdminCmd::get_state(env.scid_b, 1, 0, 0, 48),
        AdminCmd::cdq_create(env.scid_b, true, 64),
        AdminCmd::track_user_data(1, true),
    ] {
        let c = g
            .ctrl
            .admin(&mut g.admin, Sqe::from_admin(&cmd))
            .map_err(|e| e.to_string())?;
        ensure(c.code() == INVALID_OPCODE, || {
            format!(
                "opcode {:#x} on a VF: status {:#x}, expected Invalid Opcode",
                cmd.opcode, c.status
            )
        })?;
    }
    Ok(())
}

fn unknown_cntlid(env: &Env) -> CaseResult {
    for scid in [0x7f, 0] {
        expect_status(
            env.admin(&AdminCmd::suspend(scid, SuspendType::Suspend, false), None),
            INVALID_CTRL_ID,
            "Suspend",
        )?;
        expect_status(
            env.admin(&AdminCmd::resume(scid), None),
            INVALID_CTRL_ID,
            "Resume",
        )?;
        let mut b = vec![0u8; 48];
        expect_status(
            env.admin(&AdminCmd::get_state(scid, 1, 0, 0, 48), Some(&mut b)),
            INVALID_CTRL_ID,
            "Get State",
        )?;
        expect_status(
            env.set_state(scid, Sequence::Only, 0, &mut b),
            INVALID_CTRL_ID,
            "Set State",
        )?;
        expect_status(
            env.admin(&AdminCmd::cdq_create(scid, true, 64), None),
            INVALID_CTRL_ID,
            "CDQ create",
        )?;
    }
    Ok(())
}

fn suspend_resume(env: &Env) -> CaseResult {
    let _g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16).map_err(|e| e.to_string())?;
    let s = env.scid_a;
    expect_status(
        env.admin(&AdminCmd::resume(s), None),
        status::CONTROLLER_NOT_SUSPENDED,
        "Resume of running controller",
    )?;
    expect_status(
        env.admin(
            &AdminCmd::suspend(s, SuspendType::Notification, false),
            None,
        ),
        0,
        "Suspend notification",
    )?;
    let (_, csup) = env.get_state(s)?;
    ensure(!csup, || "CSUP set after a mere notification".into())?;
    env.suspend(s)?;
    // NVMe 2.1 p. 376: suspending a suspended controller is not an error.
    expect_status(
        env.admin(&AdminCmd::suspend(s, SuspendType::Suspend, false), None),
        0,
        "second Suspend",
    )?;
    let (st, csup) = env.get_state(s)?;
    let h = crate::codec::state::Header::parse(&st).map_err(|e| e.reason().to_string())?;
    ensure(csup && h.suspended, || {
        format!("suspended: CSUP {csup}, CSATTR {}", h.suspended)
    })?;
    env.resume(s)?;
    let (_, csup) = env.get_state(s)?;
    ensure(!csup, || "CSUP still set after Resume".into())?;
    expect_status(
        env.admin(&AdminCmd::resume(s), None),
        status::CONTROLLER_NOT_SUSPENDED,
        "second Resume",
    )
}

fn get_state_layout(env: &Env) -> CaseResult {
    let g = Guest::start(&env.a, Rc::clone(&env.arena), 2, 32).map_err(|e| e.to_string())?;
    env.suspend(env.scid_a)?;
    let (st, _) = env.get_state(env.scid_a)?;
    let cs = ControllerState::parse(&st).map_err(|e| format!("state: {}", e.reason()))?;
    let v0 = QueueStateV0::parse(cs.nvme).map_err(|e| format!("v0: {}", e.reason()))?;
    ensure(v0.sq_count() == 2 && v0.cq_count() == 2, || {
        format!("{} SQs, {} CQs", v0.sq_count(), v0.cq_count())
    })?;
    let vectors = env
        .a
        .irq_count(crate::sys::VFIO_PCI_MSIX_IRQ_INDEX)
        .map_err(|e| e.to_string())?;
    let lim = QueueLimits {
        max_qid: 2,
        mqes: 2047,
        vectors: vectors as u16,
        contiguous_only: true,
        page_size: 4096,
    };
    v0.validate(&lim)
        .map_err(|e| format!("v0 does not validate: {}", e.reason()))?;
    for (i, q) in g.io.iter().enumerate() {
        let i = i as u16;
        let sq = v0.sq(i).map_err(|e| e.reason().to_string())?;
        let cq = v0.cq(i).map_err(|e| e.reason().to_string())?;
        ensure(
            sq.qid == q.qid && sq.prp1 == q.sq_iova() && sq.qsize == 31 && sq.cqid == q.qid,
            || format!("SQ {sq:?}"),
        )?;
        ensure(
            cq.qid == q.qid
                && cq.prp1 == q.cq_iova()
                && cq.interrupts
                && Some(cq.vector) == q.vector
                && cq.tail == 0
                && !cq.slot0_phase,
            || format!("CQ {cq:?}"),
        )?;
    }
    ensure(
        cs.vendor.len() >= 128 && cs.vendor[0..4] == *b"QNLM",
        || "vendor section missing".into(),
    )?;
    // Offset reads return the same bytes as the whole read.
    for off in [4usize, 48, 52, 100] {
        let len = (st.len() - off) & !3;
        let mut part = vec![0u8; len];
        env.ok(
            &AdminCmd::get_state(env.scid_a, 1, 1, off as u64, len as u32),
            Some(&mut part),
            "Get State at offset",
        )?;
        ensure(part == st[off..off + len], || {
            format!("bytes at offset {off} differ")
        })?;
    }
    // CSUIDXP qualifies a vendor format only: ignored with CSUUIDI 0
    // (NVMe 2.1 figure 346).
    let v0_len = (HEADER_LEN + cs.nvme.len()) as u32;
    let mut plain = vec![0u8; v0_len as usize];
    env.ok(
        &AdminCmd::get_state(env.scid_a, 1, 0, 0, v0_len),
        Some(&mut plain),
        "Get State, version 0 only",
    )?;
    let mut cmd = AdminCmd::get_state(env.scid_a, 1, 0, 0, v0_len);
    cmd.cdw[1] |= 0xa5 << 24;
    let mut with_xp = vec![0u8; v0_len as usize];
    env.ok(
        &cmd,
        Some(&mut with_xp),
        "Get State, CSUIDXP without CSUUIDI",
    )?;
    ensure(with_xp == plain, || {
        "CSUIDXP changed a read without a vendor format".into()
    })?;
    let mut b = vec![0u8; 8];
    expect_status(
        env.admin(&AdminCmd::get_state(env.scid_a, 1, 1, 2, 8), Some(&mut b)),
        INVALID_FIELD,
        "unaligned offset",
    )?;
    expect_status(
        env.admin(&AdminCmd::get_state(env.scid_a, 2, 0, 0, 8), Some(&mut b)),
        INVALID_FIELD,
        "CSVI 2",
    )?;
    expect_status(
        env.admin(&AdminCmd::get_state(env.scid_a, 1, 2, 0, 8), Some(&mut b)),
        INVALID_FIELD,
        "CSUUIDI 2",
    )?;
    println!(
        "# state: {} bytes ({} NVMe, {} vendor)",
        st.len(),
        cs.nvme.len(),
        cs.vendor.len()
    );
    env.resume(env.scid_a)
}

fn set_state_rejects(env: &Env) -> CaseResult {
    // A source state to corrupt: A with two queue pairs, suspended.
    let _g = Guest::start(&env.a, Rc::clone(&env.arena), 2, 32).map_err(|e| e.to_string())?;
    env.suspend(env.scid_a)?;
    let (good, _) = env.get_state(env.scid_a)?;
    env.b.reset().map_err(|e| e.to_string())?;
    let b = env.scid_b;
    let mut st = good.clone();
    expect_status(
        env.set_state(b, Sequence::Only, 0, &mut st),
        status::CONTROLLER_NOT_SUSPENDED,
        "Set State on a running controller",
    )?;
    env.suspend(b)?;
    let corrupt = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut s = good.clone();
        f(&mut s);
        s
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "reserved header byte",
            corrupt(&|s| s[5] = 1),
            INVALID_FIELD,
        ),
        (
            "NVMECSS larger than the data",
            corrupt(&|s| s[16] += 1),
            INVALID_FIELD,
        ),
        ("NVMECSS high half", corrupt(&|s| s[24] = 1), INVALID_FIELD),
        ("v0 version 1", corrupt(&|s| s[48] = 1), INVALID_FIELD),
        (
            "SQ count beyond size",
            corrupt(&|s| s[50] = 9),
            INVALID_FIELD,
        ),
        (
            "duplicate SQ id",
            corrupt(&|s| {
                let q = s[56 + 10];
                s[56 + 24 + 10] = q;
            }),
            INVALID_FIELD,
        ),
        (
            "SQ id beyond VF resources",
            corrupt(&|s| s[56 + 10] = 9),
            INVALID_FIELD,
        ),
        (
            "SQ to a missing CQ",
            corrupt(&|s| s[56 + 12] = 7),
            INVALID_FIELD,
        ),
        (
            "queue size above MQES",
            corrupt(&|s| {
                s[56 + 8] = 0xff;
                s[56 + 9] = 0xff;
            }),
            INVALID_FIELD,
        ),
        (
            "unaligned queue base",
            corrupt(&|s| s[56] = 8),
            INVALID_FIELD,
        ),
        (
            "vendor magic",
            corrupt(&|s| {
                let v = s.len() - (s.len() - 56 - 96);
                s[v] ^= 0xff;
            }),
            INVALID_FIELD,
        ),
        ("truncated", good[..good.len() - 4].to_vec(), INVALID_FIELD),
    ];
    for (what, mut s, want) in cases {
        expect_status(env.set_state(b, Sequence::Only, 0, &mut s), want, what)?;
    }
    let mut s = good.clone();
    expect_status(
        env.set_state(b, Sequence::Middle, 0, &mut s[..8]),
        CMD_SEQ_ERROR,
        "middle piece without a first",
    )?;
    expect_status(
        env.set_state(b, Sequence::First, 4, &mut s[..8]),
        INVALID_FIELD,
        "first piece at offset 4",
    )?;
    expect_status(
        env.set_state(b, Sequence::First, 0, &mut s[..8]),
        0,
        "first piece",
    )?;
    expect_status(
        env.set_state(b, Sequence::Last, 12, &mut s[8..16]),
        INVALID_FIELD,
        "piece at a gap",
    )?;
    let cmd = AdminCmd::set_state(b, Sequence::Only, 2, 0, 0, 8);
    expect_status(env.admin(&cmd, Some(&mut s[..8])), INVALID_FIELD, "CSVI 2")?;
    // Nothing was loaded: B still has no I/O queues.
    let (bs, _) = env.get_state(b)?;
    let cs = ControllerState::parse(&bs).map_err(|e| e.reason().to_string())?;
    let v0 = QueueStateV0::parse(cs.nvme).map_err(|e| e.reason().to_string())?;
    ensure(v0.sq_count() == 0 && v0.cq_count() == 0, || {
        "a rejected state left queues behind".into()
    })?;
    // A controller with I/O queues refuses a state.
    let mut s = good.clone();
    expect_status(
        env.set_state(env.scid_a, Sequence::Only, 0, &mut s),
        CMD_SEQ_ERROR,
        "Set State into a controller with I/O queues",
    )?;
    env.resume(b)?;
    env.resume(env.scid_a)
}

fn cdq_errors(env: &Env) -> CaseResult {
    expect_status(
        env.admin(&AdminCmd::cdq_create(env.scid_a, true, 8), None),
        INVALID_FIELD,
        "CDQ of one entry",
    )?;
    expect_status(
        env.admin(&AdminCmd::cdq_create(env.scid_a, true, 12), None),
        INVALID_FIELD,
        "CDQ size not whole entries",
    )?;
    let mut qt1 = AdminCmd::cdq_create(env.scid_a, true, 64);
    qt1.cdw[0] |= 1 << 16;
    expect_status(env.admin(&qt1, None), INVALID_FIELD, "queue type 1")?;
    expect_status(
        env.admin(&AdminCmd::cdq_delete(9), None),
        status::INVALID_CDQ,
        "delete unknown CDQ",
    )?;
    expect_status(
        env.admin(&AdminCmd::track_user_data(9, true), None),
        status::INVALID_CDQ,
        "Track Send, unknown CDQ",
    )?;
    let mut sel2 = AdminCmd::track_user_data(9, true);
    sel2.cdw[0] |= 2;
    expect_status(env.admin(&sel2, None), INVALID_FIELD, "Track Send SEL 2")?;
    expect_status(
        env.admin(&AdminCmd::cdq_set_head(9, 0, None), None),
        status::INVALID_CDQ,
        "Set Features 21h, unknown CDQ",
    )?;
    Ok(())
}

/// Runs I/O on A, suspends A with commands in flight (fetched ones and
/// ones only rung after the suspend), moves the state to B in pieces,
/// resumes B, continues on B: every command completes exactly once and all
/// data verifies.
fn migrate(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 2, 64).map_err(e)?;
    for lba in 0..64u64 {
        g.submit_write((lba % 2) as usize, lba, true).map_err(e)?;
    }
    g.drain(30_000).map_err(e)?;
    g.flush(0).map_err(e)?;
    // An Asynchronous Event Request stays outstanding across the move.
    let aer_cid = g
        .admin
        .submit(
            &g.ctrl.doorbells(),
            Sqe {
                opcode: crate::nvme::sqe::admin_opcode::ASYNC_EVENT,
                ..Sqe::default()
            },
        )
        .map_err(e)?;
    let t0 = std::time::Instant::now();
    // In flight at suspend: rung just before it...
    for lba in 64..80u64 {
        g.submit_write((lba % 2) as usize, lba, false).map_err(e)?;
        g.submit_read((lba % 2) as usize, lba - 64, false)
            .map_err(e)?;
    }
    g.ring_all().map_err(e)?;
    env.suspend(env.scid_a)?;
    let t_suspend = t0.elapsed();
    // ... and rung while suspended: the SQ holds them, B will run them.
    for lba in 80..96u64 {
        g.submit_write((lba % 2) as usize, lba, false).map_err(e)?;
    }
    g.ring_all().map_err(e)?;
    let (st, csup) = env.get_state(env.scid_a)?;
    ensure(csup, || "source not suspended".into())?;
    // What moves, as `nvme-lm inspect` shows it.
    for line in crate::inspect::describe(&st)?.lines() {
        println!("# {line}");
    }
    let t_get = t0.elapsed();
    // The destination as a VMM leaves it before RUNNING: reset, config
    // space (bus master) restored, suspended and empty.
    env.b.reset().map_err(e)?;
    let irqs_b = Guest::destination(&env.b).map_err(e)?;
    env.suspend(env.scid_b)?;
    // Three pieces: first, middle, last.
    let mut st = st;
    let third = (st.len() / 3) & !3;
    let (p1, rest) = st.split_at_mut(third);
    let (p2, p3) = rest.split_at_mut(third);
    expect_status(
        env.set_state(env.scid_b, Sequence::First, 0, p1),
        0,
        "Set State, first piece",
    )?;
    expect_status(
        env.set_state(env.scid_b, Sequence::Middle, third as u64, p2),
        0,
        "Set State, middle piece",
    )?;
    expect_status(
        env.set_state(env.scid_b, Sequence::Last, 2 * third as u64, p3),
        0,
        "Set State, last piece",
    )?;
    env.resume(env.scid_b)?;
    let t_resume = t0.elapsed();
    g.switch_to(&env.b, irqs_b).map_err(e)?;
    let inflight = g.pending.len();
    g.drain(30_000)
        .map_err(|x| format!("after migration: {x}"))?;
    // B went on from A's SQ heads: every entry consumed once.
    g.sq_heads_at_tail()
        .map_err(|x| format!("after migration: {x}"))?;
    // The outstanding AER moved with its command identifier.
    let (bst, _) = env.get_state(env.scid_b)?;
    let cs = ControllerState::parse(&bst).map_err(|x| x.reason().to_string())?;
    ensure(cs.vendor.get(51) == Some(&1), || {
        format!("B has {:?} outstanding AERs", cs.vendor.get(51))
    })?;
    ensure(u16_at(cs.vendor, 128) == aer_cid, || {
        format!("AER CID {} on B, {aer_cid} on A", u16_at(cs.vendor, 128))
    })?;
    // The admin queue moved too.
    let id = g
        .ctrl
        .identify(&mut g.admin, &env.arena, 1, 0, 0)
        .map_err(e)?;
    ensure(u16_at(&id, 78) == env.scid_b, || {
        format!("admin queue answers as CNTLID {}", u16_at(&id, 78))
    })?;
    for lba in 96..128u64 {
        g.submit_write((lba % 2) as usize, lba, true).map_err(e)?;
    }
    g.drain(30_000).map_err(e)?;
    g.flush(1).map_err(e)?;
    let verified = g.verify_all().map_err(e)?;
    println!(
        "# {inflight} commands in flight moved, {verified} blocks verified on B; suspend {:.1} ms, get state {:.1} ms, set+resume {:.1} ms, state {} bytes",
        t_suspend.as_secs_f64() * 1e3,
        (t_get - t_suspend).as_secs_f64() * 1e3,
        (t_resume - t_get).as_secs_f64() * 1e3,
        st.len()
    );
    // The source, reset, is an ordinary controller again.
    env.a.reset().map_err(e)?;
    let mut ga = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16)
        .map_err(|x| format!("source after reset: {x}"))?;
    ga.model = g.model.clone();
    ga.submit_read(0, 5, true).map_err(e)?;
    ga.drain(10_000)
        .map_err(|x| format!("source after reset: {x}"))?;
    Ok(())
}

/// S0PT is the Phase Tag of slot 0 (IOCQA bit 2): a CQ that wrapped back
/// to tail 0 saves 1, one that never wrapped saves 0, and after the move
/// to B both post with the phase their host expects.
fn s0pt_after_wrap(env: &Env) -> CaseResult {
    const DEPTH: u16 = 16;
    let e = |x: std::io::Error| x.to_string();
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 2, DEPTH).map_err(e)?;
    // Queue 0: DEPTH completions in two batches (an SQ holds DEPTH - 1).
    for batch in 0..2u64 {
        for i in 0..u64::from(DEPTH / 2) {
            g.submit_write(0, batch * 64 + i, true).map_err(e)?;
        }
        g.drain(10_000).map_err(e)?;
    }
    env.suspend(env.scid_a)?;
    let (st, _) = env.get_state(env.scid_a)?;
    let cs = ControllerState::parse(&st).map_err(|x| x.reason().to_string())?;
    let v0 = QueueStateV0::parse(cs.nvme).map_err(|x| x.reason().to_string())?;
    let wrapped = v0.cq(0).map_err(|x| x.reason().to_string())?;
    let fresh = v0.cq(1).map_err(|x| x.reason().to_string())?;
    ensure(wrapped.tail == 0 && wrapped.slot0_phase, || {
        format!("CQ that wrapped: {wrapped:?}, want tail 0 and S0PT 1")
    })?;
    ensure(fresh.tail == 0 && !fresh.slot0_phase, || {
        format!("CQ that never wrapped: {fresh:?}, want tail 0 and S0PT 0")
    })?;
    env.b.reset().map_err(e)?;
    let irqs_b = Guest::destination(&env.b).map_err(e)?;
    env.suspend(env.scid_b)?;
    let mut st = st;
    expect_status(
        env.set_state(env.scid_b, Sequence::Only, 0, &mut st),
        0,
        "Set State",
    )?;
    env.resume(env.scid_b)?;
    g.switch_to(&env.b, irqs_b).map_err(e)?;
    // Completions on B: each queue past its next wrap.
    for i in 0..u64::from(DEPTH + 4) {
        for qi in 0..2 {
            g.submit_write(qi, 256 + 64 * qi as u64 + i, true)
                .map_err(e)?;
        }
        if i % 4 == 3 {
            g.drain(10_000)
                .map_err(|x| format!("completions on B: {x}"))?;
        }
    }
    g.drain(10_000)
        .map_err(|x| format!("completions on B: {x}"))?;
    g.verify_all().map_err(e)?;
    env.a.reset().map_err(e)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Track Memory Changes (NVMe 2.2): Track Send SEL 1 and Track Receive on the
// PF for the DMA writes of VF A into the client's arena.

/// Granularity every case tracks at: 4 KiB, the arena's page.
const TMC_GRAN: u8 = 12;
const TMC_PAGE: u64 = 1 << TMC_GRAN;

/// Track Send SEL 1 start with the raw data `data`.
fn tmc_start_raw(env: &Env, scid: u16, data: &mut [u8]) -> std::io::Result<Completion> {
    env.admin(&AdminCmd::track_memory(scid, true), Some(data))
}

/// The data of a valid start over `ranges` (addr, granules).
fn tmc_start_data(ranges: &[(u64, u32)]) -> Result<Vec<u8>, String> {
    let ranges: Vec<Range> = ranges
        .iter()
        .map(|&(addr, granules)| Range { addr, granules })
        .collect();
    let mut buf = vec![0u8; track::start_len(ranges.len()).ok_or("overflow")?];
    track::encode_start(&mut buf, TMC_GRAN, &ranges).map_err(|e| e.reason().to_string())?;
    Ok(buf)
}

/// Starts tracking VF A's writes into the whole arena.
fn tmc_start_arena(env: &Env) -> CaseResult {
    let (base, len) = env.arena.iova_range();
    let mut data = tmc_start_data(&[(base, (len as u64 / TMC_PAGE) as u32)])?;
    let c =
        tmc_start_raw(env, env.scid_a, &mut data).map_err(|e| format!("Track Send start: {e}"))?;
    ensure(c.code() == 0, || {
        format!("Track Send start: status {:#x}", c.status)
    })?;
    ensure(c.dw0 & 0xff == u32::from(TMC_GRAN), || {
        format!(
            "start: MRTG {} in dword 0, asked for {TMC_GRAN}",
            c.dw0 & 0xff
        )
    })
}

/// One Track Receive of `len` bytes for VF A: (more, changed runs).
fn tmc_receive(env: &Env, len: usize) -> Result<(bool, Vec<Range>), String> {
    let mut buf = vec![0u8; len];
    env.ok(
        &AdminCmd::tracked_changes(env.scid_a, len as u32),
        Some(&mut buf),
        "Track Receive",
    )?;
    let ch = track::Changes::parse(&buf).map_err(|e| format!("report: {}", e.reason()))?;
    ensure(
        ch.cntlid == env.scid_a && ch.granularity == TMC_GRAN,
        || {
            format!(
                "report names CNTLID {} granularity {}, expected {} and {TMC_GRAN}",
                ch.cntlid, ch.granularity, env.scid_a
            )
        },
    )?;
    Ok((ch.more(), ch.ranges().collect()))
}

/// The page-granule addresses of `runs`, checking they are ascending and
/// maximal (no two touch: one tracked range).
fn tmc_pages(runs: &[Range]) -> Result<Vec<u64>, String> {
    let mut pages = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        ensure(r.granules != 0 && r.addr % TMC_PAGE == 0, || {
            format!("descriptor {i}: {r:?}")
        })?;
        if let Some(&last) = pages.last() {
            ensure(r.addr > last + TMC_PAGE, || {
                format!("descriptor {i} {r:?} not after, or adjacent to, the one before")
            })?;
        }
        pages.extend((0..u64::from(r.granules)).map(|g| r.addr + g * TMC_PAGE));
    }
    Ok(pages)
}

/// Maximal runs of the sorted, distinct pages `pages`.
fn tmc_runs(pages: &[u64]) -> Vec<Range> {
    let mut runs: Vec<Range> = Vec::new();
    for &p in pages {
        match runs.last_mut() {
            Some(r) if r.addr + u64::from(r.granules) * TMC_PAGE == p => r.granules += 1,
            _ => runs.push(Range {
                addr: p,
                granules: 1,
            }),
        }
    }
    runs
}

/// A one-block Read or Write through `buf` on I/O queue 0, waited for.
fn tmc_io(g: &mut Guest, opcode: u8, lba: u64, buf: &Chunk) -> CaseResult {
    let db = g.ctrl.doorbells();
    let q = &mut g.io[0];
    let cid = q
        .submit(&db, Sqe::rw(opcode, NSID, lba, 1, buf.iova(), 0))
        .map_err(|e| e.to_string())?;
    let mut others = Vec::new();
    let c = q
        .wait(&db, cid, 10_000, &mut others)
        .map_err(|e| e.to_string())?;
    ensure(c.code() == 0 && others.is_empty(), || {
        format!(
            "opcode {opcode:#x}: status {:#x}, others {others:?}",
            c.status
        )
    })
}

fn track_memory_limits(env: &Env) -> CaseResult {
    let id = env.identify_pf(1)?;
    let l = track::Limits::parse(&id)
        .map_err(|e| e.reason().to_string())?
        .ok_or("TRATTR.THMCS clear")?;
    ensure(id[track::ID_CTRL_TRATTR] & 0x4 == 0, || {
        format!("TRATTR {:#x}: MRTLL set", id[track::ID_CTRL_TRATTR])
    })?;
    ensure(l.ranges == 16 && l.subsystem_ranges == 64, || {
        format!(
            "CMMRTD {} NMMRTD {}, expected 16 and 64",
            l.ranges, l.subsystem_ranges
        )
    })?;
    ensure(l.min_granularity == 12 && l.max_granularity == 21, || {
        format!(
            "MINMRTG {} MAXMRTG {}, expected 12 and 21",
            l.min_granularity, l.max_granularity
        )
    })?;
    println!("# {l:?}");
    Ok(())
}

fn track_memory_refusals(env: &Env) -> CaseResult {
    let (base, _) = env.arena.iova_range();
    let a = env.scid_a;
    let good = tmc_start_data(&[(base, 16)])?;
    let mut recv = vec![0u8; 4096];
    for scid in [0x7f, 0] {
        let mut d = good.clone();
        expect_status(
            tmc_start_raw(env, scid, &mut d),
            INVALID_CTRL_ID,
            "start, unknown CNTLID",
        )?;
        expect_status(
            env.admin(&AdminCmd::track_memory(scid, false), None),
            INVALID_CTRL_ID,
            "stop, unknown CNTLID",
        )?;
        expect_status(
            env.admin(&AdminCmd::tracked_changes(scid, 4096), Some(&mut recv)),
            INVALID_CTRL_ID,
            "Track Receive, unknown CNTLID",
        )?;
    }
    expect_status(
        env.admin(&AdminCmd::track_memory(a, false), None),
        CMD_SEQ_ERROR,
        "stop without start",
    )?;
    expect_status(
        env.admin(&AdminCmd::tracked_changes(a, 4096), Some(&mut recv)),
        CMD_SEQ_ERROR,
        "Track Receive without start",
    )?;
    // Field positions from the codec: header, then descriptors.
    let desc = |i: usize| track::START_HEADER_LEN + i * track::RANGE_LEN;
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = good.clone();
        f(&mut d);
        d
    };
    let two = tmc_start_data(&[(base, 4), (base + 8 * TMC_PAGE, 4)])?;
    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        ("VER 1", with(&|d| d[0] = 1)),
        ("RMRTG below MINMRTG", with(&|d| d[3] = 11)),
        ("RMRTG above MAXMRTG", with(&|d| d[3] = 22)),
        // The header alone, saying so: a header that announced a range
        // would make the controller read past this buffer, into whatever
        // the client's heap holds there.
        ("RNMRTD 0", {
            let mut d = good[..track::START_HEADER_LEN].to_vec();
            d[4..8].fill(0);
            d
        }),
        ("RNMRTD above CMMRTD", {
            let mut d = vec![0u8; track::start_len(17).ok_or("overflow")?];
            d[..good.len()].copy_from_slice(&good);
            d[4..8].copy_from_slice(&17u32.to_le_bytes());
            d
        }),
        (
            "SADDR not aligned",
            with(&|d| d[desc(0)..desc(0) + 8].copy_from_slice(&(base + 0x800).to_le_bytes())),
        ),
        ("LEN 0", with(&|d| d[desc(0) + 8..desc(0) + 12].fill(0))),
        (
            "range past the top of the address space",
            with(&|d| d[desc(0)..desc(0) + 8].copy_from_slice(&(!(TMC_PAGE - 1)).to_le_bytes())),
        ),
    ];
    let mut overlap = two.clone();
    overlap[desc(1)..desc(1) + 8].copy_from_slice(&(base + 3 * TMC_PAGE).to_le_bytes());
    bad.push(("overlapping ranges", overlap));
    for (what, mut d) in bad {
        expect_status(tmc_start_raw(env, a, &mut d), INVALID_FIELD, what)?;
    }
    let mut mos = AdminCmd::track_memory(a, true);
    mos.cdw[0] |= 1 << 17;
    let mut d = good.clone();
    expect_status(env.admin(&mos, Some(&mut d)), INVALID_FIELD, "MOS bit 1")?;
    // None of those started anything.
    expect_status(
        env.admin(&AdminCmd::track_memory(a, false), None),
        CMD_SEQ_ERROR,
        "stop after refused starts",
    )?;
    // Accepted: two disjoint ranges; then a second start is out of sequence.
    let mut d = two.clone();
    expect_status(tmc_start_raw(env, a, &mut d), 0, "start")?;
    let mut d = good.clone();
    expect_status(
        tmc_start_raw(env, a, &mut d),
        CMD_SEQ_ERROR,
        "start while tracking",
    )?;
    let mut small = vec![0u8; 12];
    expect_status(
        env.admin(&AdminCmd::tracked_changes(a, 12), Some(&mut small)),
        INVALID_FIELD,
        "Track Receive into 12 bytes",
    )?;
    let mut sel1 = AdminCmd::tracked_changes(a, 4096);
    sel1.cdw[0] |= 1;
    expect_status(
        env.admin(&sel1, Some(&mut recv)),
        INVALID_FIELD,
        "Track Receive SEL 1",
    )?;
    let c = env.ok(&AdminCmd::track_memory(a, false), None, "stop")?;
    ensure(c.dw0 & 0xff == u32::from(TMC_GRAN), || {
        format!("stop: MRTG {}", c.dw0 & 0xff)
    })?;
    expect_status(
        env.admin(&AdminCmd::track_memory(a, false), None),
        CMD_SEQ_ERROR,
        "second stop",
    )
}

fn track_memory_reads(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    let bufs: Vec<Chunk> = (0..5)
        .map(|_| env.arena.alloc(g.lba_size))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let (reads, writes) = ([&bufs[0], &bufs[2], &bufs[3]], [&bufs[1], &bufs[4]]);
    for (i, w) in writes.iter().enumerate() {
        w.write(0, &pattern(300 + i as u64, 1, g.lba_size));
    }
    tmc_start_arena(env)?;
    tmc_io(&mut g, io_opcode::WRITE, 300, writes[0])?;
    tmc_io(&mut g, io_opcode::READ, 300, reads[0])?;
    tmc_io(&mut g, io_opcode::WRITE, 301, writes[1])?;
    tmc_io(&mut g, io_opcode::READ, 301, reads[1])?;
    tmc_io(&mut g, io_opcode::READ, 300, reads[2])?;
    // The data went where the report will say.
    let mut got = vec![0u8; g.lba_size];
    reads[1].read(0, &mut got);
    ensure(got == pattern(301, 1, g.lba_size), || {
        "read data wrong".into()
    })?;
    let (more, runs) = tmc_receive(env, 4096)?;
    let pages = tmc_pages(&runs)?;
    println!(
        "# {} changed granules reported in {} descriptors",
        pages.len(),
        runs.len()
    );
    let cq = g.io[0].cq_iova();
    let mut want: Vec<u64> = reads.iter().map(|b| b.iova()).chain([cq]).collect();
    want.sort_unstable();
    for (what, addr) in [
        ("write data", writes[0].iova()),
        ("write data", writes[1].iova()),
        ("the I/O SQ", g.io[0].sq_iova()),
        ("the admin SQ", g.admin.sq_iova()),
    ] {
        ensure(!pages.contains(&addr), || {
            format!("{what} at {addr:#x} reported changed: {runs:?}")
        })?;
    }
    ensure(!more && pages == want, || {
        format!("changed pages {pages:x?} (more {more}), expected {want:x?} (reads, I/O CQ)")
    })?;
    let (more, runs) = tmc_receive(env, 4096)?;
    ensure(!more && runs.is_empty(), || {
        format!("second receive: {runs:?} (more {more}): not cleared on read")
    })?;
    // Written again after the harvest: reported again.
    tmc_io(&mut g, io_opcode::READ, 301, reads[0])?;
    let (_, runs) = tmc_receive(env, 4096)?;
    let pages = tmc_pages(&runs)?;
    let mut want = vec![reads[0].iova(), cq];
    want.sort_unstable();
    ensure(pages == want, || {
        format!("after one more read: {pages:x?}, expected {want:x?}")
    })?;
    // Admin data to the host: an Identify on the VF marks its buffer and
    // the admin CQ.
    let id = env.arena.alloc(4096).map_err(e)?;
    let mut sqe = Sqe::from_admin(&AdminCmd::identify(1, 0));
    sqe.prp1 = id.iova();
    g.ctrl
        .admin_ok(&mut g.admin, sqe, "Identify on the VF")
        .map_err(e)?;
    let (_, runs) = tmc_receive(env, 4096)?;
    let pages = tmc_pages(&runs)?;
    let mut want = vec![id.iova(), g.admin.cq_iova()];
    want.sort_unstable();
    ensure(pages == want, || {
        format!("after an Identify: {pages:x?}, expected {want:x?} (its buffer, admin CQ)")
    })?;
    env.ok(&AdminCmd::track_memory(env.scid_a, false), None, "stop")
        .map(|_| ())
}

fn track_memory_more(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    let bufs: Vec<Chunk> = (0..7)
        .map(|_| env.arena.alloc(g.lba_size))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    tmc_start_arena(env)?;
    // Every other buffer: separate runs.
    for (i, b) in bufs.iter().step_by(2).enumerate() {
        tmc_io(&mut g, io_opcode::READ, i as u64, b)?;
    }
    let mut pages: Vec<u64> = bufs.iter().step_by(2).map(|b| b.iova()).collect();
    pages.push(g.io[0].cq_iova());
    pages.sort_unstable();
    let want = tmc_runs(&pages);
    ensure(want.len() >= 4, || {
        format!("only {} runs to report", want.len())
    })?;
    // Room for the header only: nothing reported, nothing lost.
    let (more, runs) = tmc_receive(env, track::REPORT_HEADER_LEN)?;
    ensure(more && runs.is_empty(), || {
        format!("header-only receive: more {more}, {runs:?}")
    })?;
    let two = track::REPORT_HEADER_LEN + 2 * track::CHANGE_LEN;
    let (more, first) = tmc_receive(env, two)?;
    ensure(more && first[..] == want[..2], || {
        format!(
            "first receive: more {more}, {first:?}, expected {:?}",
            &want[..2]
        )
    })?;
    let (more, rest) = tmc_receive(env, 4096)?;
    ensure(!more && rest[..] == want[2..], || {
        format!(
            "second receive: more {more}, {rest:?}, expected {:?}",
            &want[2..]
        )
    })?;
    let (more, runs) = tmc_receive(env, 4096)?;
    ensure(!more && runs.is_empty(), || {
        format!("third receive: {runs:?}")
    })?;
    env.ok(&AdminCmd::track_memory(env.scid_a, false), None, "stop")
        .map(|_| ())
}

fn track_memory_reset(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let mut recv = vec![0u8; 4096];
    // Function level reset of the VF.
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    let buf = env.arena.alloc(g.lba_size).map_err(e)?;
    tmc_start_arena(env)?;
    tmc_io(&mut g, io_opcode::READ, 0, &buf)?;
    env.a.reset().map_err(e)?;
    expect_status(
        env.admin(
            &AdminCmd::tracked_changes(env.scid_a, 4096),
            Some(&mut recv),
        ),
        CMD_SEQ_ERROR,
        "Track Receive after a function reset",
    )?;
    // Controller reset (CC.EN 1 to 0).
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    tmc_start_arena(env)?;
    tmc_io(&mut g, io_opcode::READ, 0, &buf)?;
    g.ctrl.disable().map_err(e)?;
    expect_status(
        env.admin(
            &AdminCmd::tracked_changes(env.scid_a, 4096),
            Some(&mut recv),
        ),
        CMD_SEQ_ERROR,
        "Track Receive after CC.EN 1 to 0",
    )?;
    expect_status(
        env.admin(&AdminCmd::track_memory(env.scid_a, false), None),
        CMD_SEQ_ERROR,
        "stop after CC.EN 1 to 0",
    )?;
    // Tracking survives Suspend and Resume, and Track Receive works while
    // suspended (the final harvest).
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    tmc_start_arena(env)?;
    tmc_io(&mut g, io_opcode::READ, 0, &buf)?;
    env.suspend(env.scid_a)?;
    let (_, runs) = tmc_receive(env, 4096)?;
    env.resume(env.scid_a)?;
    let pages = tmc_pages(&runs)?;
    ensure(pages.contains(&buf.iova()), || {
        format!("suspended harvest lacks the read buffer: {pages:x?}")
    })?;
    env.ok(&AdminCmd::track_memory(env.scid_a, false), None, "stop")
        .map(|_| ())
}

// ---------------------------------------------------------------------------
// A guest that stops consuming its completion queue (issue 15): Suspend must
// not wait for CQ room the guest may never free. Completions that cannot be
// posted stay in the controller, move in the vendor state and are posted
// once the guest frees room after Resume, on the destination or (cancel)
// on the source.

/// Entries of the stalled guest's CQ: it holds 3 completions.
const STALL_CQ: u16 = 4;
/// Admin passthrough timeout of the Suspend with a full CQ. The controller
/// must complete it well within; if it does not, the kernel's nvme driver
/// gives up on the command and resets the PF (as it would after
/// nvme_core.admin_timeout for the VMM's Suspend).
const FULL_CQ_SUSPEND_TIMEOUT_MS: u32 = 10_000;
/// What the Suspend may take at most, on a TCG-emulated machine.
const FULL_CQ_SUSPEND_BOUND: Duration = Duration::from_secs(3);

/// A completion waiting for CQ room, as vendor state version 2 carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VendorCqe {
    sqid: u16,
    cid: u16,
    status: u16,
    rsvd: u16,
    dw0: u32,
    dw1: u32,
}

/// The pending completions of vendor section `v` (emulated-hmlm.rst,
/// vendor state version 2): their offset in `v`, and the list.
fn vendor_cqes(v: &[u8]) -> Result<(usize, Vec<VendorCqe>), String> {
    ensure(v.len() >= 128 && v[0..4] == *b"QNLM", || {
        "vendor section missing".into()
    })?;
    let version = u16_at(v, 4);
    ensure(version == 2, || {
        format!("vendor state version {version}, expected 2 (pending completions)")
    })?;
    let (naer, nev) = (usize::from(v[51]), usize::from(v[52]));
    let off = (128 + 2 * naer + 8 * nev + 3) & !3;
    let nr = u32_at(v, 124) as usize;
    ensure(off + 16 * nr <= v.len(), || {
        format!(
            "{nr} pending completions at {off} overrun a {}-byte vendor section",
            v.len()
        )
    })?;
    let list = (0..nr)
        .map(|i| {
            let b = off + 16 * i;
            VendorCqe {
                sqid: u16_at(v, b),
                cid: u16_at(v, b + 2),
                status: u16_at(v, b + 4),
                rsvd: u16_at(v, b + 6),
                dw0: u32_at(v, b + 8),
                dw1: u32_at(v, b + 12),
            }
        })
        .collect();
    Ok((off, list))
}

/// The kernel log records still in the buffer: (sequence number, text).
fn kmsg_records() -> Result<Vec<(u64, String)>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| format!("/dev/kmsg: {e}"))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16384];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                let (head, body) = rec.split_once(';').unwrap_or((&rec, ""));
                let seq = head
                    .split(',')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                out.push((seq, body.lines().next().unwrap_or("").to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // Overwritten while read: go on with the next record.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(format!("/dev/kmsg: {e}")),
        }
    }
    Ok(out)
}

/// The sequence number the next kernel log record will have.
fn kmsg_cursor() -> Result<u64, String> {
    Ok(kmsg_records()?.last().map_or(0, |(seq, _)| seq + 1))
}

impl Env {
    /// The PF's kernel name, e.g. `nvme0`.
    fn pf_name(&self) -> String {
        self.pf_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The kernel log lines since `cursor` that report a timeout or a
    /// reset of the PF.
    fn pf_resets(&self, cursor: u64) -> Result<Vec<String>, String> {
        let tag = format!("{}:", self.pf_name());
        Ok(kmsg_records()?
            .into_iter()
            .filter(|(seq, line)| {
                let l = line.to_lowercase();
                *seq >= cursor
                    && line.contains(&tag)
                    && (l.contains("timeout") || l.contains("reset"))
            })
            .map(|(_, line)| line)
            .collect())
    }

    /// What the kernel did to the PF since `cursor`, for a failure report.
    fn pf_report(&self, cursor: u64) -> String {
        let name = self.pf_name();
        let state = std::fs::read_to_string(format!("/sys/class/nvme/{name}/state"))
            .unwrap_or_else(|e| e.to_string());
        format!(
            "kernel log on {name}: {:?}; {name} now {}",
            self.pf_resets(cursor).unwrap_or_else(|e| vec![e]),
            state.trim()
        )
    }

    /// Fails if the kernel logged a timeout or a reset of the PF since
    /// `cursor`, or if the PF's controller is not live and answering.
    fn pf_untouched(&self, cursor: u64) -> CaseResult {
        let name = self.pf_name();
        let bad = self.pf_resets(cursor)?;
        ensure(bad.is_empty(), || {
            format!("the kernel timed out or reset the PF: {bad:?}")
        })?;
        let state = std::fs::read_to_string(format!("/sys/class/nvme/{name}/state"))
            .map_err(|e| format!("{name} state: {e}"))?;
        ensure(state.trim() == "live", || {
            format!("PF {name} is {}", state.trim())
        })?;
        self.identify_pf(1).map(|_| ())
    }
}

/// One I/O round on `g` (another VF): writes 4 blocks, reads them back.
fn io_round(g: &mut Guest, round: u64) -> std::io::Result<()> {
    let base = 8000 + (round % 16) * 4;
    for lba in base..base + 4 {
        g.submit_write(0, lba, true)?;
    }
    g.drain(10_000)?;
    for lba in base..base + 4 {
        g.submit_read(0, lba, true)?;
    }
    g.drain(10_000)?;
    Ok(())
}

/// A guest on A, one I/O queue of `depth` SQ entries and a [`STALL_CQ`]
/// entry CQ, that stops consuming its CQ and keeps submitting `n`
/// commands in rounds (writes of fresh blocks from `base` + 1000, reads of
/// blocks it wrote, and consumed, before): the CQ fills, and the rest
/// complete into the controller's wait for CQ room.
fn stall(env: &Env, depth: u16, n: u64, base: u64) -> Result<Guest, String> {
    let e = |x: std::io::Error| x.to_string();
    let mut g = Guest::start_sized(&env.a, Rc::clone(&env.arena), 1, depth, STALL_CQ).map_err(e)?;
    for i in 0..n / 2 {
        g.submit_write(0, base + i, true).map_err(e)?;
    }
    g.drain(30_000).map_err(e)?;
    let mut k = 0;
    while k < n {
        for _ in 0..8.min(n - k) {
            if k % 2 == 0 {
                g.submit_write(0, base + 1000 + k, false).map_err(e)?;
            } else {
                g.submit_read(0, base + k / 2, false).map_err(e)?;
            }
            k += 1;
        }
        g.ring_all().map_err(e)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    while g.posted().len() < usize::from(STALL_CQ - 1) {
        if t.elapsed() > Duration::from_secs(10) {
            fail!("the CQ holds {} completions after 10 s", g.posted().len());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Time for the controller to complete the rest inside.
    std::thread::sleep(Duration::from_millis(300));
    Ok(g)
}

/// Suspends A through the PF from another thread, bounded by
/// [`FULL_CQ_SUSPEND_TIMEOUT_MS`], while `other` (a guest on another VF of
/// the same PF) runs I/O rounds; returns how long the Suspend took, which
/// must be under [`FULL_CQ_SUSPEND_BOUND`], and the I/O rounds done
/// meanwhile. A failure carries the PF's kernel log since `cursor`.
fn suspend_during_io(env: &Env, other: &mut Guest, cursor: u64) -> Result<(Duration, u64), String> {
    let (took, rounds) =
        suspend_while(env, other).map_err(|x| format!("{x}\n{}", env.pf_report(cursor)))?;
    ensure(took < FULL_CQ_SUSPEND_BOUND, || {
        format!(
            "Suspend with a full CQ took {:.1} ms",
            took.as_secs_f64() * 1e3
        )
    })?;
    Ok((took, rounds))
}

/// [`suspend_during_io`] without its checks.
fn suspend_while(env: &Env, other: &mut Guest) -> Result<(Duration, u64), String> {
    let (path, scid) = (env.pf_path.clone(), env.scid_a);
    let h = std::thread::spawn(move || -> Result<Duration, String> {
        let pf = Passthru::open(&path).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let c = pf
            .admin_timeout(
                &AdminCmd::suspend(scid, SuspendType::Suspend, false),
                None,
                FULL_CQ_SUSPEND_TIMEOUT_MS,
            )
            .map_err(|e| {
                format!(
                    "Suspend with a full CQ did not complete ({e}) after {:.1} s",
                    t0.elapsed().as_secs_f64()
                )
            })?;
        ensure(c.code() == 0, || {
            format!("Suspend with a full CQ: NVMe status {:#x}", c.status)
        })?;
        Ok(t0.elapsed())
    });
    let mut rounds = 0;
    let mut io_err = None;
    loop {
        let done = h.is_finished();
        if io_err.is_none() {
            if let Err(x) = io_round(other, rounds) {
                io_err = Some(format!("I/O round {rounds} on the other VF: {x}"));
            }
            rounds += 1;
        }
        if done {
            break;
        }
        // Each round takes fresh buffers from the arena: a few rounds a
        // second last as long as the Suspend's timeout.
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = h
        .join()
        .map_err(|_| "the Suspend thread panicked".to_string())?;
    match (took, io_err) {
        (Err(s), Some(i)) => Err(format!("{s}; {i}")),
        (Err(s), None) => Err(s),
        (Ok(_), Some(i)) => Err(i),
        (Ok(t), None) => Ok((t, rounds)),
    }
}

/// After the Suspend of stalled guest `g`: the state's pending completions
/// are the commands completed and not posted, each once, successful; with
/// the completions posted and the commands never fetched they account
/// for every command in flight. Returns them.
fn check_pending(g: &Guest, st: &[u8]) -> Result<Vec<VendorCqe>, String> {
    let cs = ControllerState::parse(st).map_err(|x| x.reason().to_string())?;
    let v0 = QueueStateV0::parse(cs.nvme).map_err(|x| x.reason().to_string())?;
    let sq = v0.sq(0).map_err(|x| x.reason().to_string())?;
    let size = u32::from(sq.qsize) + 1;
    let unfetched = (u32::from(sq.tail) + size - u32::from(sq.head)) % size;
    let (_, pending) = vendor_cqes(cs.vendor)?;
    let posted = g.posted();
    ensure(
        posted.len() + pending.len() + unfetched as usize == g.pending.len(),
        || {
            format!(
                "{} in flight, but {} posted + {} pending in the state + {unfetched} not fetched",
                g.pending.len(),
                posted.len(),
                pending.len()
            )
        },
    )?;
    ensure(!pending.is_empty(), || {
        "no completion waited for CQ room: the case did not stall".into()
    })?;
    let mut seen = std::collections::BTreeSet::new();
    for c in &pending {
        ensure(
            c.sqid == 1 && c.status == 0 && c.rsvd == 0 && c.dw0 == 0 && c.dw1 == 0,
            || format!("pending completion {c:?}"),
        )?;
        ensure(
            g.pending.contains_key(&(1, c.cid))
                && !posted.contains(&(1, c.cid))
                && seen.insert(c.cid),
            || format!("pending completion {c:?}: not a command in flight, or twice"),
        )?;
    }
    Ok(pending)
}

/// Suspended with completions pending: the guest consumes what was posted
/// (its CQ head doorbell frees room), and the controller posts nothing
/// and raises no interrupt.
fn consume_while_suspended(g: &mut Guest) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let before = g.posted().len();
    let took = g.collect(200).map_err(e)?;
    ensure(took == before, || {
        format!("consumed {took} completions while suspended, {before} were posted")
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let posted = g.posted();
    let fired = g.irqs.wait(Duration::ZERO).map_err(e)?;
    ensure(posted.is_empty() && fired.is_empty(), || {
        format!("suspended, the controller posted {posted:?} and signalled vectors {fired:?}")
    })
}

/// Fails unless the first completions the guest reaped from index
/// `from` on are `pending`, in order.
fn posted_first(g: &Guest, from: usize, pending: &[VendorCqe]) -> CaseResult {
    let want: Vec<(u16, u16)> = pending.iter().map(|c| (c.sqid, c.cid)).collect();
    let got = &g.completions[from..];
    ensure(
        got.len() >= want.len() && got[..want.len()] == want[..],
        || format!("completions after Resume {got:?}, expected the pending ones first: {want:?}"),
    )
}

/// Set State into B of `good` changed by `f`: Invalid Field.
fn reject_pending(env: &Env, good: &[u8], what: &str, f: &dyn Fn(&mut Vec<u8>)) -> CaseResult {
    let mut s = good.to_vec();
    f(&mut s);
    expect_status(
        env.set_state(env.scid_b, Sequence::Only, 0, &mut s),
        INVALID_FIELD,
        what,
    )
}

/// A guest on A fills its CQ and stops consuming it while it keeps
/// submitting; Suspend through the PF completes at once all the same (VF B
/// runs I/O meanwhile), the state carries the completions that wait for
/// CQ room, B loads it (and refuses broken ones), and once the guest
/// consumes its CQ on B every command completes exactly once, the pending
/// ones first and in order. The PF is never timed out nor reset.
fn suspend_with_full_cq(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let cursor = kmsg_cursor()?;
    let mut gb = Guest::start(&env.b, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    io_round(&mut gb, 0).map_err(|x| format!("I/O on the other VF: {x}"))?;
    let mut g = stall(env, 64, 40, 2000)?;
    io_round(&mut gb, 1).map_err(|x| format!("I/O on the other VF, A stalled: {x}"))?;
    let (took, rounds) = suspend_during_io(env, &mut gb, cursor)?;
    let (st, csup) = env.get_state(env.scid_a)?;
    ensure(csup, || "source not suspended".into())?;
    let pending = check_pending(&g, &st)?;
    consume_while_suspended(&mut g)?;
    // The state as the VMM takes it, after the guest's last doorbell.
    let (st, _) = env.get_state(env.scid_a)?;
    let cs = ControllerState::parse(&st).map_err(|x| x.reason().to_string())?;
    let (coff, again) = vendor_cqes(cs.vendor)?;
    ensure(again == pending, || {
        format!("pending completions changed while suspended: {again:?}")
    })?;
    io_round(&mut gb, 2).map_err(|x| format!("I/O on the other VF, A suspended: {x}"))?;
    drop(gb);
    // Field positions in the whole state.
    let voff = st.len() - cs.vendor.len();
    let cq = voff + coff;
    env.b.reset().map_err(e)?;
    let irqs_b = Guest::destination(&env.b).map_err(e)?;
    env.suspend(env.scid_b)?;
    reject_pending(env, &st, "pending completion of a missing SQ", &|s| {
        s[cq] = 7
    })?;
    reject_pending(env, &st, "pending completion with status bit 15", &|s| {
        s[cq + 5] |= 0x80
    })?;
    reject_pending(env, &st, "pending completion, reserved bits", &|s| {
        s[cq + 6] = 1
    })?;
    reject_pending(env, &st, "pending count without its entry", &|s| {
        s[voff + 124] += 1
    })?;
    if pending.len() >= 2 {
        reject_pending(env, &st, "pending CID twice on one SQ", &|s| {
            s.copy_within(cq + 2..cq + 4, cq + 16 + 2)
        })?;
    }
    // More pending than the SQ's 64 request slots (fresh CIDs, sizes fixed).
    let extra = 65 - pending.len();
    reject_pending(env, &st, "more pending completions than SQ slots", &|s| {
        let at = cq + 16 * pending.len();
        let mut add = Vec::new();
        for j in 0..extra {
            add.extend_from_slice(&1u16.to_le_bytes());
            add.extend_from_slice(&(0x8000 + j as u16).to_le_bytes());
            add.extend_from_slice(&[0u8; 12]);
        }
        s.splice(at..at, add);
        let nr = u32_at(s, voff + 124) + extra as u32;
        s[voff + 124..voff + 128].copy_from_slice(&nr.to_le_bytes());
        let vlen = u32_at(s, voff + 8) + 16 * extra as u32;
        s[voff + 8..voff + 12].copy_from_slice(&vlen.to_le_bytes());
        let vss = u32_at(s, 32) + 4 * extra as u32;
        s[32..36].copy_from_slice(&vss.to_le_bytes());
    })?;
    let mut st = st;
    expect_status(
        env.set_state(env.scid_b, Sequence::Only, 0, &mut st),
        0,
        "Set State with pending completions",
    )?;
    // B holds them as A did.
    let (bst, _) = env.get_state(env.scid_b)?;
    let bcs = ControllerState::parse(&bst).map_err(|x| x.reason().to_string())?;
    let (_, on_b) = vendor_cqes(bcs.vendor)?;
    ensure(on_b == pending, || {
        format!("B's pending completions {on_b:?}, A's {pending:?}")
    })?;
    env.resume(env.scid_b)?;
    g.switch_to(&env.b, irqs_b).map_err(e)?;
    let from = g.completions.len();
    let inflight = g.pending.len();
    g.drain(30_000)
        .map_err(|x| format!("after migration: {x}"))?;
    posted_first(&g, from, &pending)?;
    g.sq_heads_at_tail()
        .map_err(|x| format!("after migration: {x}"))?;
    let verified = g.verify_all().map_err(e)?;
    println!(
        "# Suspend with a full CQ: {:.1} ms ({} completions pending, {rounds} I/O rounds on the other VF meanwhile); {inflight} commands completed on B, {verified} blocks verified",
        took.as_secs_f64() * 1e3,
        pending.len()
    );
    env.pf_untouched(cursor)?;
    env.a.reset().map_err(e)?;
    env.b.reset().map_err(e)?;
    Ok(())
}

/// The cancel path: Suspend with a full CQ, then Resume the source; the
/// pending completions are posted there, in order, once the guest frees
/// room, and every command completes exactly once.
fn suspend_with_full_cq_resume(env: &Env) -> CaseResult {
    let e = |x: std::io::Error| x.to_string();
    let cursor = kmsg_cursor()?;
    let mut gb = Guest::start(&env.b, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    let mut g = stall(env, 32, 20, 3000)?;
    let (took, _) = suspend_during_io(env, &mut gb, cursor)?;
    let (st, _) = env.get_state(env.scid_a)?;
    let pending = check_pending(&g, &st)?;
    consume_while_suspended(&mut g)?;
    env.resume(env.scid_a)?;
    let from = g.completions.len();
    g.drain(30_000)
        .map_err(|x| format!("after Resume of the source: {x}"))?;
    posted_first(&g, from, &pending)?;
    g.sq_heads_at_tail()
        .map_err(|x| format!("after Resume of the source: {x}"))?;
    // Nothing is left over: a second Suspend finds none pending.
    env.suspend(env.scid_a)?;
    let (st, _) = env.get_state(env.scid_a)?;
    let cs = ControllerState::parse(&st).map_err(|x| x.reason().to_string())?;
    let (_, left) = vendor_cqes(cs.vendor)?;
    ensure(left.is_empty(), || {
        format!("pending after everything completed: {left:?}")
    })?;
    env.resume(env.scid_a)?;
    let verified = g.verify_all().map_err(e)?;
    println!(
        "# Suspend with a full CQ: {:.1} ms, {} completions pending, posted on the source after Resume; {verified} blocks verified",
        took.as_secs_f64() * 1e3,
        pending.len()
    );
    io_round(&mut gb, 3).map_err(|x| format!("I/O on the other VF: {x}"))?;
    env.pf_untouched(cursor)?;
    env.a.reset().map_err(e)?;
    env.b.reset().map_err(e)?;
    Ok(())
}

/// Runs the suite; returns the number of failed cases.
pub fn run(s: &Setup) -> usize {
    let mut k = Ktap::begin("hmlm", 17, s.filter.clone());
    let env = match Env::open(s) {
        Ok(env) => env,
        Err(e) => {
            k.case("setup", || Err(e.clone()));
            return k.failed().max(1);
        }
    };
    k.case("pf_identify_advertises_hmlm", || pf_identify(&env));
    k.case("pf_state_formats", || pf_state_formats(&env));
    k.case("vf_has_no_hmlm", || vf_has_no_hmlm(&env));
    k.case("unknown_cntlid_rejected", || unknown_cntlid(&env));
    k.case("suspend_resume_semantics", || suspend_resume(&env));
    k.case("get_state_layout", || get_state_layout(&env));
    k.case("set_state_rejects_bad_input", || set_state_rejects(&env));
    k.case("cdq_command_errors", || cdq_errors(&env));
    k.case("migrate_with_inflight_io", || migrate(&env));
    k.case("s0pt_after_wrap", || s0pt_after_wrap(&env));
    k.case("suspend_with_full_cq", || suspend_with_full_cq(&env));
    k.case("suspend_with_full_cq_resume_source", || {
        suspend_with_full_cq_resume(&env)
    });
    k.case("track_memory_limits", || track_memory_limits(&env));
    k.case("track_memory_refusals", || track_memory_refusals(&env));
    k.case("track_memory_reads", || track_memory_reads(&env));
    k.case("track_memory_more", || track_memory_more(&env));
    k.case("track_memory_reset", || track_memory_reset(&env));
    k.failed()
}
