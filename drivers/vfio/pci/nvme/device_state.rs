// SPDX-License-Identifier: GPL-2.0

//! The VF controller's side of a migration: which controller state format
//! to move, what a destination must match, and reading or loading a whole
//! controller state through the PF.

use crate::codec::{
    self,
    identify::StateFormats,
    namespaces::{Namespace, Namespaces, MAX_NAMESPACES},
    state::{ControllerState, Header, QueueLimits, QueueStateV0, HEADER_LEN, MAX_STATE_LEN},
    stream::{fnv1a64, Compat},
};
use kernel::{
    alloc::KVVec,
    dev_err_ratelimited, device,
    nvme_lm::{self, Handle, Identity, Sequence},
    prelude::*,
    ratelimit::RateLimit,
};

/// Most bytes per Get/Set Controller State command: the PF's own limit
/// ([`piece_len`]) may be lower.
const MAX_PIECE: usize = 64 * 1024;

/// Alignment of queue base addresses (the smallest memory page size).
const PAGE_SIZE: u64 = 4096;

/// The errno for a codec failure (see [`codec::Error::errno_name`]).
pub(crate) fn errno(e: codec::Error) -> Error {
    match e {
        codec::Error::Overflow => EOVERFLOW,
        codec::Error::OutOfLimits(_) => ERANGE,
        _ => EINVAL,
    }
}

/// Logs why a migration stream was refused (`what`: the part or rule
/// checked) and returns its errno.
pub(crate) fn reject(
    dev: &device::Device,
    limit: &RateLimit,
    what: &str,
    e: codec::Error,
) -> Error {
    dev_err_ratelimited!(
        limit,
        dev,
        "migration stream rejected: {}: {} ({})\n",
        what,
        e.reason(),
        e.errno_name()
    );
    errno(e)
}

/// The controller state format a migration moves: NVMe-defined version 0
/// plus the first vendor-specific format the controller lists that is
/// known to complete it.
#[derive(Clone, Copy)]
pub(crate) struct Format {
    /// CSVI of version 0.
    pub(crate) csvi: u8,
    /// CSUUIDI of the vendor format.
    pub(crate) csuuidi: u8,
}

/// What a VF's controller is: its format, identity and limits.
#[derive(Clone, Copy)]
pub(crate) struct Profile {
    /// The format to move.
    pub(crate) format: Format,
    /// The compatibility record of this controller.
    pub(crate) compat: Compat,
    /// What a controller state loaded into it must respect.
    pub(crate) limits: QueueLimits,
}

impl Profile {
    /// Queries the controller through the PF (two Identify commands).
    /// `EOPNOTSUPP` (with its reason logged) if the controller offers no
    /// state format that holds all of it.
    pub(crate) fn query(
        dev: &device::Device,
        lm: &Handle,
        vendor: u16,
        device: u16,
    ) -> Result<Self> {
        let mut buf = KVVec::new();
        lm.state_formats(&mut buf)?;
        let formats = StateFormats::parse(&buf).map_err(errno)?;
        let Some(csvi) = formats.find_version(0) else {
            dev_info!(
                dev,
                "no live migration: the controller lists no NVMe state version 0; plain vfio-pci\n"
            );
            return Err(EOPNOTSUPP);
        };
        // BAR0 is passed through and version 0 holds only I/O queues:
        // without a vendor format that adds the rest, nothing would restore
        // the registers, admin queues, features and events.
        let Some((csuuidi, vendor_uuid)) = formats.complete_vendor_format() else {
            dev_info!(
                dev,
                "no live migration: none of the controller's {} vendor state formats is known to be complete (version 0 lacks registers and admin queues); plain vfio-pci\n",
                formats.uuid_count()
            );
            return Err(EOPNOTSUPP);
        };
        let id: Identity = lm.identity()?;
        let namespaces = attached_namespaces(dev, lm)?;
        Ok(Self {
            format: Format { csvi, csuuidi },
            compat: Compat {
                vendor,
                device,
                nvme_version: 0,
                io_queues: id.io_queues,
                vectors: id.vectors,
                mqes: id.mqes,
                vendor_uuid,
                model: id.model,
                firmware: id.firmware,
                nqn_hash: fnv1a64(id.subnqn()),
                media: false,
                namespaces,
            },
            limits: QueueLimits {
                max_qid: id.io_queues,
                mqes: id.mqes,
                vectors: id.vectors,
                contiguous_only: id.contiguous_only,
                page_size: PAGE_SIZE,
            },
        })
    }
}

/// The namespaces attached to the VF's controller now, as the
/// compatibility record carries them.
fn attached_namespaces(dev: &device::Device, lm: &Handle) -> Result<Namespaces> {
    let mut raw = [nvme_lm::Namespace::default(); MAX_NAMESPACES];
    // The service names the cause of its errors (E2BIG: too many attached).
    let n = lm.namespaces(&mut raw)?;
    let mut list = [Namespace::default(); MAX_NAMESPACES];
    for (l, r) in list.iter_mut().zip(raw.iter()).take(n) {
        *l = Namespace {
            nsid: r.nsid,
            lbads: r.lbads,
            ms: r.ms,
            nsze: r.nsze,
            nguid: r.nguid,
            eui64: r.eui64,
        };
    }
    Namespaces::new(list.get(..n).ok_or(EINVAL)?).map_err(|e| {
        dev_err!(dev, "cannot migrate: attached namespaces: {}\n", e.reason());
        errno(e)
    })
}

/// Bytes per Get/Set Controller State command on this PF: at most
/// [`MAX_PIECE`] and the PF's transfer limit (MDTS), a multiple of 4.
fn piece_len(lm: &Handle) -> usize {
    MAX_PIECE.min(lm.max_transfer()) & !3
}

fn round4(n: usize) -> Result<usize> {
    n.checked_add(3).map(|n| n & !3).ok_or(EOVERFLOW)
}

/// The header of the controller's state now (one Get State of 48 bytes).
pub(crate) fn state_header(lm: &Handle, format: &Format) -> Result<Header> {
    header_and_csup(lm, format).map(|(h, _)| h)
}

/// The header of the controller's state now and the command's CSUP.
fn header_and_csup(lm: &Handle, format: &Format) -> Result<(Header, bool)> {
    let mut buf = KVVec::from_elem(0u8, HEADER_LEN, GFP_KERNEL)?;
    let csup = lm.get_state(format.csvi, format.csuuidi, 0, &mut buf, HEADER_LEN)?;
    Ok((Header::parse(&buf).map_err(errno)?, csup))
}

/// Whether the controller is suspended now, as CSUP or the state header
/// says.
pub(crate) fn suspended_now(lm: &Handle, format: &Format) -> Result<bool> {
    let (header, csup) = header_and_csup(lm, format)?;
    Ok(csup || header.suspended)
}

/// The length of the controller's state now.
pub(crate) fn state_len(lm: &Handle, format: &Format) -> Result<usize> {
    state_header(lm, format)?.total_len().map_err(errno)
}

/// Reads the whole controller state (the controller is suspended) and
/// appends it to `out`.
pub(crate) fn read_state(
    dev: &device::Device,
    lm: &Handle,
    format: &Format,
    out: &mut KVVec<u8>,
) -> Result {
    let header = state_header(lm, format)?;
    let total = header.total_len().map_err(errno)?;
    let piece = piece_len(lm);
    let mut chunk = KVVec::from_elem(0u8, piece.min(round4(total)?), GFP_KERNEL)?;
    let mut off = 0;
    while off < total {
        let len = round4(total - off)?.min(piece);
        // CAST: `off` is below `MAX_STATE_LEN`.
        let csup = lm.get_state(format.csvi, format.csuuidi, off as u64, &mut chunk, len)?;
        // A controller may say it is suspended in CSUP (dword 0) or in the
        // header's CSATTR only: refuse when both say it runs.
        if !csup && !header.suspended {
            dev_err!(
                dev,
                "controller state read while running (CSUP and CSATTR clear)\n"
            );
            return Err(EIO);
        }
        let take = len.min(total - off);
        out.extend_from_slice(&chunk[..take], GFP_KERNEL)?;
        off += take;
    }
    Ok(())
}

/// Checks a controller state from a source against this controller before
/// anything reaches the device.
pub(crate) fn check_state(
    state: &[u8],
    limits: &QueueLimits,
) -> core::result::Result<(), codec::Error> {
    let cs = ControllerState::parse(state)?;
    QueueStateV0::parse(cs.nvme)?.validate(limits)
}

/// Loads a checked controller state into the (suspended) controller.
pub(crate) fn load_state(lm: &Handle, format: &Format, state: &[u8]) -> Result {
    if state.is_empty() || state.len() > MAX_STATE_LEN || state.len() % 4 != 0 {
        return Err(EINVAL);
    }
    let piece = piece_len(lm);
    let mut chunk = KVVec::with_capacity(piece.min(state.len()), GFP_KERNEL)?;
    let mut off = 0;
    while off < state.len() {
        let len = (state.len() - off).min(piece);
        let seq = match (off == 0, off + len == state.len()) {
            (true, true) => Sequence::Only,
            (true, false) => Sequence::First,
            (false, true) => Sequence::Last,
            (false, false) => Sequence::Middle,
        };
        chunk.clear();
        chunk.extend_from_slice(&state[off..off + len], GFP_KERNEL)?;
        // CAST: `off` is below `MAX_STATE_LEN`.
        lm.set_state(seq, format.csvi, format.csuuidi, off as u64, &chunk, len)?;
        off += len;
    }
    Ok(())
}
