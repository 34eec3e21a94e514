// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), the kernel's implementation: the architecture's
//! instructions where the CPU has them (SSE4.2 `crc32`, PCLMULQDQ folding
//! on x86), a table otherwise.
//!
//! C header: [`include/linux/crc32.h`](srctree/include/linux/crc32.h)

use crate::bindings;

/// CRC-32C of `data`, continuing from `crc` (0 to start): the standard
/// CRC-32C (initial value and final value inverted), so that
/// `crc32c(crc32c(0, a), b) == crc32c(0, ab)` and
/// `crc32c(0, b"123456789") == 0xe306_9283`.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is valid for reads of `data.len()` bytes for the
    // duration of the call, and `crc32c()` only reads them. The C function
    // takes and returns the register without the inversions.
    !unsafe { bindings::crc32c(!crc, data.as_ptr().cast(), data.len()) }
}
