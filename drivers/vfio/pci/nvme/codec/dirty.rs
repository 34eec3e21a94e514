// SPDX-License-Identifier: GPL-2.0

//! The source's dirty set of a namespace during media migration: the LBA
//! ranges to send again, one bit per granule of `2^shift` LBAs, in words
//! the caller owns (`&mut [u64]`, [`Geometry::words`] of them). Bit `i` is
//! bit `i % 64` of word `i / 64`; bits at or past [`Geometry::bits`] stay
//! clear.

use super::udmq::{
    Change,
    Entry,
    Marker, //
};
use super::Error;

/// The shape of a namespace's bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Namespace size in logical blocks.
    pub nsze: u64,
    /// log2 of the LBAs per bit.
    pub shift: u8,
}

impl Geometry {
    /// The smallest granule of at least `min_granule_bytes` (rounded up to
    /// a power of two, at least the LBA size `2^lbads`) such that the
    /// bitmap has at most `max_bits` bits.
    pub fn new(nsze: u64, lbads: u8, min_granule_bytes: u64, max_bits: u64) -> Result<Self, Error> {
        if lbads > 63 {
            return Err(Error::InvalidField("LBA data size"));
        }
        if max_bits == 0 {
            return Err(Error::InvalidField("dirty bitmap of no bit"));
        }
        let granule = min_granule_bytes
            .checked_next_power_of_two()
            .ok_or(Error::Overflow)?;
        // `granule` is a power of two: its log2 is its trailing zeros.
        let mut shift = granule.trailing_zeros().saturating_sub(u32::from(lbads));
        while shift < 64 && nsze.div_ceil(1u64 << shift) > max_bits {
            shift += 1;
        }
        let g = Self {
            nsze,
            shift: u8::try_from(shift).map_err(|_| Error::Overflow)?,
        };
        if shift >= 64 || usize::try_from(g.bits().div_ceil(64)).is_err() {
            return Err(Error::Overflow);
        }
        Ok(g)
    }

    /// Bits of the bitmap (granules of the namespace).
    pub fn bits(&self) -> u64 {
        self.nsze.div_ceil(self.granule_lbas())
    }

    /// Words of the bitmap.
    pub fn words(&self) -> usize {
        usize::try_from(self.bits().div_ceil(64)).unwrap_or(usize::MAX)
    }

    /// LBAs per bit.
    pub fn granule_lbas(&self) -> u64 {
        1u64.checked_shl(u32::from(self.shift)).unwrap_or(0).max(1)
    }
}

/// The mask of bits `[lo, hi)` of one word (`lo < hi <= 64`).
fn mask(lo: u64, hi: u64) -> u64 {
    let upper = u64::MAX
        .checked_shr(u32::try_from(64 - hi).unwrap_or(64))
        .unwrap_or(0);
    upper
        & u64::MAX
            .checked_shl(u32::try_from(lo).unwrap_or(64))
            .unwrap_or(0)
}

/// Sets bits `[from, to)`, a word at a time.
fn set_bits(words: &mut [u64], from: u64, to: u64) -> Result<(), Error> {
    let mut bit = from;
    let have = words.len();
    while bit < to {
        let i = usize::try_from(bit / 64).map_err(|_| Error::Overflow)?;
        let lo = bit % 64;
        let hi = (to - (bit - lo)).min(64);
        *words.get_mut(i).ok_or(Error::Truncated {
            need: i.saturating_add(1),
            have,
        })? |= mask(lo, hi);
        bit = bit - lo + 64;
    }
    Ok(())
}

/// Marks LBAs `[slba, slba + nlb)` dirty (`nlb` 1-based); a range beyond
/// the namespace or an empty one is an error (the caller then marks all).
pub fn mark(words: &mut [u64], g: &Geometry, slba: u64, nlb: u64) -> Result<(), Error> {
    if nlb == 0 {
        return Err(Error::InvalidField("empty LBA range"));
    }
    match slba.checked_add(nlb) {
        Some(end) if end <= g.nsze => set_bits(words, slba >> g.shift, ((end - 1) >> g.shift) + 1),
        _ => Err(Error::OutOfLimits("LBA range beyond the namespace")),
    }
}

/// Marks every LBA dirty.
pub fn mark_all(words: &mut [u64], g: &Geometry) {
    let _ = set_bits(words, 0, g.bits().min(bits_of(words)));
}

/// Marks every bit whose granule starts below `limit_lba` (after a queue
/// overflow: everything already copied may be dirty).
pub fn mark_below(words: &mut [u64], g: &Geometry, limit_lba: u64) {
    let n = limit_lba.div_ceil(g.granule_lbas()).min(g.bits());
    let _ = set_bits(words, 0, n.min(bits_of(words)));
}

/// The bits `words` hold.
fn bits_of(words: &[u64]) -> u64 {
    u64::try_from(words.len())
        .unwrap_or(u64::MAX / 64)
        .saturating_mul(64)
}

/// The first set bit at or after `from`, below `end`.
fn next_set(words: &[u64], from: u64, end: u64) -> Option<u64> {
    let mut bit = from;
    while bit < end {
        let w = *words.get(usize::try_from(bit / 64).ok()?)?;
        let rest = w >> (bit % 64);
        if rest != 0 {
            let found = bit + u64::from(rest.trailing_zeros());
            return (found < end).then_some(found);
        }
        bit = bit - bit % 64 + 64;
    }
    None
}

/// The length of the run of set bits that starts at `start`, at most
/// `max` bits.
fn run_len(words: &[u64], start: u64, max: u64) -> u64 {
    let mut bit = start;
    let end = start.saturating_add(max);
    while bit < end {
        let Some(w) = usize::try_from(bit / 64).ok().and_then(|i| words.get(i)) else {
            break;
        };
        let lo = bit % 64;
        let n = u64::from((!(*w >> lo)).trailing_zeros())
            .min(64 - lo)
            .min(end - bit);
        bit += n;
        if n == 0 || lo + n < 64 {
            break;
        }
    }
    bit - start
}

/// Clears bits `[from, to)`, a word at a time (bits the words do not hold
/// are ignored).
fn clear_bits(words: &mut [u64], from: u64, to: u64) {
    let mut bit = from;
    while bit < to {
        let lo = bit % 64;
        let hi = (to - (bit - lo)).min(64);
        let Some(w) = usize::try_from(bit / 64)
            .ok()
            .and_then(|i| words.get_mut(i))
        else {
            return;
        };
        *w &= !mask(lo, hi);
        bit = bit - lo + 64;
    }
}

/// A run of dirty granules, as [`peek_run`] and [`take_run`] find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First LBA.
    pub slba: u64,
    /// LBAs (1-based), clipped to the namespace.
    pub nlb: u64,
    /// The bit after the run: where the next search starts.
    pub next_bit: u64,
}

/// The first dirty bit at or after `from_bit` and the run of at most
/// `max_bits` contiguous dirty bits that starts there, as LBAs clipped to
/// the namespace; `None` if clean from there. Changes nothing: walking
/// from bit 0 with each run's `next_bit` visits exactly the runs repeated
/// [`take_run`] calls would take.
pub fn peek_run(words: &[u64], g: &Geometry, from_bit: u64, max_bits: u64) -> Option<Run> {
    if max_bits == 0 {
        return None;
    }
    let start = next_set(words, from_bit, g.bits())?;
    let n = run_len(words, start, max_bits.min(g.bits() - start));
    let slba = start << g.shift;
    let end = (start + n)
        .checked_shl(u32::from(g.shift))
        .filter(|&e| e >> g.shift == start + n)
        .map_or(g.nsze, |e| e.min(g.nsze));
    Some(Run {
        slba,
        nlb: end - slba,
        next_bit: start + n,
    })
}

/// Finds the first dirty bit at or after `from_bit`, clears the run of at
/// most `max_bits` contiguous dirty bits that starts there, and returns
/// `(slba, nlb)` of its LBAs clipped to the namespace; `None` if clean
/// from there.
pub fn take_run(
    words: &mut [u64],
    g: &Geometry,
    from_bit: u64,
    max_bits: u64,
) -> Option<(u64, u64)> {
    let run = peek_run(words, g, from_bit, max_bits)?;
    clear_bits(words, run.slba >> g.shift, run.next_bit);
    Some((run.slba, run.nlb))
}

/// The dirty bits.
pub fn count(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

/// What [`apply_entry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Marked LBAs dirty.
    Marked,
    /// Nothing: another namespace, LBAs not copied yet, or no change.
    Ignored,
    /// The entry ends or starts a run of logging (its change, if any, was
    /// applied): the caller acts on [`Marker::Full`], [`Marker::Suspended`]
    /// and the others.
    Marker(Marker),
}

/// Applies one decoded UDMQ entry to the set of namespace `nsid`, whose
/// LBAs at and after `copied_below` are still to be copied in bulk (and
/// need no mark): a range of `nsid` is marked below `copied_below`; a
/// whole-namespace change (whose NSID the entry need not carry) marks
/// every granule below `copied_below`; no change marks nothing. A range
/// beyond the namespace is an error (the caller then marks all).
pub fn apply_entry(
    words: &mut [u64],
    g: &Geometry,
    nsid: u32,
    copied_below: u64,
    e: &Entry,
) -> Result<Applied, Error> {
    let did = match e.change {
        Change::Range if e.nsid == nsid => mark_copied(words, g, copied_below, e)?,
        Change::WholeNamespace if copied_below > 0 => {
            mark_below(words, g, copied_below);
            Applied::Marked
        }
        _ => Applied::Ignored,
    };
    Ok(match e.marker {
        Marker::None => did,
        m => Applied::Marker(m),
    })
}

/// Marks the part of `e`'s range below `copied_below`.
fn mark_copied(
    words: &mut [u64],
    g: &Geometry,
    copied_below: u64,
    e: &Entry,
) -> Result<Applied, Error> {
    let nlb = u64::from(e.nlb) + 1;
    match e.slba.checked_add(nlb) {
        Some(end) if end <= g.nsze => {
            if e.slba >= copied_below {
                return Ok(Applied::Ignored);
            }
            mark(words, g, e.slba, end.min(copied_below) - e.slba)?;
            Ok(Applied::Marked)
        }
        _ => Err(Error::OutOfLimits("LBA range beyond the namespace")),
    }
}
