// SPDX-License-Identifier: GPL-2.0

//! The VFIO migration state machine of one VF.
//!
//! Every arc the device's features (STOP_COPY, P2P, PRE_COPY) require is
//! walked one step at a time along the VFIO core's path, under the state
//! lock. The NVMe mapping, after virtio and xe: entering RUNNING_P2P
//! suspends the controller (no new DMA, in-flight commands completed);
//! RUNNING_P2P and STOP are the same for it; STOP_COPY reads its state;
//! RESUMING→STOP checks the stream, then loads it; RUNNING resumes it.
//! PRE_COPY carries only the compatibility record, so a destination refuses
//! an incompatible source before the source stops.
//!
//! ERROR is never stored: a failed step leaves the device in the last state
//! it reached, with an errno and a message naming the cause; a device reset
//! brings it back to RUNNING and ends every session.

use crate::codec::stream::{self, PREFIX_LEN};
use crate::codec::track::Limits;
use crate::device_state::{self, errno, Format, Profile};
use crate::dma_log::DmaLog;
use crate::fsm::{action, controller_runs, Action};
use crate::media_option::MediaMigration;
use crate::media_sink::SinkIo;
use crate::media_source::{Harvest, Source};
use crate::session::Session;
use crate::user_errors::UserErrors;
use crate::NvmeVfioPci;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    alloc::KVVec,
    dev_err_ratelimited, device, new_mutex,
    nvme_lm::{Handle, SuspendType},
    prelude::*,
    sync::{Arc, Mutex},
    vfio::{self, DataFile, State},
};

/// Name of the data files (shown in /proc/<pid>/fd).
const DATA_FILE_NAME: &CStr = c"nvme_vfio_pci_mig";

/// The migration state; the controller is suspended (by us) exactly when
/// [`controller_runs`] says it does not run in `state`.
struct Fsm {
    state: State,
    /// The saving session and the source profile its stream describes.
    saving: Option<(Arc<Session>, Profile)>,
    /// The resuming session and the destination profile it is checked
    /// against.
    resuming: Option<(Arc<Session>, Profile)>,
}

/// Live migration of one VF.
#[pin_data]
pub(crate) struct LiveMigration {
    lm: Arc<Handle>,
    vendor: u16,
    device: u16,
    format: Format,
    /// Rate limits of the messages the VF's user can trigger.
    errors: Arc<UserErrors>,
    /// A function reset happened that [`Self::settle`] has not finished.
    reset_pending: AtomicBool,
    /// DMA logging, when the PF tracks memory changes.
    dma_log: Option<Pin<KBox<DmaLog>>>,
    /// The `media_migration` option (sysfs), fixed while the device is open.
    pub(crate) media_migration: MediaMigration,
    #[pin]
    fsm: Mutex<Fsm>,
}

impl LiveMigration {
    /// Sets up migration of a VF whose PF has HMLM; fails if the
    /// controller cannot move a state we understand.
    pub(crate) fn new(
        dev: &device::Device,
        lm: Handle,
        vendor: u16,
        device: u16,
    ) -> Result<Pin<KBox<Self>>> {
        let profile = Profile::query(dev, &lm, vendor, device)?;
        let errors = UserErrors::new()?;
        let dma_log = match track_limits(dev, &lm)? {
            Some(limits) => Some(KBox::pin_init(
                DmaLog::new(limits, errors.clone()),
                GFP_KERNEL,
            )?),
            None => None,
        };
        let lm = Arc::new(lm, GFP_KERNEL)?;
        KBox::pin_init(
            try_pin_init!(Self {
                lm,
                vendor,
                device,
                format: profile.format,
                errors,
                reset_pending: AtomicBool::new(false),
                dma_log,
                media_migration: MediaMigration::new(),
                fsm <- new_mutex!(Fsm {
                    state: State::Running,
                    saving: None,
                    resuming: None,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The driver is being removed: let the PF go (the data, with the
    /// handle, may outlive `remove()`).
    pub(crate) fn detach(&self) {
        self.lm.detach();
    }

    /// The VF's secondary controller ID.
    pub(crate) fn cntlid(&self) -> u16 {
        self.lm.cntlid()
    }

    /// Whether the VF's migration stream carries its local namespace (the
    /// `media_migration` option): read when a saving or resuming session
    /// is opened; it does not change while the device is open.
    pub(crate) fn media_migration(&self) -> bool {
        self.media_migration.enabled()
    }

    /// Whether the VF offers DMA logging.
    pub(crate) fn has_dma_log(&self) -> bool {
        self.dma_log.is_some()
    }

    /// DMA logging and the handle its commands go through, a pending
    /// function reset finished first; `ENOTTY` if the PF does not track
    /// memory changes (the core never calls then).
    pub(crate) fn dma_log(&self, dev: &device::Device) -> Result<(&DmaLog, &Handle)> {
        // The state lock only when a reset is pending: a report must not
        // wait behind a migration step's commands.
        if self.reset_pending.load(Ordering::Acquire) {
            self.settle(dev, &mut self.fsm.lock());
        }
        Ok((self.dma_log.as_deref().ok_or(ENOTTY)?, &self.lm))
    }

    /// Moves the device to `new` along the core's path.
    pub(crate) fn set_state(
        &self,
        vdev: &vfio::Device<NvmeVfioPci>,
        new: State,
    ) -> Result<Option<DataFile>> {
        let dev = vdev.as_dev();
        let mut fsm = self.fsm.lock();
        self.settle(dev, &mut fsm);
        let mut file = None;
        while fsm.state != new {
            let cur = fsm.state;
            let next = vdev.next_state(cur, new).inspect_err(|_| {
                dev_err_ratelimited!(
                    self.errors.request,
                    dev,
                    "no migration arc {:?} -> {:?}\n",
                    cur,
                    new
                );
            })?;
            let opened = self.step(vdev, &mut fsm, cur, next).inspect_err(|e| {
                dev_err_ratelimited!(
                    self.errors.request,
                    dev,
                    "migration {:?} -> {:?} failed: {:?}\n",
                    cur,
                    next,
                    e
                );
            });
            let opened = match opened {
                Ok(opened) => opened,
                Err(e) => {
                    self.after_failed_step(dev, &mut fsm);
                    return Err(e);
                }
            };
            fsm.state = next;
            if let Some(f) = opened {
                if next != new {
                    // Only the last step may open a session (core rule).
                    dev_err!(dev, "migration path opens a session midway\n");
                    return Err(EINVAL);
                }
                file = Some(f);
            }
        }
        Ok(file)
    }

    /// A step failed: the device keeps its state if the controller is
    /// still as that state says (suspended or running), and is in ERROR if
    /// it is not or cannot be asked (a Suspend that timed out, a PF reset
    /// midway). Only a reset leaves ERROR.
    fn after_failed_step(&self, dev: &device::Device, fsm: &mut Fsm) {
        let suspended = device_state::suspended_now(&self.lm, &self.format);
        if suspended.is_ok_and(|s| s != controller_runs(fsm.state)) {
            return;
        }
        dev_err!(
            dev,
            "migration state unknown after a failed step (controller {}): ERROR until reset\n",
            match suspended {
                Ok(true) => "suspended",
                Ok(false) => "running",
                Err(_) => "does not answer",
            }
        );
        release_sessions(fsm);
        fsm.state = State::Error;
    }

    /// The current state.
    pub(crate) fn state(&self, dev: &device::Device) -> State {
        let mut fsm = self.fsm.lock();
        self.settle(dev, &mut fsm);
        fsm.state
    }

    /// The bytes a STOP_COPY session would stream now: exact, but for a
    /// media session still in PRE_COPY (its dirty set may grow).
    pub(crate) fn data_size(&self, dev: &device::Device) -> Result<usize> {
        let mut fsm = self.fsm.lock();
        self.settle(dev, &mut fsm);
        let len = device_state::state_len(&self.lm, &self.format)?;
        if let Some((session, _)) = fsm.saving.as_ref() {
            if let Some(n) = session.media_stop_copy_len(len)? {
                return Ok(n);
            }
        }
        stream::stream_len(len).map_err(errno)
    }

    /// `reset_done`: the function was reset. vfio-pci-core holds the VF's
    /// memory lock (every access to its BARs waits), so this sends no
    /// command and waits for no lock that a command may hold: it ends what
    /// it can now and leaves the rest to [`Self::settle`], which the next
    /// request (or the last close) runs first.
    pub(crate) fn function_reset(&self) {
        self.reset_pending.store(true, Ordering::Release);
        if let Some(log) = self.dma_log.as_deref() {
            // The reset ended tracking in the controller.
            log.try_forget();
        }
        if let Some(fsm) = self.fsm.try_lock() {
            end_sessions(&fsm);
        }
    }

    /// Finishes a function reset, if one is pending: as [`Self::reset`].
    fn settle(&self, dev: &device::Device, fsm: &mut Fsm) {
        if self.reset_pending.swap(false, Ordering::AcqRel) {
            self.reset_locked(dev, fsm, true);
        }
    }

    /// The last close: end the sessions, make sure the controller runs,
    /// and go back to RUNNING.
    pub(crate) fn reset(&self, dev: &device::Device) {
        let mut fsm = self.fsm.lock();
        let function_reset = self.reset_pending.swap(false, Ordering::AcqRel);
        self.reset_locked(dev, &mut fsm, function_reset);
    }

    fn reset_locked(&self, dev: &device::Device, fsm: &mut Fsm, function_reset: bool) {
        if let Some(log) = self.dma_log.as_deref() {
            // A function reset resets the controller, which ends tracking.
            log.end(&self.lm, function_reset);
        }
        release_sessions(fsm);
        if !controller_runs(fsm.state) {
            // A function reset may already have resumed the controller.
            let suspended = device_state::suspended_now(&self.lm, &self.format).unwrap_or(true);
            if suspended && self.lm.resume().is_err() {
                dev_err!(dev, "cannot resume the controller after a reset\n");
            }
        }
        fsm.state = State::Running;
    }

    fn suspend(&self) -> Result {
        // Suspending a suspended controller succeeds (NVMe 2.1 p. 376); a
        // controller answering Controller Suspended (139h, not a Migration
        // Send status) instead is tolerated, not relied on.
        match self.lm.suspend(SuspendType::Full) {
            Err(e) if e == EALREADY => Ok(()),
            r => r,
        }
    }

    fn profile(&self, dev: &device::Device) -> Result<Profile> {
        Profile::query(dev, &self.lm, self.vendor, self.device)
    }

    /// The whole stream: the prefix of `profile`, then the controller
    /// state read now, then the end record.
    fn whole_stream(&self, dev: &device::Device, profile: &Profile) -> Result<KVVec<u8>> {
        let mut state = KVVec::new();
        device_state::read_state(dev, &self.lm, &profile.format, &mut state)?;
        let total = stream::stream_len(state.len()).map_err(errno)?;
        let mut out = KVVec::from_elem(0u8, total, GFP_KERNEL)?;
        if stream::write_stream(&mut out, &profile.compat, &state).map_err(errno)? != total {
            return Err(EINVAL);
        }
        Ok(out)
    }

    fn open_save(
        &self,
        vdev: &vfio::Device<NvmeVfioPci>,
        fsm: &mut Fsm,
        stopped: bool,
    ) -> Result<Option<DataFile>> {
        let dev = vdev.as_dev();
        let mut profile = self.profile(dev)?;
        profile.compat.media = self.media_migration();
        let mut prefix = KVVec::from_elem(0u8, PREFIX_LEN, GFP_KERNEL)?;
        stream::write_prefix(&mut prefix, &profile.compat).map_err(errno)?;
        let (whole, media) = if profile.compat.media {
            // Stopped, the controller writes nothing: no queue needed.
            let entries = if stopped {
                0
            } else {
                crate::module_parameters::media_cdq_entries.value()
            };
            let harvest = Harvest::new()?;
            let src = Source::start(dev, &self.lm, &profile.compat.namespaces, entries, &harvest)?;
            let state = if stopped {
                let mut state = KVVec::new();
                device_state::read_state(dev, &self.lm, &profile.format, &mut state)?;
                Some(state)
            } else {
                None
            };
            (None, Some((src, state, harvest)))
        } else if stopped {
            (Some(self.whole_stream(dev, &profile)?), None)
        } else {
            (None, None)
        };
        let session = Session::new_save(
            dev,
            self.errors.clone(),
            prefix,
            whole,
            media,
            vdev.precopy_info_v2(),
        )?;
        let file = DataFile::new(DATA_FILE_NAME, session.clone(), session.direction())
            .inspect_err(|_| session.release())?;
        fsm.saving = Some((session, profile));
        Ok(Some(file))
    }

    fn stop_copy(&self, dev: &device::Device, fsm: &mut Fsm) -> Result {
        let (session, profile) = fsm.saving.as_ref().ok_or(EINVAL)?;
        let suspend = controller_runs(fsm.state);
        if suspend {
            self.suspend()?;
        }
        let ret = if session.is_media() {
            self.stop_copy_media(dev, session, profile)
        } else {
            self.whole_stream(dev, profile)
                .and_then(|whole| session.publish(whole))
        };
        if ret.is_err() && suspend {
            // The source goes on running (PRE_COPY) if it can.
            if self.lm.resume().is_ok() {
                session.media_undrain();
            }
        }
        ret
    }

    /// Suspended: the final dirty set, then the controller state.
    fn stop_copy_media(
        &self,
        dev: &device::Device,
        session: &Session,
        profile: &Profile,
    ) -> Result {
        session.media_drain()?;
        let mut state = KVVec::new();
        device_state::read_state(dev, &self.lm, &profile.format, &mut state)?;
        session.publish_media(state)
    }

    fn open_resume(&self, dev: &device::Device, fsm: &mut Fsm) -> Result<Option<DataFile>> {
        let mut profile = self.profile(dev)?;
        profile.compat.media = self.media_migration();
        let sink = if profile.compat.media {
            Some(SinkIo::new(dev, &self.lm, &profile.compat)?)
        } else {
            None
        };
        let session = Session::new_resume(dev, self.errors.clone(), profile.compat, sink)?;
        let file = DataFile::new(DATA_FILE_NAME, session.clone(), session.direction())
            .inspect_err(|_| session.release())?;
        fsm.resuming = Some((session, profile));
        Ok(Some(file))
    }

    /// RESUMING → STOP: checks the whole stream against this controller,
    /// then loads the state; the session stays open if anything fails.
    fn load(&self, dev: &device::Device, fsm: &mut Fsm) -> Result {
        let (session, profile) = fsm.resuming.as_ref().ok_or(EINVAL)?;
        let reject = |what, e| device_state::reject(dev, &self.errors.stream, what, e);
        let state = if session.is_media() {
            // Every record was checked as it came, the data is written.
            let state = session.media_finish()?;
            device_state::check_state(&state, &profile.limits)
                .map_err(|e| reject("controller state", e))?;
            state
        } else {
            session.with_written(|rx| -> Result<KVVec<u8>> {
                let s = stream::Stream::parse(rx).map_err(|e| reject("stream", e))?;
                profile
                    .compat
                    .accepts(&s.compat)
                    .map_err(|e| reject("incompatible source", e))?;
                device_state::check_state(s.state, &profile.limits)
                    .map_err(|e| reject("controller state", e))?;
                let mut state = KVVec::new();
                state.extend_from_slice(s.state, GFP_KERNEL)?;
                Ok(state)
            })?
        };
        device_state::load_state(&self.lm, &profile.format, &state)?;
        if let Some((session, _)) = fsm.resuming.take() {
            session.release();
        }
        Ok(())
    }

    fn step(
        &self,
        vdev: &vfio::Device<NvmeVfioPci>,
        fsm: &mut Fsm,
        cur: State,
        next: State,
    ) -> Result<Option<DataFile>> {
        let dev = vdev.as_dev();
        match action(cur, next).ok_or(EINVAL)? {
            Action::Suspend => self.suspend()?,
            Action::Resume => self.lm.resume()?,
            Action::Nothing => {}
            Action::OpenSave { stopped } => return self.open_save(vdev, fsm, stopped),
            Action::StopCopy => self.stop_copy(dev, fsm)?,
            Action::EndSave => {
                if let Some((session, _)) = fsm.saving.take() {
                    session.release();
                }
            }
            Action::OpenResume => return self.open_resume(dev, fsm),
            Action::Load => self.load(dev, fsm)?,
        }
        Ok(None)
    }
}

/// Ends the sessions and lets their namespaces and queue go (waits for a
/// read or write in progress).
fn release_sessions(fsm: &mut Fsm) {
    if let Some((session, _)) = fsm.saving.take() {
        session.release();
    }
    if let Some((session, _)) = fsm.resuming.take() {
        session.release();
    }
}

/// Ends the sessions without waiting for anything; they stay in `fsm` so
/// that the next settle lets their namespaces and queue go.
fn end_sessions(fsm: &Fsm) {
    if let Some((session, _)) = fsm.saving.as_ref() {
        session.end();
    }
    if let Some((session, _)) = fsm.resuming.as_ref() {
        session.end();
    }
}

/// The PF's Track Memory Changes limits; `None` if it cannot track (or
/// claims it can with limits nobody could use: then said once, here).
fn track_limits(dev: &device::Device, lm: &Handle) -> Result<Option<Limits>> {
    let mut id = KVVec::new();
    lm.identify_ctrl(&mut id)?;
    match Limits::parse(&id) {
        Ok(l) => Ok(l),
        Err(e) => {
            dev_warn!(dev, "no DMA logging: PF tracking limits: {}\n", e.reason());
            Ok(None)
        }
    }
}
