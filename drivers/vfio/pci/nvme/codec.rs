// SPDX-License-Identifier: GPL-2.0

//! Wire formats of NVMe Host Managed Live Migration (HMLM, NVMe Base 2.1).
//!
//! Pure `core` code with no kernel or `std` dependency: the `nvme_vfio_pci`
//! driver and the host tool `tools/nvme-lm` compile these same files (the
//! tool includes them by path), so the two can never disagree on a layout.
//! Every parser takes untrusted bytes, checks lengths before it reads, and
//! never panics; every encoder writes explicit little-endian fields.
//!
//! Abbreviations: CNTLID controller identifier; SCID secondary controller
//! identifier; CSVI controller state version index; CSUUIDI controller state
//! UUID index; CDQ controller data queue; UDMQ user data migration queue.

pub mod bytes;
pub mod cmd;
pub mod dirty;
pub mod error;
pub mod identify;
pub mod media;
pub mod namespaces;
pub mod state;
pub mod stream;
pub mod track;
pub mod udmq;

pub use error::Error;
