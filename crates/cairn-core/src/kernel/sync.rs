//! Memory and the store: reading the state, catching up, the clock, and
//! the revision it reflects.

use std::sync::{RwLockReadGuard, RwLockWriteGuard};

use cairn_model::Revision;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::Kernel;
use crate::kernel::state::State;
use crate::Result;

impl Kernel {
    /// The kernel's clock (`Options::clock`).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
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

    /// Like [`Kernel::sync`], but nothing to do if memory already reflects
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

    /// Is the database reachable?
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// Revisions older than this are no longer retained (history compaction).
    pub fn compacted_revision(&self) -> Revision {
        self.compacted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Did the last sync with the store fail (serving possibly stale memory)?
    pub fn is_stale(&self) -> bool {
        self.stale.load(std::sync::atomic::Ordering::Relaxed)
    }
}
