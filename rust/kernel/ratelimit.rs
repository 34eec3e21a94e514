// SPDX-License-Identifier: GPL-2.0

//! Rate limits for log messages a user can trigger at will.
//!
//! C header: [`include/linux/ratelimit.h`](srctree/include/linux/ratelimit.h)

use crate::{
    bindings,
    prelude::*,
    time::{msecs_to_jiffies, Msecs},
    types::Opaque,
};

/// At most `burst` events per `interval`: a `struct ratelimit_state`. When
/// an interval with suppressed events ends, the kernel logs how many were
/// suppressed, under [`RateLimit::name`].
///
/// # Invariants
///
/// `state` was initialised by `ratelimit_state_init()` and is pinned.
#[pin_data]
pub struct RateLimit {
    #[pin]
    state: Opaque<bindings::ratelimit_state>,
    name: &'static CStr,
}

// SAFETY: `___ratelimit()` serialises on the state's own raw spinlock; the
// state holds no reference to the thread that initialised it.
unsafe impl Send for RateLimit {}

// SAFETY: see `Send`: concurrent `___ratelimit()` calls are serialised.
unsafe impl Sync for RateLimit {}

impl RateLimit {
    /// At most `burst` events per `interval_ms` milliseconds (the kernel's
    /// default is 10 per 5000); suppression notices name `name`.
    pub fn new(name: &'static CStr, interval_ms: Msecs, burst: u16) -> impl PinInit<Self> {
        let interval = i32::try_from(msecs_to_jiffies(interval_ms)).unwrap_or(i32::MAX);
        pin_init!(Self {
            // INVARIANT: `ratelimit_state_init()` initialises the state in
            // place, where it stays pinned.
            state <- Opaque::ffi_init(move |p| {
                // SAFETY: `p` points to memory for a `ratelimit_state` that
                // nothing else uses yet.
                unsafe { bindings::ratelimit_state_init(p, interval, i32::from(burst)) }
            }),
            name,
        })
    }

    /// The name suppression notices carry.
    pub fn name(&self) -> &'static CStr {
        self.name
    }

    /// Whether one more event may be reported now.
    pub fn allow(&self) -> bool {
        // SAFETY: `state` is initialised and pinned (type invariant), and
        // `name` is a NUL-terminated string that lives forever.
        unsafe { bindings::___ratelimit(self.state.get(), self.name.as_char_ptr()) != 0 }
    }
}

/// [`dev_err!`](crate::dev_err) if the [`RateLimit`] `$limit` allows it.
#[macro_export]
macro_rules! dev_err_ratelimited {
    ($limit:expr, $dev:expr, $($f:tt)*) => {
        if $limit.allow() {
            $crate::dev_err!($dev, $($f)*);
        }
    };
}

/// [`dev_warn!`](crate::dev_warn) if the [`RateLimit`] `$limit` allows it.
#[macro_export]
macro_rules! dev_warn_ratelimited {
    ($limit:expr, $dev:expr, $($f:tt)*) => {
        if $limit.allow() {
            $crate::dev_warn!($dev, $($f)*);
        }
    };
}
