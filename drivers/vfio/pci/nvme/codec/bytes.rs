// SPDX-License-Identifier: GPL-2.0

//! Bounds-checked little-endian field access on byte slices.

use super::Error;

/// Returns `N` bytes of `buf` at `off`, or [`Error::Truncated`].
pub fn array<const N: usize>(buf: &[u8], off: usize) -> Result<[u8; N], Error> {
    let need = off.checked_add(N).ok_or(Error::Overflow)?;
    buf.get(off..need)
        .and_then(|s| s.first_chunk::<N>())
        .copied()
        .ok_or(Error::Truncated {
            need,
            have: buf.len(),
        })
}

/// Reads a byte at `off`.
pub fn u8_at(buf: &[u8], off: usize) -> Result<u8, Error> {
    buf.get(off).copied().ok_or(Error::Truncated {
        need: off.saturating_add(1),
        have: buf.len(),
    })
}

/// Reads a little-endian `u16` at `off`.
pub fn le16(buf: &[u8], off: usize) -> Result<u16, Error> {
    array(buf, off).map(u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `off`.
pub fn le32(buf: &[u8], off: usize) -> Result<u32, Error> {
    array(buf, off).map(u32::from_le_bytes)
}

/// Reads a little-endian `u64` at `off`.
pub fn le64(buf: &[u8], off: usize) -> Result<u64, Error> {
    array(buf, off).map(u64::from_le_bytes)
}

/// Writes `val` at `off`, or fails with [`Error::Truncated`].
pub fn put(buf: &mut [u8], off: usize, val: &[u8]) -> Result<(), Error> {
    let need = off.checked_add(val.len()).ok_or(Error::Overflow)?;
    let have = buf.len();
    buf.get_mut(off..need)
        .ok_or(Error::Truncated { need, have })?
        .copy_from_slice(val);
    Ok(())
}

/// `true` if every byte of `buf[from..to]` that exists is zero.
pub fn zero(buf: &[u8], from: usize, to: usize) -> bool {
    buf.get(from..to.min(buf.len()))
        .is_none_or(|s| s.iter().all(|&b| b == 0))
}
