// SPDX-License-Identifier: GPL-2.0

//! VFIO migration uAPI v2: device states and migration features.
//!
//! C header: [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h)

use crate::{bindings, prelude::*};

/// A migration state of a VFIO device (`enum vfio_device_mig_state`).
///
/// # Examples
///
/// ```
/// use kernel::vfio::State;
///
/// assert_eq!(State::from_raw(6)?, State::PreCopy);
/// assert!(State::from_raw(8).is_err());
/// assert!(State::PreCopyP2p.is_saving() && State::PreCopyP2p.is_running());
/// assert!(State::StopCopy.is_saving() && !State::StopCopy.is_running());
/// assert!(!State::Resuming.is_saving() && !State::Resuming.is_running());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// The device failed a transition; only a reset leaves this state.
    Error = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR,
    /// Stopped: no DMA, no interrupts, no internal state change.
    Stop = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP,
    /// Fully operational.
    Running = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING,
    /// Stopped, the saving data file streams the device state.
    StopCopy = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY,
    /// Stopped, the resuming data file takes a device state.
    Resuming = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING,
    /// Running, but initiates no peer-to-peer DMA.
    RunningP2p = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING_P2P,
    /// Running, with a saving data file open.
    PreCopy = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY,
    /// [`State::PreCopy`] with the quiescence of [`State::RunningP2p`].
    PreCopyP2p = bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P,
}

impl State {
    /// The state of a raw `enum vfio_device_mig_state`; `EINVAL` if none.
    pub fn from_raw(raw: u32) -> Result<Self> {
        const ALL: [State; 8] = [
            State::Error,
            State::Stop,
            State::Running,
            State::StopCopy,
            State::Resuming,
            State::RunningP2p,
            State::PreCopy,
            State::PreCopyP2p,
        ];
        ALL.into_iter().find(|s| *s as u32 == raw).ok_or(EINVAL)
    }

    /// Whether a saving data file is open in this state.
    pub fn is_saving(self) -> bool {
        matches!(self, State::PreCopy | State::PreCopyP2p | State::StopCopy)
    }

    /// Whether the device may run (initiate DMA, raise interrupts).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            State::Running | State::RunningP2p | State::PreCopy | State::PreCopyP2p
        )
    }
}

/// Migration features of a device (`VFIO_MIGRATION_*`).
///
/// # Examples
///
/// ```
/// use kernel::vfio::Flags;
///
/// let f = Flags::STOP_COPY | Flags::P2P;
/// assert_eq!(f.bits(), 3);
/// assert!(f.contains(Flags::P2P) && !f.contains(Flags::PRE_COPY));
/// assert!(f.contains(Flags::NONE));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u32);

impl Flags {
    /// No migration: the device registers without migration operations.
    pub const NONE: Flags = Flags(0);
    /// STOP, STOP_COPY and RESUMING (mandatory for migration).
    pub const STOP_COPY: Flags = Flags(bindings::VFIO_MIGRATION_STOP_COPY);
    /// RUNNING_P2P.
    pub const P2P: Flags = Flags(bindings::VFIO_MIGRATION_P2P);
    /// PRE_COPY (and PRE_COPY_P2P with [`Flags::P2P`]).
    pub const PRE_COPY: Flags = Flags(bindings::VFIO_MIGRATION_PRE_COPY);

    /// The raw `VFIO_MIGRATION_*` bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// The answer to `VFIO_MIG_GET_PRECOPY_INFO` on a saving data file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrecopyInfo {
    /// Bytes of initial data not read yet.
    pub initial_bytes: u64,
    /// Bytes of data that changed since they were read.
    pub dirty_bytes: u64,
}
