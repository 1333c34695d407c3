//! A tiny migration runner: embedded SQL files applied in order, each in its
//! own transaction, recorded in `_cairn_migrations`. (Its `applied_at` is
//! bookkeeping text, not one of the store's timestamps.)

use cairn_store::{StoreError, StoreResult};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, SqliteConnection};

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

/// Applies every migration not applied yet. Safe to run on every open.
pub(crate) async fn run(options: &SqliteConnectOptions) -> StoreResult<()> {
    run_up_to(options, i64::MAX).await
}

/// Applies the migrations up to `last` (inclusive) not applied yet, on a
/// connection of their own with foreign keys off: a migration that rebuilds
/// a referenced table (0010) could not drop it otherwise. Each migration's
/// transaction checks the foreign keys (`PRAGMA foreign_key_check`) before it
/// commits, so none is left broken.
pub(crate) async fn run_up_to(options: &SqliteConnectOptions, last: i64) -> StoreResult<()> {
    let mut conn = options
        .clone()
        .foreign_keys(false)
        .connect()
        .await
        .map_err(err("connect for migrations"))?;
    let result = run_on(&mut conn, last).await;
    // Closing rolls back a transaction an error left open.
    let closed = conn
        .close()
        .await
        .map_err(err("close migration connection"));
    result.and(closed)
}

async fn run_on(conn: &mut SqliteConnection, last: i64) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _cairn_migrations (
             version    INTEGER PRIMARY KEY NOT NULL,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .execute(&mut *conn)
    .await
    .map_err(err("create _cairn_migrations"))?;

    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= last) {
        // IMMEDIATE: take the write lock before checking, so two processes
        // opening the same file cannot both apply a migration.
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err("begin migration"))?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM _cairn_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("read _cairn_migrations"))?;
        if applied.is_none() {
            // A plain &str runs every statement in it, unprepared.
            tx.execute(*sql).await.map_err(err("apply migration"))?;
            let broken = sqlx::query("PRAGMA foreign_key_check")
                .fetch_all(&mut *tx)
                .await
                .map_err(err("check foreign keys"))?;
            if !broken.is_empty() {
                return Err(StoreError::Backend(format!(
                    "migration {version} ({name}) leaves {} rows with a broken foreign key",
                    broken.len()
                )));
            }
            sqlx::query(
                "INSERT INTO _cairn_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
            )
            .execute(&mut *tx)
            .await
            .map_err(err("record migration"))?;
        }
        tx.commit().await.map_err(err("commit migration"))?;
    }
    Ok(())
}
