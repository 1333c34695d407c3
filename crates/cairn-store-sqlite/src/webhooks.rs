//! Webhook subscriptions (reads) and the delivery queue. One process owns the
//! file and commits go through the one writer connection, so no row locks.

use cairn_store::{
    DeliveryAttempt, DeliveryOutcome, DeliveryRecord, DeliveryStatus, NewDelivery, SealedSecret,
    StoreError, StoreResult, WebhookRecord,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use crate::rows::{self, err};

type Conn = SqliteConnection;
type Pool = SqlitePool;
type DbRow = SqliteRow;
const FOR_UPDATE: &str = "";
const SKIP_LOCKED: &str = "";

fn ts_param(t: &DateTime<Utc>) -> i64 {
    crate::rows::micros(t)
}

fn opt_ts_param(t: Option<&DateTime<Utc>>) -> Option<i64> {
    t.map(crate::rows::micros)
}

include!("../../cairn-store/sql/webhooks_shared.rs");

pub(crate) async fn enqueue(
    writer: &SqlitePool,
    from: i64,
    to: i64,
    deliveries: &[NewDelivery],
) -> StoreResult<bool> {
    let mut tx = writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(err("begin enqueue"))?;
    if !enqueue_in(&mut tx, from, to, deliveries).await? {
        let _ = tx.rollback().await;
        return Ok(false);
    }
    tx.commit().await.map_err(err("commit enqueue"))?;
    Ok(true)
}

pub(crate) async fn record_attempt(
    writer: &SqlitePool,
    id: &str,
    attempt: &DeliveryAttempt,
    outcome: &DeliveryOutcome,
) -> StoreResult<()> {
    let mut tx = writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(err("begin attempt"))?;
    record_attempt_in(&mut tx, id, attempt, outcome).await?;
    tx.commit().await.map_err(err("commit attempt"))
}
