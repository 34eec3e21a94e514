// SPDX-License-Identifier: GPL-2.0

//! VFIO variant driver for NVMe SR-IOV virtual functions with live
//! migration through NVMe Host Managed Live Migration (NVMe Base 2.1).
//!
//! [`codec`] holds the wire formats; the host tool `tools/nvme-lm` compiles
//! the same files, and both run the same test cases (KUnit suite
//! `nvme_vfio_pci_codec` here, `cargo test` there).

use kernel::prelude::*;

// The codec is shared with tools/nvme-lm, which uses it as a public API:
// its items are `pub` and not all of them are used by this module.
#[allow(dead_code, unreachable_pub)]
mod codec;

#[cfg(CONFIG_KUNIT = "y")]
#[path = "codec/cases.rs"]
#[allow(unreachable_pub)]
mod cases;

module! {
    type: NvmeVfioPci,
    name: "nvme_vfio_pci",
    authors: ["nvme-vfio developers"],
    description: "VFIO support for NVMe SR-IOV VFs with live migration",
    license: "GPL",
}

struct NvmeVfioPci;

impl kernel::Module for NvmeVfioPci {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
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
