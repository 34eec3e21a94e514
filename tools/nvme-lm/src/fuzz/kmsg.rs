// SPDX-License-Identifier: GPL-2.0

//! The kernel log while the fuzzer runs, read from `/dev/kmsg` as it
//! comes (a long run says more than `log_buf_len` holds): lines that must
//! never appear (the patterns of `tests/vm/lib/kernel-log.sh`), and the
//! driver's lines about refused streams, counted.

use crate::kmsg::{
    KmsgTail,
    Record, //
};
use std::io;

/// What the log must never say (KERNEL_LOG_BAD of tests/vm/lib/kernel-log.sh).
const BAD: &[&str] = &[
    "Oops",
    "KASAN",
    "UBSAN",
    "circular locking",
    "recursive locking",
    "inconsistent lock state",
    "possible deadlock",
    "lock held when returning",
    "bad unlock balance",
    "blocked for more than",
    "soft lockup",
    "hard LOCKUP",
    "detected stall",
    "general protection fault",
    "Kernel panic",
    "suspected memory leak",
    "Call Trace",
];

/// Whether `s` has `w` as a whole word.
fn has_word(s: &str, w: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    s.match_indices(w)
        .any(|(i, _)| !word(s[..i].chars().next_back()) && !word(s[i + w.len()..].chars().next()))
}

/// Whether a log line is one that must never appear.
pub fn is_bad(line: &str) -> bool {
    has_word(line, "WARNING") || has_word(line, "BUG") || BAD.iter().any(|b| line.contains(b))
}

/// Counts of the kernel log since the reader opened.
#[derive(Default, Debug)]
pub struct Counts {
    /// Records read.
    pub lines: u64,
    /// "migration stream rejected" lines (the driver's refusals).
    pub rejected: u64,
    /// Other lines of the variant driver ("... failed", ...).
    pub driver_other: u64,
    /// printk rate limiting ("callbacks suppressed").
    pub suppressed: u64,
    /// Records overwritten before they were read.
    pub lost: u64,
    /// The first bad lines.
    pub bad: Vec<String>,
    /// How many bad lines in all.
    pub bad_count: u64,
}

/// A reader of `/dev/kmsg` from the end of what was there at open.
pub struct Kmsg {
    tail: KmsgTail,
    /// What was read so far.
    pub counts: Counts,
}

impl Kmsg {
    /// Opens `/dev/kmsg` at its end.
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            tail: KmsgTail::open()?,
            counts: Counts::default(),
        })
    }

    /// Reads every record available now.
    pub fn poll(&mut self) -> io::Result<()> {
        let Self { tail, counts } = self;
        tail.read_with(|r| match r {
            Record::Message(m) => take(counts, &m),
            // Overwritten before read: the reader moves on to the oldest.
            Record::Lost => counts.lost += 1,
        })
    }
}

/// Counts one message.
fn take(c: &mut Counts, msg: &str) {
    c.lines += 1;
    if msg.contains("migration stream rejected") {
        c.rejected += 1;
    } else if msg.contains("nvme-vfio-pci") {
        c.driver_other += 1;
    }
    if msg.contains("callbacks suppressed") {
        c.suppressed += 1;
    }
    if is_bad(msg) {
        c.bad_count += 1;
        if c.bad.len() < 10 {
            c.bad.push(msg.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_bad;

    #[test]
    fn bad_lines() {
        assert!(is_bad("WARNING: CPU: 0 PID: 1 at foo"));
        assert!(is_bad("BUG: KASAN: slab-out-of-bounds"));
        assert!(is_bad("kernel BUG at mm/slub.c:1"));
        assert!(!is_bad("DEBUG_FOO enabled"));
        assert!(!is_bad(
            "nvme-vfio-pci 0000:01:00.1: migration stream rejected: stream: truncated (EINVAL)"
        ));
    }
}
