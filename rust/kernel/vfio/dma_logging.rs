// SPDX-License-Identifier: GPL-2.0

//! Device DMA logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`): the device
//! records the IOVAs it writes by DMA, so a VMM can re-send guest pages the
//! device dirtied during live migration. A driver that implements
//! [`super::PciDriver::log_start`] (with `log_stop` and
//! `log_read_and_clear`) gets `struct vfio_log_ops` for the devices
//! [`super::PciDriver::dma_logging`] accepts.
//!
//! The VFIO core validates the user's ranges (aligned to the page size,
//! not overlapping, at most a page of them) and builds an interval tree of
//! them ([`Ranges`]); a report is a user bitmap the core maps a window of
//! at a time ([`DirtyBitmap`]).
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/iova_bitmap.h`](srctree/include/linux/iova_bitmap.h),
//! [`include/linux/interval_tree.h`](srctree/include/linux/interval_tree.h)

use crate::bindings;
use core::{marker::PhantomData, ptr::NonNull};

// IOVAs are `unsigned long` (`usize`) in these C interfaces and `u64` in the
// uAPI: every `usize` IOVA converts to `u64` losslessly.
const _: () = assert!(core::mem::size_of::<usize>() <= core::mem::size_of::<u64>());

/// An IOVA range, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaRange {
    /// First IOVA.
    pub first: u64,
    /// Last IOVA.
    pub last: u64,
}

/// The IOVA ranges of a `DMA_LOGGING_START`: an interval tree of
/// non-overlapping ranges the VFIO core built, lent to `log_start`.
///
/// # Invariants
///
/// `root` is the root of an interval tree of `count` `interval_tree_node`s
/// that the VFIO core keeps alive and lends exclusively to this value for
/// `'a` (the duration of the `log_start` callback).
pub struct Ranges<'a> {
    root: NonNull<bindings::rb_root_cached>,
    count: u32,
    _borrow: PhantomData<&'a mut bindings::rb_root_cached>,
}

impl Ranges<'_> {
    /// # Safety
    ///
    /// `root` must be the interval tree of `count` nodes that the VFIO core
    /// passed to `log_start`, used only for the duration of that call.
    pub(super) unsafe fn from_raw(root: *mut bindings::rb_root_cached, count: u32) -> Option<Self> {
        // INVARIANT: By the function's safety requirement.
        NonNull::new(root).map(|root| Self {
            root,
            count,
            _borrow: PhantomData,
        })
    }

    /// Number of ranges.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Merges the ranges separated by the smallest gaps until at most `max`
    /// (at least 1) remain (`vfio_combine_iova_ranges()`): the device then
    /// tracks more IOVA than asked, never less.
    #[inline]
    pub fn combine(&mut self, max: u32) {
        let max = max.max(1);
        if self.count <= max {
            return;
        }
        // SAFETY: By the type invariant `root` is a valid interval tree of
        // `count` nodes, borrowed exclusively; the call frees no node (the
        // core owns them) and leaves a tree of `max` nodes.
        unsafe { bindings::vfio_combine_iova_ranges(self.root.as_ptr(), self.count, max) };
        self.count = max;
    }

    /// The ranges, in ascending order.
    pub fn iter(&self) -> RangesIter<'_> {
        // SAFETY: By the type invariant `root` is a valid interval tree.
        let first =
            unsafe { bindings::interval_tree_iter_first(self.root.as_ptr(), 0, usize::MAX) };
        RangesIter {
            node: first,
            _tree: PhantomData,
        }
    }
}

/// Iterator over [`Ranges`].
pub struct RangesIter<'a> {
    node: *mut bindings::interval_tree_node,
    _tree: PhantomData<&'a Ranges<'a>>,
}

impl Iterator for RangesIter<'_> {
    type Item = IovaRange;

    fn next(&mut self) -> Option<IovaRange> {
        if self.node.is_null() {
            return None;
        }
        // SAFETY: A non-null `node` is a node of the tree `Ranges` borrows,
        // which lives and is not modified while this iterator borrows it.
        let (first, last) = unsafe { ((*self.node).start, (*self.node).last) };
        // SAFETY: As above.
        self.node = unsafe { bindings::interval_tree_iter_next(self.node, 0, usize::MAX) };
        // CAST: lossless, by the assertion at the top of this file.
        Some(IovaRange {
            first: first as u64,
            last: last as u64,
        })
    }
}

/// The user's bitmap of a `DMA_LOGGING_REPORT`, one bit per report page.
///
/// # Invariants
///
/// `ptr` is the `struct iova_bitmap` of the report in progress, which the
/// VFIO core keeps alive and lends to this value for `'a` (the duration of
/// the `log_read_and_clear` callback); `window` is the IOVA range of that
/// call, which the bitmap covers.
pub struct DirtyBitmap<'a> {
    ptr: NonNull<bindings::iova_bitmap>,
    window: IovaRange,
    _borrow: PhantomData<&'a mut bindings::iova_bitmap>,
}

impl DirtyBitmap<'_> {
    /// # Safety
    ///
    /// `ptr` must be the bitmap the VFIO core passed to `log_read_and_clear`
    /// with `iova` and `length`, used only for the duration of that call.
    pub(super) unsafe fn from_raw(
        ptr: *mut bindings::iova_bitmap,
        iova: u64,
        length: u64,
    ) -> Option<Self> {
        let last = iova.checked_add(length.checked_sub(1)?)?;
        // INVARIANT: By the function's safety requirement; `window` is the
        // non-empty range of the call.
        NonNull::new(ptr).map(|ptr| Self {
            ptr,
            window: IovaRange { first: iova, last },
            _borrow: PhantomData,
        })
    }

    /// The IOVA range this call reports on.
    pub fn window(&self) -> IovaRange {
        self.window
    }

    /// Marks `[iova, iova + length)` dirty: sets the bit of every report
    /// page it touches. Parts outside [`DirtyBitmap::window`] are ignored.
    pub fn set(&mut self, iova: u64, length: u64) {
        let Some(last) = length.checked_sub(1).and_then(|l| iova.checked_add(l)) else {
            return;
        };
        let first = iova.max(self.window.first);
        let last = last.min(self.window.last);
        if first > last {
            return;
        }
        let (Ok(first), Ok(len)) = (usize::try_from(first), usize::try_from(last - first + 1))
        else {
            return;
        };
        // Log ops are registered only with CONFIG_IOMMUFD_DRIVER, so a
        // bitmap exists only then.
        #[cfg(CONFIG_IOMMUFD_DRIVER)]
        // SAFETY: By the type invariant `ptr` is the live bitmap of this
        // report, covering `window`, which `[first, last]` lies in;
        // `iova_bitmap_set()` maps the user pages it needs itself.
        unsafe {
            bindings::iova_bitmap_set(self.ptr.as_ptr(), first, len)
        };
        #[cfg(not(CONFIG_IOMMUFD_DRIVER))]
        let _ = (first, len);
    }
}
