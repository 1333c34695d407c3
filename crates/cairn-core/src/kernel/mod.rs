//! The kernel: the in-memory state and its views, catching up with the
//! store, the one commit function (the only caller of `Store::commit`), the
//! watch hub and the clock. Features build on it; it depends on none of them
//! but the compiled views it caches.

pub(crate) mod commit;
mod sync;

use std::sync::{Arc, RwLock};

use cairn_model::Revision;
use cairn_store::{AuditKey, AuditSink, Store};

pub use commit::{Actor, Origin};

/// What every feature builds on: the store handle (only `commit` writes
/// versioned state through it), the in-memory state, catching up, the watch
/// hub, the clock. It knows no feature's rules.
pub struct Kernel {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) state: RwLock<state::State>,
    pub(crate) sync_lock: tokio::sync::Mutex<()>,
    pub(crate) head_tx: tokio::sync::watch::Sender<Revision>,
    /// Watched views (see `watch`).
    pub(crate) hub: watch::Hub,
    /// The last sync failed: memory may be behind the database.
    pub(crate) stale: std::sync::atomic::AtomicBool,
    pub(crate) compacted: std::sync::atomic::AtomicI64,
    pub(crate) metrics: crate::telemetry::metrics::Metrics,
    /// The audit chain's key (from the master key), passed with every commit.
    pub(crate) audit_key: AuditKey,
    /// A second audit destination, written before each commit (fail closed).
    pub(crate) audit_sink: Option<Arc<dyn AuditSink>>,
    /// Recorded in every audit record.
    pub(crate) replica: String,
    pub(crate) clock: Arc<dyn clock::Clock>,
}

pub mod clock;
pub mod state;
pub mod watch;
