//! What SDKs report (applied state, evaluation counts) and the metrics.

pub mod applied;
pub mod metrics;
