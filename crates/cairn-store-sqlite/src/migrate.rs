//! A tiny migration runner: embedded SQL files applied in order, each in its
//! own transaction, recorded in `_cairn_migrations`.

use cairn_store::StoreResult;
use sqlx::SqlitePool;

use crate::rows::{err, now, ts};

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
];

/// Applies every migration not applied yet. Safe to run on every open.
pub(crate) async fn run(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _cairn_migrations (
             version    INTEGER PRIMARY KEY NOT NULL,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .execute(pool)
    .await
    .map_err(err("create _cairn_migrations"))?;

    for (version, name, sql) in MIGRATIONS {
        // IMMEDIATE: take the write lock before checking, so two processes
        // opening the same file cannot both apply a migration.
        let mut tx = pool
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
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(err("apply migration"))?;
            sqlx::query(
                "INSERT INTO _cairn_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(ts(&now()))
            .execute(&mut *tx)
            .await
            .map_err(err("record migration"))?;
        }
        tx.commit().await.map_err(err("commit migration"))?;
    }
    Ok(())
}

/// Versions recorded as applied, ascending (for tests and diagnostics).
pub async fn applied_versions(pool: &SqlitePool) -> StoreResult<Vec<i64>> {
    sqlx::query_scalar("SELECT version FROM _cairn_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(err("read _cairn_migrations"))
}
