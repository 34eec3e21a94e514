// SPDX-License-Identifier: GPL-2.0

//! The PF-side helper of the tests: admin commands issued on a controller
//! bound to the kernel's nvme driver, by admin passthrough on `/dev/nvmeN`
//! (NVME_IOCTL_ADMIN_CMD). Data buffers are the kernel's to map for the
//! command's duration, so this suits commands whose data moves at command
//! time (Migration Send/Receive, Identify), not the Controller Data Queue,
//! whose ring the controller keeps writing.

use crate::codec::cmd::AdminCmd;
use std::fs::{
    File,
    OpenOptions, //
};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// struct nvme_passthru_cmd (include/uapi/linux/nvme_ioctl.h).
#[repr(C)]
#[derive(Debug, Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

/// NVME_IOCTL_ADMIN_CMD = _IOWR('N', 0x41, struct nvme_admin_cmd).
const NVME_IOCTL_ADMIN_CMD: libc::c_ulong =
    (3 << 30) | ((core::mem::size_of::<PassthruCmd>() as libc::c_ulong) << 16) | (0x4e << 8) | 0x41;

/// The outcome of a command the controller completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// NVMe status without the phase bit: `(DNR << 14) | (SCT << 8) | SC`.
    pub status: u16,
    /// Completion dword 0.
    pub dw0: u32,
}

impl Completion {
    /// Status code type and code, without DNR and More.
    pub fn code(&self) -> u16 {
        self.status & 0x7ff
    }
}

/// A test knob of the emulated PF, set until [`TestKnob::clear`] or the
/// end of its scope (an early return included) puts it back to 0.
pub struct TestKnob<'a> {
    pf: &'a Passthru,
    knob: u32,
    set: bool,
}

impl TestKnob<'_> {
    /// Puts the knob back to 0 now, reporting a failure.
    pub fn clear(mut self) -> io::Result<()> {
        self.set = false;
        self.pf.set_test_knob(self.knob, 0).map(|_| ())
    }
}

impl Drop for TestKnob<'_> {
    fn drop(&mut self) {
        if self.set {
            let _ = self.pf.set_test_knob(self.knob, 0);
        }
    }
}

/// An NVMe controller character device.
pub struct Passthru {
    file: File,
}

impl Passthru {
    /// Opens `/dev/nvmeN`.
    pub fn open(dev: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", dev.display())))?;
        Ok(Self { file })
    }

    /// `NVME_IOCTL_RESET`: a controller reset of this (PF) controller; the
    /// kernel resets it and brings it back.
    pub fn reset_controller(&self) -> io::Result<()> {
        // NVME_IOCTL_RESET = _IO('N', 0x44).
        const NVME_IOCTL_RESET: libc::c_ulong = (b'N' as libc::c_ulong) << 8 | 0x44;
        // SAFETY: NVME_IOCTL_RESET takes no argument.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), NVME_IOCTL_RESET) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("NVME_IOCTL_RESET: {e}")));
        }
        Ok(())
    }

    /// Sets test knob `knob` of the emulated controller (vendor-specific
    /// admin command C8h on its PF, `tests/qemu/patches/0005`) to `value`;
    /// returns the previous value.
    pub fn set_test_knob(&self, knob: u32, value: u32) -> io::Result<u32> {
        let cmd = AdminCmd {
            opcode: 0xc8,
            nsid: 0,
            cdw: [knob, value, 0, 0, 0, 0],
        };
        let c = self.admin(&cmd, None)?;
        if c.code() != 0 {
            return Err(io::Error::other(format!(
                "test knob {knob}: NVMe status {:#x}",
                c.status
            )));
        }
        Ok(c.dw0)
    }

    /// Sets test knob `knob` to `value` for a scope: see [`TestKnob`].
    pub fn test_knob(&self, knob: u32, value: u32) -> io::Result<TestKnob<'_>> {
        self.set_test_knob(knob, value)?;
        Ok(TestKnob {
            pf: self,
            knob,
            set: true,
        })
    }

    /// Issues `cmd` with `data` as its buffer (direction from the opcode).
    /// An NVMe error status is a [`Completion`], not an `Err`: `Err` means
    /// the command did not reach the controller or timed out.
    pub fn admin(&self, cmd: &AdminCmd, data: Option<&mut [u8]>) -> io::Result<Completion> {
        self.admin_timeout(cmd, data, 30_000)
    }

    /// Like [`Passthru::admin`], with a command timeout of `timeout_ms`.
    /// When it expires the kernel's nvme driver gives up on the command,
    /// and (it is an admin command) resets the controller.
    pub fn admin_timeout(
        &self,
        cmd: &AdminCmd,
        data: Option<&mut [u8]>,
        timeout_ms: u32,
    ) -> io::Result<Completion> {
        let (addr, len) = match data {
            Some(d) => (
                d.as_mut_ptr() as u64,
                u32::try_from(d.len()).map_err(io::Error::other)?,
            ),
            None => (0, 0),
        };
        let mut c = PassthruCmd {
            opcode: cmd.opcode,
            nsid: cmd.nsid,
            addr,
            data_len: len,
            cdw10: cmd.cdw[0],
            cdw11: cmd.cdw[1],
            cdw12: cmd.cdw[2],
            cdw13: cmd.cdw[3],
            cdw14: cmd.cdw[4],
            cdw15: cmd.cdw[5],
            timeout_ms,
            ..Default::default()
        };
        // SAFETY: `c` is a live `struct nvme_passthru_cmd`; `addr`/`len`
        // describe a buffer borrowed mutably for the duration of the call.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), NVME_IOCTL_ADMIN_CMD, &mut c) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("admin passthrough opcode {:#x}: {e}", cmd.opcode),
            ));
        }
        Ok(Completion {
            // CAST: the ioctl returns the 16-bit NVMe status (phase removed).
            status: r as u16,
            dw0: c.result,
        })
    }
}
