// SPDX-License-Identifier: GPL-2.0

//! The `media_migration` option of a migratable VF (its sysfs file): whether
//! its migration stream carries the VF's local namespace. Off by default; an
//! operator (or a libvirt hook) sets it before the VMM opens the device, and
//! it cannot change while the device is open, so every session a user opens
//! sees the value the device was opened with.

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::prelude::*;

/// The option, and whether the VFIO device is open, in one word: a change
/// either happens before an open or fails with `EBUSY`.
pub(crate) struct MediaMigration(AtomicU8);

impl MediaMigration {
    /// The option is on.
    const ENABLED: u8 = 1 << 0;
    /// The VFIO device is open (between its first open and its last close).
    const OPEN: u8 = 1 << 1;

    /// Off, device closed.
    pub(crate) const fn new() -> Self {
        Self(AtomicU8::new(0))
    }

    /// Whether the option is on.
    pub(crate) fn enabled(&self) -> bool {
        self.0.load(Ordering::Acquire) & Self::ENABLED != 0
    }

    /// Sets the option; `EBUSY` while the device is open.
    pub(crate) fn set(&self, on: bool) -> Result {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                if v & Self::OPEN != 0 {
                    None
                } else if on {
                    Some(v | Self::ENABLED)
                } else {
                    Some(v & !Self::ENABLED)
                }
            })
            .map(|_| ())
            .map_err(|_| EBUSY)
    }

    /// The device's first open.
    pub(crate) fn opened(&self) {
        self.0.fetch_or(Self::OPEN, Ordering::AcqRel);
    }

    /// The device's last close.
    pub(crate) fn closed(&self) {
        self.0.fetch_and(!Self::OPEN, Ordering::AcqRel);
    }
}
