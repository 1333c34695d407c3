//! The façade: the one service object a server (or test) holds; it opens
//! the store, and each capability's methods live in its own folder.

use std::sync::Arc;
use std::time::Duration;

use cairn_model::DEFAULT_MAX_VALUE_BYTES;
use cairn_store::{Mutation, Role, Store, TokenRecord};

use crate::crypto::keys::{MasterKey, Purpose};
use crate::identity::auth::{self, Origin, Principal};
use crate::kernel::state::State;
use crate::kernel::Kernel;
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
    /// link-local addresses (`--allow-private-targets`); see `crate::webhooks::outbound`.
    pub allow_private_targets: bool,
    /// First retry delay after a failed scheduled rotation (doubles per failure).
    pub rotation_retry_base: Duration,
    /// What "now" is (see `crate::kernel::clock`); the wall clock unless a test moves its own.
    pub clock: Arc<dyn crate::kernel::clock::Clock>,
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
        }
    }
}

/// The one service object a server (or test) holds.
pub struct Service {
    /// State, sync, commit, hub, clock: what every feature builds on.
    pub(crate) kernel: Kernel,
    pub(crate) opts: Options,
    /// The secret-rotation scheduler's state in this process.
    pub(crate) scheduler: crate::secrets::rotation::Scheduler,
    /// The outbound HTTP guard, built once: its clones share one client
    /// (TLS setup, connection pool, checking resolver).
    pub(crate) outbound: crate::webhooks::outbound::Outbound,
}

/// The features reach the kernel through the façade for now (their
/// `impl Service` blocks); the kernel itself knows no feature.
impl std::ops::Deref for Service {
    type Target = Kernel;

    fn deref(&self) -> &Kernel {
        &self.kernel
    }
}

impl Service {
    /// Forget silent instances every hour: kept `max_age` after their last report.
    pub fn spawn_applied_pruner(
        self: &std::sync::Arc<Self>,
        max_age: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_every(
            std::time::Duration::from_secs(3600),
            "pruning applied state failed; will retry",
            move |svc| async move { svc.prune_applied(max_age).await.map(|_| ()) },
        )
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
            scheduler: crate::secrets::rotation::Scheduler::new(
                &opts.replica,
                opts.rotation_retry_base,
            ),
            outbound: crate::webhooks::outbound::Outbound::new(opts.allow_private_targets),
            opts,
        });
        let counts = svc.store().flag_counts().await?;
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
                let m = Mutation::CreateEnv(CreateEnv {
                    name: (*name).to_owned(),
                    description: String::new(),
                    protected: false,
                    required_approvals: 0,
                    auto_approve: true,
                    strict_flags: false,
                });
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
        let m = Mutation::CreateToken(CreateToken {
            token: record,
            bootstrap: true,
        });
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
    pub fn outbound(&self) -> crate::webhooks::outbound::Outbound {
        self.outbound.clone()
    }

    /// This process's metrics.
    pub fn metrics(&self) -> &crate::telemetry::metrics::Metrics {
        self.kernel.metrics()
    }

    /// The text exposition of every metric (Prometheus `/metrics`).
    pub fn render_metrics(&self) -> String {
        self.metrics().render(self.read().head.revision)
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The store's backend name (`sqlite`, `postgres`), for `/readyz`.
    pub fn backend(&self) -> &'static str {
        self.store().backend()
    }

    /// The store itself, for tests that inspect what it holds (feature
    /// `testing`); everything else goes through the service.
    #[cfg(feature = "testing")]
    pub fn store(&self) -> &Arc<dyn Store> {
        self.kernel.store()
    }

    /// Write the flag evaluation counts gathered since the last flush.
    pub async fn flush_flag_counts(&self) -> Result<()> {
        let stats = self.read().flag_stats.clone();
        let increments = stats.drain();
        if let Err(e) = self.store().add_flag_counts(&increments).await {
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
}
