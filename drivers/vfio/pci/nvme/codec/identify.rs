// SPDX-License-Identifier: GPL-2.0

//! Identify data the migration flow reads: Supported Controller State
//! Formats (CNS 20h) and the Secondary Controller List (CNS 15h).

use super::bytes::{
    array,
    le16,
    u8_at, //
};
use super::Error;

/// Identify CNS value of Supported Controller State Formats.
pub const CNS_SUPPORTED_STATE_FORMATS: u8 = 0x20;
/// Identify CNS value of the Secondary Controller List.
pub const CNS_SECONDARY_CONTROLLER_LIST: u8 = 0x15;
/// Identify Controller: OACS bit 11, Host Managed Live Migration supported.
pub const OACS_HMLM: u16 = 1 << 11;
/// Byte offset of OACS in Identify Controller data.
pub const ID_CTRL_OACS: usize = 256;

/// The vendor-specific controller state format of nvme-vfio's emulated
/// controller (`tests/qemu/patches`): together with NVMe-defined version 0
/// it holds the whole controller, registers, admin queues, features and
/// outstanding events (`Documentation/nvme-vfio/emulated-hmlm.rst`).
pub const EMULATED_VENDOR_FORMAT: [u8; 16] = [
    0x1c, 0x9f, 0x3a, 0x4e, 0x8b, 0x7d, 0x4e, 0x2a, 0x9f, 0x61, 0x6e, 0x76, 0x6d, 0x65, 0x2d, 0x6c,
];

/// Vendor-specific formats known to complete NVMe-defined version 0, which
/// holds only I/O queues: a controller moved with version 0 alone would
/// lose its registers, admin queues, features and events.
pub const COMPLETE_VENDOR_FORMATS: [[u8; 16]; 1] = [EMULATED_VENDOR_FORMAT];

/// Supported Controller State Formats (CNS 20h): NVMe-defined state
/// versions and vendor-specific state UUIDs, in the order the CSVI and
/// CSUUIDI 1-based indexes count them.
#[derive(Clone, Copy, Debug)]
pub struct StateFormats<'a> {
    versions: &'a [u8],
    uuids: &'a [u8],
}

impl<'a> StateFormats<'a> {
    /// Decodes the structure from the start of `buf` (a 4 KiB Identify
    /// buffer or exactly the structure).
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let nv = usize::from(u8_at(buf, 0)?);
        let nuuid = usize::from(u8_at(buf, 1)?);
        let vend = 2 + 2 * nv;
        let uend = vend + 16 * nuuid;
        let versions = buf.get(2..vend).ok_or(Error::Truncated {
            need: vend,
            have: buf.len(),
        })?;
        let uuids = buf.get(vend..uend).ok_or(Error::Truncated {
            need: uend,
            have: buf.len(),
        })?;
        Ok(Self { versions, uuids })
    }

    /// Number of NVMe-defined state versions (NV).
    pub fn version_count(&self) -> u8 {
        // CAST: at most 255 entries were read from a u8 count.
        (self.versions.len() / 2) as u8
    }

    /// Number of vendor-specific state UUIDs (NUUID).
    pub fn uuid_count(&self) -> u8 {
        // CAST: at most 255 entries were read from a u8 count.
        (self.uuids.len() / 16) as u8
    }

    /// The version selected by 1-based index `csvi`.
    pub fn version(&self, csvi: u8) -> Option<u16> {
        let i = usize::from(csvi.checked_sub(1)?);
        le16(self.versions, 2 * i).ok()
    }

    /// The UUID selected by 1-based index `csuuidi`.
    pub fn uuid(&self, csuuidi: u8) -> Option<[u8; 16]> {
        let i = usize::from(csuuidi.checked_sub(1)?);
        array::<16>(self.uuids, 16 * i).ok()
    }

    /// The 1-based CSVI of NVMe-defined state version `ver`, if listed.
    pub fn find_version(&self, ver: u16) -> Option<u8> {
        (1..=self.version_count()).find(|&i| self.version(i) == Some(ver))
    }

    /// The 1-based CSUUIDI and the UUID of the first listed vendor format
    /// of [`COMPLETE_VENDOR_FORMATS`].
    pub fn complete_vendor_format(&self) -> Option<(u8, [u8; 16])> {
        (1..=self.uuid_count()).find_map(|i| {
            let uuid = self.uuid(i)?;
            COMPLETE_VENDOR_FORMATS.contains(&uuid).then_some((i, uuid))
        })
    }

    /// The 1-based CSUUIDI of vendor state format `uuid`, if listed.
    pub fn find_uuid(&self, uuid: &[u8; 16]) -> Option<u8> {
        (1..=self.uuid_count()).find(|&i| self.uuid(i).as_ref() == Some(uuid))
    }
}

/// One Secondary Controller Entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecondaryController {
    /// SCID: the secondary controller's CNTLID.
    pub scid: u16,
    /// PCID: its primary controller.
    pub pcid: u16,
    /// SCS bit 0: online.
    pub online: bool,
    /// VFN: virtual function number, 1-based (`pci_iov_vf_id() + 1`).
    pub vfn: u16,
    /// NVQ: flexible queue resources assigned.
    pub vq: u16,
    /// NVI: flexible interrupt resources assigned.
    pub vi: u16,
}

/// Secondary Controller List (CNS 15h).
#[derive(Clone, Copy, Debug)]
pub struct SecondaryList<'a> {
    entries: &'a [u8],
}

/// Length of the list header and of each entry.
const SECONDARY_ENTRY_LEN: usize = 32;

impl<'a> SecondaryList<'a> {
    /// Decodes the list; at most 127 entries follow the 32-byte header.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let n = usize::from(u8_at(buf, 0)?);
        if n > 127 {
            return Err(Error::InvalidField(
                "secondary controller list over 127 entries",
            ));
        }
        let end = SECONDARY_ENTRY_LEN * (n + 1);
        let entries = buf.get(SECONDARY_ENTRY_LEN..end).ok_or(Error::Truncated {
            need: end,
            have: buf.len(),
        })?;
        Ok(Self { entries })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len() / SECONDARY_ENTRY_LEN
    }

    /// `true` if the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `i`.
    pub fn get(&self, i: usize) -> Option<SecondaryController> {
        let e = self
            .entries
            .get(i.checked_mul(SECONDARY_ENTRY_LEN)?..)?
            .get(..SECONDARY_ENTRY_LEN)?;
        Some(SecondaryController {
            scid: le16(e, 0).ok()?,
            pcid: le16(e, 2).ok()?,
            online: u8_at(e, 4).ok()? & 1 != 0,
            vfn: le16(e, 8).ok()?,
            vq: le16(e, 10).ok()?,
            vi: le16(e, 12).ok()?,
        })
    }

    /// The entry of virtual function number `vfn` (1-based). Matching on
    /// VFN, never on list position, is what ties a VF to its controller.
    pub fn find_vfn(&self, vfn: u16) -> Option<SecondaryController> {
        (0..self.len())
            .filter_map(|i| self.get(i))
            .find(|c| c.vfn == vfn && vfn != 0)
    }
}
