// SPDX-License-Identifier: GPL-2.0

//! A small polled NVMe driver in userspace over VFIO: the "guest" of the
//! VMM-less tests. It enables a controller's admin queue, creates I/O queue
//! pairs without interrupts, and submits commands whose data lives in a
//! [`crate::dma::Arena`].

pub mod ctrl;
pub mod queue;
pub mod regs;
pub mod sqe;

pub use ctrl::Controller;
pub use queue::QueuePair;
pub use sqe::{
    Cqe,
    Sqe, //
};
