//! The service: one write path into the store, and reads from memory.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use cairn_model::{
    canonical_json, diff_values, glob_match, validate_any_key, validate_app, validate_entry_key,
    validate_env, validate_glob, validate_key, EntryKind, MergeMode, Revision, Scope, ValueDiff,
    DEFAULT_MAX_VALUE_BYTES, MAX_CHANGESET_ENTRIES,
};
use cairn_store::{
    App, AuditContext, AuditKey, Commit, Committed, EntryVersion, Environment, Mutation, Read,
    Role, SchemaRecord, Store, StoreError, TokenRecord,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::auth::{self, Origin, Principal};
use crate::keys::{MasterKey, Purpose};
use crate::policy::Action;
use crate::schema::CompiledSchema;
use crate::state::{ResolvedView, ScopeEntries, State};
use crate::{Error, Result, Violation};

/// How many times a write is planned before concurrent changes that keep
/// invalidating its plan make it give up (409).
pub const PLAN_ATTEMPTS: usize = 5;

/// A commit refused because a change committed after its plan's basis
/// touched what the plan read (what, for the message).
#[derive(Debug)]
pub(crate) struct Stale(pub(crate) String);

impl From<Stale> for Error {
    /// A stale plan that is not made again: 409, nothing written.
    fn from(Stale(what): Stale) -> Self {
        StoreError::Stale { what }.into()
    }
}

/// Environments a fresh server has.
pub const DEFAULT_ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// Service settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest value, in bytes of canonical JSON.
    pub max_value_bytes: usize,
    /// Name of this replica, recorded in audit records.
    pub replica: String,
    /// The master key (held outside the database); the audit chain's key derives from it.
    pub master_key: MasterKey,
    /// Master keys being retired: secrets still wrapped under them stay
    /// readable until `rekey` re-wraps them under `master_key`.
    pub previous_master_keys: Vec<MasterKey>,
    /// Accept JWTs from an identity provider.
    pub jwt: Option<Arc<crate::jwt::JwtVerifier>>,
    /// A second audit destination (fail closed).
    pub audit_sink: Option<Arc<dyn cairn_store::AuditSink>>,
    /// Interval of the heartbeat comments on watch streams.
    pub watch_heartbeat: Duration,
    /// Allow outbound HTTP (webhooks, rotation hooks) to loopback, private and
    /// link-local addresses (`--allow-private-targets`); see `crate::outbound`.
    pub allow_private_targets: bool,
    /// First retry delay after a failed scheduled rotation (doubles per failure).
    pub rotation_retry_base: Duration,
    /// What "now" is (see `crate::clock`); the wall clock unless a test moves its own.
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Default for Options {
    /// Defaults with a fresh random master key (tests, benchmarks).
    fn default() -> Self {
        Options {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            replica: "cairn".into(),
            master_key: MasterKey::generate().0,
            previous_master_keys: Vec::new(),
            jwt: None,
            audit_sink: None,
            watch_heartbeat: Duration::from_secs(15),
            allow_private_targets: false,
            rotation_retry_base: Duration::from_secs(30),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

/// What a write of entries did: the commit, and the flag warnings of what it
/// wrote (rules that can only yield null or an error; DESIGN.md §4).
#[derive(Debug, Clone)]
pub struct Written {
    pub committed: Committed,
    pub warnings: Vec<crate::flags::FlagWarning>,
}

/// A change item whose stateless checks passed, with its value's checksum.
struct Prepared {
    item: ChangeItem,
    checksum: String,
}

/// A change set planned against memory: what to commit, the warnings to
/// answer with, and what the plan read.
struct EntryPlan {
    mutations: Vec<(Option<String>, Mutation)>,
    warnings: Vec<crate::flags::FlagWarning>,
    guard: cairn_store::Guard,
}

/// One entry change inside a change set.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeItem {
    pub scope: Scope,
    pub key: String,
    pub kind: EntryKind,
    pub merge: MergeMode,
    /// `None` deletes.
    pub value: Option<Value>,
    /// Compare-and-set: `Some(0)` = must not exist.
    pub expected_version: Option<i64>,
}

/// Settings of a new or changed environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSettings {
    pub description: Option<String>,
    pub protected: Option<bool>,
    pub required_approvals: Option<i32>,
    pub auto_approve: Option<bool>,
    /// Flag-lint warnings refuse flag writes that reach the environment.
    pub strict_flags: Option<bool>,
}

/// The outcome of registering a schema.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaRegistered {
    pub revision: Revision,
    pub version: i64,
    /// Stored values the schema rejects (only non-empty when forced).
    pub drift: Vec<Violation>,
}

/// A token just created: the secret is shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub id: String,
    pub revision: Revision,
}

/// The one service object a server (or test) holds.
pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    state: RwLock<State>,
    sync_lock: tokio::sync::Mutex<()>,
    pub(crate) opts: Options,
    pub(crate) audit_key: AuditKey,
    head_tx: watch::Sender<Revision>,
    /// Watched views (see `crate::watch`).
    pub(crate) hub: crate::watch::Hub,
    /// The last sync failed: memory may be behind the database.
    pub(crate) stale: std::sync::atomic::AtomicBool,
    pub(crate) compacted: std::sync::atomic::AtomicI64,
    /// The secret-rotation scheduler's state in this process.
    pub(crate) scheduler: crate::rotation::Scheduler,
    pub(crate) metrics: crate::metrics::Metrics,
    /// The outbound HTTP guard, built once: its clones share one client
    /// (TLS setup, connection pool, checking resolver).
    outbound: crate::outbound::Outbound,
}

impl Service {
    /// The kernel's clock (`Options::clock`).
    pub fn now(&self) -> DateTime<Utc> {
        self.opts.clock.now()
    }

    /// Load the state from the store, create the default environments on a
    /// fresh store and, if no token exists, the first admin token (its secret
    /// is returned once).
    pub async fn open(
        store: Arc<dyn Store>,
        opts: Options,
    ) -> Result<(Arc<Service>, Option<String>)> {
        let snapshot = store.load().await?;
        let tokens = store.tokens().await?;
        let users = store.users().await?;
        let scope_revs = store.scope_revisions().await?;
        let mut state = State::default();
        state.head = snapshot.head;
        state.set_catalog(snapshot.catalog, tokens, users);
        for (scope, rev) in scope_revs {
            state.set_scope_revision(scope, rev);
        }
        state.apply_entries(snapshot.entries);
        let (head_tx, _) = watch::channel(state.head.revision);
        let compacted = store.compacted_revision().await?;
        let svc = Arc::new(Service {
            store,
            state: RwLock::new(state),
            sync_lock: tokio::sync::Mutex::new(()),
            audit_key: opts.master_key.derive(Purpose::Audit),
            scheduler: crate::rotation::Scheduler::new(&opts.replica, opts.rotation_retry_base),
            outbound: crate::outbound::Outbound::new(opts.allow_private_targets),
            opts,
            head_tx,
            hub: Default::default(),
            stale: Default::default(),
            compacted: compacted.into(),
            metrics: Default::default(),
        });
        let counts = svc.store.flag_counts().await?;
        svc.read().flag_stats.seed(&counts);
        svc.ensure_default_envs().await?;
        let token = svc.ensure_admin_token().await?;
        Ok((svc, token))
    }

    async fn ensure_default_envs(&self) -> Result<()> {
        if self.read().head.revision != 0 {
            return Ok(());
        }
        let mutations = DEFAULT_ENVS
            .iter()
            .map(|name| {
                let m = Mutation::CreateEnv {
                    name: (*name).to_owned(),
                    description: String::new(),
                    protected: false,
                    required_approvals: 0,
                    auto_approve: true,
                    strict_flags: false,
                };
                (None, m)
            })
            .collect();
        match self
            .commit(
                &Principal::system(),
                &Origin::default(),
                "default environments",
                mutations,
            )
            .await
        {
            // Another replica created them first.
            Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn ensure_admin_token(&self) -> Result<Option<String>> {
        if !self.read().tokens.is_empty() {
            return Ok(None);
        }
        let t = auth::generate_token();
        let record = TokenRecord {
            id: t.id,
            name: "bootstrap-admin".into(),
            hash: t.hash,
            role: Role::Admin,
            app: "*".into(),
            env: "*".into(),
            created_at: self.now(),
            expires_at: None,
            revoked_at: None,
            user: None,
        };
        let m = Mutation::CreateToken {
            token: record,
            bootstrap: true,
        };
        match self
            .commit(
                &Principal::system(),
                &Origin::default(),
                "first admin token",
                vec![(None, m)],
            )
            .await
        {
            Ok(_) => Ok(Some(t.secret)),
            Err(Error::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The outbound HTTP guard configured by [`Options::allow_private_targets`]:
    /// the only way Cairn calls out over HTTP. A clone of the service's one
    /// guard: every call shares its client and connection pool.
    pub fn outbound(&self) -> crate::outbound::Outbound {
        self.outbound.clone()
    }

    /// This process's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The text exposition of every metric (Prometheus `/metrics`).
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self.read().head.revision)
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision this replica's memory reflects.
    pub fn revision(&self) -> Revision {
        self.read().head.revision
    }

    /// Subscribe to the applied revision (changes after every sync that moved it).
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.head_tx.subscribe()
    }

    /// Catch up with the store: apply every entry version committed since the
    /// last applied revision, reload the catalog if it moved.
    pub async fn sync(&self) -> Result<()> {
        self.sync_past(0).await
    }

    /// Like [`Service::sync`], but nothing to do if memory already reflects
    /// `revision` (another writer's catch-up applied it while we waited).
    async fn sync_past(&self, revision: Revision) -> Result<()> {
        let _guard = self.sync_lock.lock().await;
        if revision > 0 && self.read().head.revision >= revision {
            return Ok(());
        }
        let result = self.sync_locked().await;
        self.stale
            .store(result.is_err(), std::sync::atomic::Ordering::Relaxed);
        result
    }

    async fn sync_locked(&self) -> Result<()> {
        let applied = self.read().head;
        let (head, versions) = self.store.entry_changes_since(applied.revision).await?;
        if head.revision <= applied.revision {
            return Ok(());
        }
        let catalog = if head.catalog_revision > applied.catalog_revision {
            Some((
                self.store.load_catalog().await?,
                self.store.tokens().await?,
                self.store.users().await?,
            ))
        } else {
            None
        };
        {
            let mut st = self.write_state();
            if let Some((catalog, tokens, users)) = catalog {
                st.set_catalog(catalog, tokens, users);
            }
            self.hub.apply(&mut st, versions);
            st.head = head;
        }
        self.head_tx.send_replace(head.revision);
        Ok(())
    }

    /// Keep this replica current with changes other replicas commit.
    pub fn spawn_sync_loop(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_every(
            every,
            "sync with the store failed; serving from memory",
            |svc| async move { svc.sync().await },
        )
    }

    /// Run `job` every `every` (first after one period) until the service is
    /// dropped; failures are logged with `failure` and retried next period.
    pub(crate) fn spawn_every<F, Fut>(
        self: &Arc<Self>,
        every: Duration,
        failure: &'static str,
        job: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn(Arc<Service>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let svc = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(svc) = svc.upgrade() else { return };
                if let Err(e) = job(svc).await {
                    tracing::warn!(error = %e, "{failure}");
                }
            }
        })
    }

    /// Write the flag evaluation counts gathered since the last flush.
    pub async fn flush_flag_counts(&self) -> Result<()> {
        let stats = self.read().flag_stats.clone();
        let increments = stats.drain();
        if let Err(e) = self.store.add_flag_counts(&increments).await {
            stats.undrain(&increments);
            return Err(e.into());
        }
        Ok(())
    }

    /// Flush flag evaluation counts every `every`.
    pub fn spawn_count_flusher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_every(
            every,
            "flushing flag evaluation counts failed; will retry",
            |svc| async move { svc.flush_flag_counts().await },
        )
    }

    /// Is the database reachable?
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    // ------------------------------------------------------------------
    // The write path
    // ------------------------------------------------------------------

    /// Commit mutations whose validation read nothing the store must
    /// re-check (each carries its own compare-and-set, if any).
    pub(crate) async fn commit(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        mutations: Vec<(Option<String>, Mutation)>,
    ) -> Result<Committed> {
        Ok(self
            .commit_guarded(who, origin, message, mutations, None)
            .await??)
    }

    /// Run `attempt` — plan against memory, then [`Service::commit_guarded`]
    /// — until its plan still holds when it commits: after a [`Stale`]
    /// refusal this replica catches up and the plan is made (and validated)
    /// again, at most [`PLAN_ATTEMPTS`] times, then 409.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<std::result::Result<T, Stale>>>,
    {
        let mut last = String::new();
        for _ in 0..PLAN_ATTEMPTS {
            match attempt().await? {
                Ok(done) => return Ok(done),
                Err(Stale(what)) => {
                    self.metrics.plan_retried();
                    last = what;
                    self.sync().await?;
                }
            }
        }
        Err(Error::Conflict {
            message: format!(
                "concurrent changes kept invalidating this change ({PLAN_ATTEMPTS} attempts; \
                 last: {last}); nothing was written, try again"
            ),
            current_version: None,
        })
    }

    /// The one place that commits: every mutation goes to the store with its
    /// audit context in one transaction, then this replica catches up.
    /// With a `guard` (what the plan was validated against, at which
    /// revision), a change committed since that touches it refuses the commit:
    /// `Ok(Err(Stale))`, nothing written (see `cairn_store::guard`).
    pub(crate) async fn commit_guarded(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        mutations: Vec<(Option<String>, Mutation)>,
        guard: Option<cairn_store::Guard>,
    ) -> Result<std::result::Result<Committed, Stale>> {
        let commit = Commit {
            context: AuditContext {
                actor: who.actor(),
                message: message.to_owned(),
                client_ip: origin.client_ip.clone(),
                user_agent: origin.user_agent.clone(),
                replica: Some(self.opts.replica.clone()),
            },
            mutations,
            seal: Some(self.audit_key),
            sink: self.opts.audit_sink.clone(),
            guard,
        };
        let committed = match self.store.commit(commit).await {
            Ok(c) => c,
            Err(StoreError::Stale { what }) => return Ok(Err(Stale(what))),
            Err(e) => return Err(e.into()),
        };
        // The commit is durable; if catching up fails the sync loop retries.
        if let Err(e) = self.sync_past(committed.revision).await {
            tracing::warn!(error = %e, revision = committed.revision, "committed but could not refresh memory");
        }
        Ok(Ok(committed))
    }

    /// Validate and commit a change set of entries as one revision.
    ///
    /// The change set is planned and validated against memory at some
    /// revision; the commit carries that revision and what the validation
    /// read ([`EntryPlan::guard`]), so the store refuses it if a concurrent
    /// change touched any of it, and then it is planned again.
    pub async fn write_entries(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        items: Vec<ChangeItem>,
        action: Option<&str>,
    ) -> Result<Written> {
        validate_message(message)?;
        if items.is_empty() {
            return Err(Error::invalid(
                "entries",
                "a change set needs at least one entry",
            ));
        }
        if items.len() > MAX_CHANGESET_ENTRIES {
            return Err(Error::TooLarge {
                field: "entries".into(),
                message: format!(
                    "{} entries; at most {MAX_CHANGESET_ENTRIES} per change set",
                    items.len()
                ),
            });
        }
        // The values are checked and canonicalised once; only the checks
        // that read the state are made again on a retry.
        let items = &self.prepare_items(who, items)?;
        self.retrying(move || async move {
            // Taken before anything is read, so every read below sees at
            // least this revision and the guard covers whatever came after.
            let basis = self.revision();
            // Secret references must name secrets that exist (422 otherwise);
            // checked only where the caller may write, so that nobody else
            // learns which secrets exist (the plan refuses them).
            for Prepared { item, .. } in items {
                let (app, env) = (item.scope.app.as_deref(), item.scope.env.as_deref());
                if let (Some(value), true) = (&item.value, who.can(Action::Write, app, env)) {
                    self.check_references(&item.scope, value).await?;
                }
            }
            let plan = self.plan_entries(who, basis, items, action)?;
            let committed = self
                .commit_guarded(who, origin, message, plan.mutations, Some(plan.guard))
                .await?;
            Ok(committed.map(|committed| Written {
                committed,
                warnings: plan.warnings,
            }))
        })
        .await
    }

    /// The checks of a change set that read no state: keys, duplicates,
    /// value sizes; each value is canonicalised here, once.
    fn prepare_items(&self, who: &Principal, items: Vec<ChangeItem>) -> Result<Vec<Prepared>> {
        let many = items.len() > 1;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let field = |f: &str| {
                if many {
                    format!("entries[{i}].{f}")
                } else {
                    f.to_owned()
                }
            };
            validate_entry_key(item.kind, &item.key)
                .map_err(|e| rename_field(e.into(), field("key")))?;
            check_write(who, &item.scope)?;
            if !seen.insert((item.scope.clone(), item.key.clone())) {
                return Err(Error::invalid(
                    field("key"),
                    format!("{} appears twice in one change set", item.key),
                ));
            }
            let checksum = match &item.value {
                Some(value) => {
                    let canon = canonical_json(value);
                    if canon.len() > self.opts.max_value_bytes {
                        return Err(Error::TooLarge {
                            field: field("value"),
                            message: format!(
                                "{} bytes; at most {} bytes",
                                canon.len(),
                                self.opts.max_value_bytes
                            ),
                        });
                    }
                    cairn_model::checksum_bytes(canon.as_bytes())
                }
                None => String::new(),
            };
            out.push(Prepared { item, checksum });
        }
        Ok(out)
    }

    /// Plan a prepared change set against memory: every check that reads
    /// the state (scopes, schemas, flags and segments, strict environments),
    /// the mutations, and the guard naming what those checks read.
    /// `basis` is a revision memory had reached before the plan's first read.
    fn plan_entries(
        &self,
        who: &Principal,
        basis: Revision,
        items: &[Prepared],
        action: Option<&str>,
    ) -> Result<EntryPlan> {
        let st = self.read();
        let mut guard = cairn_store::Guard::new(basis);
        let mut mutations = Vec::with_capacity(items.len());
        for Prepared { item, checksum } in items {
            st.check_scope(&item.scope)?;
            guard.read(Read::Entry {
                scope: item.scope.clone(),
                key: item.key.clone(),
            });
            if let Some(value) = &item.value {
                if item.kind == EntryKind::Config {
                    guard.read(Read::SchemasFor {
                        app: item.scope.app.clone(),
                        key: item.key.clone(),
                    });
                }
                let violations =
                    schema_violations(&st.schemas, &item.scope, &item.key, item.kind, value);
                if !violations.is_empty() {
                    return Err(Error::SchemaViolation {
                        key: item.key.clone(),
                        violations,
                    });
                }
                let (app, env) = (item.scope.app.as_deref(), item.scope.env.as_deref());
                if who.can(Action::Write, app, env) {
                    for name in crate::secrets::references(value) {
                        guard.read(Read::Secret {
                            name,
                            from: item.scope.clone(),
                        });
                    }
                }
            }
            mutations.push((
                action.map(str::to_owned),
                Mutation::PutEntry {
                    scope: item.scope.clone(),
                    key: item.key.clone(),
                    // One kind per (scope, key) is the store's check, inside
                    // the commit (`StoreError::KindConflict`); a delete
                    // takes the live entry's kind there.
                    kind: item.kind,
                    merge: item.merge,
                    value: item.value.clone(),
                    checksum: checksum.clone(),
                    expected_version: item.expected_version,
                },
            ));
        }
        let warnings = crate::flags::validate_change_set(&st, &mutations, &mut guard)?;
        crate::flags::enforce_strict(&st, &warnings)?;
        if !warnings.is_empty() {
            guard.read(Read::Environments);
        }
        Ok(EntryPlan {
            mutations,
            warnings,
            guard,
        })
    }

    /// Delete (scope, key): a tombstone version of the live entry's kind. A
    /// delete needs a message saying why.
    pub async fn delete_entry(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        key: &str,
        message: &str,
        expected_version: Option<i64>,
    ) -> Result<Written> {
        if message.trim().is_empty() {
            return Err(Error::invalid(
                "message",
                "a delete needs a message saying why",
            ));
        }
        let current = self.get(who, scope, key)?;
        let item = ChangeItem {
            scope: scope.clone(),
            key: key.to_owned(),
            kind: current.kind,
            merge: current.merge,
            value: None,
            expected_version,
        };
        self.write_entries(who, origin, message, vec![item], None)
            .await
    }

    /// Write a new version equal to version `version` of (scope, key).
    #[allow(clippy::too_many_arguments)] // who, where from, what, why: each is needed
    pub async fn rollback(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        key: &str,
        version: i64,
        message: &str,
        expected_version: Option<i64>,
    ) -> Result<Written> {
        if message.trim().is_empty() {
            return Err(Error::invalid(
                "message",
                "a rollback needs a message saying why",
            ));
        }
        let target = self.entry_version(who, scope, key, version).await?;
        let Some(value) = target.value else {
            return Err(Error::invalid(
                "version",
                format!("version {version} of {key} is a delete"),
            ));
        };
        let item = ChangeItem {
            scope: scope.clone(),
            key: key.to_owned(),
            kind: target.kind,
            merge: target.merge,
            value: Some(value),
            expected_version,
        };
        self.write_entries(who, origin, message, vec![item], Some("entry.rollback"))
            .await
    }

    pub async fn create_app(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        description: &str,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        validate_app(name)?;
        let m = Mutation::CreateApp {
            name: name.to_owned(),
            description: description.to_owned(),
        };
        self.commit(who, origin, &format!("create app {name}"), vec![(None, m)])
            .await
    }

    pub async fn create_env(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        s: EnvSettings,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        validate_env(name)?;
        validate_env_settings(&s)?;
        let m = Mutation::CreateEnv {
            name: name.to_owned(),
            description: s.description.unwrap_or_default(),
            protected: s.protected.unwrap_or(false),
            required_approvals: s
                .required_approvals
                .unwrap_or(if s.protected == Some(true) { 1 } else { 0 }),
            auto_approve: s.auto_approve.unwrap_or(s.protected != Some(true)),
            strict_flags: s.strict_flags.unwrap_or(false),
        };
        self.commit(
            who,
            origin,
            &format!("create environment {name}"),
            vec![(None, m)],
        )
        .await
    }

    pub async fn update_env(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        s: EnvSettings,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        validate_env(name)?;
        validate_env_settings(&s)?;
        if s == EnvSettings::default() {
            return Err(Error::invalid("settings", "nothing to change"));
        }
        let m = Mutation::UpdateEnv {
            name: name.to_owned(),
            description: s.description,
            protected: s.protected,
            required_approvals: s.required_approvals,
            auto_approve: s.auto_approve,
            strict_flags: s.strict_flags,
        };
        self.commit(
            who,
            origin,
            &format!("update environment {name}"),
            vec![(None, m)],
        )
        .await
    }

    /// Register the next version of the schema at (app, pattern). Stored
    /// values it would reject are reported; unless `force`, that refuses.
    #[allow(clippy::too_many_arguments)] // who, where from, what, why: each is needed
    pub async fn register_schema(
        &self,
        who: &Principal,
        origin: &Origin,
        app: Option<&str>,
        pattern: &str,
        schema: Value,
        force: bool,
        message: &str,
    ) -> Result<SchemaRegistered> {
        validate_glob(pattern)?;
        let app = match app {
            None | Some("") | Some(cairn_model::GLOBAL_APP) => None,
            Some(a) => Some(a.to_owned()),
        };
        require_admin(who, app.as_deref())?;
        let msg = if message.is_empty() {
            format!("register schema {pattern}")
        } else {
            message.to_owned()
        };
        let (app, schema, msg) = (&app, &schema, &msg);
        self.retrying(move || async move {
            let (guard, compiled, drift) =
                self.plan_schema(who, app.as_ref(), pattern, schema, message)?;
            if !drift.is_empty() && !force {
                return Err(Error::SchemaDrift { violations: drift });
            }
            let action = force
                .then(|| "schema.register.forced".to_owned())
                .filter(|_| !drift.is_empty());
            let m = Mutation::PutSchema {
                app: app.clone(),
                pattern: pattern.to_owned(),
                schema: schema.clone(),
            };
            let committed = self
                .commit_guarded(who, origin, msg, vec![(action, m)], Some(guard))
                .await?;
            Ok(committed.map(|committed| SchemaRegistered {
                revision: committed.revision,
                version: committed
                    .applied
                    .first()
                    .and_then(|a| a.to_version)
                    .unwrap_or(compiled.record.version),
                drift,
            }))
        })
        .await
    }

    /// Compile the schema's next version and check it against every stored
    /// value it applies to (the drift), in memory; the guard names those values.
    fn plan_schema(
        &self,
        who: &Principal,
        app: Option<&String>,
        pattern: &str,
        schema: &Value,
        message: &str,
    ) -> Result<(cairn_store::Guard, CompiledSchema, Vec<Violation>)> {
        let app = app.cloned();
        let st = self.read();
        if let Some(a) = &app {
            st.check_scope(&Scope::new(Some(a), None))?;
        }
        let version = st
            .schemas
            .iter()
            .find(|s| s.record.app == app && s.record.pattern == pattern)
            .map_or(1, |s| s.record.version + 1);
        let mut guard = cairn_store::Guard::new(st.head.revision);
        guard.read(Read::Matching {
            app: app.clone(),
            pattern: pattern.to_owned(),
        });
        let compiled = CompiledSchema::compile(SchemaRecord {
            app: app.clone(),
            pattern: pattern.to_owned(),
            version,
            schema: schema.clone(),
            revision: 0,
            actor: who.actor(),
            message: message.to_owned(),
            created_at: self.now(),
        })?;
        let mut drift = Vec::new();
        for (scope, entries) in &st.scopes {
            for (key, e) in &entries.entries {
                if let (true, Some(v)) = (compiled.applies_to(scope, key, e.kind), &e.value) {
                    drift.extend(compiled.violations(v, Some(&format!("{scope}:{key}"))));
                }
            }
        }
        Ok((guard, compiled, drift))
    }

    /// Create a token; its secret is returned once and never stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        role: Role,
        app: &str,
        env: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedToken> {
        require_admin(who, None)?;
        if name.trim().is_empty() || name.len() > 128 {
            return Err(Error::invalid("name", "must be 1-128 characters"));
        }
        if role == Role::Sdk {
            // An SDK token is bound to exactly one existing (app, env).
            validate_app(app)?;
            validate_env(env)?;
            self.read().check_view(app, env)?;
        } else {
            crate::policy::validate_pattern("app", app)?;
            crate::policy::validate_pattern("env", env)?;
        }
        let t = auth::generate_token();
        let record = TokenRecord {
            id: t.id.clone(),
            name: name.to_owned(),
            hash: t.hash,
            role,
            app: app.to_owned(),
            env: env.to_owned(),
            created_at: self.now(),
            expires_at,
            revoked_at: None,
            user: None,
        };
        let m = Mutation::CreateToken {
            token: record,
            bootstrap: false,
        };
        let c = self
            .commit(
                who,
                origin,
                &format!("create token {name}"),
                vec![(None, m)],
            )
            .await?;
        Ok(CreatedToken {
            token: t.secret,
            id: t.id,
            revision: c.revision,
        })
    }

    pub async fn revoke_token(
        &self,
        who: &Principal,
        origin: &Origin,
        id: &str,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        let m = Mutation::RevokeToken { id: id.to_owned() };
        self.commit(who, origin, &format!("revoke token {id}"), vec![(None, m)])
            .await
    }

    // ------------------------------------------------------------------
    // Reads
    // ------------------------------------------------------------------

    /// Who holds this bearer token? In memory, constant-time hash comparison.
    pub fn authenticate(&self, secret: &str) -> Result<Principal> {
        let id =
            auth::token_id(secret).ok_or_else(|| Error::Unauthorized("malformed token".into()))?;
        let st = self.read();
        let record = st
            .tokens
            .get(&id)
            .ok_or_else(|| Error::Unauthorized("invalid token".into()))?;
        let user = record.user.as_ref().and_then(|u| st.users.get(u));
        auth::verify(record, user, secret, self.now())
    }

    pub fn tokens(&self, who: &Principal) -> Result<Vec<TokenRecord>> {
        require_admin(who, None)?;
        let mut t: Vec<TokenRecord> = self.read().tokens.values().cloned().collect();
        t.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(t)
    }

    /// The apps `who` can see.
    pub fn apps(&self, who: &Principal) -> Vec<App> {
        self.read()
            .apps
            .values()
            .filter(|a| who.can(Action::Read, Some(&a.name), None))
            .cloned()
            .collect()
    }

    pub fn app(&self, who: &Principal, name: &str) -> Result<App> {
        if !who.can(Action::Read, Some(name), None) {
            return Err(hidden(format!("app '{name}'")));
        }
        self.read()
            .apps
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("app '{name}'")))
    }

    /// Environments (their names are not secret to anyone who can read).
    pub fn envs(&self, _who: &Principal) -> Vec<Environment> {
        self.read().envs.values().cloned().collect()
    }

    pub fn env(&self, _who: &Principal, name: &str) -> Result<Environment> {
        self.read()
            .envs
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("environment '{name}'")))
    }

    fn schema_visible(who: &Principal, r: &SchemaRecord) -> bool {
        who.can(Action::Read, r.app.as_deref(), None)
    }

    /// Active schemas `who` can see.
    pub fn schemas(&self, who: &Principal) -> Vec<SchemaRecord> {
        self.read()
            .schemas
            .iter()
            .map(|s| &s.record)
            .filter(|r| Self::schema_visible(who, r))
            .cloned()
            .collect()
    }

    /// Every version of every schema `who` can see.
    pub async fn schema_history(&self, who: &Principal) -> Result<Vec<SchemaRecord>> {
        let all = self.store.schema_history().await?;
        Ok(all
            .into_iter()
            .filter(|r| Self::schema_visible(who, r))
            .collect())
    }

    /// Check a value against the schemas that govern (scope, key), without writing.
    pub fn validate_value(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        value: &Value,
    ) -> Result<Vec<Violation>> {
        validate_key(key)?;
        check_read(who, scope)?;
        let st = self.read();
        st.check_scope(scope)?;
        Ok(schema_violations(
            &st.schemas,
            scope,
            key,
            EntryKind::Config,
            value,
        ))
    }

    /// The current resolved view of (app, env).
    pub fn resolve(&self, who: &Principal, app: &str, env: &str) -> Result<Arc<ResolvedView>> {
        check_resolve(who, app, env)?;
        self.read().view(app, env)
    }

    /// The resolved view of (app, env) as of `revision`, read from the store.
    pub async fn resolve_at(
        &self,
        who: &Principal,
        app: &str,
        env: &str,
        revision: Revision,
    ) -> Result<ResolvedView> {
        check_resolve(who, app, env)?;
        self.read().check_view(app, env)?;
        let scopes = Scope::layers(app, env);
        let versions = self.entries_at(&scopes, revision).await?;
        let mut layers: [ScopeEntries; 4] = Default::default();
        for v in versions {
            if let Some(i) = scopes.iter().position(|s| *s == v.scope) {
                layers[i].apply(v);
            }
        }
        let [a, b, c, d] = &layers;
        Ok(ResolvedView::build(
            app,
            env,
            [Some(a), Some(b), Some(c), Some(d)],
        ))
    }

    async fn entries_at(&self, scopes: &[Scope], revision: Revision) -> Result<Vec<EntryVersion>> {
        if revision < 0 {
            return Err(Error::invalid("revision", "must be 0 or more"));
        }
        match self.store.entries_at(scopes, revision).await {
            Err(StoreError::NotFound { .. }) => Err(Error::not_found(format!(
                "revision {revision} (the latest is {})",
                self.revision()
            ))),
            other => Ok(other?),
        }
    }

    /// The live entry at (scope, key).
    pub fn get(&self, who: &Principal, scope: &Scope, key: &str) -> Result<Arc<EntryVersion>> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        let st = self.read();
        st.check_scope(scope)?;
        st.entry(scope, key)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("entry {key} at {scope}")))
    }

    /// The entry at (scope, key) as of `revision` (a delete reads as not found).
    pub async fn get_at(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        revision: Revision,
    ) -> Result<EntryVersion> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        self.entries_at(std::slice::from_ref(scope), revision)
            .await?
            .into_iter()
            .find(|v| v.key == key && !v.is_tombstone())
            .ok_or_else(|| {
                Error::not_found(format!("entry {key} at {scope} as of revision {revision}"))
            })
    }

    /// One version of one entry (deletes included, as tombstones).
    pub async fn entry_version(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        version: i64,
    ) -> Result<EntryVersion> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        self.store
            .entry_version(scope, key, version)
            .await?
            .ok_or_else(|| Error::not_found(format!("version {version} of {key} at {scope}")))
    }

    /// Live entries at exactly `scope`, optionally filtered by key glob and kind.
    pub fn list(
        &self,
        who: &Principal,
        scope: &Scope,
        filter: Option<&str>,
        kind: Option<EntryKind>,
    ) -> Result<Vec<Arc<EntryVersion>>> {
        check_read(who, scope)?;
        if let Some(f) = filter {
            validate_glob(f).map_err(|e| rename_field(e.into(), "filter".into()))?;
        }
        let st = self.read();
        st.check_scope(scope)?;
        Ok(st
            .scopes
            .get(scope)
            .map(|s| {
                s.entries
                    .values()
                    .filter(|e| filter.is_none_or(|f| glob_match(f, &e.key)))
                    .filter(|e| kind.is_none_or(|k| e.kind == k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Live entries at exactly `scope` as of `revision`.
    pub async fn list_at(
        &self,
        who: &Principal,
        scope: &Scope,
        revision: Revision,
        filter: Option<&str>,
        kind: Option<EntryKind>,
    ) -> Result<Vec<EntryVersion>> {
        check_read(who, scope)?;
        if let Some(f) = filter {
            validate_glob(f).map_err(|e| rename_field(e.into(), "filter".into()))?;
        }
        self.read().check_scope(scope)?;
        let mut out: Vec<EntryVersion> = self
            .entries_at(std::slice::from_ref(scope), revision)
            .await?
            .into_iter()
            .filter(|e| !e.is_tombstone())
            .filter(|e| filter.is_none_or(|f| glob_match(f, &e.key)))
            .filter(|e| kind.is_none_or(|k| e.kind == k))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Every version of (scope, key), oldest first.
    pub async fn history(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
    ) -> Result<Vec<EntryVersion>> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        let h = self.store.entry_history(scope, key).await?;
        if h.is_empty() {
            return Err(Error::not_found(format!("entry {key} at {scope}")));
        }
        Ok(h)
    }

    /// Diff two versions of (scope, key); a delete compares as `null`.
    pub async fn diff(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<ValueDiff> {
        let a = self.entry_version(who, scope, key, from).await?;
        let b = self.entry_version(who, scope, key, to).await?;
        let null = Value::Null;
        Ok(diff_values(
            a.value.as_ref().unwrap_or(&null),
            b.value.as_ref().unwrap_or(&null),
            &format!("{key}@v{from}"),
            &format!("{key}@v{to}"),
        ))
    }
    /// Checksums of the current views (for tests and diagnostics).
    pub fn view_checksums(&self) -> BTreeMap<(String, String), String> {
        let st = self.read();
        let mut out = BTreeMap::new();
        for app in st.apps.keys() {
            for env in st.envs.keys() {
                if let Ok(v) = st.view(app, env) {
                    out.insert((app.clone(), env.clone()), v.checksum.clone());
                }
            }
        }
        out
    }
}

fn schema_violations(
    schemas: &[Arc<CompiledSchema>],
    scope: &Scope,
    key: &str,
    kind: EntryKind,
    value: &Value,
) -> Vec<Violation> {
    schemas
        .iter()
        .filter(|s| s.applies_to(scope, key, kind))
        .flat_map(|s| s.violations(value, None))
        .collect()
}

fn rename_field(e: Error, field: String) -> Error {
    match e {
        Error::Invalid { message, .. } => Error::Invalid { field, message },
        other => other,
    }
}

/// `message`, or `default` when it is blank (the audit record's "why").
pub(crate) fn message_or(message: &str, default: &str) -> String {
    if message.trim().is_empty() {
        default.to_owned()
    } else {
        message.to_owned()
    }
}

fn validate_message(message: &str) -> Result<()> {
    if message.len() > 4096 {
        return Err(Error::TooLarge {
            field: "message".into(),
            message: "at most 4096 bytes".into(),
        });
    }
    Ok(())
}

fn validate_env_settings(s: &EnvSettings) -> Result<()> {
    if let Some(n) = s.required_approvals {
        if !(0..=10).contains(&n) {
            return Err(Error::invalid(
                "required_approvals",
                "must be between 0 and 10",
            ));
        }
    }
    if s.description.as_ref().is_some_and(|d| d.len() > 1024) {
        return Err(Error::TooLarge {
            field: "description".into(),
            message: "at most 1024 bytes".into(),
        });
    }
    Ok(())
}

fn hidden(what: String) -> Error {
    Error::Hidden { what }
}

/// Reading at a scope one cannot see answers "not found".
fn check_read(who: &Principal, scope: &Scope) -> Result<()> {
    if who.can(Action::Read, scope.app.as_deref(), scope.env.as_deref()) {
        Ok(())
    } else {
        Err(hidden(format!("scope {scope}")))
    }
}

/// Writing where one can read but not write is forbidden; where one cannot
/// even read, the scope does not exist for the caller.
pub(crate) fn check_write(who: &Principal, scope: &Scope) -> Result<()> {
    let (app, env) = (scope.app.as_deref(), scope.env.as_deref());
    if who.can(Action::Write, app, env) {
        Ok(())
    } else if who.can(Action::Read, app, env) {
        Err(Error::Forbidden(format!("not allowed to write at {scope}")))
    } else {
        Err(hidden(format!("scope {scope}")))
    }
}

pub(crate) fn check_resolve(who: &Principal, app: &str, env: &str) -> Result<()> {
    if who.can(Action::Resolve, Some(app), Some(env)) {
        Ok(())
    } else {
        Err(hidden(format!("view {app}/{env}")))
    }
}

/// Administration: of everything (`app == None`) or of one app.
pub(crate) fn require_admin(who: &Principal, app: Option<&str>) -> Result<()> {
    if who.can(Action::Admin, app, None) {
        Ok(())
    } else {
        Err(Error::Forbidden("this needs the admin role".into()))
    }
}
