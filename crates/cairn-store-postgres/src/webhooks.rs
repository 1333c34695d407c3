//! Webhook subscriptions (reads) and the delivery queue. Several replicas
//! share the queue: claims skip rows another replica holds, and the cursor
//! moves by compare-and-set in the transaction that enqueues.

use cairn_store::{
    DeliveryAttempt, DeliveryOutcome, DeliveryRecord, DeliveryStatus, NewDelivery, SealedSecret,
    StoreError, StoreResult, WebhookRecord,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};

use crate::rows::{self, err};

type Conn = PgConnection;
type Pool = PgPool;
type DbRow = PgRow;
const FOR_UPDATE: &str = " FOR UPDATE";
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

fn ts_param(t: &DateTime<Utc>) -> i64 {
    crate::rows::micros(t)
}

fn opt_ts_param(t: Option<&DateTime<Utc>>) -> Option<i64> {
    t.map(crate::rows::micros)
}

include!("../../cairn-store/sql/webhooks_shared.rs");

pub(crate) async fn enqueue(
    pool: &PgPool,
    from: i64,
    to: i64,
    deliveries: &[NewDelivery],
) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(err("begin enqueue"))?;
    if !enqueue_in(&mut tx, from, to, deliveries).await? {
        let _ = tx.rollback().await;
        return Ok(false);
    }
    tx.commit().await.map_err(err("commit enqueue"))?;
    Ok(true)
}

pub(crate) async fn record_attempt(
    pool: &PgPool,
    id: &str,
    attempt: &DeliveryAttempt,
    outcome: &DeliveryOutcome,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(err("begin attempt"))?;
    record_attempt_in(&mut tx, id, attempt, outcome).await?;
    tx.commit().await.map_err(err("commit attempt"))
}
