//! A tiny migration runner: embedded SQL files applied in order, each in its
//! own transaction, recorded in `_cairn_migrations`. Replicas starting at
//! once take turns on a session advisory lock.

use cairn_store::StoreResult;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use crate::dialect::err;

/// `(version, name, sql)`, in order. Never edit an applied migration: add one.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "identity",
        include_str!("../migrations/0002_identity.sql"),
    ),
    (
        3,
        "flag_counts",
        include_str!("../migrations/0003_flag_counts.sql"),
    ),
    (4, "secrets", include_str!("../migrations/0004_secrets.sql")),
    (
        5,
        "rotation",
        include_str!("../migrations/0005_rotation.sql"),
    ),
    (6, "applied", include_str!("../migrations/0006_applied.sql")),
    (
        7,
        "webhooks",
        include_str!("../migrations/0007_webhooks.sql"),
    ),
    (
        8,
        "hook_secret",
        include_str!("../migrations/0008_hook_secret.sql"),
    ),
    (
        9,
        "strict_flags",
        include_str!("../migrations/0009_strict_flags.sql"),
    ),
    (
        10,
        "time_micros",
        include_str!("../migrations/0010_time_micros.sql"),
    ),
    (
        11,
        "changes",
        include_str!("../migrations/0011_changes.sql"),
    ),
    (
        12,
        "approvers",
        include_str!("../migrations/0012_approvers.sql"),
    ),
];

/// Advisory lock key of Cairn migrations (arbitrary, fixed: "cairn" in ASCII).
const LOCK_KEY: i64 = 0x63_61_69_72_6e;

/// Applies every migration not applied yet. Safe to run on every start, by
/// any number of replicas at once.
pub(crate) async fn run(options: &PgConnectOptions) -> StoreResult<()> {
    run_up_to(options, i64::MAX).await
}

/// Applies the migrations up to `last` (inclusive) not applied yet.
pub(crate) async fn run_up_to(options: &PgConnectOptions, last: i64) -> StoreResult<()> {
    // A connection of its own: the session lock is released when it closes,
    // even if something below fails.
    let mut conn = options
        .connect()
        .await
        .map_err(err("connect for migrations"))?;
    let result = run_locked(&mut conn, last).await;
    let closed = conn
        .close()
        .await
        .map_err(err("close migration connection"));
    result.and(closed)
}

async fn run_locked(conn: &mut PgConnection, last: i64) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(err("take migration lock"))?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _cairn_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .execute(&mut *conn)
    .await
    .map_err(err("create _cairn_migrations"))?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= last) {
        // Plain BEGIN/COMMIT: this connection is closed after the run, which
        // rolls back a transaction left open by an error.
        exec(conn, "BEGIN", "begin migration").await?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM _cairn_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await
                .map_err(err("read _cairn_migrations"))?;
        if applied.is_none() {
            // A plain &str runs on the simple protocol: many statements at once.
            conn.execute(*sql).await.map_err(err("apply migration"))?;
            sqlx::query("INSERT INTO _cairn_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(err("record migration"))?;
        }
        exec(conn, "COMMIT", "commit migration").await?;
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(err("release migration lock"))?;
    Ok(())
}

async fn exec(conn: &mut PgConnection, sql: &'static str, what: &'static str) -> StoreResult<()> {
    conn.execute(sql).await.map_err(err(what))?;
    Ok(())
}
