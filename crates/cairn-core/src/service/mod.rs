//! The façade: the one service object a server (or test) holds. It opens the
//! store, owns the kernel and the collaborators the features share (the
//! keyring, the rotation scheduler, the outbound HTTP guard), hands out one
//! handle per feature (`config()`, `flags()`, `secrets()`, …: the kernel plus
//! exactly what that feature needs) and runs the background jobs
//! (`jobs.rs`). Its own methods delegate; no feature reaches it.

mod jobs;

use std::sync::Arc;
use std::time::Duration;

use cairn_model::{Revision, DEFAULT_MAX_VALUE_BYTES};
use cairn_store::{ChangeFilter, ChangeState, Mutation, Role, Store, TokenRecord};
use chrono::{DateTime, Utc};

use crate::approvals::Approvals;
use crate::config::Config;
use crate::crypto::keys::{Keyring, MasterKey, Purpose};
use crate::flags::Flags;
use crate::identity::auth::{self, Origin, Principal};
use crate::identity::Identity;
use crate::kernel::state::State;
use crate::kernel::Kernel;
use crate::outbound::Outbound;
use crate::secrets::rotation::Scheduler;
use crate::secrets::Secrets;
use crate::telemetry::Telemetry;
use crate::webhooks::Webhooks;
use crate::{Error, Result};
use cairn_store::{CreateEnv, CreateToken};

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
    pub jwt: Option<Arc<crate::identity::jwt::JwtVerifier>>,
    /// A second audit destination (fail closed).
    pub audit_sink: Option<Arc<dyn cairn_store::AuditSink>>,
    /// Interval of the heartbeat comments on watch streams.
    pub watch_heartbeat: Duration,
    /// Allow outbound HTTP (webhooks, rotation hooks) to loopback, private and
    /// link-local addresses (`--allow-private-targets`); see `crate::outbound`.
    pub allow_private_targets: bool,
    /// First retry delay after a failed scheduled rotation (doubles per failure).
    pub rotation_retry_base: Duration,
    /// What "now" is (see `crate::kernel::clock`); the wall clock unless a test moves its own.
    pub clock: Arc<dyn crate::kernel::clock::Clock>,
    /// How long a pending change request waits for approvals before it
    /// expires (DESIGN.md §7: 14 days by default).
    pub change_expiry: Duration,
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
            clock: Arc::new(crate::kernel::clock::SystemClock),
            change_expiry: crate::approvals::DEFAULT_EXPIRY,
        }
    }
}

/// The one service object a server (or test) holds.
pub struct Service {
    /// State, sync, commit, hub, metrics, clock: what every feature builds on.
    kernel: Kernel,
    opts: Options,
    /// The master key and the previous ones (from `opts`).
    keys: Keyring,
    /// The secret-rotation scheduler's state in this process.
    scheduler: Scheduler,
    /// The outbound HTTP guard, built once: its clones share one client
    /// (TLS setup, connection pool, checking resolver).
    outbound: Outbound,
}

/// One handle per feature: the kernel and the collaborators it needs.
impl Service {
    /// Configuration entries (the write path, reads), the catalog, schemas,
    /// watching a view.
    pub fn config(&self) -> Config<'_> {
        Config::new(&self.kernel, self.opts.max_value_bytes)
    }

    /// Flag sets, evaluation, listings, lint, evaluation counts.
    pub fn flags(&self) -> Flags<'_> {
        Flags::new(&self.kernel)
    }

    /// Secrets, rotation, resolving with secrets, rekeying.
    pub fn secrets(&self) -> Secrets<'_> {
        Secrets::new(&self.kernel, &self.keys, &self.scheduler, &self.outbound)
    }

    /// Webhook subscriptions, the dispatcher, deliveries.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks::new(&self.kernel, &self.keys, &self.outbound)
    }

    /// Users, login, tokens, authentication, the audit log.
    pub fn identity(&self) -> Identity<'_> {
        Identity::new(&self.kernel, self.opts.jwt.as_deref(), &self.keys)
    }

    /// SDK reports and the applied state of instances.
    pub fn telemetry(&self) -> Telemetry<'_> {
        Telemetry::new(&self.kernel)
    }

    /// Change requests for protected environments: gated writes, approvals,
    /// applying, the scheduler's tick.
    pub fn approvals(&self) -> Approvals<'_> {
        Approvals::new(&self.kernel, self.config(), self.opts.change_expiry)
    }
}

/// The kernel operations callers outside the crate use, delegated.
impl Service {
    /// What "now" is ([`Options::clock`]).
    pub fn now(&self) -> DateTime<Utc> {
        self.kernel.now()
    }

    /// The revision this replica's memory reflects.
    pub fn revision(&self) -> Revision {
        self.kernel.revision()
    }

    /// Catch up with the store (what other replicas committed).
    pub async fn sync(&self) -> Result<()> {
        self.kernel.sync().await
    }

    /// Is the database reachable?
    pub async fn ready(&self) -> Result<()> {
        self.kernel.ready().await
    }

    /// Did the last sync with the store fail (serving possibly stale memory)?
    pub fn is_stale(&self) -> bool {
        self.kernel.is_stale()
    }

    /// Revisions older than this are no longer retained (history compaction).
    pub fn compacted_revision(&self) -> Revision {
        self.kernel.compacted_revision()
    }
}

impl Service {
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
        let compacted = store.compacted_revision().await?;
        let counts = store.flag_counts().await?;
        state.flag_stats().seed(&counts);
        let svc = Arc::new(Service {
            kernel: Kernel::new(
                store,
                state,
                compacted,
                opts.master_key.derive(Purpose::Audit),
                opts.audit_sink.clone(),
                opts.replica.clone(),
                opts.clock.clone(),
            ),
            keys: Keyring::new(opts.master_key.clone(), opts.previous_master_keys.clone()),
            scheduler: Scheduler::new(&opts.replica, opts.rotation_retry_base),
            outbound: Outbound::new(opts.allow_private_targets),
            opts,
        });
        svc.ensure_default_envs().await?;
        let token = svc.ensure_admin_token().await?;
        Ok((svc, token))
    }

    async fn ensure_default_envs(&self) -> Result<()> {
        if self.kernel.revision() != 0 {
            return Ok(());
        }
        let mutations = DEFAULT_ENVS
            .iter()
            .map(|name| {
                let m = Mutation::CreateEnv(CreateEnv {
                    name: (*name).to_owned(),
                    description: String::new(),
                    protected: false,
                    required_approvals: 0,
                    auto_approve: true,
                    strict_flags: false,
                    approvers: Vec::new(),
                });
                (None, m)
            })
            .collect();
        match self
            .kernel
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
        if !self.kernel.read().tokens.is_empty() {
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
            created_at: self.kernel.now(),
            expires_at: None,
            revoked_at: None,
            user: None,
        };
        let m = Mutation::CreateToken(CreateToken {
            token: record,
            bootstrap: true,
        });
        match self
            .kernel
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
    pub fn outbound(&self) -> Outbound {
        self.outbound.clone()
    }

    /// This process's metrics.
    pub fn metrics(&self) -> &crate::kernel::metrics::Metrics {
        self.kernel.metrics()
    }

    /// The text exposition of every metric (Prometheus `/metrics`). The
    /// open change requests are counted from the store (committed state,
    /// the same on every replica), not from this replica's memory.
    pub async fn render_metrics(&self) -> String {
        let open = ChangeFilter {
            states: vec![ChangeState::Pending, ChangeState::Scheduled],
            limit: None,
        };
        match self.kernel.store().changes(&open).await {
            Ok(records) => {
                let envs: Vec<String> = self.kernel.read().envs.keys().cloned().collect();
                let mut counts = std::collections::BTreeMap::new();
                for env in &envs {
                    for state in &open.states {
                        counts.insert((env.as_str(), state.as_str()), 0usize);
                    }
                }
                for r in &records {
                    for env in &r.environments {
                        *counts.entry((env.as_str(), r.state.as_str())).or_default() += 1;
                    }
                }
                self.metrics()
                    .set_open_changes(counts.into_iter().map(|((e, s), n)| (e, s, n)));
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count the open change requests"),
        }
        self.metrics().render(self.kernel.revision())
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The store's backend name (`sqlite`, `postgres`), for `/readyz`.
    pub fn backend(&self) -> &'static str {
        self.kernel.store().backend()
    }

    /// The store itself, for tests that inspect what it holds (feature
    /// `testing`); everything else goes through the service.
    #[cfg(feature = "testing")]
    pub fn store(&self) -> &Arc<dyn Store> {
        self.kernel.store()
    }
}
