// SPDX-License-Identifier: GPL-2.0

//! A device's MSI-X vectors as eventfds: how a VMM receives the interrupts
//! of a VFIO device, and how the test client waits for completions.

use crate::sys;
use crate::vfio::Device;
use std::io;
use std::os::fd::{
    AsRawFd,
    FromRawFd,
    OwnedFd, //
};
use std::time::{
    Duration,
    Instant, //
};

/// The MSI-X vectors of one device, each signalled into its own eventfd,
/// with a count of the signals taken from each so far.
pub struct Interrupts {
    fds: Vec<OwnedFd>,
    counts: Vec<u64>,
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) takes no pointer; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Interrupts {
    /// Enables every MSI-X vector of `dev` (up to 32), each into a new
    /// eventfd. A VMM does this before the device runs: a controller that
    /// completes a command while MSI-X is off sends no MSI.
    pub fn enable(dev: &Device) -> io::Result<Self> {
        let n = dev.irq_count(sys::VFIO_PCI_MSIX_IRQ_INDEX)?;
        let n = (n as usize).min(sys::MAX_IRQS);
        if n == 0 {
            return Err(io::Error::other("the device has no MSI-X vectors"));
        }
        let fds = (0..n).map(|_| eventfd()).collect::<io::Result<Vec<_>>>()?;
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        dev.set_irq_eventfds(sys::VFIO_PCI_MSIX_IRQ_INDEX, &raw)?;
        Ok(Self {
            counts: vec![0; n],
            fds,
        })
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// `true` if there are no vectors (never, once enabled).
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Signals taken from vector `v` so far.
    pub fn count(&self, v: u16) -> u64 {
        self.counts.get(usize::from(v)).copied().unwrap_or(0)
    }

    /// Waits up to `timeout` for a vector to fire; takes the signals of
    /// every vector that fired and returns those vectors in order (empty on
    /// timeout). A zero timeout only looks.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Vec<u16>> {
        let mut p: Vec<libc::pollfd> = self
            .fds
            .iter()
            .map(|f| libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: `p` holds `p.len()` valid pollfds, borrowed mutably.
            let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            break;
        }
        let mut fired = Vec::new();
        for (v, pfd) in p.iter().enumerate() {
            if pfd.revents & libc::POLLIN == 0 {
                continue;
            }
            let mut val = 0u64;
            // SAFETY: reads 8 bytes into `val`, a live u64.
            let r = unsafe {
                libc::read(
                    pfd.fd,
                    core::ptr::from_mut(&mut val).cast::<libc::c_void>(),
                    8,
                )
            };
            if r == 8 {
                self.counts[v] += val;
                // CAST: at most MAX_IRQS (32) vectors.
                fired.push(v as u16);
            }
        }
        Ok(fired)
    }
}
