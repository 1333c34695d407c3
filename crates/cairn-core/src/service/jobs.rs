//! The façade's background jobs: each holds the service (weakly, so it
//! stops once the service is dropped) and calls through the features'
//! handles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::ChangeHint;

use super::Service;
use crate::webhooks::{WebhookSettings, PRUNE_EVERY};
use crate::Result;

impl Service {
    /// Keep this replica current with changes other replicas commit.
    pub fn spawn_sync_loop(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_every(
            every,
            "sync with the store failed; serving from memory",
            |svc| async move { svc.sync().await },
        )
    }

    /// Follow the store's change hints (PostgreSQL `LISTEN/NOTIFY`): sync on
    /// every hint for a revision not applied yet, and at once after the
    /// listening connection is (re-)established. Returns whether the store
    /// has hints; the periodic sync loop stays the safety net either way.
    pub async fn spawn_change_listener(self: &Arc<Self>) -> bool {
        let Some(mut listener) = self.kernel.store().change_listener().await else {
            return false;
        };
        let svc = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let hint = listener.next().await;
                let Some(svc) = svc.upgrade() else { return };
                if let ChangeHint::Committed(r) = hint {
                    if r <= svc.revision() {
                        continue;
                    }
                }
                if let Err(e) = svc.sync().await {
                    tracing::warn!(error = %e, ?hint, "sync after a change hint failed; serving from memory");
                }
            }
        });
        true
    }

    /// Flush flag evaluation counts every `every`.
    pub fn spawn_count_flusher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_every(
            every,
            "flushing flag evaluation counts failed; will retry",
            |svc| async move { svc.flags().flush_flag_counts().await },
        )
    }

    /// Forget silent instances every hour: kept `max_age` after their last report.
    pub fn spawn_applied_pruner(
        self: &Arc<Self>,
        max_age: Duration,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_every(
            Duration::from_secs(3600),
            "pruning applied state failed; will retry",
            move |svc| async move { svc.telemetry().prune_applied(max_age).await.map(|_| ()) },
        )
    }

    /// Rotate every `every` while this process holds the lease (renewed each
    /// tick; it lapses after three missed ticks, at least 2 s, and another
    /// replica takes over).
    pub fn spawn_rotation_scheduler(
        self: &Arc<Self>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let ttl = (every * 3).max(Duration::from_secs(2));
        self.spawn_every(
            every,
            "the secret-rotation scheduler failed; will retry",
            move |svc| async move { svc.secrets().rotation_tick(ttl).await.map(|_| ()) },
        )
    }

    /// Apply due scheduled change requests and expire stale pending ones
    /// every `every`, while this process holds the `change-scheduler` lease
    /// (renewed each tick; it lapses after three missed ticks, at least 2 s).
    /// Each transition is a compare-and-set on the request, so even two
    /// holders (a lease lost mid-tick) apply a request once.
    pub fn spawn_change_scheduler(
        self: &Arc<Self>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let ttl = (every * 3).max(Duration::from_secs(2));
        self.spawn_every(
            every,
            "the change-request scheduler failed; will retry",
            move |svc| async move {
                let holder = svc.scheduler.holder().to_owned();
                svc.approvals()
                    .scheduler_tick(&holder, ttl)
                    .await
                    .map(|_| ())
            },
        )
    }

    /// Claim up to `limit` due webhook deliveries and attempt them
    /// concurrently, waiting for all. Returns how many were attempted.
    pub async fn deliver_due_webhooks(
        self: &Arc<Self>,
        settings: &WebhookSettings,
        limit: usize,
    ) -> Result<usize> {
        let claimed = self.webhooks().claim_due(settings, limit).await?;
        let n = claimed.len();
        let mut tasks = tokio::task::JoinSet::new();
        for (d, target) in claimed {
            let (svc, settings) = (self.clone(), settings.clone());
            tasks.spawn(async move { svc.webhooks().attempt_delivery(d, target, &settings).await });
        }
        while tasks.join_next().await.is_some() {}
        Ok(n)
    }

    /// Tail the audit log and deliver, every `settings.poll`, until the
    /// service is dropped. Each process runs one; on PostgreSQL several
    /// replicas share the work (the cursor's compare-and-set and the claims
    /// keep every event delivered once per subscription).
    pub fn spawn_webhook_dispatcher(
        self: &Arc<Self>,
        settings: WebhookSettings,
    ) -> tokio::task::JoinHandle<()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        let settings = Arc::new(settings);
        let pruned_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
        self.spawn_every(
            settings.poll,
            "webhook dispatch failed; will retry",
            move |svc| {
                let (slots, settings) = (slots.clone(), settings.clone());
                let prune = {
                    let mut at = pruned_at.lock().unwrap_or_else(|e| e.into_inner());
                    let due = at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
                    if due {
                        *at = Some(Instant::now());
                    }
                    due
                };
                async move {
                    let webhooks = svc.webhooks();
                    if prune {
                        webhooks
                            .prune_webhook_deliveries(settings.retention)
                            .await?;
                    }
                    webhooks.dispatch_webhooks().await?;
                    let free = slots.available_permits();
                    for (d, target) in webhooks.claim_due(&settings, free).await? {
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            break;
                        };
                        let (svc, settings) = (svc.clone(), settings.clone());
                        tokio::spawn(async move {
                            svc.webhooks().attempt_delivery(d, target, &settings).await;
                            drop(permit);
                        });
                    }
                    Ok(())
                }
            },
        )
    }

    /// Run `job` every `every` (first after one period) until the service is
    /// dropped; failures are logged with `failure` and retried next period.
    fn spawn_every<F, Fut>(
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
}
