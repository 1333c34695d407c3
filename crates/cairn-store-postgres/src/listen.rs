//! `LISTEN cairn_changes`: the hint that another replica committed.
//!
//! Every commit sends `NOTIFY cairn_changes, '<revision>'` inside its
//! transaction (delivered at commit). A notification is only a hint; the
//! replica then reads the change table, which is the truth. When the
//! listening connection drops, the listener reports `Lost`, reconnects with
//! backoff and reports `Connected` so the replica catches up at once.

use std::time::Duration;

use async_trait::async_trait;
use cairn_store::{ChangeHint, ChangeListener};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

/// The notification channel every commit notifies.
pub const CHANNEL: &str = "cairn_changes";

const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct PgChangeListener {
    pool: PgPool,
    listener: Option<PgListener>,
    backoff: Duration,
    lost_reported: bool,
}

impl PgChangeListener {
    pub(crate) fn new(pool: PgPool) -> Self {
        PgChangeListener {
            pool,
            listener: None,
            backoff: Duration::ZERO,
            lost_reported: true,
        }
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut l = PgListener::connect_with(&self.pool).await?;
        l.listen(CHANNEL).await?;
        Ok(l)
    }
}

#[async_trait]
impl ChangeListener for PgChangeListener {
    async fn next(&mut self) -> ChangeHint {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                if !self.backoff.is_zero() {
                    tokio::time::sleep(self.backoff).await;
                }
                match self.connect().await {
                    Ok(l) => {
                        self.listener = Some(l);
                        self.backoff = Duration::ZERO;
                        self.lost_reported = false;
                        return ChangeHint::Connected;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                        self.backoff =
                            (self.backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                        if !self.lost_reported {
                            self.lost_reported = true;
                            return ChangeHint::Lost;
                        }
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(n)) => match n.payload().parse() {
                    Ok(revision) => return ChangeHint::Committed(revision),
                    // Not ours; still worth a catch-up.
                    Err(_) => return ChangeHint::Connected,
                },
                Ok(None) | Err(_) => {
                    tracing::warn!("LISTEN connection lost; reconnecting");
                    self.listener = None;
                    self.backoff = Duration::from_millis(100);
                    self.lost_reported = true;
                    return ChangeHint::Lost;
                }
            }
        }
    }
}
