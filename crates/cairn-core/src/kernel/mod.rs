//! The kernel: the in-memory state and its views, catching up with the
//! store, the one commit function (the only caller of `Store::commit`) and
//! the one appender of audit records that are not changes, the watch hub,
//! the metrics registry and the clock. Features build on it (each feature's
//! handle holds a `&Kernel`); it depends on none of them but the compiled
//! views it caches (`state`).

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
    store: Arc<dyn Store>,
    state: RwLock<state::State>,
    sync_lock: tokio::sync::Mutex<()>,
    head_tx: tokio::sync::watch::Sender<Revision>,
    /// Watched views (see `watch`).
    hub: watch::Hub,
    /// The last sync failed: memory may be behind the database.
    stale: std::sync::atomic::AtomicBool,
    compacted: std::sync::atomic::AtomicI64,
    metrics: metrics::Metrics,
    /// The audit chain's key (from the master key), passed with every commit.
    audit_key: AuditKey,
    /// A second audit destination, written before each commit (fail closed).
    audit_sink: Option<Arc<dyn AuditSink>>,
    /// Recorded in every audit record.
    replica: String,
    clock: Arc<dyn clock::Clock>,
}

pub mod clock;
pub mod metrics;
pub mod state;
pub mod watch;

impl Kernel {
    /// Build the kernel over `store`, with memory loaded to `state`.
    #[allow(clippy::too_many_arguments)] // one of each collaborator
    pub(crate) fn new(
        store: Arc<dyn Store>,
        state: state::State,
        compacted: Revision,
        audit_key: AuditKey,
        audit_sink: Option<Arc<dyn AuditSink>>,
        replica: String,
        clock: Arc<dyn clock::Clock>,
    ) -> Kernel {
        let (head_tx, _) = tokio::sync::watch::channel(state.head.revision);
        Kernel {
            store,
            state: RwLock::new(state),
            sync_lock: tokio::sync::Mutex::new(()),
            head_tx,
            hub: Default::default(),
            stale: Default::default(),
            compacted: compacted.into(),
            metrics: Default::default(),
            audit_key,
            audit_sink,
            replica,
            clock,
        }
    }

    /// The store, for features' reads (only `commit` writes versioned state).
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This process's metrics registry (features count in it).
    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The audit chain's key (secret reads are sealed into it too).
    pub(crate) fn audit_key(&self) -> AuditKey {
        self.audit_key
    }
}
