// SPDX-License-Identifier: GPL-2.0

//! The kernel log (`/dev/kmsg`) from a moment on: the records logged after
//! [`KmsgTail::open`], read without blocking.

use std::fs::File;
use std::io::{
    self,
    Read,
    Seek,
    SeekFrom, //
};
use std::os::unix::fs::OpenOptionsExt;

/// What a read of the tail gave.
pub enum Record {
    /// A record's message (its first line, without the prefix).
    Message(String),
    /// Records were overwritten before they were read; reading goes on
    /// with the oldest one left.
    Lost,
}

/// `/dev/kmsg`, opened at its end.
pub struct KmsgTail(File);

impl KmsgTail {
    /// Opens `/dev/kmsg` at its end.
    pub fn open() -> io::Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        f.seek(SeekFrom::End(0))?;
        Ok(Self(f))
    }

    /// Calls `each` for every record available now.
    pub fn read_with(&mut self, mut each: impl FnMut(Record)) -> io::Result<()> {
        let mut buf = vec![0u8; 16384];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => each(Record::Message(
                    message(&String::from_utf8_lossy(&buf[..n])).to_string(),
                )),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => each(Record::Lost),
                Err(e) => return Err(e),
            }
        }
    }

    /// The messages logged since the last call (or the open); a read error
    /// ends them.
    pub fn lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let _ = self.read_with(|r| {
            if let Record::Message(m) = r {
                out.push(m);
            }
        });
        out
    }
}

/// The message of a `/dev/kmsg` record: its first line after the `;`.
pub fn message(rec: &str) -> &str {
    rec.split_once(';')
        .map_or(rec, |x| x.1)
        .lines()
        .next()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn record_message() {
        assert_eq!(
            message("6,123,456,-;nvme: hello\n SUBSYSTEM=pci\n"),
            "nvme: hello"
        );
        assert_eq!(message("no prefix"), "no prefix");
        assert_eq!(message("4,1,2,-;"), "");
    }
}
