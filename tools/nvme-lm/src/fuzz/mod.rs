// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm fuzz-resume`: the RESUMING path of `nvme_vfio_pci` fed with
//! mutations of real migration streams.
//!
//! A source VF runs a guest (queues, I/O in flight) and is saved through
//! the VFIO migration uAPI (PRE_COPY, then STOP_COPY) a few times, in
//! different shapes; those streams are the material. Each input is a
//! mutation of one ([`mutate`]), with its checksum recomputed in most
//! inputs so that it reaches the semantic checks. The destination VF goes
//! to RESUMING, takes the input through its data file (in writes of random
//! sizes sometimes) and goes to STOP, where the driver checks and loads it;
//! the outcome must be what the driver's own codec says ([`oracle`]): the
//! same refusal with the same errno at the same step, or, for a stream that
//! passes every check, a load (or the device's own refusal). Then the
//! destination is ALWAYS reset, never run: a mutated state that loaded
//! could point its queues anywhere. After each reset it must read RUNNING
//! and take the next RESUMING; every few hundred inputs, and at the end, it
//! must do real I/O. A watchdog ends the run on an input that hangs.
//!
//! With media migration on at the destination (`--media-stream`), the
//! material is real media streams (namespace records and data, captured
//! by `nvme-lm media-migrate --save`), thinned out ([`media_stream::trim`])
//! so that each input writes little to the destination's namespace; the
//! driver then takes the stream record by record, writing the namespace
//! through the PF as it goes ([`oracle::Sink`]).

pub mod kmsg;
pub mod mutate;
pub mod oracle;

use crate::codec::stream::{
    Compat,
    HEADER_LEN,
    PREFIX_LEN,
    RECORD_HEADER_LEN, //
};
use crate::dma::Arena;
use crate::migration::{
    errno_of,
    State, //
};
use crate::selftest::guest::{
    Guest,
    FULL_DEPTH,
    FULL_QUEUES, //
};
use crate::vfio::{
    Device,
    Iommufd, //
};
use mutate::{
    Base,
    Input,
    Kind, //
};
use oracle::{
    errno_name,
    Expect,
    Target, //
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use std::sync::{
    Arc,
    Mutex, //
};
use std::time::{
    Duration,
    Instant, //
};

/// What to run.
pub struct Options {
    /// Source VF's VFIO cdev (bound to nvme-vfio-pci).
    pub a: PathBuf,
    /// Destination VF's VFIO cdev (bound to nvme-vfio-pci).
    pub b: PathBuf,
    /// The seed.
    pub seed: u64,
    /// Inputs to feed.
    pub inputs: u64,
    /// Index of the first input (to reproduce one: `--first N --inputs 1`).
    pub first: u64,
    /// Real I/O through the destination every this many inputs (0: only at
    /// the start and the end).
    pub io_every: u64,
    /// Longest an input may take.
    pub timeout: Duration,
    /// Percentage of inputs whose checksum is recomputed.
    pub fix_percent: u32,
    /// Where to write inputs with an unexpected outcome.
    pub dump: Option<PathBuf>,
    /// Follow the kernel log (`/dev/kmsg`).
    pub kmsg: bool,
    /// Feed these files instead of mutations (the source is not used).
    pub replay: Vec<PathBuf>,
    /// Media streams (saved by `media-migrate --save`) as the material
    /// instead of the source's streams (the source is not used); the
    /// destination must have media migration on.
    pub media_streams: Vec<PathBuf>,
    /// Fail on a stream the driver let through whose only changes are in
    /// fields it checks itself and that the device then refused.
    pub strict_gaps: bool,
    /// Print the outcomes of field mutations per field.
    pub by_field: bool,
    /// Fields (by name without indexes, e.g. `state.ver`, `sq[].qid`)
    /// the driver is known not to check although the device does: a
    /// stream changed there (among other fields) and refused by the device
    /// is reported, not failed, under `strict_gaps`.
    pub known_gaps: Vec<String>,
}

fn e(x: std::io::Error) -> String {
    x.to_string()
}

/// The watchdog's view of the run.
struct Watch {
    start: Instant,
    /// Milliseconds since `start` (plus one) when the current step began;
    /// 0 when idle.
    since: AtomicU64,
    /// Longest the current step may take, in milliseconds.
    limit: AtomicU64,
    what: Mutex<String>,
    input: Mutex<Vec<u8>>,
    dump: Option<PathBuf>,
}

impl Watch {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    fn begin(&self, what: String, input: &[u8], limit: Duration) {
        *self.what.lock().unwrap_or_else(|p| p.into_inner()) = what;
        let mut i = self.input.lock().unwrap_or_else(|p| p.into_inner());
        i.clear();
        i.extend_from_slice(input);
        drop(i);
        self.limit.store(limit.as_millis() as u64, Ordering::SeqCst);
        self.since.store(self.now(), Ordering::SeqCst);
    }

    fn end(&self) {
        self.since.store(0, Ordering::SeqCst);
    }

    /// Runs in its own thread: ends the process when a step overruns.
    fn guard(self: Arc<Self>) {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let since = self.since.load(Ordering::SeqCst);
            let limit = self.limit.load(Ordering::SeqCst);
            if since == 0 || self.now() - since <= limit {
                continue;
            }
            let what = self.what.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let mut out = format!(
                "HANG: {what}: not done after {} s\n",
                (self.now() - since) / 1000
            );
            if let Some(dir) = &self.dump {
                let input = self.input.lock().unwrap_or_else(|p| p.into_inner());
                let path = dir.join("hang.bin");
                match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &*input)) {
                    Ok(()) => {
                        let _ = writeln!(out, "the input is in {}", path.display());
                    }
                    Err(x) => {
                        let _ = writeln!(out, "cannot write {}: {x}", path.display());
                    }
                }
            }
            let _ = writeln!(
                out,
                "verdict real_streams_load: FAIL: the run hung ({what})"
            );
            let _ = writeln!(out, "verdict inputs_refused_or_loaded: FAIL: hang: {what}");
            let _ = writeln!(
                out,
                "verdict destination_usable: FAIL: the run hung ({what})"
            );
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(out.as_bytes());
            let _ = so.flush();
            eprint!("{out}");
            // SAFETY: ends the process; nothing runs after it.
            unsafe { libc::_exit(3) };
        }
    }
}

/// What the destination did with an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    /// RESUMING -> STOP succeeded: the state loaded.
    Loaded,
    /// Write number `chunk` failed with `errno`; `after`: what
    /// RESUMING -> STOP did then, if tried (`Ok`, or its errno).
    Write {
        chunk: usize,
        errno: i32,
        after: Option<Result<(), i32>>,
    },
    /// Every write succeeded; RESUMING -> STOP failed with this errno.
    Load(i32),
}

/// The errnos a refusal may carry: the driver's (its codec's, and EFBIG
/// for length), and the device's refusal of Set Controller State (Invalid
/// Field: EINVAL; Command Sequence Error: EBUSY).
const EXPECTED_ERRNOS: [i32; 5] = [
    libc::EINVAL,
    libc::ERANGE,
    libc::EFBIG,
    libc::EOVERFLOW,
    libc::EBUSY,
];

/// The device's own refusals of a state the driver passed on.
const DEVICE_ERRNOS: [i32; 2] = [libc::EINVAL, libc::EBUSY];

/// Feeds `input` to `b`: RESUMING, the writes, RESUMING -> STOP (also
/// after a refused write when `then_load`), the migration state that
/// follows; then the reset, after which `b` must read RUNNING. `Err`: the
/// destination is unusable.
fn feed(b: &Device, input: &Input, then_load: bool) -> Result<(Got, State, Phases), String> {
    let mut ph = [Duration::ZERO; 4];
    let mut t = Instant::now();
    let mut lap = |i: usize| {
        ph[i] = t.elapsed();
        t = Instant::now();
    };
    let mut fd = b
        .set_mig_state(State::Resuming)
        .map_err(|x| format!("RUNNING -> RESUMING: {x}"))?
        .ok_or("RUNNING -> RESUMING returned no data_fd")?;
    lap(0);
    let mut refused = None;
    let mut off = 0;
    for (i, &n) in input.chunks.iter().enumerate() {
        match std::io::Write::write(&mut fd.0, &input.bytes[off..off + n]) {
            Ok(w) if w == n => off += n,
            Ok(w) => return Err(format!("write {i}: {w} of {n} bytes written")),
            Err(x) => {
                refused = Some((i, x.raw_os_error().unwrap_or(0)));
                break;
            }
        }
    }
    lap(1);
    let load = |b: &Device| b.set_mig_state(State::Stop).map(drop);
    let got = match refused {
        Some((chunk, errno)) => Got::Write {
            chunk,
            errno,
            after: then_load.then(|| load(b).map_err(|x| errno_of(&x).unwrap_or(0))),
        },
        None => match load(b) {
            Ok(()) => Got::Loaded,
            Err(x) => Got::Load(errno_of(&x).unwrap_or(0)),
        },
    };
    let state = b.mig_state().map_err(|x| format!("after the input: {x}"))?;
    lap(2);
    drop(fd);
    // Never RUNNING with a fuzzed state: straight to the reset.
    b.reset().map_err(e)?;
    let st = b.mig_state().map_err(|x| format!("after the reset: {x}"))?;
    if st != State::Running {
        return Err(format!(
            "after the reset the device is in {st:?}, not RUNNING"
        ));
    }
    lap(3);
    Ok((got, state, ph))
}

/// Time in each step of [`feed`]: RESUMING entry, writes,
/// RESUMING -> STOP, reset.
type Phases = [Duration; 4];

/// How an outcome is counted.
fn class(got: &Got, exp: &Expect) -> String {
    match got {
        Got::Loaded => "accepted (loaded)".into(),
        Got::Write { errno, .. } => format!("refused at write: {}", errno_name(*errno)),
        Got::Load(x) if *exp == Expect::Device => {
            format!("refused by the device at load: {}", errno_name(*x))
        }
        Got::Load(x) => format!("refused at load: {}", errno_name(*x)),
    }
}

/// Checks an outcome against the expectation; `Err` says what is wrong.
fn judge(
    t: &Target,
    input: &Input,
    base: Option<&Base>,
    exp: &Expect,
    got: &Got,
    state: State,
) -> Result<(), String> {
    let errnos = match got {
        Got::Loaded => vec![],
        Got::Write { errno, after, .. } => {
            let mut v = vec![*errno];
            if let Some(Err(x)) = after {
                v.push(*x);
            }
            v
        }
        Got::Load(x) => vec![*x],
    };
    if let Some(x) = errnos.iter().find(|x| !EXPECTED_ERRNOS.contains(x)) {
        return Err(format!(
            "errno {} is not one a refusal may carry",
            errno_name(*x)
        ));
    }
    if let Some(base) = base {
        if !input.crc_fixed && input.bytes != base.bytes && *got == Got::Loaded {
            return Err("loaded, though changed and with a stale checksum".into());
        }
        if input.kind == Kind::Identity && *got != Got::Loaded {
            return Err("the real stream, unchanged, did not load".into());
        }
    }
    let want_state = match got {
        Got::Loaded
        | Got::Write {
            after: Some(Ok(())),
            ..
        } => State::Stop,
        _ => State::Resuming,
    };
    if state != want_state {
        return Err(format!(
            "the device is in {state:?} after the input, expected {want_state:?}"
        ));
    }
    match (exp, got) {
        (
            Expect::Write {
                chunk,
                refusal,
                kept,
            },
            Got::Write {
                chunk: c,
                errno,
                after,
            },
        ) if c == chunk && *errno == refusal.errno => {
            let Some(after) = after else { return Ok(()) };
            if t.compat.media {
                // A media session takes nothing more after a refusal.
                return match after {
                    Err(a) if *a == libc::EINVAL => Ok(()),
                    a => Err(format!(
                        "after write {c} was refused ({}), RESUMING -> STOP gave {a:?}, expected EINVAL (a refused media session is over)",
                        refusal.why
                    )),
                };
            }
            // The session keeps what came before the refused write.
            match (oracle::check_load(t, &input.bytes[..*kept]), after) {
                (Err(x), Err(a)) if oracle::errno(&x) == *a => Ok(()),
                (Ok(()), _) => Ok(()),
                (w, a) => Err(format!(
                    "after write {c} was refused ({}), RESUMING -> STOP gave {a:?}, expected {w:?}",
                    refusal.why
                )),
            }
        }
        (Expect::Load(r), Got::Load(x)) if *x == r.errno => Ok(()),
        (Expect::Device, Got::Loaded) => Ok(()),
        (Expect::Device, Got::Load(x)) if DEVICE_ERRNOS.contains(x) => Ok(()),
        (exp, got) => Err(format!(
            "expected {}, got {}",
            describe(exp),
            describe_got(got)
        )),
    }
}

fn describe(exp: &Expect) -> String {
    match exp {
        Expect::Write { chunk, refusal, .. } => format!(
            "write {chunk} refused with {} ({})",
            errno_name(refusal.errno),
            refusal.why
        ),
        Expect::Load(r) => format!(
            "RESUMING -> STOP refused with {} ({})",
            errno_name(r.errno),
            r.why
        ),
        Expect::Device => "a load (or the device's own refusal: EINVAL, EBUSY)".into(),
    }
}

fn describe_got(got: &Got) -> String {
    match got {
        Got::Loaded => "a load".into(),
        Got::Write {
            chunk,
            errno,
            after,
        } => format!(
            "write {chunk} refused with {}{}",
            errno_name(*errno),
            match after {
                None => String::new(),
                Some(Ok(())) => ", then RESUMING -> STOP loaded".into(),
                Some(Err(x)) => format!(", then RESUMING -> STOP refused with {}", errno_name(*x)),
            }
        ),
        Got::Load(x) => format!("RESUMING -> STOP refused with {}", errno_name(*x)),
    }
}

/// Enables `d`, writes and reads back a few blocks, and resets it (the
/// arena's chunks are handed back).
fn io_check(d: &Device, arena: &Rc<Arena>, nsid: u32, lba: u64) -> Result<(), String> {
    let mark = arena.used();
    let r = (|| {
        let mut g = Guest::start_ns(d, Rc::clone(arena), 1, 16, 16, nsid).map_err(e)?;
        g.write_range(0, lba, 4).map_err(e)?;
        g.flush(0).map_err(e)?;
        g.verify_all().map_err(e)?;
        g.sq_heads_at_tail()
    })();
    d.reset().map_err(e)?;
    let st = d.mig_state().map_err(e)?;
    arena.rewind(mark).map_err(e)?;
    r?;
    if st != State::Running {
        return Err(format!("after the reset the device is in {st:?}"));
    }
    Ok(())
}

/// The whole stream of `a` in STOP_COPY, taken from RUNNING (the core
/// walks RUNNING -> STOP -> STOP_COPY); `a` goes back to RUNNING.
fn save(a: &Device) -> Result<Vec<u8>, String> {
    let mut f = a
        .set_mig_state(State::StopCopy)
        .map_err(e)?
        .ok_or("no data_fd for STOP_COPY")?;
    let (s, end) = f.read_available(1 << 20).map_err(e)?;
    if !end {
        return Err("STOP_COPY ended with ENOMSG".into());
    }
    a.set_mig_state(State::Running).map_err(e)?;
    Ok(s)
}

/// The real streams: the source saved with a guest running I/O (commands
/// in flight, some rung while it was suspended), with two small queues,
/// with no I/O queue, and never enabled. The source is reset afterwards.
fn take_streams(a: &Device, arena: &Rc<Arena>) -> Result<Vec<Base>, String> {
    let mut out = Vec::new();
    let mark = arena.used();

    // 1: I/O in flight, the way a VMM saves: PRE_COPY, PRE_COPY_P2P,
    // STOP_COPY; then a cancel: the source finishes everything.
    a.reset().map_err(e)?;
    {
        let mut g = Guest::start(a, Rc::clone(arena), FULL_QUEUES, FULL_DEPTH).map_err(e)?;
        let nq = g.io.len() as u64;
        for lba in 0..64u64 {
            g.submit_write((lba % nq) as usize, lba, true).map_err(e)?;
            if g.pending.len() >= 16 {
                g.drain(20_000).map_err(e)?;
            }
        }
        g.drain(20_000).map_err(e)?;
        let mut f = a
            .set_mig_state(State::PreCopy)
            .map_err(e)?
            .ok_or("no data_fd for PRE_COPY")?;
        let (mut s, _) = f.read_available(1 << 20).map_err(e)?;
        for lba in 64..72u64 {
            g.submit_write((lba % nq) as usize, lba, false).map_err(e)?;
            g.submit_read((lba % nq) as usize, lba - 64, false)
                .map_err(e)?;
        }
        g.ring_all().map_err(e)?;
        a.set_mig_state(State::PreCopyP2p).map_err(e)?;
        for lba in 72..80u64 {
            g.submit_write((lba % nq) as usize, lba, false).map_err(e)?;
        }
        g.ring_all().map_err(e)?;
        a.set_mig_state(State::StopCopy).map_err(e)?;
        let (rest, end) = f.read_available(1 << 20).map_err(e)?;
        if !end {
            return Err("STOP_COPY ended with ENOMSG".into());
        }
        s.extend_from_slice(&rest);
        a.set_mig_state(State::Running).map_err(e)?;
        g.drain(20_000)
            .map_err(|x| format!("the source after the cancel: {x}"))?;
        g.verify_all().map_err(e)?;
        out.push(Base::new("io_in_flight", s)?);
    }
    a.reset().map_err(e)?;
    arena.rewind(mark).map_err(e)?;

    // 2: two small queues, some I/O done.
    {
        let mut g = Guest::start(a, Rc::clone(arena), 2, 32).map_err(e)?;
        g.write_range(1, 200, 4).map_err(e)?;
        out.push(Base::new("two_small_queues", save(a)?)?);
    }
    a.reset().map_err(e)?;
    arena.rewind(mark).map_err(e)?;

    // 3: enabled, admin queue only.
    {
        let _g = Guest::start(a, Rc::clone(arena), 0, 16).map_err(e)?;
        out.push(Base::new("admin_only", save(a)?)?);
    }
    a.reset().map_err(e)?;
    arena.rewind(mark).map_err(e)?;

    // 4: never enabled (registers only).
    out.push(Base::new("never_enabled", save(a)?)?);
    a.reset().map_err(e)?;
    Ok(out)
}

/// The material of a media run: each stream in `files` thinned out two
/// ways ([`media_stream::trim`]): a few DATA records of a few blocks and
/// a few ZERO ranges, and one DATA record of one block alone.
fn media_bases(files: &[PathBuf]) -> Result<Vec<Base>, String> {
    let mut out = Vec::new();
    for f in files {
        let s = std::fs::read(f).map_err(|x| format!("{}: {x}", f.display()))?;
        let name = f
            .file_stem()
            .map_or("media".into(), |n| n.to_string_lossy().into_owned());
        for (what, data, blocks, zero) in [("few", 4, 8, 4), ("one_block", 1, 1, 0)] {
            let t = crate::media_stream::trim(&s, data, blocks, zero)
                .map_err(|x| format!("{}: {x}", f.display()))?;
            out.push(Base::new(&format!("{name}_{what}"), t)?);
        }
    }
    Ok(out)
}

/// The destination as the driver checks streams against it: its own
/// compatibility record (its PRE_COPY data) and CAP.CQR.
fn target_of(b: &Device) -> Result<Target, String> {
    b.reset().map_err(e)?;
    let mut f = b
        .set_mig_state(State::PreCopy)
        .map_err(e)?
        .ok_or("no data_fd for PRE_COPY")?;
    let (pre, _) = f.read_available(4096).map_err(e)?;
    b.set_mig_state(State::Running).map_err(e)?;
    drop(f);
    let compat = pre
        .get(HEADER_LEN + RECORD_HEADER_LEN..PREFIX_LEN)
        .ok_or("short PRE_COPY data")
        .and_then(|c| Compat::parse(c).map_err(|x| x.reason()))
        .map_err(|x| format!("the destination's compatibility record: {x}"))?;
    let cap = crate::nvme::Controller::new(b).map_err(e)?.cap();
    Ok(Target::new(compat, cap & (1 << 16) != 0))
}

/// Counts of a run.
#[derive(Default)]
struct Tally {
    fed: u64,
    by_outcome: BTreeMap<String, u64>,
    /// Per kind: inputs, loaded, refused at write, refused at load by the
    /// driver, refused by the device.
    by_kind: BTreeMap<Kind, [u64; 5]>,
    crc_fixed: u64,
    loads_after_refused_write: u64,
    unexpected: Vec<String>,
    unexpected_count: u64,
    /// Device refusals of streams changed only in fields the driver
    /// checks: (what, count).
    gaps: BTreeMap<String, u64>,
    gap_examples: Vec<String>,
    /// The same, in fields named by `Options::known_gaps` only.
    known_gaps: BTreeMap<String, u64>,
    gap_dumps: usize,
    io_checks: u64,
    /// Time in the I/O checks.
    io_time: Duration,
    dumped: usize,
    phases: Phases,
    /// Field mutations by the fields changed: as `by_kind`.
    by_field: BTreeMap<String, [u64; 5]>,
}

impl Tally {
    fn add(&mut self, input: &Input, exp: &Expect, got: &Got) {
        self.fed += 1;
        *self.by_outcome.entry(class(got, exp)).or_default() += 1;
        let k = self.by_kind.entry(input.kind).or_default();
        k[0] += 1;
        let col = match got {
            Got::Loaded => 1,
            Got::Write { .. } => 2,
            Got::Load(_) if *exp == Expect::Device => 4,
            Got::Load(_) => 3,
        };
        k[col] += 1;
        if input.kind == Kind::FieldValue {
            let f = self.by_field.entry(field_names(input)).or_default();
            f[0] += 1;
            f[col] += 1;
        }
        self.crc_fixed += u64::from(input.crc_fixed);
        if let Got::Write { after: Some(_), .. } = got {
            self.loads_after_refused_write += 1;
        }
    }
}

/// The fields a field mutation changed: "sq[0].qid" of "sq[0].qid 0x1 ->
/// 0x0", joined by "+".
fn field_names(input: &Input) -> String {
    input
        .what
        .split(", ")
        .map(|f| f.split(' ').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("+")
}

fn dump(o: &Options, t: &mut Tally, index: u64, input: &Input, text: &str) {
    let Some(dir) = &o.dump else { return };
    if t.dumped >= 20 {
        return;
    }
    t.dumped += 1;
    let base = dir.join(format!("input-{index}"));
    let r = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(base.with_extension("bin"), &input.bytes))
        .and_then(|()| std::fs::write(base.with_extension("txt"), text));
    if let Err(x) = r {
        eprintln!("cannot dump input {index} to {}: {x}", dir.display());
    }
}

/// Runs the fuzzer; prints its report and verdicts. `Err` only when it
/// could not start.
pub fn run(o: &Options) -> Result<bool, String> {
    let iommufd = Iommufd::open().map_err(e)?;
    let arena = Arena::new(&iommufd, 64 << 20, 0x8_0000_0000).map_err(e)?;
    let b = Device::open(&o.b, &iommufd).map_err(e)?;
    let watch = Arc::new(Watch {
        start: Instant::now(),
        since: AtomicU64::new(0),
        limit: AtomicU64::new(0),
        what: Mutex::new(String::new()),
        input: Mutex::new(Vec::new()),
        dump: o.dump.clone(),
    });
    {
        let w = Arc::clone(&watch);
        std::thread::spawn(move || w.guard());
    }
    let mut kmsg = if o.kmsg {
        Some(kmsg::Kmsg::open().map_err(|x| format!("/dev/kmsg: {x}"))?)
    } else {
        None
    };
    let setup_limit = Duration::from_secs(600);
    watch.begin("the destination's profile".into(), &[], setup_limit);
    let t = target_of(&b)?;
    watch.end();
    println!(
        "destination {}: {} I/O queues, {} vectors, MQES {}, {} namespaces{}",
        o.b.display(),
        t.compat.io_queues,
        t.compat.vectors,
        t.compat.mqes,
        t.compat.namespaces.count(),
        if t.limits.contiguous_only {
            ", contiguous queues only"
        } else {
            ""
        }
    );

    let media_run = !o.media_streams.is_empty();
    if o.replay.is_empty() && t.compat.media != media_run {
        return Err(format!(
            "the destination has media migration {}: {}",
            if t.compat.media { "on" } else { "off" },
            if t.compat.media {
                "fuzz it with --media-stream"
            } else {
                "--media-stream needs it on"
            }
        ));
    }
    // I/O checks on the destination's first namespace (a media
    // destination's is its private one).
    let nsid = t.compat.namespaces.as_slice().first().map_or(1, |n| n.nsid);

    let mut usable: Result<(), String> = Ok(());
    let mut real: Result<(), String> = Ok(());
    let mut tally = Tally::default();
    let mut bases = Vec::new();

    if o.replay.is_empty() {
        if o.media_streams.is_empty() {
            let a = Device::open(&o.a, &iommufd).map_err(e)?;
            watch.begin("taking the source's streams".into(), &[], setup_limit);
            bases =
                take_streams(&a, &arena).map_err(|x| format!("source {}: {x}", o.a.display()))?;
            watch.end();
            drop(a);
        } else {
            bases = media_bases(&o.media_streams)?;
        }
        if let Some(dir) = &o.dump {
            // The material, for replays and reproducers.
            for s in &bases {
                let p = dir.join(format!("stream-{}.bin", s.name));
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&p, &s.bytes))
                    .map_err(|x| format!("{}: {x}", p.display()))?;
            }
        }
        for s in &bases {
            let l = &s.layout;
            let (_, state_len) = l.state;
            println!(
                "real stream {}: {} bytes, controller state {state_len} bytes, {} fields",
                s.name,
                s.bytes.len(),
                l.fields.len()
            );
        }
        // The controls: every real stream, unchanged, loads.
        for (i, s) in bases.iter().enumerate() {
            let input = Input {
                kind: Kind::Identity,
                base: i,
                what: s.name.clone(),
                bytes: s.bytes.clone(),
                crc_fixed: true,
                chunks: vec![s.bytes.len()],
            };
            watch.begin(format!("real stream {}", s.name), &s.bytes, o.timeout);
            let r = feed(&b, &input, false);
            watch.end();
            match r {
                Ok((Got::Loaded, State::Stop, _)) => {}
                Ok((got, st, _)) => {
                    real = Err(format!(
                        "real stream {}: {} (device in {st:?})",
                        s.name,
                        describe_got(&got)
                    ));
                }
                Err(x) => {
                    real = Err(format!("real stream {}: {x}", s.name));
                    usable = Err(x);
                }
            }
        }
        if let Err(x) = &real {
            println!("{x}");
        }
    }

    watch.begin("I/O check before the inputs".into(), &[], setup_limit);
    if let Err(x) = io_check(&b, &arena, nsid, 1000) {
        usable = Err(format!("before any input, I/O failed: {x}"));
    }
    watch.end();

    let inputs: Vec<u64> = if o.replay.is_empty() {
        (o.first..o.first.saturating_add(o.inputs)).collect()
    } else {
        (0..o.replay.len() as u64).collect()
    };
    let t0 = Instant::now();
    let mut last_report = Instant::now();
    let mut fed_since_io = 0;
    if usable.is_ok() {
        for &i in &inputs {
            let (input, base) = if o.replay.is_empty() {
                let input = mutate::make(o.seed, i, &bases, o.fix_percent);
                let base = input.base;
                (input, Some(&bases[base]))
            } else {
                let p = &o.replay[i as usize];
                let bytes = std::fs::read(p).map_err(|x| format!("{}: {x}", p.display()))?;
                (
                    Input {
                        kind: Kind::Replay,
                        base: 0,
                        what: p.display().to_string(),
                        chunks: if bytes.is_empty() {
                            vec![]
                        } else {
                            vec![bytes.len()]
                        },
                        bytes,
                        crc_fixed: true,
                    },
                    None,
                )
            };
            let exp = oracle::expect(&t, &input.bytes, &input.chunks);
            let then_load = mutate::Rng::for_input(o.seed ^ 0x10ad, i).chance(30);
            watch.begin(
                format!("input {i} ({}: {})", input.kind.name(), input.what),
                &input.bytes,
                o.timeout,
            );
            let r = feed(&b, &input, then_load);
            watch.end();
            let (got, state) = match r {
                Ok((g, st, ph)) => {
                    for (a, p) in tally.phases.iter_mut().zip(ph) {
                        *a += p;
                    }
                    (g, st)
                }
                Err(x) => {
                    usable = Err(format!(
                        "input {i} ({}: {}): {x}",
                        input.kind.name(),
                        input.what
                    ));
                    dump(
                        o,
                        &mut tally,
                        i,
                        &input,
                        &format!("destination unusable: {x}\n"),
                    );
                    break;
                }
            };
            tally.add(&input, &exp, &got);
            if !o.replay.is_empty() {
                println!(
                    "{}: {} bytes: expected {}; got {}",
                    input.what,
                    input.bytes.len(),
                    describe(&exp),
                    describe_got(&got)
                );
            }
            if let Err(x) = judge(&t, &input, base, &exp, &got, state) {
                tally.unexpected_count += 1;
                let text = format!(
                    "input {i}: {} ({}), {} bytes in writes {:?}, checksum {}: {x}\n",
                    input.kind.name(),
                    input.what,
                    input.bytes.len(),
                    input.chunks,
                    if input.crc_fixed { "fixed" } else { "stale" },
                );
                if tally.unexpected.len() < 20 {
                    tally.unexpected.push(text.trim_end().to_string());
                }
                dump(o, &mut tally, i, &input, &text);
            }
            if let (Expect::Device, Got::Load(_), Some(base)) = (&exp, &got, base) {
                if let Some(fields) = mutate::changed_fields(base, &input.bytes) {
                    if !fields.is_empty() && fields.iter().all(|(_, r)| r.driver_checked()) {
                        let names: Vec<String> = fields.iter().map(|f| f.0.clone()).collect();
                        // One known gap among the fields changed explains
                        // the refusal.
                        let known = fields
                            .iter()
                            .any(|(n, _)| o.known_gaps.contains(&mutate::generic_name(n)));
                        let key = names.join("+");
                        let text = format!(
                            "input {i}: {}: {} (changed: {key})",
                            input.kind.name(),
                            input.what
                        );
                        if known {
                            *tally.known_gaps.entry(key).or_default() += 1;
                        } else {
                            *tally.gaps.entry(key).or_default() += 1;
                            if tally.gap_examples.len() < 5 {
                                tally.gap_examples.push(text.clone());
                            }
                        }
                        if tally.gap_dumps < 3 {
                            tally.gap_dumps += 1;
                            dump(
                                o,
                                &mut tally,
                                i,
                                &input,
                                &format!("{text}: passed by the driver, refused by the device\n"),
                            );
                        }
                    }
                }
            }
            fed_since_io += 1;
            if o.io_every > 0 && fed_since_io >= o.io_every {
                fed_since_io = 0;
                watch.begin(format!("I/O check after input {i}"), &[], setup_limit);
                let t_io = Instant::now();
                let r = io_check(&b, &arena, nsid, 1000 + (i % 1000) * 8);
                watch.end();
                tally.io_time += t_io.elapsed();
                tally.io_checks += 1;
                if let Err(x) = r {
                    usable = Err(format!("I/O check after input {i}: {x}"));
                    break;
                }
            }
            if let Some(k) = &mut kmsg {
                if tally.fed % 100 == 0 {
                    k.poll().map_err(|x| format!("/dev/kmsg: {x}"))?;
                }
            }
            if last_report.elapsed() > Duration::from_secs(60) {
                last_report = Instant::now();
                println!(
                    "# {} of {} inputs, {:.1}/s, {} unexpected",
                    tally.fed,
                    inputs.len(),
                    tally.fed as f64 / t0.elapsed().as_secs_f64(),
                    tally.unexpected_count
                );
            }
        }
    }
    let elapsed = t0.elapsed();
    if usable.is_ok() {
        // The end: one more RESUMING entry, then real I/O.
        watch.begin("I/O check at the end".into(), &[], setup_limit);
        let r = b
            .set_mig_state(State::Resuming)
            .map_err(|x| format!("RESUMING after the last input: {x}"))
            .and_then(|_| b.reset().map_err(e))
            .and_then(|()| io_check(&b, &arena, nsid, 900));
        watch.end();
        tally.io_checks += 1;
        if let Err(x) = r {
            usable = Err(format!("at the end: {x}"));
        }
    }
    if let Some(k) = &mut kmsg {
        k.poll().map_err(|x| format!("/dev/kmsg: {x}"))?;
    }
    report(o, &tally, &bases, elapsed, kmsg.as_ref().map(|k| &k.counts));

    let mut ok = true;
    let mut verdict = |name: &str, r: Result<(), String>| match r {
        Ok(()) => println!("verdict {name}: ok"),
        Err(x) => {
            ok = false;
            println!("verdict {name}: FAIL: {x}");
        }
    };
    if o.replay.is_empty() {
        verdict("real_streams_load", real);
    }
    let mut inputs_ok = match tally.unexpected_count {
        0 => Ok(()),
        n => Err(format!(
            "{n} unexpected outcomes; first: {}",
            tally.unexpected.first().map_or("", String::as_str)
        )),
    };
    if inputs_ok.is_ok() && o.strict_gaps && !tally.gaps.is_empty() {
        inputs_ok = Err(format!(
            "the device refused {} streams the driver passed, changed only in fields the driver checks (not --known-gap); first: {}",
            tally.gaps.values().sum::<u64>(),
            tally.gap_examples.first().map_or("", String::as_str)
        ));
    }
    if inputs_ok.is_ok() && (tally.fed as usize) < inputs.len() {
        inputs_ok = Err(format!("only {} of {} inputs fed", tally.fed, inputs.len()));
    }
    verdict("inputs_refused_or_loaded", inputs_ok);
    verdict("destination_usable", usable);
    if let Some(k) = &kmsg {
        let c = &k.counts;
        verdict(
            "kernel_log",
            match (c.bad.first(), c.lost) {
                (Some(l), _) => Err(format!("{} bad lines; first: {l}", c.bad_count)),
                (None, 0) => Ok(()),
                (None, n) => Err(format!("{n} times records were lost before they were read")),
            },
        );
    }
    Ok(ok)
}

/// A table of outcome counts (inputs, loaded, refused at write, at load,
/// by the device) under `title`, one row per name, names `width` wide.
fn count_table<'a>(title: &str, width: usize, rows: impl Iterator<Item = (&'a str, &'a [u64; 5])>) {
    println!(
        "{title:<pad$}{:>7} {:>8} {:>8} {:>8} {:>8}",
        "inputs",
        "loaded",
        "write",
        "load",
        "device",
        pad = width + 3
    );
    for (name, v) in rows {
        println!(
            "  {name:width$} {:7} {:8} {:8} {:8} {:8}",
            v[0], v[1], v[2], v[3], v[4]
        );
    }
}

fn report(o: &Options, t: &Tally, bases: &[Base], elapsed: Duration, kmsg: Option<&kmsg::Counts>) {
    println!(
        "seed {:#x}: inputs {}..{}, {} fed in {:.1} s: {:.2} inputs/s (each: RESUMING, writes, RESUMING -> STOP, reset)",
        o.seed,
        o.first,
        o.first + t.fed,
        t.fed,
        elapsed.as_secs_f64(),
        t.fed as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if !bases.is_empty() {
        println!(
            "checksum recomputed in {} inputs ({}%); RESUMING -> STOP tried after {} refused writes",
            t.crc_fixed,
            (t.crc_fixed * 100).checked_div(t.fed).unwrap_or(0),
            t.loads_after_refused_write
        );
    }
    if t.fed > 0 {
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / t.fed as f64;
        println!(
            "mean per input: RESUMING entry {:.1} ms, writes {:.1} ms, RESUMING -> STOP {:.1} ms, reset {:.1} ms",
            ms(t.phases[0]),
            ms(t.phases[1]),
            ms(t.phases[2]),
            ms(t.phases[3])
        );
    }
    println!("outcomes:");
    for (k, n) in &t.by_outcome {
        println!("  {k:44} {n:7}");
    }
    count_table(
        "by mutation:",
        20,
        t.by_kind.iter().map(|(k, v)| (k.name(), v)),
    );
    if o.by_field {
        count_table(
            "by field:",
            40,
            t.by_field.iter().map(|(k, v)| (k.as_str(), v)),
        );
    }
    println!(
        "I/O checks of the destination: {} ({:.0} ms each between inputs)",
        t.io_checks,
        t.io_time.as_secs_f64() * 1e3 / (t.io_checks.max(2) - 1) as f64
    );
    if let Some(c) = kmsg {
        let refused: u64 = t.by_kind.values().map(|v| v[2] + v[3] + v[4]).sum();
        println!(
            "kernel log: {} lines: {} \"migration stream rejected\" for {refused} refused inputs, {} \"callbacks suppressed\", {} other nvme-vfio-pci lines, {} bad",
            c.lines, c.rejected, c.suppressed, c.driver_other, c.bad_count
        );
        for l in &c.bad {
            println!("  bad: {l}");
        }
    }
    for (gaps, what) in [(&t.gaps, ""), (&t.known_gaps, " (known)")] {
        if gaps.is_empty() {
            continue;
        }
        println!(
            "passed by the driver, refused by the device, changed only in fields the driver checks{what}:"
        );
        for (k, n) in gaps {
            println!("  {k:44} {n:7}");
        }
    }
    for x in &t.gap_examples {
        println!("  e.g. {x}");
    }
    if t.unexpected_count > 0 {
        println!("unexpected outcomes: {}", t.unexpected_count);
        for x in &t.unexpected {
            println!("  {x}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
