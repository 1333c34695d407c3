//! Memory and the store: reading the state, catching up, the clock, and
//! the periodic jobs that keep a replica current.

use std::sync::{Arc, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use cairn_model::Revision;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::kernel::state::State;
use crate::service::Service;
use crate::Result;

impl Service {
    /// The kernel's clock (`Options::clock`).
    pub fn now(&self) -> DateTime<Utc> {
        self.opts.clock.now()
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, State> {
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
    pub(crate) async fn sync_past(&self, revision: Revision) -> Result<()> {
        let _guard = self.sync_lock.lock().await;
        if revision > 0 && self.read().head.revision >= revision {
            return Ok(());
        }
        let result = self.sync_locked().await;
        self.stale
            .store(result.is_err(), std::sync::atomic::Ordering::Relaxed);
        result
    }

    pub(crate) async fn sync_locked(&self) -> Result<()> {
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

    /// Is the database reachable?
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}
