//! Applied state reported by SDK instances (telemetry: no revision, no audit).

use cairn_store::{AppliedState, StoreError, StoreResult};
use sqlx::PgPool;

use crate::rows::{self, err};

pub(crate) async fn put(writer: &PgPool, s: &AppliedState) -> StoreResult<()> {
    sqlx::query(
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
    .bind(s.reported_at)
    .execute(writer)
    .await
    .map_err(err("record applied state"))?;
    Ok(())
}

pub(crate) async fn list(reader: &PgPool, app: &str, env: &str) -> StoreResult<Vec<AppliedState>> {
    let found = sqlx::query(
        "SELECT app, env, instance, revision, checksum, reported_at FROM applied \
         WHERE app = $1 AND env = $2 ORDER BY instance",
    )
    .bind(app)
    .bind(env)
    .fetch_all(reader)
    .await
    .map_err(err("read applied state"))?;
    found
        .iter()
        .map(|row| {
            Ok(AppliedState {
                app: rows::col(row, "app")?,
                env: rows::col(row, "env")?,
                instance: rows::col(row, "instance")?,
                revision: rows::col(row, "revision")?,
                checksum: rows::col(row, "checksum")?,
                reported_at: rows::opt_time_col(row, "reported_at")?
                    .ok_or_else(|| StoreError::Backend("applied.reported_at is null".into()))?,
            })
        })
        .collect()
}
