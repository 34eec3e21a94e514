// SPDX-License-Identifier: GPL-2.0

//! A VFIO device opened through its cdev (`/dev/vfio/devices/vfioN`) and
//! bound to an iommufd I/O address space (IOAS).
//!
//! Two devices attached to the same [`Iommufd`] IOAS share one IOVA space,
//! as one VM's memory does before and after a migration.

use crate::sys;
use std::fs::{
    File,
    OpenOptions, //
};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn ioctl<T>(fd: &File, req: libc::c_ulong, arg: &mut T, what: &str) -> io::Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed `#[repr(C)]` structure of
    // the type `req` expects, with its size or argsz field set by the caller.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, core::ptr::from_mut(arg)) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Like [`ioctl`], but the error keeps its errno for
/// [`crate::migration::errno_of`] (tests check exact errnos).
fn ioctl_errno<T>(fd: &File, req: libc::c_ulong, arg: &mut T, what: &str) -> io::Result<()> {
    // SAFETY: as in `ioctl`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, core::ptr::from_mut(arg)) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            crate::migration::OsError {
                what: what.to_string(),
                errno: e.raw_os_error().unwrap_or(0),
            },
        ));
    }
    Ok(())
}

/// An `EINVAL` refused before the kernel is asked.
fn einval(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        crate::migration::OsError {
            what,
            errno: libc::EINVAL,
        },
    )
}

/// The IOVAs of the units a DMA logging report bitmap marks dirty: bit `i`
/// (bit `i % 64` of word `i / 64`) stands for `[iova + i * page_size,
/// iova + (i + 1) * page_size)`. Ascending.
pub fn bitmap_iovas(bitmap: &[u64], iova: u64, page_size: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for (w, word) in bitmap.iter().enumerate() {
        let mut bits = *word;
        while bits != 0 {
            let b = u64::from(bits.trailing_zeros());
            out.push(iova + (w as u64 * 64 + b) * page_size);
            bits &= bits - 1;
        }
    }
    out
}

/// An open `/dev/iommu` with one IOAS.
pub struct Iommufd {
    file: File,
    ioas: u32,
}

impl Iommufd {
    /// Opens `/dev/iommu` and allocates an IOAS.
    pub fn open() -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/iommu")
            .map_err(|e| io::Error::new(e.kind(), format!("open /dev/iommu: {e}")))?;
        let mut alloc = sys::IommuIoasAlloc {
            size: sys::argsz::<sys::IommuIoasAlloc>(),
            ..Default::default()
        };
        ioctl(&file, sys::IOMMU_IOAS_ALLOC, &mut alloc, "IOMMU_IOAS_ALLOC")?;
        Ok(Self {
            file,
            ioas: alloc.out_ioas_id,
        })
    }

    /// The IOAS identifier.
    pub fn ioas(&self) -> u32 {
        self.ioas
    }

    /// Maps `buf` at `iova`, readable and writable by devices.
    pub fn map(&self, buf: &DmaBuffer, iova: u64) -> io::Result<()> {
        let mut map = sys::IommuIoasMap {
            size: sys::argsz::<sys::IommuIoasMap>(),
            flags: sys::IOMMU_IOAS_MAP_FIXED_IOVA
                | sys::IOMMU_IOAS_MAP_READABLE
                | sys::IOMMU_IOAS_MAP_WRITEABLE,
            ioas_id: self.ioas,
            user_va: buf.addr() as u64,
            length: buf.len() as u64,
            iova,
            ..Default::default()
        };
        ioctl(&self.file, sys::IOMMU_IOAS_MAP, &mut map, "IOMMU_IOAS_MAP")
    }

    /// Unmaps `len` bytes at `iova`.
    pub fn unmap(&self, iova: u64, len: u64) -> io::Result<()> {
        let mut unmap = sys::IommuIoasUnmap {
            size: sys::argsz::<sys::IommuIoasUnmap>(),
            ioas_id: self.ioas,
            iova,
            length: len,
        };
        ioctl(
            &self.file,
            sys::IOMMU_IOAS_UNMAP,
            &mut unmap,
            "IOMMU_IOAS_UNMAP",
        )
    }
}

/// Page-aligned anonymous memory for device DMA.
pub struct DmaBuffer {
    ptr: *mut u8,
    len: usize,
}

impl DmaBuffer {
    /// Allocates `len` bytes (rounded up to pages), zeroed.
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len.div_ceil(4096) * 4096;
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Start address.
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the buffer is empty (never, after [`DmaBuffer::new`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A device BAR accessed with `pread`/`pwrite` on the VFIO device file:
/// works for every BAR layout (no mmap, so no conflict with an MSI-X table
/// sharing the BAR).
pub struct Mmio {
    file: File,
    offset: u64,
    size: u64,
}

impl Mmio {
    fn check(&self, off: u64, n: u64) -> io::Result<u64> {
        if off + n > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("register {off:#x} beyond BAR ({} bytes)", self.size),
            ));
        }
        Ok(self.offset + off)
    }

    /// 32-bit read.
    pub fn read32(&self, off: u64) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.file.read_exact_at(&mut b, self.check(off, 4)?)?;
        Ok(u32::from_le_bytes(b))
    }

    /// 64-bit read.
    pub fn read64(&self, off: u64) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, self.check(off, 8)?)?;
        Ok(u64::from_le_bytes(b))
    }

    /// 32-bit write.
    pub fn write32(&self, off: u64, v: u32) -> io::Result<()> {
        self.file
            .write_all_at(&v.to_le_bytes(), self.check(off, 4)?)
    }

    /// 64-bit write.
    pub fn write64(&self, off: u64, v: u64) -> io::Result<()> {
        self.file
            .write_all_at(&v.to_le_bytes(), self.check(off, 8)?)
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this object created and
        // nothing else unmaps.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A VFIO device opened through its cdev and attached to an IOAS.
pub struct Device {
    file: File,
    devid: u32,
    info: sys::VfioDeviceInfo,
}

impl AsRawFd for Device {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

impl Device {
    /// Opens `cdev`, binds it to `iommufd` and attaches it to its IOAS.
    pub fn open(cdev: &Path, iommufd: &Iommufd) -> io::Result<Self> {
        Self::open_with_token(cdev, iommufd, None)
    }

    /// Like [`Device::open`], presenting `token`: the VF token a VF of a PF
    /// that is itself bound to vfio-pci needs.
    pub fn open_with_token(
        cdev: &Path,
        iommufd: &Iommufd,
        token: Option<&[u8; 16]>,
    ) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(cdev)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", cdev.display())))?;
        let mut bind = sys::VfioDeviceBindIommufd {
            argsz: sys::argsz::<sys::VfioDeviceBindIommufd>(),
            iommufd: iommufd.file.as_raw_fd(),
            ..Default::default()
        };
        if let Some(t) = token {
            bind.flags = sys::VFIO_DEVICE_BIND_FLAG_TOKEN;
            bind.token_uuid_ptr = t.as_ptr() as u64;
        }
        ioctl(
            &file,
            sys::VFIO_DEVICE_BIND_IOMMUFD,
            &mut bind,
            "VFIO_DEVICE_BIND_IOMMUFD",
        )?;
        let mut attach = sys::VfioDeviceAttachIommufdPt {
            argsz: sys::argsz::<sys::VfioDeviceAttachIommufdPt>(),
            pt_id: iommufd.ioas,
            ..Default::default()
        };
        ioctl(
            &file,
            sys::VFIO_DEVICE_ATTACH_IOMMUFD_PT,
            &mut attach,
            "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
        )?;
        let mut info = sys::VfioDeviceInfo {
            argsz: sys::argsz::<sys::VfioDeviceInfo>(),
            ..Default::default()
        };
        ioctl(
            &file,
            sys::VFIO_DEVICE_GET_INFO,
            &mut info,
            "VFIO_DEVICE_GET_INFO",
        )?;
        Ok(Self {
            file,
            devid: bind.out_devid,
            info,
        })
    }

    /// The iommufd device identifier.
    pub fn devid(&self) -> u32 {
        self.devid
    }

    /// VFIO_DEVICE_GET_INFO as returned at open.
    pub fn info(&self) -> &sys::VfioDeviceInfo {
        &self.info
    }

    /// VFIO_DEVICE_GET_REGION_INFO for region `index`.
    pub fn region(&self, index: u32) -> io::Result<sys::VfioRegionInfo> {
        let mut r = sys::VfioRegionInfo {
            argsz: sys::argsz::<sys::VfioRegionInfo>(),
            index,
            ..Default::default()
        };
        ioctl(
            &self.file,
            sys::VFIO_DEVICE_GET_REGION_INFO,
            &mut r,
            "VFIO_DEVICE_GET_REGION_INFO",
        )?;
        Ok(r)
    }

    /// Reads PCI config space at `off`.
    pub fn config_read(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let cfg = self.region(sys::VFIO_PCI_CONFIG_REGION_INDEX)?;
        self.file.read_exact_at(buf, cfg.offset + off)
    }

    /// Register access to BAR `index` through the device file.
    pub fn bar(&self, index: u32) -> io::Result<Mmio> {
        let r = self.region(index)?;
        Ok(Mmio {
            file: self.file.try_clone()?,
            offset: r.offset,
            size: r.size,
        })
    }

    /// Sets the VF token of this PF (VFIO_DEVICE_FEATURE_PCI_VF_TOKEN).
    pub fn set_vf_token(&self, token: &[u8; 16]) -> io::Result<()> {
        let mut f = sys::VfioFeatureVfToken {
            argsz: sys::argsz::<sys::VfioFeatureVfToken>(),
            flags: sys::VFIO_DEVICE_FEATURE_SET | sys::VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
            uuid: *token,
        };
        ioctl(
            &self.file,
            sys::VFIO_DEVICE_FEATURE,
            &mut f,
            "VFIO_DEVICE_FEATURE(PCI_VF_TOKEN)",
        )
    }

    /// Sets Bus Master Enable (and Memory Space Enable) in the PCI command
    /// register, so the device may DMA.
    pub fn enable_bus_master(&self) -> io::Result<()> {
        let cfg = self.region(sys::VFIO_PCI_CONFIG_REGION_INDEX)?;
        let mut cmd = [0u8; 2];
        self.file.read_exact_at(&mut cmd, cfg.offset + 4)?;
        let v = u16::from_le_bytes(cmd) | 0x6;
        self.file.write_all_at(&v.to_le_bytes(), cfg.offset + 4)
    }

    /// Number of vectors of interrupt index `index` (VFIO_DEVICE_GET_IRQ_INFO).
    pub fn irq_count(&self, index: u32) -> io::Result<u32> {
        let mut info = sys::VfioIrqInfo {
            argsz: sys::argsz::<sys::VfioIrqInfo>(),
            index,
            ..Default::default()
        };
        ioctl(
            &self.file,
            sys::VFIO_DEVICE_GET_IRQ_INFO,
            &mut info,
            "VFIO_DEVICE_GET_IRQ_INFO",
        )?;
        Ok(info.count)
    }

    /// Signals vectors `0..fds.len()` of interrupt index `index` into the
    /// eventfds `fds` (VFIO_DEVICE_SET_IRQS, ACTION_TRIGGER): enables MSI-X
    /// with that many vectors, or swaps the eventfds if it is enabled.
    pub fn set_irq_eventfds(&self, index: u32, fds: &[i32]) -> io::Result<()> {
        if fds.is_empty() || fds.len() > sys::MAX_IRQS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} eventfds: 1 to {} supported", fds.len(), sys::MAX_IRQS),
            ));
        }
        let mut set = sys::VfioIrqSet {
            // CAST: at most MAX_IRQS (32) entries.
            argsz: 20 + 4 * fds.len() as u32,
            flags: sys::VFIO_IRQ_SET_DATA_EVENTFD | sys::VFIO_IRQ_SET_ACTION_TRIGGER,
            index,
            start: 0,
            count: fds.len() as u32,
            data: [-1; sys::MAX_IRQS],
        };
        set.data[..fds.len()].copy_from_slice(fds);
        ioctl(
            &self.file,
            sys::VFIO_DEVICE_SET_IRQS,
            &mut set,
            "VFIO_DEVICE_SET_IRQS",
        )
    }

    /// VFIO_DEVICE_RESET (a function-level reset of the device).
    pub fn reset(&self) -> io::Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), sys::VFIO_DEVICE_RESET) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("VFIO_DEVICE_RESET: {e}")));
        }
        Ok(())
    }

    /// `VFIO_DEVICE_FEATURE_PROBE | SET | DMA_LOGGING_START`: `Ok` if the
    /// device supports DMA logging (`ENOTTY` if its driver has none).
    pub fn dma_logging_probe(&self) -> io::Result<()> {
        self.dma_logging_probe_feature(
            sys::VFIO_DEVICE_FEATURE_SET | sys::VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
        )
    }

    /// `VFIO_DEVICE_FEATURE_PROBE | flags`, with `flags` a direction and a
    /// feature (e.g. `GET | DMA_LOGGING_REPORT`).
    pub fn dma_logging_probe_feature(&self, flags: u32) -> io::Result<()> {
        let mut f = sys::VfioFeature {
            argsz: sys::argsz::<sys::VfioFeature>(),
            flags: sys::VFIO_DEVICE_FEATURE_PROBE | flags,
        };
        ioctl_errno(
            &self.file,
            sys::VFIO_DEVICE_FEATURE,
            &mut f,
            &format!("VFIO_DEVICE_FEATURE(PROBE {flags:#x})"),
        )
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` over `ranges` of (IOVA,
    /// length) with the tracking granularity `page_size` requested; returns
    /// the granularity the device granted.
    pub fn dma_logging_start(&self, page_size: u64, ranges: &[(u64, u64)]) -> io::Result<u64> {
        let raw: Vec<sys::VfioDmaLoggingRange> = ranges
            .iter()
            .map(|&(iova, length)| sys::VfioDmaLoggingRange { iova, length })
            .collect();
        let num_ranges = u32::try_from(raw.len())
            .map_err(|_| einval(format!("DMA_LOGGING_START: {} ranges", raw.len())))?;
        let mut c = sys::VfioFeatureDmaLoggingControl {
            argsz: sys::argsz::<sys::VfioFeatureDmaLoggingControl>(),
            flags: sys::VFIO_DEVICE_FEATURE_SET | sys::VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
            page_size,
            num_ranges,
            reserved: 0,
            ranges: raw.as_ptr() as u64,
        };
        // `raw` outlives the call: the kernel reads the ranges through
        // `c.ranges` during it only.
        ioctl_errno(
            &self.file,
            sys::VFIO_DEVICE_FEATURE,
            &mut c,
            &format!(
                "DMA_LOGGING_START(page_size {page_size:#x}, {} ranges)",
                raw.len()
            ),
        )?;
        Ok(c.page_size)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`.
    pub fn dma_logging_stop(&self) -> io::Result<()> {
        let mut f = sys::VfioFeature {
            argsz: sys::argsz::<sys::VfioFeature>(),
            flags: sys::VFIO_DEVICE_FEATURE_SET | sys::VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
        };
        ioctl_errno(
            &self.file,
            sys::VFIO_DEVICE_FEATURE,
            &mut f,
            "DMA_LOGGING_STOP",
        )
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` of `[iova, iova + len)` in
    /// units of `page_size` bytes (read and clear): the bitmap, one bit per
    /// unit ([`bitmap_iovas`] lists the dirty ones). A zero `len` or
    /// `page_size`, or a bitmap over 64 MiB, is refused here (`EINVAL`);
    /// everything else is for the kernel to judge.
    pub fn dma_logging_report(&self, iova: u64, len: u64, page_size: u64) -> io::Result<Vec<u64>> {
        let mut bitmap = vec![0u64; Self::report_words(iova, len, page_size)?];
        self.dma_logging_report_into(iova, len, page_size, &mut bitmap)?;
        Ok(bitmap)
    }

    /// The u64s of the bitmap of a `DMA_LOGGING_REPORT` of `[iova, iova +
    /// len)` in units of `page_size` (see [`Device::dma_logging_report`]).
    pub fn report_words(iova: u64, len: u64, page_size: u64) -> io::Result<usize> {
        if len == 0 || page_size == 0 {
            return Err(einval(Self::report_what(iova, len, page_size)));
        }
        // The kernel's bitmap extent (iova_bitmap_alloc): one bit per
        // 2^ffs(page_size) bytes of the length, in whole u64s.
        let bits = ((len - 1) >> page_size.trailing_zeros()) + 1;
        usize::try_from(bits.div_ceil(64))
            .ok()
            .filter(|&w| w <= (64 << 20) / 8)
            .ok_or_else(|| {
                einval(format!(
                    "{}: bitmap of {bits} bits too large",
                    Self::report_what(iova, len, page_size)
                ))
            })
    }

    fn report_what(iova: u64, len: u64, page_size: u64) -> String {
        format!("DMA_LOGGING_REPORT(iova {iova:#x}, length {len:#x}, page_size {page_size:#x})")
    }

    /// [`Device::dma_logging_report`] into `bitmap` (at least
    /// [`Device::report_words`] long, zeroed by the caller: the kernel
    /// only sets bits): the ioctl alone, for timing it.
    pub fn dma_logging_report_into(
        &self,
        iova: u64,
        len: u64,
        page_size: u64,
        bitmap: &mut [u64],
    ) -> io::Result<()> {
        let words = Self::report_words(iova, len, page_size)?;
        let what = Self::report_what(iova, len, page_size);
        if bitmap.len() < words {
            return Err(einval(format!(
                "{what}: bitmap of {} u64s, {words} needed",
                bitmap.len()
            )));
        }
        let mut r = sys::VfioFeatureDmaLoggingReport {
            argsz: sys::argsz::<sys::VfioFeatureDmaLoggingReport>(),
            flags: sys::VFIO_DEVICE_FEATURE_GET | sys::VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
            iova,
            length: len,
            page_size,
            bitmap: bitmap.as_mut_ptr() as u64,
        };
        // `bitmap` is live and exclusively ours for the call; the kernel
        // writes at most `words` u64s through `r.bitmap`.
        ioctl_errno(&self.file, sys::VFIO_DEVICE_FEATURE, &mut r, &what)
    }

    /// PCI vendor and device ID from config space.
    pub fn pci_id(&self) -> io::Result<(u16, u16)> {
        let mut id = [0u8; 4];
        self.config_read(0, &mut id)?;
        Ok((
            u16::from_le_bytes([id[0], id[1]]),
            u16::from_le_bytes([id[2], id[3]]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::bitmap_iovas;

    #[test]
    fn bitmap_bits_to_iovas() {
        assert!(bitmap_iovas(&[0, 0], 0x1000, 4096).is_empty());
        assert_eq!(
            bitmap_iovas(&[0b1001, 1 << 63, 1], 0x10_0000, 4096),
            vec![
                0x10_0000,
                0x10_3000,
                0x10_0000 + 127 * 4096,
                0x10_0000 + 128 * 4096
            ]
        );
        assert_eq!(
            bitmap_iovas(&[1 << 2], 0x4000_0000, 2 << 20),
            vec![0x4000_0000 + (4 << 20)]
        );
    }
}
