// SPDX-License-Identifier: GPL-2.0

//! VFIO DMA logging of one VF, backed by NVMe 2.2 Track Memory Changes on
//! the parent PF: the controller records the host memory the VF's
//! controller writes (read data, completion entries, admin data) inside the
//! ranges it was given, and reports it on Track Receive.
//!
//! The controller reports every tracked range at once and forgets what it
//! reported, while VFIO asks for one IOVA window at a time: what the
//! controller reported is kept here, one bit per granule of every tracked
//! range, until a report covers it. That memory is bounded: the granularity
//! grows (and is reported to the user as the page size) until the bitmaps
//! fit [`MAX_BITMAP_BYTES`].
//!
//! Locking: the tracker lock serializes the three log operations, reset
//! and close; PF commands are serialized by the service's own lock.

use crate::codec::track::{self, Changes, Limits, Range};
use crate::device_state::errno;
use crate::user_errors::UserErrors;
use kernel::{
    alloc::{KVVec, KVec},
    dev_err_ratelimited, device,
    nvme_lm::Handle,
    prelude::*,
    sync::{Arc, Mutex},
    vfio::{DirtyBitmap, IovaRange, Ranges},
};

/// Most memory the dirty bitmaps of one VF may use.
const MAX_BITMAP_BYTES: u64 = 16 << 20;
/// Largest Track Receive buffer.
const MAX_RECEIVE_BYTES: usize = 64 << 10;
/// Dirty runs moved into the user's bitmap per lock hold.
const RUN_BATCH: usize = 256;
/// Track Receive commands one report may take before the controller is
/// deemed to report forever.
const MAX_RECEIVES: u32 = 4096;

/// One tracked range: its granules' dirty bits.
struct Tracked {
    first: u64,
    last: u64,
    bits: KVVec<u64>,
}

impl Tracked {
    /// Moves the dirty granules of window `w` (inside this range) from
    /// IOVA `from` on into `runs` as `(iova, length)` runs, until `runs`
    /// is full; returns where to go on, or `None` when the window is done.
    /// A granule the window only partly covers stays set for the window
    /// that holds the rest of it.
    fn take_runs(
        &mut self,
        shift: u8,
        w: IovaRange,
        from: u64,
        runs: &mut KVec<(u64, u64)>,
    ) -> Option<u64> {
        let size = 1u64 << shift;
        let g1 = (w.last - self.first) >> shift;
        let mut g = (from.max(self.first) - self.first) >> shift;
        while g <= g1 {
            // CAST: `g / 64` indexes `bits`, which was allocated with that
            // many words, so it fits a usize.
            let (wi, b) = ((g / 64) as usize, g % 64);
            let word = self.bits.get(wi).copied().unwrap_or(0);
            if word == 0 {
                g = (g | 63) + 1;
                continue;
            }
            if word & (1 << b) != 0 {
                let start = self.first + (g << shift);
                let extends = runs.last().is_some_and(|r| r.0 + r.1 == start);
                if !extends && runs.len() == runs.capacity() {
                    // Full: this granule, still set, starts the next batch.
                    return Some(start);
                }
                if start >= w.first && start + (size - 1) <= w.last {
                    if let Some(x) = self.bits.get_mut(wi) {
                        *x &= !(1 << b);
                    }
                }
                match runs.last_mut() {
                    Some(r) if extends => r.1 += size,
                    // Within capacity: the push cannot fail.
                    _ => drop(runs.push((start, size), GFP_KERNEL)),
                }
            }
            g += 1;
        }
        None
    }

    /// Sets the bits of the granules `[g0, g1]` of this range.
    fn mark(&mut self, g0: u64, g1: u64) {
        for g in g0..=g1 {
            // CAST: as in `Tracked::take_runs`.
            let (w, b) = ((g / 64) as usize, g % 64);
            if let Some(word) = self.bits.get_mut(w) {
                *word |= 1 << b;
            }
        }
    }
}

/// An active tracking session.
struct Session {
    /// Granularity of the bitmaps, log2 bytes.
    shift: u8,
    ranges: KVec<Tracked>,
    buf: KVVec<u8>,
}

impl Session {
    /// The index of the tracked range that holds all of `w` (a report's
    /// window, or a change the controller reported).
    fn range_of(&self, w: IovaRange) -> Option<usize> {
        self.ranges
            .iter()
            .position(|t| w.first >= t.first && w.last <= t.last)
    }
}

/// DMA logging of one VF.
#[pin_data]
pub(crate) struct DmaLog {
    limits: Limits,
    errors: Arc<UserErrors>,
    #[pin]
    session: Mutex<Option<Session>>,
}

/// Aligns `r` to `shift` (both ends outward).
fn align(r: IovaRange, shift: u8) -> (u64, u64) {
    let mask = (1u64 << shift) - 1;
    (r.first & !mask, r.last | mask)
}

impl DmaLog {
    /// DMA logging with the PF's Track Memory Changes `limits`.
    pub(crate) fn new(limits: Limits, errors: Arc<UserErrors>) -> impl PinInit<Self> {
        pin_init!(Self {
            limits,
            errors,
            session <- kernel::new_mutex!(None),
        })
    }

    /// The ranges `ranges` aligned to granularity `shift`, merged where
    /// they touch.
    fn layout(ranges: &Ranges<'_>, shift: u8) -> Result<KVec<(u64, u64)>> {
        let mut out: KVec<(u64, u64)> = KVec::new();
        for r in ranges.iter() {
            let (first, last) = align(r, shift);
            match out.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => out.push((first, last), GFP_KERNEL)?,
            }
        }
        Ok(out)
    }

    /// Granules of `layout` at `shift`, or `None` if one range has more
    /// than a descriptor's LEN can hold.
    fn granules(layout: &[(u64, u64)], shift: u8) -> Option<u64> {
        let mut total = 0u64;
        for &(first, last) in layout {
            let n = ((last - first) >> shift) + 1;
            u32::try_from(n).ok()?;
            total = total.checked_add(n)?;
        }
        Some(total)
    }

    /// `DMA_LOGGING_START`.
    pub(crate) fn start(
        &self,
        dev: &device::Device,
        lm: &Handle,
        ranges: &mut Ranges<'_>,
        page_size: &mut u64,
    ) -> Result {
        let mut session = self.session.lock();
        if session.is_some() {
            dev_err_ratelimited!(self.errors.request, dev, "DMA logging: already started\n");
            return Err(EINVAL);
        }
        if !page_size.is_power_of_two() {
            dev_err_ratelimited!(
                self.errors.request,
                dev,
                "DMA logging: page size {:#x} is not a power of two\n",
                *page_size
            );
            return Err(EINVAL);
        }
        ranges.combine(u32::from(self.limits.ranges));
        // CAST: the log2 of a u64 is below 64.
        let mut shift = self
            .limits
            .granularity_for(page_size.trailing_zeros() as u8);
        let layout = loop {
            let layout = Self::layout(ranges, shift)?;
            let fits = Self::granules(&layout, shift).is_some_and(|n| n / 8 <= MAX_BITMAP_BYTES);
            if fits && layout.len() <= usize::from(self.limits.ranges) {
                break layout;
            }
            if shift >= self.limits.max_granularity {
                dev_err_ratelimited!(
                    self.errors.request,
                    dev,
                    "DMA logging: ranges too large for the controller\n"
                );
                return Err(E2BIG);
            }
            shift += 1;
        };
        let mut descs: KVec<Range> = KVec::with_capacity(layout.len(), GFP_KERNEL)?;
        let mut tracked: KVec<Tracked> = KVec::with_capacity(layout.len(), GFP_KERNEL)?;
        for &(first, last) in layout.iter() {
            let n = ((last - first) >> shift) + 1;
            descs.push(
                Range {
                    addr: first,
                    granules: u32::try_from(n)?,
                },
                GFP_KERNEL,
            )?;
            let words = usize::try_from(n.div_ceil(64))?;
            tracked.push(
                Tracked {
                    first,
                    last,
                    // Sized by the user's ranges: charged to its memory cgroup.
                    bits: KVVec::from_elem(0u64, words, GFP_KERNEL_ACCOUNT)?,
                },
                GFP_KERNEL,
            )?;
        }
        let len = track::start_len(descs.len()).ok_or(EOVERFLOW)?;
        let mut data = KVVec::from_elem(0u8, len, GFP_KERNEL)?;
        track::encode_start(&mut data, shift, &descs).map_err(errno)?;
        let granted = lm.track_start(&data, len)?;
        if !(self.limits.min_granularity..=self.limits.max_granularity).contains(&granted) {
            dev_err!(
                dev,
                "DMA logging: controller tracks at 2^{} bytes\n",
                granted
            );
            let _ = lm.track_stop();
            return Err(EIO);
        }
        // Descriptors are recorded by byte range: a controller that tracks
        // more finely than asked still lands in the bitmaps; a coarser one
        // is what the user is told.
        let reported = shift.max(granted);
        let rx = lm.max_transfer().clamp(64, MAX_RECEIVE_BYTES) & !3;
        *session = Some(Session {
            shift,
            ranges: tracked,
            buf: KVVec::from_elem(0u8, rx, GFP_KERNEL)?,
        });
        *page_size = 1u64 << reported;
        Ok(())
    }

    /// `DMA_LOGGING_STOP`.
    pub(crate) fn stop(&self, dev: &device::Device, lm: &Handle) -> Result {
        let mut session = self.session.lock();
        if session.take().is_none() {
            dev_err_ratelimited!(
                self.errors.request,
                dev,
                "DMA logging: stop without start\n"
            );
            return Err(EINVAL);
        }
        lm.track_stop()
    }

    /// A function reset ended tracking in the controller: forget the
    /// session if nobody holds it now (else [`Self::end`] does, later).
    pub(crate) fn try_forget(&self) {
        if let Some(mut session) = self.session.try_lock() {
            session.take();
        }
    }

    /// The device was reset (tracking ended with its controller) or closed
    /// (stop it): forget the session.
    pub(crate) fn end(&self, lm: &Handle, reset: bool) {
        let mut session = self.session.lock();
        if session.take().is_some() && !reset {
            let _ = lm.track_stop();
        }
    }

    /// Receives everything the controller holds into the bitmaps.
    fn harvest(dev: &device::Device, lm: &Handle, s: &mut Session) -> Result {
        for _ in 0..MAX_RECEIVES {
            let len = s.buf.len();
            lm.track_receive(&mut s.buf, len)?;
            let changes = Changes::parse(&s.buf).map_err(|e| {
                dev_err!(
                    dev,
                    "DMA logging: bad Tracked Memory Changes: {}\n",
                    e.reason()
                );
                EIO
            })?;
            if changes.cntlid != lm.cntlid() {
                dev_err!(
                    dev,
                    "DMA logging: changes of controller {}\n",
                    changes.cntlid
                );
                return Err(EIO);
            }
            for c in changes.ranges() {
                let Some((first, last)) = c.bytes(changes.granularity) else {
                    dev_err!(dev, "DMA logging: bad changed range at {:#x}\n", c.addr);
                    return Err(EIO);
                };
                let shift = s.shift;
                let Some(t) = s
                    .range_of(IovaRange { first, last })
                    .and_then(|i| s.ranges.get_mut(i))
                else {
                    dev_err!(
                        dev,
                        "DMA logging: change {:#x}..{:#x} outside the tracked ranges\n",
                        first,
                        last
                    );
                    return Err(EIO);
                };
                t.mark((first - t.first) >> shift, (last - t.first) >> shift);
            }
            if !changes.more() {
                return Ok(());
            }
        }
        dev_err!(dev, "DMA logging: controller never finishes its report\n");
        Err(EIO)
    }

    /// `DMA_LOGGING_REPORT`, one window: harvest, then move the window's
    /// bits into the user's bitmap. The user's bitmap is written with the
    /// lock dropped (setting it may fault user pages in, under mmap_lock,
    /// and a fault on the VF's BARs takes the lock `reset_done` runs
    /// under), a batch of runs at a time.
    pub(crate) fn report(
        &self,
        dev: &device::Device,
        lm: &Handle,
        dirty: &mut DirtyBitmap<'_>,
    ) -> Result {
        let w = dirty.window();
        let mut runs: KVec<(u64, u64)> = KVec::with_capacity(RUN_BATCH, GFP_KERNEL)?;
        let mut from = Some(w.first);
        let mut harvested = false;
        while let Some(at) = from {
            {
                let mut guard = self.session.lock();
                let Some(s) = (*guard).as_mut() else {
                    dev_err_ratelimited!(
                        self.errors.request,
                        dev,
                        "DMA logging: report without start\n"
                    );
                    return Err(EINVAL);
                };
                let Some(t) = s.range_of(w) else {
                    dev_err_ratelimited!(
                        self.errors.request,
                        dev,
                        "DMA logging: report of {:#x}..{:#x} outside the tracked ranges\n",
                        w.first,
                        w.last
                    );
                    return Err(EINVAL);
                };
                if !harvested {
                    Self::harvest(dev, lm, s)?;
                    harvested = true;
                }
                let shift = s.shift;
                from = s
                    .ranges
                    .get_mut(t)
                    .and_then(|t| t.take_runs(shift, w, at, &mut runs));
            }
            for &(iova, len) in runs.iter() {
                dirty.set(iova, len);
            }
            runs.clear();
        }
        Ok(())
    }
}
