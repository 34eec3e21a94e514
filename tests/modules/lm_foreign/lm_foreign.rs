// SPDX-License-Identifier: GPL-2.0

//! A module that is not nvme_vfio_pci and reaches for the PF's live
//! migration service through `kernel::nvme_lm`. The service's functions
//! are exported only to nvme_vfio_pci (and its test driver); the Rust
//! wrappers are `#[inline]`, so their calls are compiled into this module,
//! and modpost must refuse to link it. `make check` builds this module and
//! expects exactly that failure.

use kernel::{device, nvme_lm::Handle, pci, prelude::*};

module! {
    type: LmForeign,
    name: "lm_foreign",
    authors: ["nvme-vfio developers"],
    description: "Test: a foreign module cannot use the NVMe LM service",
    license: "GPL",
}

struct LmForeign;

/// Takes a VF's migration handle, as nvme_vfio_pci's probe does.
#[inline(never)]
fn take(vf: &pci::Device<device::Core<'_>>) -> Result<Handle> {
    Handle::get(vf)
}

impl kernel::Module for LmForeign {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // Keep `take` (and so the service's symbol) in the object.
        let f: fn(&pci::Device<device::Core<'_>>) -> Result<Handle> = take;
        pr_info!("lm_foreign: {:p}\n", f as *const ());
        Ok(Self)
    }
}
