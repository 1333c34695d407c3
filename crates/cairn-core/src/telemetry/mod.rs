//! What SDKs report: applied state and evaluation counts (`applied`). The
//! metrics registry is the kernel's (`crate::kernel::metrics`, also at its
//! old path `telemetry::metrics`).

pub mod applied;

pub use crate::kernel::metrics;
