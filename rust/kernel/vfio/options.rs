// SPDX-License-Identifier: GPL-2.0

//! The boolean per-device options of a variant driver ([`PciDriver::OPTIONS`]):
//! one sysfs file each in the directory of every device the driver binds,
//! through the driver's `dev_groups`.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h)

use super::{
    Device,
    PciDriver, //
};
use crate::{
    bindings,
    prelude::*,
    str::{
        as_char_ptr_in_const_context,
        kstrtobool_bytes, //
    },
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

/// The most options a driver may have.
pub const MAX_OPTIONS: usize = 8;

/// Mode of an option's file: written by root, read by all.
const MODE: bindings::umode_t = 0o644;

/// One option's attribute: [`Tables::attrs`] maps a `device_attribute`
/// back to the option's index (`attr` is at offset 0).
#[repr(C)]
struct OptionAttr {
    attr: bindings::device_attribute,
    index: usize,
}

/// What the driver core reads: the attributes, the NULL-terminated array of
/// them, their group and the NULL-terminated array of groups.
struct Tables {
    attrs: [OptionAttr; MAX_OPTIONS],
    ptrs: [*mut bindings::attribute; MAX_OPTIONS + 1],
    group: bindings::attribute_group,
    groups: [*const bindings::attribute_group; 2],
}

/// The `dev_groups` of a driver with options, `None` without options.
///
/// # Invariants
///
/// `tables`, if set, is a leaked `KBox<Tables>` whose pointers point into
/// itself: `groups` is `[&group, NULL]`, `group.attrs` is `ptrs`, `ptrs` holds
/// `&attrs[i].attr.attr` for every `i < T::OPTIONS.len()`, then NULL, and
/// `attrs[i]` is named `T::OPTIONS[i]`, has index `i` and the callbacks of
/// `Options<T>`. It is freed on drop only.
pub(super) struct Options<T: PciDriver> {
    tables: Option<NonNull<Tables>>,
    _t: PhantomData<T>,
}

// SAFETY: The tables are written before the driver is registered and only
// read after that (by the driver core, from any thread).
unsafe impl<T: PciDriver> Send for Options<T> {}

// SAFETY: As for `Send`: nothing writes the tables after construction.
unsafe impl<T: PciDriver> Sync for Options<T> {}

impl<T: PciDriver> Options<T> {
    /// The number of options is checked at compile time.
    const COUNT: usize = {
        assert!(
            T::OPTIONS.len() <= MAX_OPTIONS,
            "vfio::PciDriver::OPTIONS: more than MAX_OPTIONS options"
        );
        T::OPTIONS.len()
    };

    /// The tables of `T::OPTIONS` (none without options).
    pub(super) fn new() -> Result<Self> {
        if Self::COUNT == 0 {
            // INVARIANT: No tables.
            return Ok(Self {
                tables: None,
                _t: PhantomData,
            });
        }
        // SAFETY: All-zero is a valid `Tables`: null pointers, `None`
        // callbacks, zero modes and indexes.
        let tables = KBox::new(unsafe { core::mem::zeroed::<Tables>() }, GFP_KERNEL)?;
        let t = KBox::into_raw(tables);
        for (i, name) in T::OPTIONS.iter().enumerate() {
            // SAFETY: `t` is a valid, exclusively owned `Tables`; `i` is below
            // `COUNT <= MAX_OPTIONS`, in bounds of `attrs` and `ptrs`.
            unsafe {
                let a = &raw mut (*t).attrs[i];
                (*a).index = i;
                (*a).attr.attr.name = as_char_ptr_in_const_context(name);
                (*a).attr.attr.mode = MODE;
                // A dynamic attribute needs a static lock class key for
                // lockdep (C: `sysfs_attr_init()`).
                #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
                {
                    (*a).attr.attr.key = crate::static_lock_class!().as_ptr();
                }
                (*a).attr.__bindgen_anon_1.show = Some(Self::show_callback);
                (*a).attr.__bindgen_anon_2.store = Some(Self::store_callback);
                (*t).ptrs[i] = &raw mut (*a).attr.attr;
            }
        }
        // SAFETY: As above; `ptrs[COUNT]` stays NULL, and so does
        // `groups[1]`.
        unsafe {
            (*t).group.__bindgen_anon_2.attrs = (&raw mut (*t).ptrs).cast();
            (*t).groups[0] = &raw const (*t).group;
        }
        // INVARIANT: `t` is leaked and filled in as the invariant says.
        Ok(Self {
            // SAFETY: `KBox::into_raw` never returns NULL.
            tables: Some(unsafe { NonNull::new_unchecked(t) }),
            _t: PhantomData,
        })
    }

    /// The NULL-terminated `dev_groups` of the driver, or NULL without
    /// options; valid until `self` is dropped.
    pub(super) fn dev_groups(&self) -> *mut *const bindings::attribute_group {
        match self.tables {
            // SAFETY: By the type invariant the tables are live.
            Some(t) => unsafe { (&raw mut (*t.as_ptr()).groups).cast() },
            None => core::ptr::null_mut(),
        }
    }

    /// The device bound to `T` whose option file is being read or written.
    ///
    /// # Safety
    ///
    /// `dev` must be a device with the files of `T`'s `dev_groups`, in one
    /// of their callbacks.
    unsafe fn bound<'a>(dev: *mut bindings::device) -> Option<&'a Device<T>> {
        // SAFETY: `dev` is valid for the callback.
        let core = unsafe { bindings::dev_get_drvdata(dev) };
        if core.is_null() {
            return None;
        }
        // SAFETY: The driver core creates the files of `dev_groups` after
        // probe succeeded (`really_probe()`: `call_driver_probe()`, then
        // `device_add_groups()`), when drvdata is the registered
        // `Device<T>` (set by `Device::probe` before registering), and
        // removes them before remove (`device_remove()`:
        // `device_remove_groups()`, then the bus's remove, our
        // `remove_callback`, which clears drvdata and puts the reference
        // that keeps the `Device<T>` and its data alive). Removing a kernfs
        // file drains it (`kernfs_drain()` waits for every active reference,
        // which a show or store holds for its whole call), so during a
        // callback drvdata is that `Device<T>`, with its data.
        Some(unsafe { Device::<T>::from_vdev(core.cast()) })
    }

    /// # Safety
    ///
    /// Called by sysfs with `attr`, one of the attributes of
    /// [`Self::dev_groups`], of a device `dev` that has that file, and
    /// `buf`, a page.
    unsafe extern "C" fn show_callback(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: `attr` is the first member of a live `OptionAttr`
        // (`#[repr(C)]`), by the function's safety requirement.
        let index = unsafe { (*attr.cast::<OptionAttr>()).index };
        // SAFETY: By the function's safety requirement.
        let Some(this) = (unsafe { Self::bound(dev) }) else {
            // CAST: an errno fits an `isize`.
            return ENODEV.to_errno() as isize;
        };
        let text: &[u8; 2] = if T::option_get(this.data(), index) {
            b"1\n"
        } else {
            b"0\n"
        };
        // SAFETY: `buf` is a page, writable for the call.
        unsafe { core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len()) };
        // CAST: 2 fits an `isize`.
        text.len() as isize
    }

    /// # Safety
    ///
    /// Called by sysfs with `attr`, one of the attributes of
    /// [`Self::dev_groups`], of a device `dev` that has that file, and
    /// `count` bytes at `buf`.
    unsafe extern "C" fn store_callback(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *const c_char,
        count: usize,
    ) -> isize {
        // SAFETY: `attr` is the first member of a live `OptionAttr`
        // (`#[repr(C)]`), by the function's safety requirement.
        let index = unsafe { (*attr.cast::<OptionAttr>()).index };
        // SAFETY: By the function's safety requirement.
        let Some(this) = (unsafe { Self::bound(dev) }) else {
            // CAST: an errno fits an `isize`.
            return ENODEV.to_errno() as isize;
        };
        // SAFETY: `buf` holds `count` bytes for the call.
        let text = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
        let done = isize::try_from(count)
            .map_err(|_| EINVAL)
            .and_then(|n| Ok((n, kstrtobool_bytes(text)?)))
            .and_then(|(n, value)| T::option_set(this, index, value).map(|()| n));
        match done {
            Ok(n) => n,
            // CAST: an errno fits an `isize`.
            Err(e) => e.to_errno() as isize,
        }
    }
}

impl<T: PciDriver> Drop for Options<T> {
    fn drop(&mut self) {
        if let Some(t) = self.tables {
            // SAFETY: By the type invariant `t` is a leaked `KBox<Tables>`,
            // freed only here; the owner unregistered the driver first, so
            // the driver core no longer references the tables.
            drop(unsafe { KBox::from_raw(t.as_ptr()) });
        }
    }
}
