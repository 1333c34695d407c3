//! The storage seam: one [`Store`] trait that every backend implements, the
//! records it stores, and (feature `testing`) the conformance suite every
//! backend must pass.
//!
//! Invariants every backend keeps:
//! - [`Store::commit`] is one database transaction: it allocates the next
//!   revision (gapless, in commit order, across every process sharing the
//!   database), checks every compare-and-set, writes every mutation *and one
//!   audit record per mutation*, or writes nothing at all. Under the same
//!   lock it checks the commit's [`Guard`] (what its plan was validated
//!   against) against what was committed since the plan's basis.
//! - Versions are immutable: a write adds a version, a delete adds a tombstone.

mod action;
mod applied;
pub mod chain;
mod changes;
pub mod guard;
mod mutation;
mod types;
mod webhooks;

#[cfg(feature = "testing")]
pub mod testing;

pub use action::AuditAction;
pub use applied::AppliedState;
pub use chain::AuditKey;
pub use changes::{ChangeApproval, ChangeFilter, ChangeRecord, ChangeState};
pub use guard::{Changes, Guard, Read};
pub use mutation::*;
pub use types::*;
pub use webhooks::{
    DeliveryAttempt, DeliveryOutcome, DeliveryRecord, DeliveryStatus, NewDelivery, NewWebhook,
    WebhookRecord,
};

use async_trait::async_trait;
use std::sync::Arc;

use cairn_model::{Revision, Scope};

/// Everything that can go wrong in a store, in terms the service can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A compare-and-set failed. Nothing was written.
    #[error("version conflict on {key} at {scope}: expected version {expected}, current version {actual}")]
    Conflict {
        scope: Scope,
        key: String,
        expected: i64,
        actual: i64,
    },
    /// A write of one kind to a key whose live entry is of another kind (one
    /// (scope, key) holds one kind at a time). Nothing was written.
    #[error("{key} at {scope} is a {current} entry; delete it before writing a {requested} there")]
    KindConflict {
        scope: Scope,
        key: String,
        current: &'static str,
        requested: &'static str,
        version: i64,
    },
    /// A change committed after the plan's basis touches what the plan was
    /// validated against ([`Guard`]). Nothing was written; catch up,
    /// validate again and retry.
    #[error("a concurrent change ({what}) touched what this change was validated against")]
    Stale { what: String },
    /// A change request's compare-and-set failed (another transition came
    /// first). Nothing was written.
    #[error("change {id} moved: expected version {expected}, current version {actual}")]
    ChangeConflict {
        id: String,
        expected: i64,
        actual: i64,
    },
    /// An environment's compare-and-set failed: its settings changed since
    /// the revision expected. Nothing was written.
    #[error("environment {name} moved: expected its settings at revision {expected}, they changed at revision {actual}")]
    EnvConflict {
        name: String,
        expected: Revision,
        actual: Revision,
    },
    /// The thing to change does not exist (delete of an absent entry, unknown token …).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The thing to create exists already (app, environment).
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// A revision that was compacted away was asked for.
    #[error("revision {requested} is compacted (oldest retained: {oldest})")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// The database could not be reached; try again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else from the backend.
    #[error("storage error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A second, append-only destination for audit records (e.g. a JSON-lines
/// file shipped elsewhere). Stores call it inside the transaction, after the
/// records are written and before the commit: if the sink fails (or takes too
/// long, which the sink bounds itself), the change is rolled back — fail closed.
#[async_trait]
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    async fn write(&self, records: &[AuditRecord]) -> Result<(), String>;
}

/// The one storage interface. Backends: `cairn-store-sqlite`, `cairn-store-postgres`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and `/readyz` (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Cheap liveness check of the database (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Commit a change set atomically as one new revision (see the crate docs).
    /// An empty `mutations` list is refused with `Backend`.
    async fn commit(&self, commit: Commit) -> StoreResult<Committed>;

    /// The latest committed revision and catalog revision.
    async fn head(&self) -> StoreResult<Head>;

    /// Everything needed to build the in-memory state: apps, environments,
    /// active schemas, every live (non-deleted) entry at its current version.
    async fn load(&self) -> StoreResult<Snapshot>;

    /// Every entry version committed after `after`, in revision order
    /// (tombstones included), plus the head it was read at. Lets a replica
    /// catch up without reloading.
    async fn entry_changes_since(&self, after: Revision) -> StoreResult<(Head, Vec<EntryVersion>)>;

    /// For every scope that ever held an entry: the latest revision of any of
    /// its entry versions, tombstones included (so a resolved view's revision
    /// survives a restart even when its last change was a delete). Scopes are
    /// returned as stored (`Scope::from_stored`).
    async fn scope_revisions(&self) -> StoreResult<Vec<(Scope, Revision)>>;

    /// Catalog (apps, environments, active schemas) as of now.
    async fn load_catalog(&self) -> StoreResult<Catalog>;

    /// All versions of one entry, oldest first. Empty if it never existed.
    async fn entry_history(&self, scope: &Scope, key: &str) -> StoreResult<Vec<EntryVersion>>;

    /// One version of one entry.
    async fn entry_version(
        &self,
        scope: &Scope,
        key: &str,
        version: i64,
    ) -> StoreResult<Option<EntryVersion>>;

    /// The latest version (tombstones included) of every entry in `scopes` as
    /// of revision `at`. `Compacted` if `at` is older than retained history.
    async fn entries_at(&self, scopes: &[Scope], at: Revision) -> StoreResult<Vec<EntryVersion>>;

    /// Every version of every schema, oldest first.
    async fn schema_history(&self) -> StoreResult<Vec<SchemaRecord>>;

    /// Audit records matching `filter`, oldest first (`seq` order).
    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;

    /// The token whose SHA-256 hash is `hash` (hex), revoked or not.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;

    /// Every token, without secrets (only hashes are ever stored).
    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>>;

    /// Every user (password hashes included: for verification only).
    async fn users(&self) -> StoreResult<Vec<UserRecord>>;

    /// Append audit records that are not changes (denied requests, failed
    /// logins), sealed into the same chain as commits; no revision is used.
    async fn append_audit(
        &self,
        context: &AuditContext,
        events: Vec<AuditEvent>,
        seal: Option<AuditKey>,
        sink: Option<&Arc<dyn AuditSink>>,
    ) -> StoreResult<()>;

    /// Add evaluation counts (increments) to the stored totals; `last_at` keeps the latest.
    async fn add_flag_counts(&self, increments: &[FlagCount]) -> StoreResult<()>;

    /// Every stored evaluation total.
    async fn flag_counts(&self) -> StoreResult<Vec<FlagCount>>;

    /// The signed head of the audit chain.
    async fn audit_head(&self) -> StoreResult<AuditHead>;

    /// Every secret that is not deleted (metadata only).
    async fn secrets(&self) -> StoreResult<Vec<SecretRecord>>;

    /// The secret at exactly this scope, deleted or not, with its policy:
    /// `(record, deleted)`.
    async fn secret(&self, scope: &Scope, name: &str) -> StoreResult<Option<(SecretRecord, bool)>>;

    /// Every version of one secret, oldest first (sealed).
    async fn secret_versions(&self, scope: &Scope, name: &str) -> StoreResult<Vec<SecretVersion>>;

    /// One version of one secret (sealed).
    async fn secret_version(
        &self,
        scope: &Scope,
        name: &str,
        version: i64,
    ) -> StoreResult<Option<SecretVersion>>;

    /// Take or renew the lease `name` for `holder` for `ttl`. `true` if
    /// `holder` holds it now (it was free, expired, or `holder`'s already).
    /// Elects the one process that runs work which must run once (the
    /// secret-rotation scheduler), across every process sharing the database.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<bool>;

    /// Give up the lease `name` if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;

    /// Record what `state.instance` of (app, env) applied: insert, or replace
    /// its previous report. Telemetry: no revision, no audit record.
    async fn put_applied(&self, state: &AppliedState) -> StoreResult<()>;

    /// The last report of every instance of (app, env), by instance.
    async fn applied(&self, app: &str, env: &str) -> StoreResult<Vec<AppliedState>>;

    /// Forget instances whose last report is older than `before` (restarted
    /// processes report under new ids); returns how many.
    async fn prune_applied(&self, before: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;

    /// Every webhook subscription, deleted ones included (the dispatcher
    /// matches each audit record against the subscriptions live at its `seq`).
    /// One change request.
    async fn change(&self, id: &str) -> StoreResult<Option<ChangeRecord>>;

    /// Change requests, newest first ([`ChangeFilter`]).
    async fn changes(&self, filter: &ChangeFilter) -> StoreResult<Vec<ChangeRecord>>;

    async fn webhooks(&self) -> StoreResult<Vec<WebhookRecord>>;

    /// One subscription, deleted or not.
    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>>;

    /// The audit `seq` up to which records have been turned into deliveries.
    async fn webhook_cursor(&self) -> StoreResult<i64>;

    /// In one transaction: move the cursor from `from` to `to` (compare-and-set)
    /// and insert `deliveries` (a delivery already present for the same
    /// webhook and audit record is skipped). `false`, writing nothing, if the
    /// cursor was not at `from` (another process enqueued them).
    async fn enqueue_webhook_deliveries(
        &self,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool>;

    /// Claim up to `limit` pending deliveries due at `now`: their next attempt
    /// moves to `lease_until`, so no other worker takes them meanwhile (a
    /// worker that dies leaves them due again then). PostgreSQL: `FOR UPDATE
    /// SKIP LOCKED`, so concurrent claimers get disjoint rows.
    async fn claim_webhook_deliveries(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Append an attempt to a delivery's log and apply its outcome. A
    /// delivery that is no longer pending (cancelled meanwhile) is left as is.
    async fn record_webhook_attempt(
        &self,
        id: &str,
        attempt: &DeliveryAttempt,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()>;

    /// Delete finished (delivered, failed, cancelled) deliveries created
    /// before `before`; returns how many. Pending ones are kept.
    async fn prune_webhook_deliveries(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64>;

    /// The deliveries of one webhook, newest first, at most `limit`.
    async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Revisions before this one are no longer retained (history compaction;
    /// no backend compacts yet).
    async fn compacted_revision(&self) -> StoreResult<Revision> {
        Ok(0)
    }

    /// Hints that other processes committed (PostgreSQL `LISTEN/NOTIFY`).
    /// `None` for a backend with a single writer process. The hints are only
    /// hints: a replica still reads the change table (`entry_changes_since`).
    async fn change_listener(&self) -> Option<Box<dyn ChangeListener>> {
        None
    }
}

/// What a [`ChangeListener`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeHint {
    /// Some process committed this revision.
    Committed(Revision),
    /// The listening connection was (re-)established: notifications may
    /// have been missed, catch up now.
    Connected,
    /// The listening connection is down (retrying): the database may be unreachable.
    Lost,
}

/// A source of [`ChangeHint`]s that reconnects by itself.
#[async_trait]
pub trait ChangeListener: Send {
    async fn next(&mut self) -> ChangeHint;
}
