// SPDX-License-Identifier: GPL-2.0

//! Rate limits of the messages a VF's user can trigger at will (a VMM
//! writing bad streams, requesting impossible arcs, misusing DMA logging):
//! each VF's log stays bounded, and one tenant cannot silence another's.

use kernel::{prelude::*, ratelimit::RateLimit, sync::Arc};

/// Interval of each limit.
const INTERVAL_MS: u32 = 5000;
/// Messages per interval: enough for one migration's refusals to be named
/// one by one.
const BURST: u16 = 20;

/// The limits of one VF, shared by its sessions and DMA logging.
#[pin_data]
pub(crate) struct UserErrors {
    /// Refused migration streams.
    #[pin]
    pub(crate) stream: RateLimit,
    /// Failed migration and DMA logging requests.
    #[pin]
    pub(crate) request: RateLimit,
}

impl UserErrors {
    /// The limits of a new VF.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                stream <- RateLimit::new(c"nvme_vfio_pci: stream", INTERVAL_MS, BURST),
                request <- RateLimit::new(c"nvme_vfio_pci: request", INTERVAL_MS, BURST),
            }),
            GFP_KERNEL,
        )
    }
}
