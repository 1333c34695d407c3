// Webhook reads and the delivery queue, shared by the SQLite and PostgreSQL
// backends. Each backend's `webhooks.rs` includes this file after defining
// its dialect: `Conn`, `Pool`, `DbRow`, `ts_param` / `opt_ts_param`,
// `FOR_UPDATE` (row locks: `""` in SQLite, which has one writer) and
// `SKIP_LOCKED` (claims that skip rows another claimer holds).

const WEBHOOK_COLS: &str = "id, url, events, app, env, description, kek_id, wrapped_key, \
     ciphertext, created_at, revision, created_seq, deleted_at, deleted_seq";
const DELIVERY_COLS: &str = "id, webhook_id, audit_seq, event, payload, status, attempts, \
     attempt_log, next_attempt_at, created_at, last_attempt_at, delivered_at";

fn required_time(row: &DbRow, name: &str) -> StoreResult<DateTime<Utc>> {
    rows::opt_time_col(row, name)?
        .ok_or_else(|| StoreError::Backend(format!("column {name} is null")))
}

fn webhook_row(row: &DbRow) -> StoreResult<WebhookRecord> {
    let events: String = rows::col(row, "events")?;
    Ok(WebhookRecord {
        id: rows::col(row, "id")?,
        url: rows::col(row, "url")?,
        events: serde_json::from_str(&events)
            .map_err(|e| StoreError::Backend(format!("column events: {e}")))?,
        app: rows::col(row, "app")?,
        env: rows::col(row, "env")?,
        description: rows::col(row, "description")?,
        sealed_secret: SealedSecret {
            kek_id: rows::col(row, "kek_id")?,
            wrapped_key: rows::col(row, "wrapped_key")?,
            ciphertext: rows::col(row, "ciphertext")?,
        },
        created_at: required_time(row, "created_at")?,
        revision: rows::col(row, "revision")?,
        created_seq: rows::col(row, "created_seq")?,
        deleted_at: rows::opt_time_col(row, "deleted_at")?,
        deleted_seq: rows::col(row, "deleted_seq")?,
    })
}

fn delivery_row(row: &DbRow) -> StoreResult<DeliveryRecord> {
    let status: String = rows::col(row, "status")?;
    let log: String = rows::col(row, "attempt_log")?;
    Ok(DeliveryRecord {
        id: rows::col(row, "id")?,
        webhook_id: rows::col(row, "webhook_id")?,
        audit_seq: rows::col(row, "audit_seq")?,
        event: rows::col(row, "event")?,
        payload: rows::col(row, "payload")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Backend(format!("unknown delivery status {status:?}")))?,
        attempts: rows::col(row, "attempts")?,
        attempt_log: serde_json::from_str(&log)
            .map_err(|e| StoreError::Backend(format!("column attempt_log: {e}")))?,
        next_attempt_at: rows::opt_time_col(row, "next_attempt_at")?,
        created_at: required_time(row, "created_at")?,
        last_attempt_at: rows::opt_time_col(row, "last_attempt_at")?,
        delivered_at: rows::opt_time_col(row, "delivered_at")?,
    })
}

pub(crate) async fn list(pool: &Pool) -> StoreResult<Vec<WebhookRecord>> {
    let found = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY created_seq"
    ))
    .fetch_all(pool)
    .await
    .map_err(err("read webhooks"))?;
    found.iter().map(webhook_row).collect()
}

pub(crate) async fn one(pool: &Pool, id: &str) -> StoreResult<Option<WebhookRecord>> {
    let found = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(err("read webhook"))?;
    found.as_ref().map(webhook_row).transpose()
}

pub(crate) async fn cursor(pool: &Pool) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT audit_seq FROM webhook_cursor WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(err("read webhook cursor"))
}

/// The compare-and-set and the inserts; the caller owns the transaction.
pub(crate) async fn enqueue_in(
    conn: &mut Conn,
    from: i64,
    to: i64,
    deliveries: &[NewDelivery],
) -> StoreResult<bool> {
    let moved =
        sqlx::query("UPDATE webhook_cursor SET audit_seq = $2 WHERE id = 1 AND audit_seq = $1")
            .bind(from)
            .bind(to)
            .execute(&mut *conn)
            .await
            .map_err(err("advance webhook cursor"))?
            .rows_affected();
    if moved != 1 {
        return Ok(false);
    }
    for d in deliveries {
        sqlx::query(
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
        .bind(ts_param(&d.created_at))
        .execute(&mut *conn)
        .await
        .map_err(err("insert webhook delivery"))?;
    }
    Ok(true)
}

pub(crate) async fn claim(
    pool: &Pool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<DeliveryRecord>> {
    let found = sqlx::query(&format!(
        "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id IN (\
         SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at LIMIT $3{SKIP_LOCKED}) \
         RETURNING {DELIVERY_COLS}"
    ))
    .bind(ts_param(&now))
    .bind(ts_param(&lease_until))
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(err("claim webhook deliveries"))?;
    let mut claimed = found
        .iter()
        .map(delivery_row)
        .collect::<StoreResult<Vec<_>>>()?;
    claimed.sort_by_key(|d| d.audit_seq);
    Ok(claimed)
}

/// Append the attempt and apply the outcome; the caller owns the transaction.
pub(crate) async fn record_attempt_in(
    conn: &mut Conn,
    id: &str,
    attempt: &DeliveryAttempt,
    outcome: &DeliveryOutcome,
) -> StoreResult<()> {
    let current: Option<(String, String)> = sqlx::query_as(&format!(
        "SELECT status, attempt_log FROM webhook_deliveries WHERE id = $1{FOR_UPDATE}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("read webhook delivery"))?;
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
    log.push(attempt.clone());
    let log = serde_json::to_string(&log)
        .map_err(|e| StoreError::Backend(format!("serialize attempt_log: {e}")))?;
    let (status, next, delivered) = match outcome {
        DeliveryOutcome::Delivered => ("delivered", None, Some(attempt.at)),
        DeliveryOutcome::Retry(at) => ("pending", Some(*at), None),
        DeliveryOutcome::Failed => ("failed", None, None),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, attempt_log = $3, \
         next_attempt_at = $4, last_attempt_at = $5, delivered_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(log)
    .bind(opt_ts_param(next.as_ref()))
    .bind(ts_param(&attempt.at))
    .bind(opt_ts_param(delivered.as_ref()))
    .execute(&mut *conn)
    .await
    .map_err(err("record webhook attempt"))?;
    Ok(())
}

pub(crate) async fn deliveries(
    pool: &Pool,
    webhook_id: &str,
    limit: i64,
) -> StoreResult<Vec<DeliveryRecord>> {
    let found = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = $1 \
         ORDER BY audit_seq DESC LIMIT $2"
    ))
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(err("read webhook deliveries"))?;
    found.iter().map(delivery_row).collect()
}

pub(crate) async fn prune(pool: &Pool, before: DateTime<Utc>) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1")
            .bind(ts_param(&before))
            .execute(pool)
            .await
            .map_err(err("prune webhook deliveries"))?
            .rows_affected(),
    )
}
