// SPDX-License-Identifier: GPL-2.0

//! Why a buffer was rejected.

/// A decoding or validation failure. Each variant names the rule broken so
/// the caller can log it; [`Error::errno_name`] says which errno it maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the structure does.
    Truncated {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The buffer is longer than the structure says it is.
    TrailingBytes {
        /// Bytes the structure declares.
        declared: usize,
        /// Bytes present.
        have: usize,
    },
    /// A size computation overflowed.
    Overflow,
    /// A field has a value the format does not allow.
    InvalidField(&'static str),
    /// A field is valid but outside the target controller's limits.
    OutOfLimits(&'static str),
}

impl Error {
    /// A short description of the failure, for log messages.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Truncated { .. } => "truncated",
            Error::TrailingBytes { .. } => "trailing bytes",
            Error::Overflow => "size overflow",
            Error::InvalidField(f) | Error::OutOfLimits(f) => f,
        }
    }

    /// The errno the kernel reports for this failure.
    pub fn errno_name(&self) -> &'static str {
        match self {
            Error::Overflow => "EOVERFLOW",
            Error::OutOfLimits(_) => "ERANGE",
            _ => "EINVAL",
        }
    }
}
