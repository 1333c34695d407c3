// Applied state reported by SDK instances (telemetry: no revision, no
// audit), written once for both backends: `include!`d by each backend's
// `applied.rs`, which defines `Pool` and `ts_param` (how a timestamp binds).

pub(crate) async fn put(writer: &Pool, s: &AppliedState) -> StoreResult<()> {
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
    .bind(ts_param(&s.reported_at))
    .execute(writer)
    .await
    .map_err(err("record applied state"))?;
    Ok(())
}

pub(crate) async fn list(reader: &Pool, app: &str, env: &str) -> StoreResult<Vec<AppliedState>> {
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

pub(crate) async fn prune(writer: &Pool, before: &DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM applied WHERE reported_at < $1")
        .bind(ts_param(before))
        .execute(writer)
        .await
        .map_err(err("prune applied state"))?;
    Ok(done.rows_affected())
}
