// SPDX-License-Identifier: GPL-2.0

//! VFIO variant driver for NVMe SR-IOV virtual functions with live
//! migration through NVMe Host Managed Live Migration (NVMe Base 2.1).
//!
//! [`codec`] holds the wire formats; the host tool `tools/nvme-lm` compiles
//! the same files, and both run the same test cases (KUnit suite
//! `nvme_vfio_pci_codec` here, `cargo test` there).

use kernel::{
    device,
    nvme_lm,
    pci,
    prelude::*,
    vfio::{self, DataFile, DirtyBitmap, Flags, Ranges, State}, //
};

// The codec is shared with tools/nvme-lm, which uses it as a public API:
// its items are `pub` and not all of them are used by this module.
#[allow(dead_code, unreachable_pub)]
mod codec;
mod device_state;
mod dma_log;
mod fsm;
mod media_option;
mod media_sink;
mod media_source;
mod migration;
mod session;
mod user_errors;

#[cfg(CONFIG_KUNIT = "y")]
#[path = "codec/cases.rs"]
#[allow(unreachable_pub)]
mod cases;

use migration::LiveMigration;

module! {
    type: NvmeVfioPciModule,
    name: "nvme_vfio_pci",
    authors: ["nvme-vfio developers"],
    description: "VFIO support for NVMe SR-IOV VFs with live migration",
    license: "GPL",
    params: {
        media_cdq_entries: u32 {
            default: 2048,
            description: "Entries of the dirty-LBA queue of a media migration (fewer if the PF takes fewer)",
        },
    },
}

/// PCI class of NVM Express controllers.
const PCI_CLASS_NVME: u32 = 0x01_08_02;

kernel::vfio_pci_device_table!(
    ID_TABLE,
    [vfio::DeviceId::class(PCI_CLASS_NVME, 0xff_ff_ff)]
);

/// The variant driver of NVMe VFs.
struct NvmeVfioPci;

/// Index of the `media_migration` option in [`vfio::PciDriver::OPTIONS`].
const MEDIA_MIGRATION: usize = 0;

/// What the driver keeps per VF.
struct VfData {
    /// Migration of the VF; `None` when its PF cannot migrate it, and the
    /// VF is then served as plain vfio-pci.
    mig: Option<Pin<KBox<LiveMigration>>>,
}

impl VfData {
    fn mig(&self) -> Result<&LiveMigration> {
        self.mig.as_deref().ok_or(ENOTTY)
    }
}

#[vtable]
impl vfio::PciDriver for NvmeVfioPci {
    type Data = VfData;
    type OwnerModule = NvmeVfioPciModule;
    const NAME: &'static CStr = c"nvme-vfio-pci";
    const ID_TABLE: vfio::IdTable = &ID_TABLE;
    const OPTIONS: &'static [&'static CStr] = &[c"media_migration"];

    fn probe(pdev: &pci::Device<device::Core<'_>>) -> Result<VfData> {
        let dev: &device::Device<device::Core<'_>> = pdev.as_ref();
        let no_migration = |e: Error| {
            dev_info!(dev, "no live migration ({:?}): plain vfio-pci\n", e);
            Ok(VfData { mig: None })
        };
        let lm = match nvme_lm::Handle::get(pdev) {
            Ok(h) => h,
            // Not a VF, PF not on nvme-pci or without HMLM: never fail the
            // probe for that, behave exactly like vfio-pci.
            Err(e) if e == EOPNOTSUPP || e == ENODEV || e == EINVAL => return no_migration(e),
            Err(e) => return Err(e),
        };
        let vendor = pdev.vendor_id().as_raw();
        match LiveMigration::new(dev, lm, vendor, pdev.device_id()) {
            Ok(mig) => {
                dev_info!(
                    dev,
                    "live migration: secondary controller {}\n",
                    mig.cntlid()
                );
                Ok(VfData { mig: Some(mig) })
            }
            Err(e) if e == ENOMEM => Err(e),
            // No state format holds the whole controller: the reason is
            // logged, the VF is plain vfio-pci.
            Err(e) if e == EOPNOTSUPP => Ok(VfData { mig: None }),
            // The PF has HMLM but cannot migrate this VF (no state format
            // we understand, or it failed to describe the controller): the
            // VF is still usable, without migration.
            Err(e) => {
                dev_warn!(dev, "cannot set up live migration: {:?}\n", e);
                no_migration(e)
            }
        }
    }

    fn migration_flags(data: &VfData) -> Flags {
        match data.mig {
            Some(_) => Flags::STOP_COPY | Flags::P2P | Flags::PRE_COPY,
            None => Flags::NONE,
        }
    }

    fn migration_set_state(dev: &vfio::Device<Self>, new: State) -> Result<Option<DataFile>> {
        dev.data().mig()?.set_state(dev, new)
    }

    fn migration_get_state(dev: &vfio::Device<Self>) -> Result<State> {
        Ok(dev.data().mig()?.state(dev.as_dev()))
    }

    fn migration_data_size(dev: &vfio::Device<Self>) -> Result<usize> {
        dev.data().mig()?.data_size(dev.as_dev())
    }

    fn dma_logging(data: &VfData) -> bool {
        data.mig.as_deref().is_some_and(LiveMigration::has_dma_log)
    }

    fn log_start(dev: &vfio::Device<Self>, ranges: &mut Ranges<'_>, page_size: &mut u64) -> Result {
        let (log, lm) = dev.data().mig()?.dma_log(dev.as_dev())?;
        log.start(dev.as_dev(), lm, ranges, page_size)
    }

    fn log_stop(dev: &vfio::Device<Self>) -> Result {
        let (log, lm) = dev.data().mig()?.dma_log(dev.as_dev())?;
        log.stop(dev.as_dev(), lm)
    }

    fn log_read_and_clear(dev: &vfio::Device<Self>, dirty: &mut DirtyBitmap<'_>) -> Result {
        let (log, lm) = dev.data().mig()?.dma_log(dev.as_dev())?;
        log.report(dev.as_dev(), lm, dirty)
    }

    fn option_get(data: &VfData, index: usize) -> bool {
        match (index, data.mig.as_deref()) {
            (MEDIA_MIGRATION, Some(mig)) => mig.media_migration(),
            _ => false,
        }
    }

    fn option_set(dev: &vfio::Device<Self>, index: usize, value: bool) -> Result {
        if index != MEDIA_MIGRATION {
            return Err(EINVAL);
        }
        let Some(mig) = dev.data().mig.as_deref() else {
            dev_err!(
                dev.as_dev(),
                "media_migration: the VF has no live migration (its PF cannot migrate it)\n"
            );
            return Err(EOPNOTSUPP);
        };
        mig.media_migration.set(value).inspect_err(|_| {
            dev_err!(
                dev.as_dev(),
                "media_migration: cannot change while the VFIO device is open\n"
            );
        })
    }

    fn open_device(dev: &vfio::Device<Self>) {
        if let Some(mig) = dev.data().mig.as_deref() {
            mig.media_migration.opened();
        }
    }

    fn close_device(dev: &vfio::Device<Self>) {
        if let Some(mig) = dev.data().mig.as_deref() {
            mig.reset(dev.as_dev());
            mig.media_migration.closed();
        }
    }

    fn remove(data: &VfData) {
        if let Some(mig) = data.mig.as_deref() {
            mig.detach();
        }
    }

    fn reset_done(dev: &vfio::Device<Self>) {
        if let Some(mig) = dev.data().mig.as_deref() {
            mig.function_reset();
        }
    }
}

#[pin_data]
struct NvmeVfioPciModule {
    #[pin]
    reg: vfio::Registration<NvmeVfioPci>,
}

impl kernel::InPlaceModule for NvmeVfioPciModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            reg <- vfio::Registration::new(module),
        })
    }
}

#[kunit_tests(nvme_vfio_pci_codec)]
mod codec_kunit {
    use crate::cases;

    #[test]
    fn header_round_trip() {
        assert_eq!(cases::header_round_trip(), Ok(()));
    }

    #[test]
    fn header_rejects_malformed() {
        assert_eq!(cases::header_rejects_malformed(), Ok(()));
    }

    #[test]
    fn state_length_must_match() {
        assert_eq!(cases::state_length_must_match(), Ok(()));
    }

    #[test]
    fn v0_round_trip() {
        assert_eq!(cases::v0_round_trip(), Ok(()));
    }

    #[test]
    fn v0_rejects_counts_beyond_size() {
        assert_eq!(cases::v0_rejects_counts_beyond_size(), Ok(()));
    }

    #[test]
    fn v0_validate() {
        assert_eq!(cases::v0_validate(), Ok(()));
    }

    #[test]
    fn state_formats() {
        assert_eq!(cases::state_formats(), Ok(()));
    }

    #[test]
    fn secondary_list() {
        assert_eq!(cases::secondary_list(), Ok(()));
    }

    #[test]
    fn udmq_entries() {
        assert_eq!(cases::udmq_entries(), Ok(()));
    }

    #[test]
    fn command_encoding() {
        assert_eq!(cases::command_encoding(), Ok(()));
    }

    #[test]
    fn stream_round_trip() {
        assert_eq!(cases::stream_round_trip(), Ok(()));
    }

    #[test]
    fn stream_rejects_malformed() {
        assert_eq!(cases::stream_rejects_malformed(), Ok(()));
    }

    #[test]
    fn compat_rules() {
        assert_eq!(cases::compat_rules(), Ok(()));
    }

    #[test]
    fn namespace_rules() {
        assert_eq!(cases::namespace_rules(), Ok(()));
    }

    #[test]
    fn track_limits() {
        assert_eq!(cases::track_limits(), Ok(()));
    }

    #[test]
    fn track_round_trip() {
        assert_eq!(cases::track_round_trip(), Ok(()));
    }

    #[test]
    fn crc32c_vectors() {
        assert_eq!(cases::crc32c_vectors(), Ok(()));
    }

    /// The kernel's CRC-32C (the source's data records) and the codec's
    /// (the destination's check) agree: check value, chaining, every
    /// alignment and length up to 300 bytes, and 1 MiB.
    #[test]
    fn kernel_crc32c_is_the_codecs() {
        use crate::codec::stream::crc32c;
        use kernel::crc::crc32c as kcrc;
        assert_eq!(kcrc(0, b"123456789"), 0xe306_9283);
        assert_eq!(kcrc(0, &[]), 0);
        assert_eq!(kcrc(kcrc(0, b"1234"), b"56789"), 0xe306_9283);
        let mut r = [0u8; 300];
        cases::fill_pseudo_random(&mut r);
        for from in 0..9 {
            for to in from..r.len() {
                let s = &r[from..to];
                assert_eq!(kcrc(0x1234_5678, s), crc32c(0x1234_5678, s));
            }
        }
        let big =
            kernel::alloc::KVVec::from_elem(0xa5u8, 1 << 20, kernel::alloc::flags::GFP_KERNEL);
        assert!(big.is_ok());
        if let Ok(big) = big {
            assert_eq!(kcrc(0, &big), crc32c(0, &big));
        }
    }

    #[test]
    fn media_round_trip() {
        assert_eq!(cases::media_round_trip(), Ok(()));
    }

    #[test]
    fn media_checker_rejects() {
        assert_eq!(cases::media_checker_rejects(), Ok(()));
    }

    #[test]
    fn media_compat_rules() {
        assert_eq!(cases::media_compat_rules(), Ok(()));
    }

    #[test]
    fn dirty_set() {
        assert_eq!(cases::dirty_set(), Ok(()));
    }
}
