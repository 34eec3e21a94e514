// SPDX-License-Identifier: GPL-2.0

//! The namespaces attached to a VF's controller, as the compatibility
//! record carries them: a migration must never silently swap a guest's
//! storage, so a destination accepts a source only if its own controller
//! has the same namespaces attached (the same NSIDs, each the same
//! namespace by NGUID and EUI-64, with the same LBA format and capacity).
//!
//! Each entry, 40 bytes: `le32 nsid`, `u8 lbads` (log2 of the LBA data
//! size), `u8` reserved, `le16 ms` (metadata bytes per LBA), `le64 nsze`
//! (size in logical blocks), `nguid[16]`, `eui64[8]`.

use super::bytes::{
    array,
    le16,
    le32,
    le64,
    put,
    u8_at,
    zero, //
};
use super::Error;

/// Most namespaces a migratable VF may have attached.
pub const MAX_NAMESPACES: usize = 8;
/// Length of one encoded entry.
pub const NAMESPACE_LEN: usize = 40;
/// Length of the encoded table (all entries, used or not).
pub const TABLE_LEN: usize = MAX_NAMESPACES * NAMESPACE_LEN;

/// One namespace attached to the controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    /// Namespace identifier.
    pub nsid: u32,
    /// LBA data size, as a power of two (LBADS of the LBA format in use).
    pub lbads: u8,
    /// Metadata bytes per LBA (MS of the LBA format in use).
    pub ms: u16,
    /// Namespace size in logical blocks (NSZE).
    pub nsze: u64,
    /// Namespace Globally Unique Identifier (all zero if none).
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier (all zero if none).
    pub eui64: [u8; 8],
}

impl Namespace {
    fn encode(&self, b: &mut [u8]) -> Result<(), Error> {
        put(b, 0, &self.nsid.to_le_bytes())?;
        put(b, 4, &[self.lbads, 0])?;
        put(b, 6, &self.ms.to_le_bytes())?;
        put(b, 8, &self.nsze.to_le_bytes())?;
        put(b, 16, &self.nguid)?;
        put(b, 32, &self.eui64)
    }

    /// Decodes one entry; [`Namespaces::new`] checks its fields.
    fn parse(b: &[u8]) -> Result<Self, Error> {
        if u8_at(b, 5)? != 0 {
            return Err(Error::InvalidField("namespace entry reserved byte"));
        }
        Ok(Self {
            nsid: le32(b, 0)?,
            lbads: u8_at(b, 4)?,
            ms: le16(b, 6)?,
            nsze: le64(b, 8)?,
            nguid: array(b, 16)?,
            eui64: array(b, 32)?,
        })
    }

    /// NSIDs 0 and FFFFFFFFh name no namespace; LBADS is at least 9.
    fn check(&self) -> Result<(), Error> {
        if self.nsid == 0 || self.nsid == u32::MAX {
            return Err(Error::InvalidField("namespace entry NSID"));
        }
        if !(9..=31).contains(&self.lbads) {
            return Err(Error::InvalidField("namespace entry LBA data size"));
        }
        Ok(())
    }
}

/// The namespaces attached to a controller, in ascending NSID order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    // INVARIANT: `count <= MAX_NAMESPACES`; `list[..count]` has strictly
    // ascending, valid NSIDs; `list[count..]` is all default.
    count: u8,
    list: [Namespace; MAX_NAMESPACES],
}

const _: () = assert!(MAX_NAMESPACES <= u8::MAX as usize);

impl Namespaces {
    /// The namespaces of `list`, which must be in ascending NSID order.
    pub fn new(list: &[Namespace]) -> Result<Self, Error> {
        if list.len() > MAX_NAMESPACES {
            return Err(Error::OutOfLimits("more than 8 namespaces attached"));
        }
        let mut out = Self::default();
        for (i, ns) in list.iter().enumerate() {
            ns.check()?;
            out.list[i] = *ns;
            if i > 0 && out.list[i - 1].nsid >= ns.nsid {
                return Err(Error::InvalidField(
                    "namespaces not in ascending NSID order",
                ));
            }
        }
        // CAST: at most `MAX_NAMESPACES`, checked above.
        out.count = list.len() as u8;
        Ok(out)
    }

    /// The namespaces, in ascending NSID order.
    pub fn as_slice(&self) -> &[Namespace] {
        self.list.get(..usize::from(self.count)).unwrap_or(&[])
    }

    /// The number of namespaces (the compatibility record's count byte).
    pub fn count(&self) -> u8 {
        self.count
    }

    /// Encodes the table ([`TABLE_LEN`] bytes) into `b`.
    pub fn encode(&self, b: &mut [u8]) -> Result<(), Error> {
        for (i, ns) in self.list.iter().enumerate() {
            let off = i * NAMESPACE_LEN;
            let have = b.len();
            let entry = b
                .get_mut(off..off + NAMESPACE_LEN)
                .ok_or(Error::Truncated {
                    need: off + NAMESPACE_LEN,
                    have,
                })?;
            ns.encode(entry)?;
        }
        Ok(())
    }

    /// Decodes `count` entries of the table `b` (checked as [`Self::new`]
    /// checks them); the unused entries must be zero.
    pub fn parse(count: u8, b: &[u8]) -> Result<Self, Error> {
        let count = usize::from(count);
        if count > MAX_NAMESPACES {
            return Err(Error::InvalidField("namespace count"));
        }
        if b.len() != TABLE_LEN {
            return Err(Error::InvalidField("namespace table length"));
        }
        if !zero(b, count * NAMESPACE_LEN, TABLE_LEN) {
            return Err(Error::InvalidField("unused namespace entries not zero"));
        }
        let mut list = [Namespace::default(); MAX_NAMESPACES];
        for (i, ns) in list.iter_mut().take(count).enumerate() {
            let off = i * NAMESPACE_LEN;
            *ns = Namespace::parse(b.get(off..off + NAMESPACE_LEN).ok_or(Error::Overflow)?)?;
        }
        Self::new(list.get(..count).ok_or(Error::Overflow)?)
    }

    /// Whether a destination with these namespaces can take over a source
    /// with `src`'s: the same namespaces, in every respect.
    pub fn accepts(&self, src: &Namespaces) -> Result<(), Error> {
        let (mine, theirs) = (self.as_slice(), src.as_slice());
        if !self.same_nsids(src) {
            return Err(Error::OutOfLimits(
                "different namespaces attached (NSIDs): the guest's storage would change",
            ));
        }
        for (a, b) in mine.iter().zip(theirs) {
            if a.nguid != b.nguid || a.eui64 != b.eui64 {
                return Err(Error::OutOfLimits(
                    "another namespace behind the same NSID (NGUID or EUI-64 differ)",
                ));
            }
            if a.lbads != b.lbads || a.ms != b.ms || a.nsze != b.nsze {
                return Err(Error::OutOfLimits(
                    "different namespace format or capacity (LBA size, metadata, NSZE)",
                ));
            }
        }
        Ok(())
    }

    /// The same NSIDs, in the same order.
    fn same_nsids(&self, other: &Namespaces) -> bool {
        let (a, b) = (self.as_slice(), other.as_slice());
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.nsid == y.nsid)
    }

    /// Whether a destination with these namespaces can take a media
    /// migration from a source with `src`'s: the same NSIDs in the same
    /// order (each source namespace copied to the destination's of the same
    /// NSID), the same LBA data size and metadata size, and at least the
    /// source's capacity. The NGUID and EUI-64 differ: another namespace is
    /// the point.
    pub fn accepts_media(&self, src: &Namespaces) -> Result<(), Error> {
        let (mine, theirs) = (self.as_slice(), src.as_slice());
        if !self.same_nsids(src) {
            return Err(Error::OutOfLimits(
                "different namespaces attached (NSIDs): no one-to-one media copy",
            ));
        }
        for (a, b) in mine.iter().zip(theirs) {
            if a.lbads != b.lbads || a.ms != b.ms {
                return Err(Error::OutOfLimits(
                    "different namespace format (LBA size or metadata) for a media copy",
                ));
            }
            if a.nsze < b.nsze {
                return Err(Error::OutOfLimits(
                    "destination namespace smaller than the source's",
                ));
            }
        }
        Ok(())
    }
}
