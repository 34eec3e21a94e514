// SPDX-License-Identifier: GPL-2.0

//! The VFIO migration uAPI v2 from userspace, as a VMM uses it: the
//! migration features of a device, its state machine, and the data file a
//! saving or resuming transition returns.

use crate::sys;
use crate::vfio::Device;
use std::fs::File;
use std::io::{
    self,
    Read,
    Write, //
};
use std::os::fd::{
    AsRawFd,
    FromRawFd, //
};

/// `VFIO_DEVICE_FEATURE_GET`.
const FEATURE_GET: u32 = 1 << 16;
/// `VFIO_DEVICE_FEATURE_SET`.
const FEATURE_SET: u32 = 1 << 17;
/// `VFIO_DEVICE_FEATURE_PROBE`.
const FEATURE_PROBE: u32 = 1 << 18;
/// `VFIO_DEVICE_FEATURE_MIGRATION`.
const FEATURE_MIGRATION: u32 = 1;
/// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`.
const FEATURE_MIG_DEVICE_STATE: u32 = 2;
/// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`.
const FEATURE_MIG_DATA_SIZE: u32 = 9;
/// `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2`.
const FEATURE_MIG_PRECOPY_INFO_V2: u32 = 12;

/// `VFIO_MIGRATION_STOP_COPY`.
pub const MIGRATION_STOP_COPY: u64 = 1;
/// `VFIO_MIGRATION_P2P`.
pub const MIGRATION_P2P: u64 = 2;
/// `VFIO_MIGRATION_PRE_COPY`.
pub const MIGRATION_PRE_COPY: u64 = 4;

/// `enum vfio_device_mig_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// ERROR.
    Error = 0,
    /// STOP.
    Stop = 1,
    /// RUNNING.
    Running = 2,
    /// STOP_COPY.
    StopCopy = 3,
    /// RESUMING.
    Resuming = 4,
    /// RUNNING_P2P.
    RunningP2p = 5,
    /// PRE_COPY.
    PreCopy = 6,
    /// PRE_COPY_P2P.
    PreCopyP2p = 7,
}

impl State {
    /// Every state, by value.
    pub const ALL: [State; 8] = [
        State::Error,
        State::Stop,
        State::Running,
        State::StopCopy,
        State::Resuming,
        State::RunningP2p,
        State::PreCopy,
        State::PreCopyP2p,
    ];

    fn from_raw(v: u32) -> io::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| *s as u32 == v)
            .ok_or_else(|| io::Error::other(format!("unknown migration state {v}")))
    }
}

/// An errno with what failed, kept inside an [`io::Error`] so that
/// [`errno_of`] finds it.
#[derive(Debug)]
pub struct OsError {
    /// What failed.
    pub what: String,
    /// The errno.
    pub errno: i32,
}

impl std::fmt::Display for OsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = io::Error::from_raw_os_error(self.errno);
        write!(f, "{}: {e}", self.what)
    }
}

impl std::error::Error for OsError {}

/// The last OS error, labelled with `what`.
fn last_os_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    let errno = e.raw_os_error().unwrap_or(0);
    io::Error::new(
        e.kind(),
        OsError {
            what: what.to_string(),
            errno,
        },
    )
}

/// The errno of `e`: its own, or that of an [`OsError`] inside it.
pub fn errno_of(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
        .or_else(|| e.get_ref()?.downcast_ref::<OsError>().map(|o| o.errno))
}

impl Device {
    /// `VFIO_DEVICE_FEATURE` with `flags` and `payload` (in and out).
    fn feature(&self, flags: u32, payload: &mut [u8], what: &str) -> io::Result<()> {
        // u64 backing: the payloads hold `__aligned_u64` fields.
        let mut buf = vec![0u64; 1 + payload.len().div_ceil(8)];
        let len = 8 + payload.len();
        // SAFETY: `buf` holds at least `len` bytes, viewed as bytes only
        // while `bytes` lives.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), len) };
        bytes[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        bytes[4..8].copy_from_slice(&flags.to_ne_bytes());
        bytes[8..].copy_from_slice(payload);
        // SAFETY: `bytes` is a `struct vfio_device_feature` of `len` bytes,
        // argsz set, exclusively borrowed for the call.
        let r = unsafe {
            libc::ioctl(
                self.as_raw_fd(),
                sys::VFIO_DEVICE_FEATURE,
                bytes.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(last_os_error(what));
        }
        payload.copy_from_slice(&bytes[8..]);
        Ok(())
    }

    /// The device's migration flags (`VFIO_MIGRATION_*`); `ENOTTY` when
    /// it cannot migrate.
    pub fn migration_flags(&self) -> io::Result<u64> {
        let mut p = [0u8; 8];
        self.feature(
            FEATURE_GET | FEATURE_MIGRATION,
            &mut p,
            "VFIO_DEVICE_FEATURE_MIGRATION",
        )?;
        Ok(u64::from_ne_bytes(p))
    }

    /// The current migration state.
    pub fn mig_state(&self) -> io::Result<State> {
        let mut p = [0u8; 8];
        self.feature(
            FEATURE_GET | FEATURE_MIG_DEVICE_STATE,
            &mut p,
            "GET MIG_DEVICE_STATE",
        )?;
        State::from_raw(u32::from_ne_bytes([p[0], p[1], p[2], p[3]]))
    }

    /// Moves the device to `state`; returns the data file an arc that opens
    /// a session returns.
    pub fn set_mig_state(&self, state: State) -> io::Result<Option<DataFd>> {
        let mut p = [0u8; 8];
        p[0..4].copy_from_slice(&(state as u32).to_ne_bytes());
        p[4..8].copy_from_slice(&(-1i32).to_ne_bytes());
        self.feature(
            FEATURE_SET | FEATURE_MIG_DEVICE_STATE,
            &mut p,
            &format!("SET MIG_DEVICE_STATE {state:?}"),
        )?;
        let fd = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
        if fd < 0 {
            return Ok(None);
        }
        // SAFETY: The kernel installed `fd` for us; we own it now.
        Ok(Some(DataFd(unsafe { File::from_raw_fd(fd) })))
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: the STOP_COPY length.
    pub fn mig_data_size(&self) -> io::Result<u64> {
        let mut p = [0u8; 8];
        self.feature(FEATURE_GET | FEATURE_MIG_DATA_SIZE, &mut p, "MIG_DATA_SIZE")?;
        Ok(u64::from_ne_bytes(p))
    }

    /// Opts in to `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2`.
    pub fn precopy_info_v2(&self) -> io::Result<()> {
        self.feature(
            FEATURE_SET | FEATURE_MIG_PRECOPY_INFO_V2,
            &mut [],
            "MIG_PRECOPY_INFOv2",
        )
    }

    /// Probes a feature for `GET` (or `SET`) support.
    pub fn probe_feature(&self, feature: u32, set: bool) -> io::Result<()> {
        let dir = if set { FEATURE_SET } else { FEATURE_GET };
        self.feature(FEATURE_PROBE | dir | feature, &mut [], "feature probe")
    }
}

/// `VFIO_MIG_GET_PRECOPY_INFO` on a data file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrecopyInfo {
    /// flags (output under v2).
    pub flags: u32,
    /// Initial bytes left to read.
    pub initial_bytes: u64,
    /// Dirty bytes.
    pub dirty_bytes: u64,
}

/// A migration data file (`data_fd`).
pub struct DataFd(pub File);

impl DataFd {
    /// `VFIO_MIG_GET_PRECOPY_INFO`, sending `flags`.
    pub fn precopy_info_with(&self, flags: u32) -> io::Result<PrecopyInfo> {
        let mut raw = [0u64; 3];
        raw[0] = u64::from(24u32) | u64::from(flags) << 32;
        // SAFETY: `raw` is a 24-byte `struct vfio_precopy_info` (argsz,
        // flags as the first u64 on little-endian hosts), exclusively
        // borrowed for the call.
        let r = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                sys::VFIO_MIG_GET_PRECOPY_INFO,
                raw.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(last_os_error("VFIO_MIG_GET_PRECOPY_INFO"));
        }
        Ok(PrecopyInfo {
            flags: (raw[0] >> 32) as u32,
            initial_bytes: raw[1],
            dirty_bytes: raw[2],
        })
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO`.
    pub fn precopy_info(&self) -> io::Result<PrecopyInfo> {
        self.precopy_info_with(0)
    }

    /// Reads what is available now: until the (temporary, `ENOMSG`, or
    /// permanent, 0) end; returns the bytes and whether the end was
    /// permanent.
    pub fn read_available(&mut self, chunk: usize) -> io::Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return Ok((out, true)),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(libc::ENOMSG) => return Ok((out, false)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `data` in writes of at most `chunk` bytes.
    pub fn write_chunked(&mut self, data: &[u8], chunk: usize) -> io::Result<()> {
        for piece in data.chunks(chunk.max(1)) {
            let n = self.0.write(piece)?;
            if n != piece.len() {
                return Err(io::Error::other(format!(
                    "short write: {n} of {}",
                    piece.len()
                )));
            }
        }
        Ok(())
    }
}
