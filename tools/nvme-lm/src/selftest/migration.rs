// SPDX-License-Identifier: GPL-2.0

//! The VFIO migration uAPI of `nvme_vfio_pci`, from userspace as a VMM
//! drives it: features, every arc, illegal requests, the data file's
//! rules, stream validation on the destination, resets and early closes,
//! and a full migration with I/O in flight.

use super::guest::{
    Guest,
    FULL_DEPTH,
    FULL_QUEUES, //
};
use super::{
    ensure,
    CaseResult,
    Ktap, //
};
use crate::codec::namespaces::Namespaces;
use crate::codec::state::HEADER_LEN as STATE_HEADER_LEN;
use crate::codec::stream::{self, Stream};
use crate::dma::Arena;
use crate::fail;
use crate::migrate::migrate;
use crate::migration::{
    errno_of,
    DataFd,
    State,
    MIGRATION_P2P,
    MIGRATION_PRE_COPY,
    MIGRATION_STOP_COPY, //
};
use crate::passthru::Passthru;
use crate::vfio::{
    Device,
    Iommufd, //
};
use std::io::{
    self,
    Read,
    Write, //
};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::rc::Rc;

/// What the suite runs on.
pub struct Setup {
    /// Source VF's VFIO cdev (bound to nvme-vfio-pci).
    pub a: PathBuf,
    /// Destination VF's VFIO cdev (bound to nvme-vfio-pci).
    pub b: PathBuf,
    /// A third VF's VFIO cdev (bound to nvme-vfio-pci, not open).
    pub c: PathBuf,
    /// The most bytes one admin command of the VFs' PF transfers.
    pub pf_max_transfer: usize,
    /// The VFs' PF (`/dev/nvmeN`): its test knobs make steps fail.
    pub pf: PathBuf,
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

struct Env {
    arena: Rc<Arena>,
    a: Device,
    b: Device,
    iommufd: Iommufd,
    cdev_c: PathBuf,
    pf_max_transfer: usize,
    pf: Passthru,
}

pub(super) fn e(x: io::Error) -> String {
    x.to_string()
}

pub(super) fn expect_errno<T>(r: io::Result<T>, want: i32, what: &str) -> CaseResult {
    match r {
        Ok(_) => fail!("{what}: succeeded, expected errno {want}"),
        Err(x) if errno_of(&x) == Some(want) => Ok(()),
        Err(x) => fail!("{what}: {x}, expected errno {want}"),
    }
}

pub(super) fn state_is(d: &Device, want: State) -> CaseResult {
    let s = d.mig_state().map_err(e)?;
    ensure(s == want, || format!("device in {s:?}, expected {want:?}"))
}

/// SET to `to`; checks whether a data file came back.
pub(super) fn arc(d: &Device, to: State, fd: bool) -> Result<Option<DataFd>, String> {
    let f = d.set_mig_state(to).map_err(e)?;
    ensure(f.is_some() == fd, || {
        format!(
            "-> {to:?}: data_fd returned: {}, expected {fd}",
            f.is_some()
        )
    })?;
    state_is(d, to)?;
    Ok(f)
}

/// A whole stream of `d` (left in STOP afterwards).
pub(super) fn save(d: &Device) -> Result<Vec<u8>, String> {
    arc(d, State::Stop, false)?;
    let mut f = arc(d, State::StopCopy, true)?.ok_or("no fd")?;
    let (s, end) = f.read_available(4096).map_err(e)?;
    ensure(end, || "STOP_COPY ended with ENOMSG".into())?;
    arc(d, State::Stop, false)?;
    Ok(s)
}

/// A stream with the same source but `compat` and `state` replaced.
fn rebuild(compat: &stream::Compat, state: &[u8]) -> Result<Vec<u8>, String> {
    let r = |x: crate::codec::Error| x.reason().to_string();
    let mut out = vec![0u8; stream::stream_len(state.len()).map_err(r)?];
    stream::write_stream(&mut out, compat, state).map_err(r)?;
    Ok(out)
}

/// Enables `d`, writes two blocks at `lba` and reads them back. The
/// guest is dropped on return (its BAR mapping holds the device open).
fn io_works(env: &Env, d: &Device, lba: u64) -> CaseResult {
    let mut g = Guest::start(d, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    g.write_range(0, lba, 2).map_err(e)?;
    g.verify_all().map_err(e)?;
    g.sq_heads_at_tail()
}

fn readable(f: &DataFd) -> bool {
    let mut p = libc::pollfd {
        fd: f.0.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLIN != 0
}

fn features(env: &Env) -> CaseResult {
    let flags = env.a.migration_flags().map_err(e)?;
    let want = MIGRATION_STOP_COPY | MIGRATION_P2P | MIGRATION_PRE_COPY;
    ensure(flags == want, || {
        format!("migration flags {flags:#x}, expected {want:#x}")
    })?;
    state_is(&env.a, State::Running)?;
    let size = env.a.mig_data_size().map_err(e)?;
    ensure(size > 0, || "MIG_DATA_SIZE is 0 in RUNNING".into())?;
    env.a.precopy_info_v2().map_err(e)?;
    println!("# flags {flags:#x}, MIG_DATA_SIZE {size} in RUNNING");
    Ok(())
}

fn data_size_is_exact(env: &Env) -> CaseResult {
    env.a.reset().map_err(e)?;
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 2, 32).map_err(e)?;
    g.write_range(0, 100, 3).map_err(e)?;
    arc(&env.a, State::RunningP2p, false)?;
    let stopped = env.a.mig_data_size().map_err(e)?;
    arc(&env.a, State::Stop, false)?;
    let mut f = arc(&env.a, State::StopCopy, true)?.ok_or("no fd")?;
    let in_stop_copy = env.a.mig_data_size().map_err(e)?;
    let (s, _) = f.read_available(7).map_err(e)?;
    arc(&env.a, State::Stop, false)?;
    arc(&env.a, State::Running, false)?;
    env.a.reset().map_err(e)?;
    let parsed = Stream::parse(&s).map_err(|x| x.reason().to_string())?;
    ensure(s.len() as u64 == stopped && stopped == in_stop_copy, || {
        format!(
            "MIG_DATA_SIZE {stopped} (stopped), {in_stop_copy} (STOP_COPY); {} bytes streamed",
            s.len()
        )
    })?;
    // The driver can have read it only in pieces (Get Controller State at
    // offsets), and every migration here loads it in pieces (first,
    // middle, last): the emulation refuses a state that arrives reordered,
    // shifted or cut (its device-internal words are position-checked).
    ensure(parsed.state.len() > env.pf_max_transfer, || {
        format!(
            "the controller state ({} bytes) fits in one transfer of the PF ({} bytes): the piecewise path is not exercised",
            parsed.state.len(),
            env.pf_max_transfer
        )
    })?;
    println!(
        "# {} bytes streamed = MIG_DATA_SIZE; controller state {} bytes, at least {} Get/Set State pieces of at most {} bytes (the PF's transfer limit)",
        s.len(),
        parsed.state.len(),
        parsed.state.len().div_ceil(env.pf_max_transfer),
        env.pf_max_transfer
    );
    Ok(())
}

fn every_arc(env: &Env) -> CaseResult {
    use State::*;
    let d = &env.a;
    d.reset().map_err(e)?;
    // P2P, STOP, STOP_COPY and back.
    arc(d, RunningP2p, false)?;
    arc(d, Stop, false)?;
    let mut f = arc(d, StopCopy, true)?.ok_or("no fd")?;
    let (s, _) = f.read_available(4096).map_err(e)?;
    arc(d, Stop, false)?;
    expect_errno(
        f.0.read(&mut [0u8; 8]),
        libc::ENODEV,
        "read after STOP_COPY -> STOP",
    )?;
    arc(d, RunningP2p, false)?;
    arc(d, Running, false)?;
    // PRE_COPY and PRE_COPY_P2P in both directions.
    let f = arc(d, PreCopy, true)?;
    arc(d, PreCopyP2p, false)?;
    arc(d, PreCopy, false)?;
    arc(d, Running, false)?;
    expect_errno(
        f.ok_or("no fd")?.precopy_info(),
        libc::ENODEV,
        "PRECOPY_INFO after PRE_COPY -> RUNNING",
    )?;
    arc(d, RunningP2p, false)?;
    arc(d, PreCopyP2p, true)?;
    arc(d, RunningP2p, false)?;
    let mut f = arc(d, PreCopyP2p, true)?.ok_or("no fd")?;
    arc(d, StopCopy, false)?;
    let (s2, end) = f.read_available(4096).map_err(e)?;
    ensure(end && s2.len() == s.len(), || {
        format!(
            "PRE_COPY_P2P -> STOP_COPY streamed {} bytes, STOP -> STOP_COPY {}",
            s2.len(),
            s.len()
        )
    })?;
    arc(d, Stop, false)?;
    // RESUMING with this device's own state (a loopback).
    let mut f = arc(d, Resuming, true)?.ok_or("no fd")?;
    f.write_chunked(&s, 4096).map_err(e)?;
    arc(d, Stop, false)?;
    arc(d, RunningP2p, false)?;
    arc(d, Running, false)?;
    // Combinations the core walks in several steps.
    let mut f = arc(d, PreCopy, true)?.ok_or("no fd")?;
    arc(d, StopCopy, false)?;
    ensure(f.read_available(4096).map_err(e)?.1, || "no EOF".into())?;
    arc(d, Running, false)?;
    arc(d, StopCopy, true)?;
    arc(d, Running, false)?;
    arc(d, Resuming, true)?;
    d.reset().map_err(e)?;
    state_is(d, Running)
}

fn illegal_arcs(env: &Env) -> CaseResult {
    use State::*;
    let d = &env.a;
    d.reset().map_err(e)?;
    let mut f = arc(d, StopCopy, true)?.ok_or("no fd")?;
    for to in [PreCopy, PreCopyP2p, Error] {
        expect_errno(
            d.set_mig_state(to),
            libc::EINVAL,
            &format!("STOP_COPY -> {to:?}"),
        )?;
        state_is(d, StopCopy)?;
    }
    let (s, end) = f.read_available(4096).map_err(e)?;
    ensure(end && Stream::parse(&s).is_ok(), || {
        "the STOP_COPY stream broke after rejected arcs".into()
    })?;
    arc(d, Stop, false)?;
    // RESUMING -> STOP with no data: the load fails, RESUMING stays.
    let _f = arc(d, Resuming, true)?;
    expect_errno(
        d.set_mig_state(Stop),
        libc::EINVAL,
        "RESUMING -> STOP with no data",
    )?;
    state_is(d, Resuming)?;
    d.reset().map_err(e)?;
    state_is(d, Running)
}

fn data_file_rules(env: &Env) -> CaseResult {
    use State::*;
    let d = &env.a;
    d.reset().map_err(e)?;
    let f = arc(d, PreCopy, true)?.ok_or("no fd")?;
    // v1 (no opt-in on this open): flags are echoed.
    let i = f.precopy_info_with(0x10).map_err(e)?;
    let prefix = stream::PREFIX_LEN as u64;
    ensure(i.initial_bytes == prefix && i.dirty_bytes == 0, || {
        format!("PRE_COPY info {i:?}, expected {prefix} initial bytes, 0 dirty")
    })?;
    let mut f = f;
    let mut buf = [0u8; 10];
    ensure(f.0.read(&mut buf).map_err(e)? == 10, || "short read".into())?;
    let i = f.precopy_info().map_err(e)?;
    ensure(i.initial_bytes == prefix - 10, || {
        format!("after 10 bytes: {i:?}")
    })?;
    ensure(readable(&f), || "poll: PRE_COPY data not readable".into())?;
    let (rest, end) = f.read_available(4096).map_err(e)?;
    ensure(!end && rest.len() as u64 == prefix - 10, || {
        format!(
            "PRE_COPY gave {} more bytes, end permanent: {end}",
            rest.len()
        )
    })?;
    expect_errno(
        f.0.read(&mut buf),
        libc::ENOMSG,
        "read at PRE_COPY's temporary end",
    )?;
    ensure(f.precopy_info().map_err(e)?.initial_bytes == 0, || {
        "initial_bytes not 0".into()
    })?;
    ensure(!readable(&f), || {
        "poll: readable at PRE_COPY's temporary end".into()
    })?;
    expect_errno(f.0.read_at(&mut buf, 0), libc::ESPIPE, "pread")?;
    expect_errno(f.0.write(&buf), libc::EBADF, "write to a saving data_fd")?;
    // SAFETY: an ioctl the data file does not know, no argument.
    let r = unsafe { libc::ioctl(f.0.as_raw_fd(), 0x3b99 as libc::c_ulong) };
    ensure(
        r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTTY),
        || "unknown ioctl on the data_fd did not fail with ENOTTY".into(),
    )?;
    // STOP_COPY: the rest, then a permanent end; no PRECOPY_INFO.
    arc(d, StopCopy, false)?;
    expect_errno(f.precopy_info(), libc::EINVAL, "PRECOPY_INFO in STOP_COPY")?;
    ensure(readable(&f), || "poll: STOP_COPY not readable".into())?;
    let (_, end) = f.read_available(4096).map_err(e)?;
    ensure(end, || "STOP_COPY read ended with ENOMSG".into())?;
    ensure(f.0.read(&mut buf).map_err(e)? == 0, || {
        "read after EOF returned data".into()
    })?;
    ensure(readable(&f), || {
        "poll: not readable at STOP_COPY's end".into()
    })?;
    arc(d, Stop, false)?;
    arc(d, Running, false)?;
    // v2: flags are output, and 0 (the driver never reports REINIT).
    d.precopy_info_v2().map_err(e)?;
    let f = arc(d, PreCopy, true)?.ok_or("no fd")?;
    let i = f.precopy_info_with(0x10).map_err(e)?;
    ensure(i.flags == 0, || {
        format!("v2 flags {:#x}, expected 0", i.flags)
    })?;
    arc(d, Running, false)?;
    Ok(())
}

fn resume_in_odd_pieces(env: &Env) -> CaseResult {
    env.a.reset().map_err(e)?;
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 2, 32).map_err(e)?;
    g.write_range(1, 200, 4).map_err(e)?;
    let s = save(&env.a)?;
    env.a.reset().map_err(e)?;
    env.b.reset().map_err(e)?;
    let mut f = arc(&env.b, State::Resuming, true)?.ok_or("no fd")?;
    let mut off = 0;
    for size in [1usize, 3, 4095, 7, 1, 64].into_iter().cycle() {
        if off == s.len() {
            break;
        }
        let n = size.min(s.len() - off);
        f.write_chunked(&s[off..off + n], n).map_err(e)?;
        off += n;
    }
    arc(&env.b, State::Stop, false)?;
    arc(&env.b, State::Running, false)?;
    env.b.reset().map_err(e)
}

/// A stream a destination must refuse: its name, its bytes, where it must
/// be refused (`true`: at the write; `false`: at RESUMING -> STOP), and
/// the errno.
type BadStream = (&'static str, Vec<u8>, bool, i32);

/// The streams a destination must refuse, made from a good one.
fn bad_streams(good: &[u8]) -> Result<Vec<BadStream>, String> {
    let s = Stream::parse(good).map_err(|x| x.reason().to_string())?;
    let (compat, state) = (s.compat, s.state.to_vec());
    let mut v = Vec::new();
    let mut m = good.to_vec();
    m[0] ^= 0xff;
    v.push(("bad_magic", m, true, libc::EINVAL));
    let mut m = good.to_vec();
    // Version 1: a stream without the source's namespaces.
    m[8] = 1;
    v.push(("wrong_version", m, true, libc::EINVAL));
    let mut c = compat;
    c.model[0] ^= 1;
    v.push(("different_model", rebuild(&c, &state)?, true, libc::ERANGE));
    let mut c = compat;
    c.io_queues += 1;
    v.push((
        "more_queues_than_destination",
        rebuild(&c, &state)?,
        true,
        libc::ERANGE,
    ));
    // The same NSIDs with another namespace behind the first (its NGUID),
    // and one namespace fewer: the guest's storage would change.
    let mut list = compat.namespaces.as_slice().to_vec();
    if let Some(first) = list.first_mut() {
        first.nguid[0] ^= 0xff;
        let mut c = compat;
        c.namespaces = Namespaces::new(&list).map_err(|x| x.reason().to_string())?;
        v.push((
            "other_namespace_same_nsid",
            rebuild(&c, &state)?,
            true,
            libc::ERANGE,
        ));
        let mut c = compat;
        c.namespaces = Namespaces::new(&list[1..]).map_err(|x| x.reason().to_string())?;
        v.push(("fewer_namespaces", rebuild(&c, &state)?, true, libc::ERANGE));
    } else {
        return Err("the source reports no namespace attached".into());
    }
    let mut m = good.to_vec();
    let at = good.len() - 40;
    m[at] ^= 0x55;
    v.push(("corrupt_byte", m, false, libc::EINVAL));
    v.push((
        "truncated",
        good[..good.len() - 24].to_vec(),
        false,
        libc::EINVAL,
    ));
    let mut m = good.to_vec();
    m.extend_from_slice(&[0; 8]);
    v.push(("trailing_bytes", m, false, libc::EINVAL));
    // A good start, then more than any stream may hold.
    let mut m = good[..stream::PREFIX_LEN].to_vec();
    m.resize(stream::PREFIX_LEN + (4 << 20) + 4096, 0);
    v.push(("too_long", m, true, libc::EFBIG));
    // The first SQ's identifier beyond the destination's queues.
    let mut st = state.clone();
    let qid = STATE_HEADER_LEN + crate::codec::state::V0_PREFIX_LEN + 10;
    st[qid..qid + 2].copy_from_slice(&60000u16.to_le_bytes());
    v.push((
        "queue_beyond_limits",
        rebuild(&compat, &st)?,
        false,
        libc::ERANGE,
    ));
    // A state whose header claims one dword more than it holds.
    let mut st = state.clone();
    let nvmecss = u32::from_le_bytes([st[16], st[17], st[18], st[19]]) + 1;
    st[16..20].copy_from_slice(&nvmecss.to_le_bytes());
    v.push((
        "state_length_mismatch",
        rebuild(&compat, &st)?,
        false,
        libc::EINVAL,
    ));
    Ok(v)
}

fn rejects_bad_streams(env: &Env) -> CaseResult {
    env.a.reset().map_err(e)?;
    let mut g = Guest::start(&env.a, Rc::clone(&env.arena), 2, 32).map_err(e)?;
    g.write_range(0, 300, 2).map_err(e)?;
    let good = save(&env.a)?;
    env.a.reset().map_err(e)?;
    let b = &env.b;
    for (name, s, at_write, want) in bad_streams(&good)? {
        b.reset().map_err(e)?;
        let mut f = arc(b, State::Resuming, true)?.ok_or("no fd")?;
        let w = f.write_chunked(&s, 64 << 10);
        let r = if at_write {
            expect_errno(w, want, &format!("{name}: write"))
        } else {
            w.map_err(|x| format!("{name}: write: {x}"))?;
            expect_errno(
                b.set_mig_state(State::Stop),
                want,
                &format!("{name}: RESUMING -> STOP"),
            )
            .and_then(|()| state_is(b, State::Resuming))
        };
        r.map_err(|x| format!("{name}: {x}"))?;
        println!("# {name}: refused");
    }
    // After all that, a reset gives a working destination.
    b.reset().map_err(e)?;
    state_is(b, State::Running)?;
    io_works(env, b, 400).map_err(|x| format!("destination after the refusals: {x}"))?;
    b.reset().map_err(e)
}

fn reset_ends_sessions(env: &Env) -> CaseResult {
    let a = &env.a;
    a.reset().map_err(e)?;
    let mut f = arc(a, State::StopCopy, true)?.ok_or("no fd")?;
    let mut buf = [0u8; 16];
    f.0.read_exact(&mut buf).map_err(e)?;
    a.reset().map_err(e)?;
    state_is(a, State::Running)?;
    expect_errno(
        f.0.read(&mut buf),
        libc::ENODEV,
        "read after a reset in STOP_COPY",
    )?;
    let mut f = arc(a, State::Resuming, true)?.ok_or("no fd")?;
    f.0.write_all(&stream::MAGIC).map_err(e)?;
    a.reset().map_err(e)?;
    state_is(a, State::Running)?;
    expect_errno(
        f.0.write(&buf),
        libc::ENODEV,
        "write after a reset in RESUMING",
    )?;
    // The device works after both.
    io_works(env, a, 500).map_err(|x| format!("after the resets: {x}"))?;
    a.reset().map_err(e)
}

fn early_close(env: &Env) -> CaseResult {
    let a = &env.a;
    a.reset().map_err(e)?;
    drop(arc(a, State::PreCopy, true)?);
    arc(a, State::Running, false)?;
    drop(arc(a, State::StopCopy, true)?);
    arc(a, State::Stop, false)?;
    arc(a, State::Running, false)?;
    // A data file may outlive the device's file: it ends, safely, and
    // the next user finds the device RUNNING.
    let c = Device::open(&env.cdev_c, &env.iommufd).map_err(e)?;
    let mut f = arc(&c, State::PreCopy, true)?.ok_or("no fd")?;
    arc(&c, State::PreCopyP2p, false)?;
    drop(c);
    let mut buf = [0u8; 8];
    expect_errno(
        f.0.read(&mut buf),
        libc::ENODEV,
        "read after the device was closed",
    )?;
    expect_errno(f.precopy_info(), libc::ENODEV, "PRECOPY_INFO after close")?;
    drop(f);
    let c = Device::open(&env.cdev_c, &env.iommufd).map_err(e)?;
    state_is(&c, State::Running)?;
    io_works(env, &c, 600).map_err(|x| format!("after reopening: {x}"))?;
    c.reset().map_err(e)?;
    // And past the driver's binding: unbinding C frees the driver's data
    // (the migration handle goes back to nvme-pci), the file ends safely.
    let mut f = arc(&c, State::StopCopy, true)?.ok_or("no fd")?;
    drop(c);
    let name = env.cdev_c.file_name().ok_or("cdev name")?;
    let link = std::fs::read_link(
        PathBuf::from("/sys/class/vfio-dev")
            .join(name)
            .join("device"),
    )
    .map_err(e)?;
    let bdf = link.file_name().ok_or("no PCI address")?.to_owned();
    std::fs::write(
        "/sys/bus/pci/drivers/nvme-vfio-pci/unbind",
        bdf.as_encoded_bytes(),
    )
    .map_err(|x| format!("unbind: {x}"))?;
    let r = f.0.read(&mut buf);
    std::fs::write("/sys/bus/pci/drivers_probe", bdf.as_encoded_bytes())
        .map_err(|x| format!("rebind: {x}"))?;
    expect_errno(r, libc::ENODEV, "read after the driver was unbound")
}

/// A VMM cancels after STOP_COPY began (the destination failed): the
/// source goes back to RUNNING and finishes everything in flight itself.
fn cancel_keeps_source_running(env: &Env) -> CaseResult {
    use State::*;
    let a = &env.a;
    a.reset().map_err(e)?;
    let mut g = Guest::start(a, Rc::clone(&env.arena), 2, 32).map_err(e)?;
    for lba in 700..716u64 {
        g.submit_write((lba % 2) as usize, lba, true).map_err(e)?;
    }
    g.drain(20_000).map_err(e)?;
    let mut f = arc(a, PreCopy, true)?.ok_or("no fd")?;
    f.read_available(4096).map_err(e)?;
    arc(a, PreCopyP2p, false)?;
    for lba in 716..724u64 {
        g.submit_write((lba % 2) as usize, lba, false).map_err(e)?;
        g.submit_read((lba % 2) as usize, lba - 16, false)
            .map_err(e)?;
    }
    g.ring_all().map_err(e)?;
    arc(a, StopCopy, false)?;
    let mut part = [0u8; 100];
    f.0.read_exact(&mut part).map_err(e)?;
    // Cancel: STOP_COPY -> STOP -> RUNNING_P2P -> RUNNING.
    arc(a, Running, false)?;
    expect_errno(f.0.read(&mut part), libc::ENODEV, "read after the cancel")?;
    g.completions.clear();
    g.drain(20_000)
        .map_err(|x| format!("after the cancel: {x}"))?;
    // Every entry of every SQ consumed once, by the source that went on.
    g.sq_heads_at_tail()
        .map_err(|x| format!("after the cancel: {x}"))?;
    let done = std::mem::take(&mut g.completions);
    g.verify_all().map_err(e)?;
    println!(
        "# cancelled in STOP_COPY: the source finished the {} commands rung while stopped",
        done.len()
    );
    a.reset().map_err(e)
}

/// Test knobs of the emulated PF: every Migration Send / Receive fails
/// with the status set.
const KNOB_FAIL_SEND: u32 = 4;
const KNOB_FAIL_RECV: u32 = 5;
/// Internal Error.
const SC_INTERNAL: u32 = 0x6;
/// Test knob: Migration Send / Receive completions posted this late (ms).
const KNOB_DELAY_MS: u32 = 6;

/// A function reset while a slow migration step holds the device's state
/// lock returns at once: vfio-pci-core resets under the VF's memory lock,
/// which every access to the VF's BARs needs, so `reset_done` must not
/// wait for that step (nor send a command). The device is RUNNING and
/// works afterwards.
fn reset_not_stalled(env: &Env) -> CaseResult {
    const DELAY_MS: u32 = 2000;
    let a = &env.a;
    a.reset().map_err(e)?;
    let delay = env.pf.test_knob(KNOB_DELAY_MS, DELAY_MS).map_err(e)?;
    let (reset, reset_time, step) = std::thread::scope(|s| {
        let step = s.spawn(|| a.set_mig_state(State::Stop).map(|_| ()));
        // The Suspend is in the controller, its completion held back.
        std::thread::sleep(std::time::Duration::from_millis(u64::from(DELAY_MS) / 4));
        let t = std::time::Instant::now();
        let reset = a.reset();
        let reset_time = t.elapsed();
        (reset, reset_time, step.join())
    });
    delay.clear().map_err(e)?;
    reset.map_err(|x| format!("reset during the step: {x}"))?;
    println!(
        "# VFIO_DEVICE_RESET took {:.0} ms while a step waited {DELAY_MS} ms for its command",
        reset_time.as_secs_f64() * 1e3
    );
    ensure(reset_time.as_millis() < u128::from(DELAY_MS) / 2, || {
        format!(
            "VFIO_DEVICE_RESET took {} ms: it waited for the migration step",
            reset_time.as_millis()
        )
    })?;
    match step {
        Ok(r) => r.map_err(|x| format!("the step itself: {x}"))?,
        Err(_) => fail!("the stepping thread panicked"),
    }
    // The reset wins: RUNNING, and the controller runs again.
    state_is(a, State::Running)?;
    io_works(env, a, 720).map_err(|x| format!("after the reset: {x}"))?;
    a.reset().map_err(e)
}

/// A step that fails keeps the device's state while the controller is
/// still as that state says, and is ERROR when the controller cannot be
/// asked; only a reset leaves ERROR, and the VF works after it.
fn failed_step_state(env: &Env) -> CaseResult {
    let a = &env.a;
    a.reset().map_err(e)?;
    let mut g = Guest::start(a, Rc::clone(&env.arena), 1, 16).map_err(e)?;
    g.write_range(0, 700, 2).map_err(e)?;
    // Suspend refused: the controller still runs, the device stays
    // RUNNING and the guest's I/O goes on without a reset.
    let fail_send = env.pf.test_knob(KNOB_FAIL_SEND, SC_INTERNAL).map_err(e)?;
    expect_errno(
        a.set_mig_state(State::Stop),
        libc::EIO,
        "STOP, Suspend failing",
    )?;
    state_is(a, State::Running)?;
    g.write_range(0, 702, 2)
        .map_err(|x| format!("I/O after the refused Suspend: {x}"))?;
    // And the controller cannot even be asked: ERROR.
    let fail_recv = env.pf.test_knob(KNOB_FAIL_RECV, SC_INTERNAL).map_err(e)?;
    expect_errno(
        a.set_mig_state(State::Stop),
        libc::EIO,
        "STOP, Suspend and Get State failing",
    )?;
    state_is(a, State::Error)?;
    fail_send.clear().map_err(e)?;
    fail_recv.clear().map_err(e)?;
    ensure(a.set_mig_state(State::Running).is_err(), || {
        "ERROR -> RUNNING accepted without a reset".into()
    })?;
    a.reset().map_err(e)?;
    state_is(a, State::Running)?;
    drop(g);
    io_works(env, a, 710).map_err(|x| format!("after the reset: {x}"))?;
    a.reset().map_err(e)
}

/// Runs the suite; returns the number of failed cases.
pub fn run(s: &Setup) -> usize {
    let mut k = Ktap::begin("vfio_migration", 13, s.filter.clone());
    let open = || -> Result<Env, String> {
        let iommufd = Iommufd::open().map_err(e)?;
        let arena = Arena::new(&iommufd, 32 << 20, 0x5_0000_0000).map_err(e)?;
        let a = Device::open(&s.a, &iommufd).map_err(e)?;
        let b = Device::open(&s.b, &iommufd).map_err(e)?;
        Ok(Env {
            arena,
            a,
            b,
            iommufd,
            cdev_c: s.c.clone(),
            pf_max_transfer: s.pf_max_transfer,
            pf: Passthru::open(&s.pf).map_err(e)?,
        })
    };
    let env = match open() {
        Ok(env) => env,
        Err(x) => {
            k.case("setup", || Err(x.clone()));
            return k.failed().max(1);
        }
    };
    k.case("features", || features(&env));
    k.case("data_size_is_exact", || data_size_is_exact(&env));
    k.case("every_arc", || every_arc(&env));
    k.case("illegal_arcs", || illegal_arcs(&env));
    k.case("data_file_rules", || data_file_rules(&env));
    k.case("resume_in_odd_pieces", || resume_in_odd_pieces(&env));
    k.case("rejects_bad_streams", || rejects_bad_streams(&env));
    k.case("reset_ends_sessions", || reset_ends_sessions(&env));
    k.case("early_close", || early_close(&env));
    k.case("failed_step_state", || failed_step_state(&env));
    k.case("reset_not_stalled", || reset_not_stalled(&env));
    k.case("cancel_keeps_source_running", || {
        cancel_keeps_source_running(&env)
    });
    k.case("migrate_with_io", || {
        env.a.reset().map_err(e)?;
        let mut g =
            Guest::start(&env.a, Rc::clone(&env.arena), FULL_QUEUES, FULL_DEPTH).map_err(e)?;
        let r = migrate(&env.a, &env.b, &mut g, 64, 4096)?;
        print!(
            "{}",
            r.render()?
                .lines()
                .map(|l| format!("# {l}\n"))
                .collect::<String>()
        );
        r.check()?;
        // The case is about interrupts pending at the switchover too.
        ensure(!r.pending_at_switch.is_empty(), || {
            "no source interrupt was pending at the switchover".into()
        })?;
        env.b.reset().map_err(e)
    });
    k.failed()
}
