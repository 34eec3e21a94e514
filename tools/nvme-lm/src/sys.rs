// SPDX-License-Identifier: GPL-2.0

//! VFIO and iommufd uAPI: the ioctl numbers and structures this tool uses,
//! from include/uapi/linux/{vfio,iommufd}.h. The host's own headers are
//! older than the kernel under test, so they are spelled out here.

/// `_IO(type, nr)`: no direction or size bits, as VFIO and iommufd use.
const fn io(ty: u8, nr: u32) -> libc::c_ulong {
    ((ty as libc::c_ulong) << 8) | nr as libc::c_ulong
}

const VFIO_TYPE: u8 = b';';
const VFIO_BASE: u32 = 100;
const IOMMUFD_TYPE: u8 = b';';

/// VFIO_DEVICE_GET_INFO.
pub const VFIO_DEVICE_GET_INFO: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 7);
/// VFIO_DEVICE_GET_REGION_INFO.
pub const VFIO_DEVICE_GET_REGION_INFO: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 8);
/// VFIO_DEVICE_FEATURE.
pub const VFIO_DEVICE_FEATURE: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 17);
/// VFIO_DEVICE_FEATURE_SET.
pub const VFIO_DEVICE_FEATURE_SET: u32 = 1 << 17;
/// VFIO_DEVICE_FEATURE_GET.
pub const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
/// VFIO_DEVICE_FEATURE_PROBE.
pub const VFIO_DEVICE_FEATURE_PROBE: u32 = 1 << 18;
/// VFIO_DEVICE_FEATURE_DMA_LOGGING_START.
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_START: u32 = 6;
/// VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP.
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: u32 = 7;
/// VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: u32 = 8;
/// VFIO_DEVICE_FEATURE_PCI_VF_TOKEN.
pub const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: u32 = 0;
/// VFIO_DEVICE_BIND_FLAG_TOKEN.
pub const VFIO_DEVICE_BIND_FLAG_TOKEN: u32 = 1 << 0;
/// VFIO_MIG_GET_PRECOPY_INFO (on a migration data file).
pub const VFIO_MIG_GET_PRECOPY_INFO: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 21);
/// VFIO_DEVICE_GET_IRQ_INFO.
pub const VFIO_DEVICE_GET_IRQ_INFO: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 9);
/// VFIO_DEVICE_SET_IRQS.
pub const VFIO_DEVICE_SET_IRQS: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 10);
/// VFIO_PCI_MSIX_IRQ_INDEX.
pub const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
/// VFIO_IRQ_SET_DATA_EVENTFD.
pub const VFIO_IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// VFIO_IRQ_SET_ACTION_TRIGGER.
pub const VFIO_IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
/// The most vectors [`VfioIrqSet`] carries.
pub const MAX_IRQS: usize = 32;
/// VFIO_DEVICE_RESET.
pub const VFIO_DEVICE_RESET: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 11);
/// VFIO_DEVICE_BIND_IOMMUFD.
pub const VFIO_DEVICE_BIND_IOMMUFD: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 18);
/// VFIO_DEVICE_ATTACH_IOMMUFD_PT.
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: libc::c_ulong = io(VFIO_TYPE, VFIO_BASE + 19);
/// IOMMU_IOAS_ALLOC.
pub const IOMMU_IOAS_ALLOC: libc::c_ulong = io(IOMMUFD_TYPE, 0x81);
/// IOMMU_IOAS_MAP.
pub const IOMMU_IOAS_MAP: libc::c_ulong = io(IOMMUFD_TYPE, 0x85);
/// IOMMU_IOAS_UNMAP.
pub const IOMMU_IOAS_UNMAP: libc::c_ulong = io(IOMMUFD_TYPE, 0x86);

/// VFIO_PCI_BAR0_REGION_INDEX.
pub const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
/// VFIO_PCI_CONFIG_REGION_INDEX.
pub const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
/// IOMMU_IOAS_MAP_FIXED_IOVA.
pub const IOMMU_IOAS_MAP_FIXED_IOVA: u32 = 1 << 0;
/// IOMMU_IOAS_MAP_WRITEABLE.
pub const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
/// IOMMU_IOAS_MAP_READABLE.
pub const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

/// struct vfio_device_info.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioDeviceInfo {
    /// argsz.
    pub argsz: u32,
    /// flags (VFIO_DEVICE_FLAGS_*).
    pub flags: u32,
    /// num_regions.
    pub num_regions: u32,
    /// num_irqs.
    pub num_irqs: u32,
    /// cap_offset.
    pub cap_offset: u32,
    /// pad.
    pub pad: u32,
}

/// struct vfio_region_info.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioRegionInfo {
    /// argsz.
    pub argsz: u32,
    /// flags (VFIO_REGION_INFO_FLAG_*).
    pub flags: u32,
    /// index.
    pub index: u32,
    /// cap_offset.
    pub cap_offset: u32,
    /// size.
    pub size: u64,
    /// offset of the region in the device fd.
    pub offset: u64,
}

/// struct vfio_device_bind_iommufd.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioDeviceBindIommufd {
    /// argsz.
    pub argsz: u32,
    /// flags.
    pub flags: u32,
    /// iommufd.
    pub iommufd: i32,
    /// out_devid.
    pub out_devid: u32,
    /// token_uuid_ptr (with VFIO_DEVICE_BIND_FLAG_TOKEN).
    pub token_uuid_ptr: u64,
}

/// struct vfio_device_feature carrying a VF token.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioFeatureVfToken {
    /// argsz.
    pub argsz: u32,
    /// flags: feature index and direction.
    pub flags: u32,
    /// The token (a UUID).
    pub uuid: [u8; 16],
}

/// struct vfio_device_attach_iommufd_pt.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioDeviceAttachIommufdPt {
    /// argsz.
    pub argsz: u32,
    /// flags.
    pub flags: u32,
    /// pt_id.
    pub pt_id: u32,
    /// pasid.
    pub pasid: u32,
}

/// struct iommu_ioas_alloc.
#[repr(C)]
#[derive(Debug, Default)]
pub struct IommuIoasAlloc {
    /// size.
    pub size: u32,
    /// flags.
    pub flags: u32,
    /// out_ioas_id.
    pub out_ioas_id: u32,
}

/// struct iommu_ioas_map.
#[repr(C)]
#[derive(Debug, Default)]
pub struct IommuIoasMap {
    /// size.
    pub size: u32,
    /// flags.
    pub flags: u32,
    /// ioas_id.
    pub ioas_id: u32,
    /// __reserved.
    pub reserved: u32,
    /// user_va.
    pub user_va: u64,
    /// length.
    pub length: u64,
    /// iova.
    pub iova: u64,
}

/// struct iommu_ioas_unmap.
#[repr(C)]
#[derive(Debug, Default)]
pub struct IommuIoasUnmap {
    /// size.
    pub size: u32,
    /// ioas_id.
    pub ioas_id: u32,
    /// iova.
    pub iova: u64,
    /// length.
    pub length: u64,
}

/// The `size`/`argsz` value of a uAPI structure.
pub fn argsz<T>() -> u32 {
    // CAST: these structures are a few dozen bytes.
    core::mem::size_of::<T>() as u32
}

/// struct vfio_irq_info.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioIrqInfo {
    /// argsz.
    pub argsz: u32,
    /// flags (VFIO_IRQ_INFO_*).
    pub flags: u32,
    /// index (VFIO_PCI_*_IRQ_INDEX).
    pub index: u32,
    /// count: vectors of this index.
    pub count: u32,
}

/// struct vfio_irq_set with room for [`MAX_IRQS`] eventfds (argsz says how
/// many the kernel reads).
#[repr(C)]
#[derive(Debug)]
pub struct VfioIrqSet {
    /// argsz: 20 + 4 * count.
    pub argsz: u32,
    /// flags (VFIO_IRQ_SET_*).
    pub flags: u32,
    /// index (VFIO_PCI_*_IRQ_INDEX).
    pub index: u32,
    /// First vector.
    pub start: u32,
    /// Number of vectors.
    pub count: u32,
    /// One eventfd per vector.
    pub data: [i32; MAX_IRQS],
}

const _: () = assert!(core::mem::size_of::<VfioIrqInfo>() == 16);
const _: () = assert!(core::mem::offset_of!(VfioIrqSet, data) == 20);

/// struct vfio_device_feature with no payload (PROBE, DMA_LOGGING_STOP).
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioFeature {
    /// argsz.
    pub argsz: u32,
    /// flags: feature index and direction.
    pub flags: u32,
}

/// struct vfio_device_feature_dma_logging_range.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioDmaLoggingRange {
    /// iova.
    pub iova: u64,
    /// length.
    pub length: u64,
}

/// struct vfio_device_feature carrying a struct
/// vfio_device_feature_dma_logging_control (DMA_LOGGING_START).
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioFeatureDmaLoggingControl {
    /// argsz.
    pub argsz: u32,
    /// flags: feature index and direction.
    pub flags: u32,
    /// page_size: requested tracking granularity in, granted out.
    pub page_size: u64,
    /// num_ranges.
    pub num_ranges: u32,
    /// __reserved.
    pub reserved: u32,
    /// ranges: user pointer to num_ranges [`VfioDmaLoggingRange`].
    pub ranges: u64,
}

/// struct vfio_device_feature carrying a struct
/// vfio_device_feature_dma_logging_report (DMA_LOGGING_REPORT).
#[repr(C)]
#[derive(Debug, Default)]
pub struct VfioFeatureDmaLoggingReport {
    /// argsz.
    pub argsz: u32,
    /// flags: feature index and direction.
    pub flags: u32,
    /// iova: first byte reported.
    pub iova: u64,
    /// length in bytes.
    pub length: u64,
    /// page_size: bytes per bitmap bit (a power of two, at least 4 KiB).
    pub page_size: u64,
    /// bitmap: user pointer to the u64 bitmap the kernel sets bits in.
    pub bitmap: u64,
}

// struct vfio_device_feature is 8 bytes before its payload; the payloads are
// laid out as in include/uapi/linux/vfio.h.
const _: () = assert!(core::mem::size_of::<VfioFeature>() == 8);
const _: () = assert!(core::mem::size_of::<VfioDmaLoggingRange>() == 16);
const _: () = assert!(core::mem::size_of::<VfioFeatureDmaLoggingControl>() == 8 + 24);
const _: () = assert!(core::mem::offset_of!(VfioFeatureDmaLoggingControl, page_size) == 8);
const _: () = assert!(core::mem::offset_of!(VfioFeatureDmaLoggingControl, num_ranges) == 16);
const _: () = assert!(core::mem::offset_of!(VfioFeatureDmaLoggingControl, ranges) == 24);
const _: () = assert!(core::mem::size_of::<VfioFeatureDmaLoggingReport>() == 8 + 32);
const _: () = assert!(core::mem::offset_of!(VfioFeatureDmaLoggingReport, iova) == 8);
const _: () = assert!(core::mem::offset_of!(VfioFeatureDmaLoggingReport, bitmap) == 32);
