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
    vfio, //
};

// The codec is shared with tools/nvme-lm, which uses it as a public API:
// its items are `pub` and not all of them are used by this module.
#[allow(dead_code, unreachable_pub)]
mod codec;

#[cfg(CONFIG_KUNIT = "y")]
#[path = "codec/cases.rs"]
#[allow(unreachable_pub)]
mod cases;

module! {
    type: NvmeVfioPciModule,
    name: "nvme_vfio_pci",
    authors: ["nvme-vfio developers"],
    description: "VFIO support for NVMe SR-IOV VFs with live migration",
    license: "GPL",
}

/// The variant driver of NVMe VFs.
struct NvmeVfioPci;

/// What the driver keeps per VF.
struct VfData {
    /// The VF's migration handle on its PF; `None` when the PF cannot
    /// migrate it, and the VF is then served as plain vfio-pci.
    _lm: Option<nvme_lm::Handle>,
}

impl vfio::PciDriver for NvmeVfioPci {
    type Data = VfData;
    const NAME: &'static CStr = c"nvme-vfio-pci";

    fn probe(pdev: &pci::Device<device::Core<'_>>) -> Result<VfData> {
        let dev: &device::Device<device::Core<'_>> = pdev.as_ref();
        let lm = match nvme_lm::Handle::get(pdev) {
            Ok(h) => {
                dev_info!(dev, "live migration: secondary controller {}\n", h.cntlid());
                Some(h)
            }
            // Not a VF, PF not on nvme-pci or without HMLM: never fail the
            // probe for that, behave exactly like vfio-pci.
            Err(e) if e == EOPNOTSUPP || e == ENODEV || e == EINVAL => {
                dev_info!(dev, "no live migration ({:?}): plain vfio-pci\n", e);
                None
            }
            Err(e) => return Err(e),
        };
        Ok(VfData { _lm: lm })
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
}
