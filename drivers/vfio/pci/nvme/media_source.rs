// SPDX-License-Identifier: GPL-2.0

//! Media migration, source side: the VF's namespaces travel in the
//! migration stream, read through the parent PF.
//!
//! Logging starts (the User Data Migration Queue is created on the PF and
//! Track Send starts it) before the first bulk read, so every write the VF
//! completes afterwards is in the queue. The bulk copy reads each namespace
//! once, in order, `CHUNK` bytes per record, a batch of reads at a time;
//! an all-zero chunk becomes a zero-range record while the device runs.
//! Whenever anything is left to send, the next batch is
//! read while the one before becomes records and the VMM reads them (one
//! batch in flight: [`Prefetch`]); its pieces are out
//! of the bulk range and the dirty set when it starts, so writes to them
//! from then on mark them dirty again, and every size counts them. Each
//! piece is read to where its data will be in its record, and the records
//! are made around the data in that buffer, which the VMM then reads: the
//! data is copied once, to the VMM.
//! Queue entries become bits of a per-namespace dirty bitmap (one bit per
//! granule, [`Geometry`]); only LBAs the bulk copy has already read need a
//! bit, the rest will be read later anyway. Dirty rounds resend the marked
//! granules. A queue that filled up (ESA 7 entry, or the event) means
//! anything already copied may be dirty: every granule below the bulk
//! position is marked and logging restarts. A queue the PF controller
//! deleted (a reset of the PF) fails the copy: writes since then are in no
//! log, and the VF's controller did not survive the reset either.
//!
//! Once the controller is suspended, [`Source::drain`] consumes the queue
//! up to the suspend marker; from then on the set is final and
//! [`Source::exact_len`] is the exact size of what is left (no zero
//! compaction then, so that the size can be known before the data is read).

use crate::codec::{
    dirty::{self, Geometry},
    media::{
        self, crc_record, DataHeader, NsDesc, ZeroRange, DATA_HEADER_LEN, MAX_DATA_LEN,
        NS_DESC_LEN, ZERO_LEN,
    },
    namespaces::Namespaces,
    stream::RECORD_HEADER_LEN,
    udmq::{Change, Entry, Marker, ENTRY_LEN},
};
use crate::device_state::errno;
use crate::session::Session;
use kernel::{
    alloc::KVVec,
    dev_err_ratelimited, dev_warn, device, new_mutex,
    nvme_lm::{Cdq, CdqEvent, CdqEvents, Handle, Media, MediaReads, ReadAt, MAX_BATCH},
    prelude::*,
    ratelimit::RateLimit,
    sync::{aref::ARef, Arc, Mutex},
};

/// Data bytes per record at most (also one PF read).
const CHUNK: usize = MAX_DATA_LEN;
/// Bytes read per batch (the scratch buffer).
const BATCH_BYTES: usize = 8 * CHUNK;
/// Pieces per batch at most: dirty runs may be single granules, and a
/// batch of few of them would resend no faster than writes dirty.
const BATCH_PIECES: usize = 256;
// A batch is one batch of the PF service.
const _: () = assert!(BATCH_PIECES <= MAX_BATCH);
/// Bytes before a DATA record's data: where a piece's record starts.
const HEAD: usize = RECORD_HEADER_LEN + DATA_HEADER_LEN;
// Records made in place never outgrow the data they replace: a ZERO record
// fits the head room of a DATA record, and every record is whole 8-byte
// words (a piece is whole blocks of at least 512 bytes).
const _: () = assert!(RECORD_HEADER_LEN + ZERO_LEN <= HEAD && HEAD % 8 == 0);
/// The smallest granule a dirty bit stands for.
const MIN_GRANULE: u64 = 4096;
/// Most bits of one namespace's bitmap (1 MiB of memory).
const MAX_BITS: u64 = 8 << 20;
/// Queue overflows after which a copy is taken as not converging: each
/// sends everything copied again.
const MAX_OVERFLOWS: u32 = 8;
/// Entries consumed per queue read.
const HARVEST: usize = 256;

/// One namespace being copied.
struct Ns {
    media: Media,
    nsid: u32,
    lbads: u8,
    nsze: u64,
    geo: Geometry,
    dirty: KVVec<u64>,
    /// Bulk copy: LBAs below this are read or being read.
    copied_below: u64,
    /// Dirty rounds: where the next search for dirty bits starts.
    scan_bit: u64,
}

impl Ns {
    fn chunk_lbas(&self) -> u64 {
        // CAST: `CHUNK` is 1 MiB.
        (CHUNK as u64) >> self.lbads
    }

    fn bulk_left(&self) -> u64 {
        self.nsze.saturating_sub(self.copied_below)
    }

    /// Dirty runs are at most one record of data.
    fn run_bits(&self) -> u64 {
        (self.chunk_lbas() / self.geo.granule_lbas()).max(1)
    }
}

/// A range to read for one record.
#[derive(Clone, Copy)]
struct Piece {
    slba: u64,
    nlb: u64,
}

/// A batch being read: pieces of one namespace, each read to `HEAD` bytes
/// after the end of the one before in the reads' buffer.
struct Prefetch {
    ns: usize,
    pieces: KVVec<Piece>,
    reads: MediaReads,
    /// Bytes of the bulk copy among the pieces.
    bulk: u64,
    /// Bytes of dirty runs among the pieces.
    dirty: u64,
}

/// The source side of a media migration.
pub(crate) struct Source {
    dev: ARef<device::Device>,
    /// The batch in flight (dropped, so waited for, before the claims in
    /// `ns` close).
    prefetch: Option<Prefetch>,
    ns: KVVec<Ns>,
    /// The namespace whose dirty runs the next batch takes first.
    dirty_ns: usize,
    /// The dirty-LBA queue; `None` when the controller was suspended
    /// before the session (nothing can change).
    cdq: Option<Cdq>,
    /// Whether Track Send logging runs (it stops when the queue fills).
    logging: bool,
    /// Times the queue filled up.
    overflows: u32,
    /// The copy failed for good: the queue overflowed more than
    /// [`MAX_OVERFLOWS`] times (`ENOSPC`), the PF's reset deleted it
    /// (`EIO`), or a batch taken for the stream could not be read or made
    /// into records (its errno). Every later harvest fails with this errno, whichever path
    /// met the failure (a read, a query or the queue's event), which
    /// logged why.
    failed: Option<Error>,
    /// The suspend marker was consumed: the dirty set is final.
    drained: bool,
    /// A harvest met the suspend marker (reads go on in PRE_COPY_P2P).
    suspend_seen: bool,
    /// Entries of the queue.
    cdq_entries: u32,
    /// The namespace descriptors are in the stream.
    described: bool,
    /// Queue entries, as read.
    entries: KVVec<u8>,
}

impl Source {
    /// Claims every namespace of `namespaces` on the PF, creates the
    /// queue of `cdq_entries` entries and starts logging, in that order:
    /// nothing is read before logging runs. Without entries (the
    /// controller is suspended) the dirty set is final from the start.
    pub(crate) fn start(
        dev: &device::Device,
        lm: &Arc<Handle>,
        namespaces: &Namespaces,
        cdq_entries: u32,
        harvest: &Arc<Harvest>,
    ) -> Result<Self> {
        let mut ns = KVVec::new();
        for n in namespaces.as_slice() {
            let media = Media::open(lm, n.nsid).inspect_err(|e| {
                dev_err!(
                    dev,
                    "media migration unavailable: namespace {}: the PF cannot claim it ({:?})\n",
                    n.nsid,
                    e
                );
            })?;
            if media.lbads() != n.lbads || media.nsze() != n.nsze {
                dev_err!(
                    dev,
                    "media migration unavailable: namespace {}: the PF sees another format or size\n",
                    n.nsid
                );
                return Err(EIO);
            }
            let geo = Geometry::new(n.nsze, n.lbads, MIN_GRANULE, MAX_BITS).map_err(errno)?;
            let dirty = KVVec::from_elem(0u64, geo.words(), GFP_KERNEL_ACCOUNT)?;
            ns.push(
                Ns {
                    media,
                    nsid: n.nsid,
                    lbads: n.lbads,
                    nsze: n.nsze,
                    geo,
                    dirty,
                    copied_below: 0,
                    scan_bit: 0,
                },
                GFP_KERNEL,
            )?;
        }
        let (cdq, cdq_entries) = if cdq_entries > 0 {
            let (cdq, entries) = create_cdq(dev, lm, cdq_entries, harvest)?;
            cdq.log(true)?;
            cdq.arm(entries / 2)?;
            (Some(cdq), entries)
        } else {
            (None, 0)
        };
        Ok(Self {
            dev: dev.into(),
            logging: cdq.is_some(),
            drained: cdq.is_none(),
            suspend_seen: false,
            prefetch: None,
            ns,
            dirty_ns: 0,
            cdq,
            cdq_entries,
            overflows: 0,
            failed: None,
            described: false,
            entries: KVVec::from_elem(0u8, HARVEST * ENTRY_LEN, GFP_KERNEL)?,
        })
    }

    /// Bytes of the bulk copy left (data, before zero compaction), the
    /// batch in flight included.
    pub(crate) fn bulk_bytes(&self) -> u64 {
        let pending = self.prefetch.as_ref().map_or(0, |p| p.bulk);
        self.ns
            .iter()
            .map(|n| n.bulk_left() << n.lbads)
            .sum::<u64>()
            + pending
    }

    /// The first namespace whose bulk copy has pieces left to take.
    fn bulk_ns(&self) -> Option<usize> {
        self.ns.iter().position(|n| n.bulk_left() > 0)
    }

    /// Bytes the dirty set stands for now, the batch in flight included.
    pub(crate) fn dirty_bytes(&self) -> u64 {
        let pending = self.prefetch.as_ref().map_or(0, |p| p.dirty);
        self.ns
            .iter()
            .map(|n| dirty::count(&n.dirty) * (n.geo.granule_lbas() << n.lbads))
            .sum::<u64>()
            + pending
    }

    /// Everything already copied may be dirty (the queue lost entries).
    fn mark_copied(&mut self) {
        mark_copied(&mut self.ns);
    }

    /// Consumes what the queue holds; restarts logging after it filled up.
    /// Returns whether the suspend marker was among the entries.
    pub(crate) fn harvest(&mut self, limit: &RateLimit) -> Result<bool> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut suspended = false;
        let mut full = false;
        let mut lost = false;
        let Self {
            cdq,
            entries,
            ns,
            dev,
            ..
        } = self;
        let Some(cdq) = cdq.as_ref() else {
            return Ok(false);
        };
        loop {
            let (n, overflow) = match cdq.read(entries) {
                Ok(r) => r,
                Err(e) if e == ENOENT => {
                    lost = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            full |= overflow;
            for raw in entries.chunks_exact(ENTRY_LEN).take(n) {
                match apply(ns, dev, raw, limit) {
                    Marker::Full => full = true,
                    Marker::Suspended => suspended = true,
                    _ => {}
                }
            }
            if n < HARVEST {
                break;
            }
        }
        if lost {
            // Once per session: every later harvest fails without a word.
            self.failed = Some(EIO);
            dev_err!(
                self.dev,
                "media migration failed: the PF controller was reset and deleted the dirty-LBA queue, writes since are not logged (EIO)\n"
            );
            return Err(EIO);
        }
        self.suspend_seen |= suspended;
        if full {
            self.overflows = self.overflows.saturating_add(1);
            if self.overflows > MAX_OVERFLOWS {
                self.failed = Some(ENOSPC);
                dev_err_ratelimited!(
                    limit,
                    self.dev,
                    "media migration refused: the dirty-LBA queue overflowed {} times, the copy cannot converge (ENOSPC)\n",
                    self.overflows
                );
                return Err(ENOSPC);
            }
            self.logging = false;
            self.mark_copied();
            dev_warn!(
                self.dev,
                "media migration: the dirty-LBA queue filled up ({} times): resending all data copied so far\n",
                self.overflows
            );
        }
        if !self.logging && !self.drained {
            // Restart; if the controller is suspended it refuses, and
            // the drain decides.
            if let Some(cdq) = self.cdq.as_ref() {
                self.logging = cdq.log(true).is_ok();
            }
            if !self.logging {
                // Writes go unlogged: nothing copied can be trusted until
                // logging runs again.
                self.mark_copied();
            }
        }
        Ok(suspended)
    }

    /// The controller is suspended: consumes the queue up to the suspend
    /// marker. Without one (logging had stopped), everything copied is
    /// taken as dirty. The dirty set is final afterwards.
    pub(crate) fn drain(&mut self, limit: &RateLimit) -> Result {
        if self.cdq.is_none() {
            self.drained = true;
            return Ok(());
        }
        let logging = self.logging;
        self.harvest(limit)?;
        if !self.suspend_seen {
            if logging {
                dev_warn!(
                    self.dev,
                    "media migration: no suspend marker in the dirty-LBA queue: resending all data copied so far\n"
                );
            }
            self.mark_copied();
        }
        self.drained = true;
        Ok(())
    }

    /// After a tail-trigger event: consumes the queue and arms the
    /// trigger again (half a ring ahead of the tail).
    pub(crate) fn harvest_and_arm(&mut self, limit: &RateLimit) -> Result {
        if self.drained {
            return Ok(());
        }
        self.harvest(limit)?;
        match self.cdq.as_ref().map(|cdq| cdq.arm(self.cdq_entries / 2)) {
            // Full again already: the queue-full event follows.
            Some(Err(e)) if e == ENOSPC => Ok(()),
            Some(r) => r,
            None => Ok(()),
        }
    }

    /// Consumes what the queue holds while logging runs (every read of
    /// the data file: the ring must not fill between reads).
    pub(crate) fn harvest_running(&mut self, limit: &RateLimit) -> Result {
        if self.drained {
            return Ok(());
        }
        self.harvest(limit).map(|_| ())
    }

    /// Whether the copy failed for good (the reason is logged).
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Whether the dirty set is final.
    pub(crate) fn is_drained(&self) -> bool {
        self.drained
    }

    /// The source resumed after a failed stop: logging goes on.
    pub(crate) fn undrain(&mut self) {
        self.drained = false;
        self.suspend_seen = false;
    }

    /// The namespace descriptors, once.
    fn describe(&mut self, out: &mut KVVec<u8>, crc: &mut u32) -> Result {
        if self.described {
            return Ok(());
        }
        for n in self.ns.iter() {
            let d = NsDesc {
                nsid: n.nsid,
                lbads: n.lbads,
                nsze: n.nsze,
            };
            let off = out.len();
            out.resize(off + RECORD_HEADER_LEN + NS_DESC_LEN, 0, GFP_KERNEL)?;
            let end = media::write_ns_desc(out, off, &d).map_err(errno)?;
            out.truncate(end);
            *crc = crc_record(*crc, &out[off..]).map_err(errno)?;
        }
        self.described = true;
        Ok(())
    }

    /// The next batch's pieces, all of one namespace: the first with bulk
    /// left (its bulk, then its dirty runs), else the next one with dirty
    /// runs, in turn; up to [`BATCH_BYTES`] and [`BATCH_PIECES`]. Returns
    /// the namespace and the bytes of bulk and of dirty runs taken.
    fn next_pieces(&mut self, pieces: &mut KVVec<Piece>) -> Result<(usize, u64, u64)> {
        pieces.clear();
        let count = self.ns.len();
        let i = match self.bulk_ns() {
            Some(i) => i,
            None => match (0..count)
                .map(|k| (self.dirty_ns + k) % count)
                .find(|&k| self.ns[k].dirty.iter().any(|&w| w != 0))
            {
                Some(i) => i,
                None => return Ok((0, 0, 0)),
            },
        };
        self.dirty_ns = (i + 1) % count;
        let n = &mut self.ns[i];
        let mut bytes = 0u64;
        let room = |bytes: u64, pieces: usize, len: u64| {
            pieces < BATCH_PIECES && bytes.saturating_add(len) <= BATCH_BYTES as u64
        };
        while n.copied_below < n.nsze {
            let nlb = n.chunk_lbas().min(n.bulk_left());
            if !room(bytes, pieces.len(), nlb << n.lbads) {
                break;
            }
            pieces.push(
                Piece {
                    slba: n.copied_below,
                    nlb,
                },
                GFP_KERNEL,
            )?;
            n.copied_below += nlb;
            bytes += nlb << n.lbads;
        }
        let bulk = bytes;
        let run_bits = n.run_bits();
        // A run is at most one chunk: stop while one surely fits.
        while room(bytes, pieces.len(), n.chunk_lbas() << n.lbads) {
            let run = match dirty::take_run(&mut n.dirty, &n.geo, n.scan_bit, run_bits) {
                Some(r) => Some(r),
                None => {
                    n.scan_bit = 0;
                    dirty::take_run(&mut n.dirty, &n.geo, 0, run_bits)
                }
            };
            let Some((slba, nlb)) = run else {
                break;
            };
            n.scan_bit = (slba + nlb).div_ceil(n.geo.granule_lbas());
            pieces.push(Piece { slba, nlb }, GFP_KERNEL)?;
            bytes += nlb << n.lbads;
        }
        Ok((i, bulk, bytes - bulk))
    }

    /// Takes the next batch's pieces and starts reading them; `None` if
    /// nothing is left now.
    fn start_batch(&mut self) -> Result<Option<Prefetch>> {
        let mut pieces = KVVec::new();
        let (ns, bulk, dirty) = self.next_pieces(&mut pieces)?;
        if pieces.is_empty() {
            return Ok(None);
        }
        let lbads = self.ns[ns].lbads;
        let mut reads = KVVec::with_capacity(pieces.len(), GFP_KERNEL)?;
        let mut at = 0;
        for p in pieces.iter() {
            at += HEAD;
            // CAST: at most `CHUNK >> 9` LBAs.
            let nlb = p.nlb as u32;
            reads.push(
                ReadAt {
                    at,
                    slba: p.slba,
                    nlb,
                },
                GFP_KERNEL,
            )?;
            // CAST: at most `CHUNK` bytes.
            at += (p.nlb << lbads) as usize;
        }
        // As large as this batch's layout: a batch of a few dirty granules
        // gets a few pages, not a whole batch's vmalloc area.
        let buf = KVVec::with_capacity(at, GFP_KERNEL_ACCOUNT)?;
        let reads = self.ns[ns].media.start_reads(buf, at, &reads);
        Ok(Some(Prefetch {
            ns,
            pieces,
            reads,
            bulk,
            dirty,
        }))
    }

    /// Turns the batch in flight (started now if there is none) into
    /// records appended to `out`, having started the next one; `crc` runs
    /// over every byte but the data. Returns false when nothing is left
    /// now (bulk done, set clean). Zero compaction only while `compact`.
    pub(crate) fn produce(
        &mut self,
        out: &mut KVVec<u8>,
        crc: &mut u32,
        compact: bool,
        limit: &RateLimit,
    ) -> Result<bool> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.drained {
            self.harvest(limit)?;
        }
        let described = self.described;
        self.describe(out, crc)?;
        // From here on a failure loses pieces taken out of the bulk range
        // and the dirty set: it ends the copy.
        let made = self.make_batch(out, crc, compact);
        match made {
            Ok(false) => Ok(!described),
            Ok(true) => Ok(true),
            Err(e) => {
                self.failed = Some(e);
                dev_err!(
                    self.dev,
                    "media migration failed: a batch of namespace data could not be read through the PF or made into records ({:?}), the copy cannot go on\n",
                    e
                );
                Err(e)
            }
        }
    }

    /// Waits for the batch in flight (started now if there is none), starts
    /// the next and appends the first one's records to `out`. False if
    /// nothing is left now.
    fn make_batch(&mut self, out: &mut KVVec<u8>, crc: &mut u32, compact: bool) -> Result<bool> {
        let batch = match self.prefetch.take() {
            Some(b) => b,
            None => match self.start_batch()? {
                Some(b) => b,
                None => return Ok(false),
            },
        };
        let Prefetch {
            ns, pieces, reads, ..
        } = batch;
        let (mut buf, read) = reads.wait();
        read?;
        // Read ahead while this batch becomes records and is read out, if
        // anything is left now.
        self.prefetch = self.start_batch()?;
        let n = &self.ns[ns];
        let end = make_records(&mut buf, &pieces, n.nsid, n.lbads, compact, crc)?;
        buf.truncate(end);
        if out.is_empty() {
            *out = buf;
        } else {
            out.extend_from_slice(&buf, GFP_KERNEL)?;
        }
        Ok(true)
    }

    /// The exact bytes of the records still to come once drained: the
    /// bulk left and the dirty runs, as full data records.
    pub(crate) fn exact_len(&self) -> Result<usize> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let rec = |bytes: u64| -> Result<usize> {
            let len = usize::try_from(bytes).map_err(|_| EOVERFLOW)?;
            media::data_record_len(len).map_err(errno)
        };
        let mut total = 0usize;
        if !self.described {
            total += self.ns.len() * (RECORD_HEADER_LEN + NS_DESC_LEN);
        }
        if let Some(p) = &self.prefetch {
            let lbads = self.ns[p.ns].lbads;
            for piece in p.pieces.iter() {
                total = total
                    .checked_add(rec(piece.nlb << lbads)?)
                    .ok_or(EOVERFLOW)?;
            }
        }
        for n in self.ns.iter() {
            let chunk = n.chunk_lbas();
            let left = n.bulk_left();
            let full = left / chunk;
            let tail = left % chunk;
            let full = usize::try_from(full).map_err(|_| EOVERFLOW)?;
            total = total
                .checked_add(full.checked_mul(rec(chunk << n.lbads)?).ok_or(EOVERFLOW)?)
                .ok_or(EOVERFLOW)?;
            if tail != 0 {
                total = total.checked_add(rec(tail << n.lbads)?).ok_or(EOVERFLOW)?;
            }
            let mut bit = 0;
            while let Some(run) = dirty::peek_run(&n.dirty, &n.geo, bit, n.run_bits()) {
                total = total
                    .checked_add(rec(run.nlb << n.lbads)?)
                    .ok_or(EOVERFLOW)?;
                bit = run.next_bit;
            }
        }
        Ok(total)
    }

    /// Drained: the dirty runs are taken from the start, in order, as
    /// [`Self::exact_len`] counts them.
    pub(crate) fn rewind(&mut self) {
        for n in self.ns.iter_mut() {
            n.scan_bit = 0;
        }
    }
}

/// Granule of zero compaction within a piece.
const ZERO_BLOCK: usize = 4096;

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Makes the records of a batch in `buf`, where piece `k`'s data was read
/// `HEAD` bytes after the end of piece `k - 1`'s: DATA records around the
/// data, and with `compact` a ZERO record for each run of all-zero blocks
/// (of at least `ZERO_BLOCK` bytes); `crc` runs over every byte but the
/// data. Returns the length of the records, which start at 0.
///
/// The records are written at or before the data they describe: a DATA
/// record's data stays where it is unless a ZERO record before it in the
/// same piece shrank the stream, and then moves towards the start.
fn make_records(
    buf: &mut [u8],
    pieces: &[Piece],
    nsid: u32,
    lbads: u8,
    compact: bool,
    crc: &mut u32,
) -> Result<usize> {
    let mut w = 0;
    let mut at = 0;
    for p in pieces {
        let data = at + HEAD;
        // CAST: at most `CHUNK` bytes.
        let len = (p.nlb << lbads) as usize;
        at = data + len;
        if !compact {
            w = data_record(buf, w, data, len, nsid, p.slba, lbads, crc)?;
            continue;
        }
        // Runs of all-zero and of other blocks.
        let block = ZERO_BLOCK.max(1 << lbads);
        let mut from = 0;
        while from < len {
            let run = |from: usize| &buf[data + from..data + (from + block).min(len)];
            let zero = is_zero(run(from));
            let mut to = (from + block).min(len);
            while to < len && is_zero(run(to)) == zero {
                to = (to + block).min(len);
            }
            // CAST: byte offsets within one piece of `CHUNK` bytes.
            let slba = p.slba + (from >> lbads) as u64;
            w = if zero {
                let z = ZeroRange {
                    nsid,
                    slba,
                    nlb: ((to - from) >> lbads) as u64,
                };
                let end = media::write_zero(buf, w, &z).map_err(errno)?;
                *crc = crc_record(*crc, &buf[w..end]).map_err(errno)?;
                end
            } else {
                data_record(buf, w, data + from, to - from, nsid, slba, lbads, crc)?
            };
            from = to;
        }
    }
    Ok(w)
}

/// Makes a DATA record at `w` of the `len` bytes at `data`, moved to
/// `w + HEAD` first if they are further on; returns where it ends.
#[expect(clippy::too_many_arguments)]
fn data_record(
    buf: &mut [u8],
    w: usize,
    data: usize,
    len: usize,
    nsid: u32,
    slba: u64,
    lbads: u8,
    crc: &mut u32,
) -> Result<usize> {
    let to = w + HEAD;
    if data < to {
        return Err(EINVAL);
    }
    if data > to {
        buf.copy_within(data..data + len, to);
    }
    let h = DataHeader {
        nsid,
        slba,
        nlb: u32::try_from(len >> lbads).map_err(|_| EOVERFLOW)?,
        // The kernel's CRC-32C (CPU instructions), not the codec's table:
        // every byte of the bulk copy goes through it.
        crc: kernel::crc::crc32c(0, &buf[to..to + len]),
    };
    let data_at = media::begin_data(buf, w, &h, len).map_err(errno)?;
    let end = media::end_data(buf, data_at + len).map_err(errno)?;
    *crc = crc_record(*crc, &buf[w..end]).map_err(errno)?;
    Ok(end)
}

/// Smallest queue tried: one page of entries.
const MIN_CDQ_ENTRIES: u32 = 128;

/// Creates the queue with `entries` entries, or the most the PF takes
/// (halving down to one page: its limit of pages is not known here).
fn create_cdq(
    dev: &device::Device,
    lm: &Arc<Handle>,
    entries: u32,
    harvest: &Arc<Harvest>,
) -> Result<(Cdq, u32)> {
    let mut n = entries.max(2);
    loop {
        match Cdq::create(lm, n, Some(harvest.clone())) {
            Ok(cdq) => {
                if n != entries {
                    dev_info!(
                        dev,
                        "media migration: dirty-LBA queue of {} entries (the PF takes no {})\n",
                        n,
                        entries
                    );
                }
                return Ok((cdq, n));
            }
            Err(e) if e == EINVAL && n / 2 >= MIN_CDQ_ENTRIES => n /= 2,
            Err(e) => return Err(e),
        }
    }
}

/// Everything already copied may be dirty (the queue lost entries).
fn mark_copied(ns: &mut [Ns]) {
    for n in ns.iter_mut() {
        dirty::mark_below(&mut n.dirty, &n.geo, n.copied_below);
    }
}

/// Applies one queue entry to the dirty sets; returns its marker.
fn apply(ns: &mut [Ns], dev: &device::Device, raw: &[u8], limit: &RateLimit) -> Marker {
    let e = match Entry::parse(raw) {
        Ok(e) => e,
        Err(err) => {
            dev_err_ratelimited!(
                limit,
                dev,
                "media migration: bad queue entry ({}): resending all copied data\n",
                err.reason()
            );
            mark_copied(ns);
            return Marker::None;
        }
    };
    if e.marker == Marker::Full {
        return Marker::Full;
    }
    if e.change != Change::Unchanged {
        let all = e.nsid == u32::MAX;
        let mut lost = false;
        for n in ns.iter_mut().filter(|n| all || n.nsid == e.nsid) {
            let e = Entry { nsid: n.nsid, ..e };
            if dirty::apply_entry(&mut n.dirty, &n.geo, n.nsid, n.copied_below, &e).is_err() {
                lost = true;
            }
        }
        if lost {
            // A range beyond the namespace: trust nothing copied.
            mark_copied(ns);
        }
    }
    e.marker
}

/// Harvesting between reads: the queue's tail-trigger event (raised when
/// half the ring has filled since it was armed, delivered by the service in
/// process context) consumes the queue into the dirty sets and arms the
/// trigger again, so the ring does not fill while the VMM is not reading.
#[pin_data]
pub(crate) struct Harvest {
    /// The session whose source to harvest; set once it exists, taken
    /// when it ends (which also breaks the reference cycle through the
    /// queue).
    #[pin]
    session: Mutex<Option<Arc<Session>>>,
}

impl Harvest {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                session <- new_mutex!(None),
            }),
            GFP_KERNEL,
        )
    }

    /// The session to harvest for.
    pub(crate) fn attach(&self, session: Arc<Session>) {
        *self.session.lock() = Some(session);
    }

    /// No more harvesting (the session ends).
    pub(crate) fn detach(&self) {
        let session = self.session.lock().take();
        drop(session);
    }
}

impl CdqEvents for Harvest {
    fn event(&self, _ev: CdqEvent) {
        let session = self.session.lock().clone();
        if let Some(session) = session {
            session.harvest_event();
        }
    }
}
