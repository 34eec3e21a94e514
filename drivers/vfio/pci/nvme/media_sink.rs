// SPDX-License-Identifier: GPL-2.0

//! Media migration, destination side: a stream's records are checked one
//! by one as they arrive and the namespaces' data is written through the
//! parent PF, with memory bounded by one record and one batch whatever the
//! namespace size.
//!
//! A record is applied only once it is complete and has passed every check
//! ([`Checker`]: order, namespace described and mapped, range within the
//! capacity, lengths, the data's CRC). After a refused record the session
//! takes nothing more; what the destination namespaces hold then is the
//! records applied before it (Documentation/nvme-vfio: a failed migration's
//! destination namespace is undefined until the next one completes).

use crate::codec::{
    self,
    media::DATA_HEADER_LEN,
    namespaces::{Namespace, Namespaces, MAX_NAMESPACES},
    stream::{parse_record, record_need, Checker, Compat, Record, HEADER_LEN, RECORD_HEADER_LEN},
};
use crate::device_state::reject;
use kernel::{
    alloc::KVVec,
    dev_err_ratelimited, device,
    nvme_lm::{Handle, Media, MediaIo, MediaOp, MAX_BATCH},
    prelude::*,
    ratelimit::RateLimit,
    sync::Arc,
    uaccess::UserSliceReader,
};

/// Data records written per batch at most: the queue depth of the
/// destination (dirty rounds send many records of a few blocks each).
const BATCH: usize = 256;
/// Data bytes of a batch at most: the memory records wait in.
const BATCH_BYTES: usize = 8 << 20;
// A batch is one batch of the PF service.
const _: () = assert!(BATCH <= MAX_BATCH);
/// Bytes before a record in its buffer, so that a data record's data
/// starts 512 bytes in: aligned for the PF's DMA (a large buffer starts on
/// a page, a small one on its power-of-two size).
const LEAD: usize = 512 - RECORD_HEADER_LEN - DATA_HEADER_LEN;
/// Where a data record's data starts in its buffer.
const DATA_AT: usize = 512;
const _: () = assert!(LEAD + RECORD_HEADER_LEN + DATA_HEADER_LEN == DATA_AT);

/// A data record waiting for its batch.
struct Pending {
    ns: usize,
    slba: u64,
    nlb: u32,
    /// The whole record; the data at `DATA_AT`.
    record: KVVec<u8>,
}

/// The destination side of a media migration.
pub(crate) struct SinkIo {
    checker: Checker,
    /// This VF's namespaces.
    dest_namespaces: Namespaces,
    media: KVVec<(u32, Media)>,
    /// The stream header was taken.
    started: bool,
    /// The record (or stream header) being received, after `LEAD` bytes.
    rx: KVVec<u8>,
    pending: KVVec<Pending>,
    /// The controller state record's payload.
    state: Option<KVVec<u8>>,
    /// A record was refused: the stream is over.
    failed: bool,
}

impl SinkIo {
    /// Claims every namespace of `dest` (this controller's) on the PF.
    pub(crate) fn new(dev: &device::Device, lm: &Arc<Handle>, dest: &Compat) -> Result<Self> {
        let mut media = KVVec::new();
        for n in dest.namespaces.as_slice() {
            let m = Media::open(lm, n.nsid).inspect_err(|e| {
                dev_err!(
                    dev,
                    "media migration unavailable: namespace {}: the PF cannot claim it ({:?})\n",
                    n.nsid,
                    e
                );
            })?;
            media.push((n.nsid, m), GFP_KERNEL)?;
        }
        Ok(Self {
            checker: Checker::new(dest),
            dest_namespaces: dest.namespaces,
            media,
            started: false,
            rx: KVVec::new(),
            pending: KVVec::new(),
            state: None,
            failed: false,
        })
    }

    fn media_of(&self, nsid: u32) -> Result<usize> {
        self.media
            .iter()
            .position(|(id, _)| *id == nsid)
            .ok_or(EINVAL)
    }

    /// Names both ends' namespaces (after an incompatible source).
    fn log_namespaces(&self, dev: &device::Device, limit: &RateLimit, src: &Compat) {
        let list = |c: &[Namespace]| {
            let mut ids = [0u32; MAX_NAMESPACES];
            for (id, n) in ids.iter_mut().zip(c) {
                *id = n.nsid;
            }
            (ids, c.len().min(MAX_NAMESPACES))
        };
        let (theirs, nt) = list(src.namespaces.as_slice());
        let (mine, nm) = list(self.dest_namespaces.as_slice());
        dev_err_ratelimited!(
            limit,
            dev,
            "media migration: source NSIDs {:?}, this VF's {:?}\n",
            &theirs[..nt],
            &mine[..nm]
        );
    }

    /// Writes the pending data records, a batch per namespace.
    fn flush(&mut self) -> Result {
        let mut ios = KVVec::with_capacity(self.pending.len(), GFP_KERNEL)?;
        for p in self.pending.iter() {
            let len = p.record.len() - DATA_AT;
            ios.push(
                MediaIo {
                    slba: p.slba,
                    nlb: p.nlb,
                    op: MediaOp::Write(&p.record[DATA_AT..DATA_AT + len]),
                },
                GFP_KERNEL,
            )?;
        }
        let mut start = 0;
        let mut ret = Ok(());
        while start < ios.len() {
            let ns = self.pending[start].ns;
            let mut end = start;
            while end < ios.len() && self.pending[end].ns == ns {
                end += 1;
            }
            if let Err(e) = self.media[ns].1.run(&mut ios[start..end]) {
                ret = Err(e);
                break;
            }
            start = end;
        }
        drop(ios);
        self.pending.clear();
        ret
    }

    /// Applies the complete, checked record in `rx`.
    fn apply(&mut self, dev: &device::Device, limit: &RateLimit) -> Result {
        let rx = core::mem::take(&mut self.rx);
        let raw = rx.get(LEAD..).ok_or(EINVAL)?;
        let (rec, _) = parse_record(raw).map_err(|e| reject(dev, limit, "stream", e))?;
        if let Err(e) = self.checker.check(&rec, raw) {
            if let Record::Compat(src) = &rec {
                self.log_namespaces(dev, limit, src);
            }
            return Err(reject(dev, limit, "stream", e));
        }
        match rec {
            Record::Data { header, data } => {
                let ns = self.media_of(header.nsid)?;
                let nlb = header.nlb;
                let slba = header.slba;
                if DATA_AT + data.len() > rx.len() {
                    return Err(EINVAL);
                }
                self.pending.push(
                    Pending {
                        ns,
                        slba,
                        nlb,
                        record: rx,
                    },
                    GFP_KERNEL,
                )?;
                let bytes: usize = self.pending.iter().map(|p| p.record.len()).sum();
                if self.pending.len() == BATCH || bytes >= BATCH_BYTES {
                    self.flush()?;
                }
            }
            Record::Zero(z) => {
                self.flush()?;
                let ns = self.media_of(z.nsid)?;
                let (mut slba, mut left) = (z.slba, z.nlb);
                while left > 0 {
                    let nlb = u32::try_from(left).unwrap_or(u32::MAX);
                    let mut io = [MediaIo {
                        slba,
                        nlb,
                        op: MediaOp::WriteZeroes,
                    }];
                    self.media[ns].1.run(&mut io)?;
                    slba += u64::from(nlb);
                    left -= u64::from(nlb);
                }
            }
            Record::CtrlState(s) => {
                let mut state = KVVec::new();
                state.extend_from_slice(s, GFP_KERNEL_ACCOUNT)?;
                self.state = Some(state);
            }
            Record::End(_) => self.flush()?,
            Record::Compat(_) | Record::NsDesc(_) | Record::Skipped => {}
        }
        Ok(())
    }

    /// Takes the bytes of one write(): records are applied as they
    /// complete; a partial record waits for the next write.
    pub(crate) fn write(
        &mut self,
        inp: &mut UserSliceReader,
        dev: &device::Device,
        limit: &RateLimit,
    ) -> Result<usize> {
        if self.failed {
            return Err(EINVAL);
        }
        let n = inp.len();
        // Data records wait for a full batch (or a zero range, the end):
        // a failed write may show in a later write() or at the load.
        let ret = self.take(inp, dev, limit);
        if ret.is_err() {
            self.failed = true;
            self.pending.clear();
            self.rx = KVVec::new();
        }
        ret.map(|()| n)
    }

    fn take(
        &mut self,
        inp: &mut UserSliceReader,
        dev: &device::Device,
        limit: &RateLimit,
    ) -> Result {
        let need = |rx: &[u8]| -> Result<usize> {
            match record_need(rx).map_err(|e| reject(dev, limit, "stream", e))? {
                Some(n) => Ok(n),
                None => Ok(RECORD_HEADER_LEN),
            }
        };
        while !inp.is_empty() {
            if self.rx.is_empty() {
                self.rx.resize(LEAD, 0, GFP_KERNEL)?;
            }
            let got = self.rx.get(LEAD..).ok_or(EINVAL)?;
            let want = if self.started { need(got)? } else { HEADER_LEN };
            let have = self.rx.len();
            let take = (LEAD + want).saturating_sub(have).min(inp.len());
            if take > 0 && have + take == LEAD + want && want > RECORD_HEADER_LEN {
                // The record's whole size is known: one allocation.
                self.rx.reserve(take, GFP_KERNEL_ACCOUNT)?;
            }
            // Sized by the user (within one record): charged to it.
            self.rx.resize(have + take, 0, GFP_KERNEL_ACCOUNT)?;
            inp.read_slice(&mut self.rx[have..])?;
            let got = self.rx.get(LEAD..).ok_or(EINVAL)?;
            if !self.started {
                if got.len() == HEADER_LEN {
                    self.checker
                        .header(got)
                        .map_err(|e| reject(dev, limit, "stream", e))?;
                    self.started = true;
                    self.rx.clear();
                }
                continue;
            }
            // A complete header tells the whole length: complete yet?
            if got.len() >= RECORD_HEADER_LEN && got.len() == need(got)? {
                self.apply(dev, limit)?;
            }
        }
        Ok(())
    }

    /// RESUMING → STOP: the whole stream arrived and was applied; the data
    /// is flushed to the media. Returns the controller state to load.
    pub(crate) fn finish(&mut self, dev: &device::Device, limit: &RateLimit) -> Result<KVVec<u8>> {
        if self.failed {
            return Err(EINVAL);
        }
        if !self.checker.ended() || self.rx.len() > LEAD {
            return Err(reject(
                dev,
                limit,
                "stream",
                codec::Error::InvalidField("the stream ended early"),
            ));
        }
        for (_, m) in self.media.iter() {
            m.flush()?;
        }
        self.state.take().ok_or(EINVAL)
    }
}
