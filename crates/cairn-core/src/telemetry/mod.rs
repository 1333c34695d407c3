//! What SDKs report: applied state and evaluation counts (`applied`). The
//! metrics registry is the kernel's (`crate::kernel::metrics`, also at its
//! old path `telemetry::metrics`).

pub mod applied;

pub use crate::kernel::metrics;

use crate::kernel::Kernel;

/// The reports feature ([`crate::Service::telemetry`]): SDK reports, the
/// applied state of instances.
#[derive(Clone, Copy)]
pub struct Telemetry<'a> {
    kernel: &'a Kernel,
}

impl<'a> Telemetry<'a> {
    pub(crate) fn new(kernel: &'a Kernel) -> Self {
        Telemetry { kernel }
    }
}
