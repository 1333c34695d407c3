//! Webhook subscriptions (reads) and the delivery queue. The cursor moves
//! by compare-and-set in the transaction that enqueues; claims skip rows
//! another claimer holds ([`Dialect::SKIP_LOCKED`]).

use cairn_store::{
    DeliveryAttempt, DeliveryOutcome, DeliveryRecord, NewDelivery, StoreError, StoreResult,
    WebhookRecord,
};
use chrono::{DateTime, Utc};

use crate::commit::begin_write;
use crate::dialect::{Conn, Dialect};
use crate::query::{query, query_as, query_scalar};
use crate::rows::{self, micros, opt_micros, DELIVERY_COLS, WEBHOOK_COLS};

pub(crate) async fn list<D: Dialect>(conn: &mut Conn<D>) -> StoreResult<Vec<WebhookRecord>> {
    let found = query::<D>(format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY created_seq"
    ))
    .fetch_all(conn)
    .await
    .map_err(D::err("read webhooks"))?;
    rows::all(&found, rows::webhook)
}

pub(crate) async fn one<D: Dialect>(
    conn: &mut Conn<D>,
    id: &str,
) -> StoreResult<Option<WebhookRecord>> {
    let found = query::<D>(format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(D::err("read webhook"))?;
    found.as_ref().map(rows::webhook).transpose()
}

pub(crate) async fn cursor<D: Dialect>(conn: &mut Conn<D>) -> StoreResult<i64> {
    query_scalar::<D, _>("SELECT audit_seq FROM webhook_cursor WHERE id = 1")
        .fetch_one(conn)
        .await
        .map_err(D::err("read webhook cursor"))
}

/// Moves the cursor from `from` to `to` and inserts the deliveries, in one
/// transaction; `false` (nothing written) if the cursor was not at `from`.
pub(crate) async fn enqueue<D: Dialect>(
    dialect: &D,
    from: i64,
    to: i64,
    deliveries: &[NewDelivery],
) -> StoreResult<bool> {
    let mut tx = begin_write(dialect, "begin enqueue").await?;
    let moved =
        query::<D>("UPDATE webhook_cursor SET audit_seq = $2 WHERE id = 1 AND audit_seq = $1")
            .bind(from)
            .bind(to)
            .execute(&mut tx)
            .await
            .map_err(D::err("advance webhook cursor"))?;
    if moved != 1 {
        let _ = tx.rollback().await;
        return Ok(false);
    }
    for d in deliveries {
        query::<D>(
            "INSERT INTO webhook_deliveries (id, webhook_id, audit_seq, event, payload, status, \
             attempts, attempt_log, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, '[]', $6, $6) \
             ON CONFLICT (webhook_id, audit_seq) DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.webhook_id)
        .bind(d.audit_seq)
        .bind(&d.event)
        .bind(&d.payload)
        .bind(micros(&d.created_at))
        .execute(&mut tx)
        .await
        .map_err(D::err("insert webhook delivery"))?;
    }
    tx.commit().await.map_err(D::err("commit enqueue"))?;
    Ok(true)
}

/// Up to `limit` pending deliveries due at `now`, their next attempt moved
/// to `lease_until`; in `audit_seq` order.
pub(crate) async fn claim<D: Dialect>(
    conn: &mut Conn<D>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<DeliveryRecord>> {
    let found = query::<D>(format!(
        "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id IN (\
         SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at LIMIT $3{}) \
         RETURNING {DELIVERY_COLS}",
        D::SKIP_LOCKED
    ))
    .bind(micros(&now))
    .bind(micros(&lease_until))
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(D::err("claim webhook deliveries"))?;
    let mut claimed = rows::all(&found, rows::delivery)?;
    claimed.sort_by_key(|d| d.audit_seq);
    Ok(claimed)
}

/// Appends the attempt to the delivery's log and applies the outcome, in one
/// transaction; a delivery no longer pending is left as it is.
pub(crate) async fn record_attempt<D: Dialect>(
    dialect: &D,
    id: &str,
    attempt: &DeliveryAttempt,
    outcome: &DeliveryOutcome,
) -> StoreResult<()> {
    let mut tx = begin_write(dialect, "begin attempt").await?;
    let current: Option<(String, String)> = query_as::<D, _>(format!(
        "SELECT status, attempt_log FROM webhook_deliveries WHERE id = $1{}",
        D::FOR_UPDATE
    ))
    .bind(id)
    .fetch_optional(&mut tx)
    .await
    .map_err(D::err("read webhook delivery"))?;
    let Some((status, log)) = current else {
        return Err(StoreError::NotFound {
            what: format!("delivery {id}"),
        });
    };
    if status != "pending" {
        return Ok(());
    }
    let mut log: Vec<DeliveryAttempt> = serde_json::from_str(&log)
        .map_err(|e| StoreError::Backend(format!("column attempt_log: {e}")))?;
    // The log's time is stored as every time is, cut to the microsecond (it
    // is JSON, which would keep the nanoseconds): the log agrees with
    // `last_attempt_at` and `delivered_at`.
    let mut attempt = attempt.clone();
    attempt.at = DateTime::from_timestamp_micros(micros(&attempt.at)).unwrap_or(attempt.at);
    log.push(attempt.clone());
    let log = serde_json::to_string(&log)
        .map_err(|e| StoreError::Backend(format!("serialize attempt_log: {e}")))?;
    let (status, next, delivered) = match outcome {
        DeliveryOutcome::Delivered => ("delivered", None, Some(attempt.at)),
        DeliveryOutcome::Retry(at) => ("pending", Some(*at), None),
        DeliveryOutcome::Failed => ("failed", None, None),
    };
    query::<D>(
        "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, attempt_log = $3, \
         next_attempt_at = $4, last_attempt_at = $5, delivered_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(log)
    .bind(opt_micros(next.as_ref()))
    .bind(micros(&attempt.at))
    .bind(opt_micros(delivered.as_ref()))
    .execute(&mut tx)
    .await
    .map_err(D::err("record webhook attempt"))?;
    tx.commit().await.map_err(D::err("commit attempt"))
}

pub(crate) async fn deliveries<D: Dialect>(
    conn: &mut Conn<D>,
    webhook_id: &str,
    limit: i64,
) -> StoreResult<Vec<DeliveryRecord>> {
    let found = query::<D>(format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = $1 \
         ORDER BY audit_seq DESC LIMIT $2"
    ))
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(D::err("read webhook deliveries"))?;
    rows::all(&found, rows::delivery)
}

/// Deletes finished deliveries created before `before`; pending ones stay.
pub(crate) async fn prune<D: Dialect>(
    conn: &mut Conn<D>,
    before: DateTime<Utc>,
) -> StoreResult<u64> {
    query::<D>("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1")
        .bind(micros(&before))
        .execute(conn)
        .await
        .map_err(D::err("prune webhook deliveries"))
}
