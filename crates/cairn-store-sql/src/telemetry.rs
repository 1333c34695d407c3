//! Telemetry, written outside `Store::commit` (no revision, no audit
//! record): flag evaluation counts and what SDK instances report applied.

use cairn_store::{AppliedState, FlagCount, StoreResult};
use chrono::{DateTime, Utc};

use crate::commit::begin_write;
use crate::dialect::{Conn, Dialect};
use crate::query::query;
use crate::rows::{self, micros, opt_micros, APPLIED_COLS, FLAG_COUNT_COLS};

/// Adds the increments to the totals; `last_at` keeps the later time.
pub(crate) async fn add_flag_counts<D: Dialect>(
    dialect: &D,
    increments: &[FlagCount],
) -> StoreResult<()> {
    if increments.is_empty() {
        return Ok(());
    }
    let mut tx = begin_write(dialect, "begin flag counts").await?;
    for c in increments {
        query::<D>(
            "INSERT INTO flag_counts (app, env, key, variant, count, last_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (app, env, key, variant) DO UPDATE SET \
             count = flag_counts.count + excluded.count, \
             last_at = CASE WHEN excluded.last_at IS NULL OR (flag_counts.last_at IS NOT NULL \
             AND flag_counts.last_at > excluded.last_at) THEN flag_counts.last_at \
             ELSE excluded.last_at END",
        )
        .bind(&c.app)
        .bind(&c.env)
        .bind(&c.key)
        .bind(&c.variant)
        .bind(c.count)
        .bind(opt_micros(c.last_at.as_ref()))
        .execute(&mut tx)
        .await
        .map_err(D::err("add flag counts"))?;
    }
    tx.commit().await.map_err(D::err("commit flag counts"))
}

pub(crate) async fn flag_counts<D: Dialect>(conn: &mut Conn<D>) -> StoreResult<Vec<FlagCount>> {
    let found = query::<D>(format!(
        "SELECT {FLAG_COUNT_COLS} FROM flag_counts ORDER BY app, env, key, variant"
    ))
    .fetch_all(conn)
    .await
    .map_err(D::err("read flag counts"))?;
    rows::all(&found, rows::flag_count)
}

/// Records an instance's report, replacing its previous one.
pub(crate) async fn put_applied<D: Dialect>(
    conn: &mut Conn<D>,
    s: &AppliedState,
) -> StoreResult<()> {
    query::<D>(
        "INSERT INTO applied (app, env, instance, revision, checksum, reported_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (app, env, instance) DO UPDATE SET \
         revision = excluded.revision, checksum = excluded.checksum, \
         reported_at = excluded.reported_at",
    )
    .bind(&s.app)
    .bind(&s.env)
    .bind(&s.instance)
    .bind(s.revision)
    .bind(&s.checksum)
    .bind(micros(&s.reported_at))
    .execute(conn)
    .await
    .map_err(D::err("record applied state"))?;
    Ok(())
}

pub(crate) async fn applied<D: Dialect>(
    conn: &mut Conn<D>,
    app: &str,
    env: &str,
) -> StoreResult<Vec<AppliedState>> {
    let found = query::<D>(format!(
        "SELECT {APPLIED_COLS} FROM applied WHERE app = $1 AND env = $2 ORDER BY instance"
    ))
    .bind(app)
    .bind(env)
    .fetch_all(conn)
    .await
    .map_err(D::err("read applied state"))?;
    rows::all(&found, rows::applied)
}

pub(crate) async fn prune_applied<D: Dialect>(
    conn: &mut Conn<D>,
    before: &DateTime<Utc>,
) -> StoreResult<u64> {
    query::<D>("DELETE FROM applied WHERE reported_at < $1")
        .bind(micros(before))
        .execute(conn)
        .await
        .map_err(D::err("prune applied state"))
}
