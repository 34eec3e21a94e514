// SPDX-License-Identifier: GPL-2.0

//! DMA memory for the userspace NVMe client: one arena of anonymous memory
//! mapped once into an iommufd IOAS, carved into page-aligned chunks.
//!
//! Every device attached to that IOAS sees the same IOVAs, the way one VM's
//! memory looks to a VF before and after migration.

use crate::vfio::{
    DmaBuffer,
    Iommufd, //
};
use std::cell::Cell;
use std::io;
use std::rc::Rc;

/// Page size of every allocation's alignment.
pub const PAGE: usize = 4096;

/// Memory mapped into an IOAS at `iova_base`.
pub struct Arena {
    buf: DmaBuffer,
    iova_base: u64,
    next: Cell<usize>,
}

/// A piece of the arena.
#[derive(Clone)]
pub struct Chunk {
    arena: Rc<Arena>,
    off: usize,
    len: usize,
}

impl Arena {
    /// Allocates `len` bytes and maps them at `iova_base` in `iommufd`'s IOAS.
    pub fn new(iommufd: &Iommufd, len: usize, iova_base: u64) -> io::Result<Rc<Self>> {
        let buf = DmaBuffer::new(len)?;
        iommufd.map(&buf, iova_base)?;
        Ok(Rc::new(Self {
            buf,
            iova_base,
            next: Cell::new(0),
        }))
    }

    /// IOVA of the first byte.
    pub fn iova_base(&self) -> u64 {
        self.iova_base
    }

    /// Length in bytes (the IOVA range `iova_base..iova_base + len`).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// `true` if empty (never: the buffer is at least a page).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes allocated so far: the offset of the next allocation.
    pub fn used(&self) -> usize {
        self.next.get()
    }

    /// Moves the next allocation to offset `off` (page-aligned, not below
    /// [`Arena::used`], inside the arena) without touching the memory
    /// skipped: tests place buffers at chosen IOVAs this way.
    pub fn skip_to(&self, off: usize) -> io::Result<()> {
        if off % PAGE != 0 || off < self.next.get() || off > self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "DMA arena: cannot skip to offset {off:#x} ({:#x} used of {:#x}, page-aligned)",
                    self.next.get(),
                    self.buf.len()
                ),
            ));
        }
        self.next.set(off);
        Ok(())
    }

    /// Moves the next allocation back to offset `off` (at most
    /// [`Arena::used`]): the memory from `off` on is handed out again. The
    /// caller no longer uses the chunks there (the device no longer
    /// writes them): benchmarks reuse the same buffers this way.
    pub fn rewind(&self, off: usize) -> io::Result<()> {
        if off > self.next.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "DMA arena: cannot rewind to offset {off:#x} ({:#x} used)",
                    self.next.get()
                ),
            ));
        }
        self.next.set(off);
        Ok(())
    }

    /// A zeroed, page-aligned chunk of at least `len` bytes.
    pub fn alloc(self: &Rc<Self>, len: usize) -> io::Result<Chunk> {
        let len = len.max(1).div_ceil(PAGE) * PAGE;
        let off = self.next.get();
        if off + len > self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "DMA arena exhausted ({} of {} bytes used)",
                    off,
                    self.buf.len()
                ),
            ));
        }
        self.next.set(off + len);
        let c = Chunk {
            arena: Rc::clone(self),
            off,
            len,
        };
        c.fill(0);
        Ok(c)
    }

    /// The device addresses the arena spans: first IOVA and length in bytes.
    pub fn iova_range(&self) -> (u64, usize) {
        (self.iova_base, self.buf.len())
    }
}

impl Chunk {
    /// Device address of the first byte.
    pub fn iova(&self) -> u64 {
        self.arena.iova_base + self.off as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if empty (never: allocations are at least a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ptr(&self, off: usize, n: usize) -> *mut u8 {
        assert!(off + n <= self.len, "DMA chunk access out of bounds");
        (self.arena.buf.addr() + self.off + off) as *mut u8
    }

    /// Copies `src` to offset `off` (volatile: the device reads it).
    pub fn write(&self, off: usize, src: &[u8]) {
        let p = self.ptr(off, src.len());
        for (i, b) in src.iter().enumerate() {
            // SAFETY: `p..p+src.len()` lies inside the arena mapping (checked
            // by `ptr`), which lives as long as `self.arena`.
            unsafe { p.add(i).write_volatile(*b) };
        }
    }

    /// Copies from offset `off` into `dst` (volatile: the device writes it).
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        let p = self.ptr(off, dst.len());
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: as in `write`.
            *b = unsafe { p.add(i).read_volatile() };
        }
    }

    /// Sets every byte to `v`.
    pub fn fill(&self, v: u8) {
        let p = self.ptr(0, self.len);
        for i in 0..self.len {
            // SAFETY: as in `write`.
            unsafe { p.add(i).write_volatile(v) };
        }
    }

    /// Reads a little-endian u32 at `off` (volatile).
    pub fn read_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(off, &mut b);
        u32::from_le_bytes(b)
    }
}
