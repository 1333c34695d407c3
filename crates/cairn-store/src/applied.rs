//! Applied state: what each SDK or agent instance reports it has applied
//! (groundwork for drift detection, DESIGN.md §9). Telemetry, not a change:
//! written outside [`crate::Store::commit`], without a revision or an audit
//! record (like flag evaluation counts).

use cairn_model::Revision;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The configuration one instance of (app, env) last reported it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedState {
    pub app: String,
    pub env: String,
    /// The reporting instance (chosen by the SDK: host, process, …).
    pub instance: String,
    /// Revision of the resolved view the instance applied.
    pub revision: Revision,
    /// Checksum of the resolved view the instance applied.
    pub checksum: String,
    /// When the instance last reported.
    pub reported_at: DateTime<Utc>,
}
