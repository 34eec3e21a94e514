// SPDX-License-Identifier: GPL-2.0

//! NVMe controller registers (BAR0) and their fields.

/// Controller Capabilities.
pub const CAP: u64 = 0x00;
/// Version.
pub const VS: u64 = 0x08;
/// Interrupt Mask Set.
pub const INTMS: u64 = 0x0c;
/// Controller Configuration.
pub const CC: u64 = 0x14;
/// Controller Status.
pub const CSTS: u64 = 0x1c;
/// Admin Queue Attributes.
pub const AQA: u64 = 0x24;
/// Admin Submission Queue base.
pub const ASQ: u64 = 0x28;
/// Admin Completion Queue base.
pub const ACQ: u64 = 0x30;
/// First doorbell.
pub const DOORBELL_BASE: u64 = 0x1000;

/// CC.EN.
pub const CC_EN: u32 = 1;
/// CC.IOSQES = 6 (64-byte SQ entries), CC.IOCQES = 4 (16-byte CQ entries).
pub const CC_ENTRY_SIZES: u32 = (6 << 16) | (4 << 20);
/// CSTS.RDY.
pub const CSTS_RDY: u32 = 1;
/// CSTS.CFS (controller fatal status).
pub const CSTS_CFS: u32 = 2;

/// CAP.MQES: largest queue size, 0's based.
pub fn cap_mqes(cap: u64) -> u16 {
    // CAST: bits 15:0.
    (cap & 0xffff) as u16
}

/// CAP.TO: worst-case ready time in 500 ms units.
pub fn cap_timeout_ms(cap: u64) -> u64 {
    ((cap >> 24) & 0xff).max(1) * 500
}

/// CAP.DSTRD: doorbell stride, bytes.
pub fn cap_doorbell_stride(cap: u64) -> u64 {
    4 << ((cap >> 32) & 0xf)
}
