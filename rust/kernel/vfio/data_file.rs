// SPDX-License-Identifier: GPL-2.0

//! The migration data file of a VFIO device: the `data_fd` a transition to
//! a saving or resuming state returns.
//!
//! It is an anonymous-inode stream file (no seeking: positioned reads and
//! writes fail with `ESPIPE`). Its private data is a reference-counted
//! object of the driver's, so the file may outlive the VFIO device safely
//! (the uAPI lets userspace keep it open after closing the device): the
//! object must hold no reference to the device, and the driver brings it
//! to its end (`ENODEV` afterwards) when the migration session ends. The
//! file holds a reference to the owner module.
//!
//! C headers: [`include/linux/anon_inodes.h`](srctree/include/linux/anon_inodes.h),
//! [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h)

use super::migration::PrecopyInfo;
use crate::{
    bindings,
    fs::File,
    ioctl::_IO,
    module::{this_module, ModuleMetadata},
    prelude::*,
    sync::{poll::PollTable, Arc},
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
};
use core::{marker::PhantomData, ptr::NonNull};

/// `VFIO_MIG_GET_PRECOPY_INFO`: `_IO(VFIO_TYPE, VFIO_BASE + 21)`.
const VFIO_MIG_GET_PRECOPY_INFO: u32 = _IO(b';' as u32, 100 + 21);

/// Bytes of `struct vfio_precopy_info` up to and including `dirty_bytes`.
const PRECOPY_INFO_LEN: usize = 24;

/// The direction of a data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Saving: userspace reads the device state.
    Save,
    /// Resuming: userspace writes a device state.
    Resume,
}

/// What a migration data file does; implemented by the driver's session.
pub trait DataFileOps: Send + Sync + Sized + 'static {
    /// The module the file operations belong to (pinned while a file is
    /// open).
    type OwnerModule: ModuleMetadata;

    /// Copies the next stream bytes to `out`; returns how many. 0 means the
    /// end of the stream; `ENOMSG` a temporary end (PRE_COPY).
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize>;

    /// Takes the next stream bytes from `inp`; returns how many.
    fn write(&self, inp: &mut UserSliceReader) -> Result<usize>;

    /// The poll mask (`EPOLL*`) now; registers on `table` to be woken.
    fn poll(&self, file: &File, table: PollTable<'_>) -> u32;

    /// Answers `VFIO_MIG_GET_PRECOPY_INFO`; also whether the user opted in
    /// to `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2` (flags are then output,
    /// and returned as 0).
    fn precopy_info(&self) -> Result<(PrecopyInfo, bool)>;
}

/// A new migration data file, owning one reference to it until it is
/// handed to the VFIO core.
///
/// # Invariants
///
/// `file` is a file created by [`DataFile::new`] whose reference this
/// value owns.
pub struct DataFile {
    file: NonNull<bindings::file>,
}

// SAFETY: A file reference may be released from any thread.
unsafe impl Send for DataFile {}

struct Vtable<T>(PhantomData<T>);

impl<T: DataFileOps> Vtable<T> {
    const FOPS: bindings::file_operations = bindings::file_operations {
        owner: this_module::<T::OwnerModule>().as_ptr(),
        read: Some(Self::read),
        write: Some(Self::write),
        poll: Some(Self::poll),
        unlocked_ioctl: Some(Self::ioctl),
        // `bindings::compat_ptr_ioctl` is already an `Option`: `Some` of the C
        // function with `CONFIG_COMPAT`, `None` without (rust/bindings/lib.rs),
        // as `miscdevice` uses it.
        compat_ioctl: bindings::compat_ptr_ioctl,
        release: Some(Self::release),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// `file` must be a live file created by [`DataFile::new`] for `T`.
    unsafe fn ops<'a>(file: *mut bindings::file) -> &'a T {
        // SAFETY: The private data of such a file is an `Arc<T>` released
        // only by `release`, which runs after every other operation.
        unsafe { &*(*file).private_data.cast::<T>() }
    }

    /// # Safety
    ///
    /// Called by the VFS on a file created by [`DataFile::new`] for `T`.
    unsafe extern "C" fn read(
        file: *mut bindings::file,
        buf: *mut c_char,
        len: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        if !pos.is_null() {
            return ESPIPE.to_errno() as isize;
        }
        let mut out = UserSlice::new(UserPtr::from_ptr(buf.cast()), len).writer();
        // SAFETY: By the function's safety requirement.
        match unsafe { Self::ops(file) }.read(&mut out) {
            // CAST: at most `len` bytes, which fits an `isize` (VFS limit).
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on a file created by [`DataFile::new`] for `T`.
    unsafe extern "C" fn write(
        file: *mut bindings::file,
        buf: *const c_char,
        len: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        if !pos.is_null() {
            return ESPIPE.to_errno() as isize;
        }
        let mut inp = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), len).reader();
        // SAFETY: By the function's safety requirement.
        match unsafe { Self::ops(file) }.write(&mut inp) {
            // CAST: at most `len` bytes, which fits an `isize` (VFS limit).
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on a file created by [`DataFile::new`] for `T`,
    /// with a valid (possibly NULL) poll table.
    unsafe extern "C" fn poll(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> bindings::__poll_t {
        // SAFETY: `file` is live for the call.
        let f = unsafe { File::from_raw_file(file) };
        // SAFETY: The VFS passes a valid poll table for the call.
        let table = unsafe { PollTable::from_raw(table) };
        // SAFETY: By the function's safety requirement.
        unsafe { Self::ops(file) }.poll(f, table)
    }

    /// # Safety
    ///
    /// Called by the VFS on a file created by [`DataFile::new`] for `T`.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: By the function's safety requirement.
        let ops = unsafe { Self::ops(file) };
        let ret = (|| -> Result {
            if cmd != VFIO_MIG_GET_PRECOPY_INFO {
                return Err(ENOTTY);
            }
            // `arg` is a user address.
            let user = UserPtr::from_addr(arg);
            let mut raw = [0u8; PRECOPY_INFO_LEN];
            UserSlice::new(user, PRECOPY_INFO_LEN)
                .reader()
                .read_slice(&mut raw)?;
            let argsz = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
            // CAST: the length is 24.
            if argsz < PRECOPY_INFO_LEN as u32 {
                return Err(EINVAL);
            }
            let (info, flags_are_output) = ops.precopy_info()?;
            if flags_are_output {
                raw[4..8].fill(0);
            }
            raw[8..16].copy_from_slice(&info.initial_bytes.to_ne_bytes());
            raw[16..24].copy_from_slice(&info.dirty_bytes.to_ne_bytes());
            UserSlice::new(user, PRECOPY_INFO_LEN)
                .writer()
                .write_slice(&raw)
        })();
        match ret {
            Ok(()) => 0,
            // CAST: an errno fits a `long`.
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS once, when the last reference to a file created by
    /// [`DataFile::new`] for `T` goes away.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The private data is the `Arc<T>` that `DataFile::new`
        // leaked into the file; nothing uses it after release.
        drop(unsafe { Arc::from_raw((*file).private_data.cast::<T>()) });
        0
    }
}

impl DataFile {
    /// Creates a data file named `name` whose operations are `ops`'s.
    pub fn new<T: DataFileOps>(name: &'static CStr, ops: Arc<T>, dir: Direction) -> Result<Self> {
        let flags = match dir {
            Direction::Save => bindings::O_RDONLY,
            Direction::Resume => bindings::O_WRONLY,
        };
        let private = Arc::into_raw(ops).cast_mut();
        // SAFETY: `name` is a NUL-terminated string that lives forever;
        // `FOPS` is a `'static` table whose operations expect an `Arc<T>`
        // as private data, which `private` is.
        let file = unsafe {
            bindings::anon_inode_getfile(
                name.as_char_ptr(),
                &Vtable::<T>::FOPS,
                private.cast(),
                // CAST: `O_*` flags fit a `c_int`.
                flags as c_int,
            )
        };
        let file =
            match crate::error::from_err_ptr(file).and_then(|f| NonNull::new(f).ok_or(ENOMEM)) {
                Ok(file) => file,
                Err(e) => {
                    // SAFETY: The file was not created: `private` is still ours.
                    drop(unsafe { Arc::from_raw(private) });
                    return Err(e);
                }
            };
        // SAFETY: `file` is a new, valid file (so is its inode) that
        // nobody else uses yet.
        unsafe { bindings::stream_open((*file.as_ptr()).f_inode, file.as_ptr()) };
        Ok(Self { file })
    }

    /// Hands the reference to the caller (the VFIO core installs it as the
    /// user's file descriptor).
    pub(super) fn into_raw(self) -> *mut bindings::file {
        let file = self.file.as_ptr();
        core::mem::forget(self);
        file
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this value owns a reference.
        unsafe { bindings::fput(self.file.as_ptr()) };
    }
}
