//! SQLite backend of the Cairn [`Store`]: the embedded default.
//!
//! One file in WAL mode with `synchronous=FULL` and foreign keys on. Commits
//! go through exactly one writer connection (`BEGIN IMMEDIATE`); reads use a
//! small separate pool of read-only connections, so they never wait for a
//! writer. One process owns the file.

mod applied;
mod audit;
mod commit;
mod migrate;
mod rows;
#[cfg(test)]
mod upgrade_tests;
mod webhooks;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_model::{Revision, Scope};
use cairn_store::{
    AuditContext, AuditEvent, AuditFilter, AuditHead, AuditKey, AuditRecord, AuditSink, Catalog,
    Commit, Committed, EntryVersion, FlagCount, Head, SchemaRecord, SecretRecord, SecretVersion,
    Snapshot, Store, StoreError, StoreResult, TokenRecord, UserRecord,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool};

use rows::{
    err, micros, ENTRY_COLS, SCHEMA_COLS, SECRET_COLS, SECRET_VERSION_COLS, TOKEN_COLS, USER_COLS,
};

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections; reads are short.
const READERS: u32 = 4;

/// The SQLite store. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// pending migrations.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(err("open database"))?;
        migrate::run(&base).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.read_only(true))
            .await
            .map_err(err("open database for reading"))?;
        Ok(SqliteStore { writer, reader })
    }

    /// Migration versions applied to this database, ascending.
    pub async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        migrate::applied_versions(&self.reader).await
    }

    /// Closes both pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

async fn read_head(conn: &mut SqliteConnection) -> StoreResult<(Head, Revision)> {
    let (revision, catalog_revision, compacted): (i64, i64, i64) =
        sqlx::query_as("SELECT head, catalog_revision, compacted_revision FROM meta WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(err("read head"))?;
    Ok((
        Head {
            revision,
            catalog_revision,
        },
        compacted,
    ))
}

async fn read_catalog(conn: &mut SqliteConnection) -> StoreResult<Catalog> {
    let apps =
        sqlx::query("SELECT name, description, created_at, revision FROM apps ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .map_err(err("read apps"))?
            .iter()
            .map(rows::app)
            .collect::<StoreResult<_>>()?;
    let envs = sqlx::query(
        "SELECT name, description, protected, required_approvals, auto_approve, strict_flags, \
         created_at, revision FROM environments ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(err("read environments"))?
    .iter()
    .map(rows::environment)
    .collect::<StoreResult<_>>()?;
    let schemas = sqlx::query(&format!(
        "SELECT {SCHEMA_COLS} FROM schemas s WHERE s.version = \
         (SELECT MAX(s2.version) FROM schemas s2 WHERE s2.app = s.app AND s2.pattern = s.pattern) \
         ORDER BY s.app, s.pattern"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(err("read schemas"))?
    .iter()
    .map(rows::schema)
    .collect::<StoreResult<_>>()?;
    Ok(Catalog {
        apps,
        envs,
        schemas,
    })
}

fn entries(rows: Vec<sqlx::sqlite::SqliteRow>) -> StoreResult<Vec<EntryVersion>> {
    rows.iter().map(rows::entry).collect()
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(err("ping"))?;
        Ok(())
    }

    async fn commit(&self, commit: Commit) -> StoreResult<Committed> {
        commit::commit(&self.writer, commit).await
    }

    async fn head(&self) -> StoreResult<Head> {
        let mut conn = self.reader.acquire().await.map_err(err("acquire"))?;
        Ok(read_head(&mut conn).await?.0)
    }

    async fn load(&self) -> StoreResult<Snapshot> {
        let mut tx = self.reader.begin().await.map_err(err("begin read"))?;
        let (head, _) = read_head(&mut tx).await?;
        let catalog = read_catalog(&mut tx).await?;
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLS} FROM entries e JOIN entry_versions ev \
             ON ev.app = e.app AND ev.env = e.env AND ev.key = e.key AND ev.version = e.version \
             WHERE NOT e.deleted ORDER BY ev.app, ev.env, ev.key"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(err("read entries"))?;
        tx.commit().await.map_err(err("end read"))?;
        Ok(Snapshot {
            head,
            catalog,
            entries: entries(rows)?,
        })
    }

    async fn entry_changes_since(&self, after: Revision) -> StoreResult<(Head, Vec<EntryVersion>)> {
        let mut tx = self.reader.begin().await.map_err(err("begin read"))?;
        let (head, compacted) = read_head(&mut tx).await?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted,
            });
        }
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLS} FROM entry_versions ev \
             WHERE ev.revision > $1 AND ev.revision <= $2 ORDER BY ev.revision, ev.position"
        ))
        .bind(after)
        .bind(head.revision)
        .fetch_all(&mut *tx)
        .await
        .map_err(err("read entry changes"))?;
        tx.commit().await.map_err(err("end read"))?;
        Ok((head, entries(rows)?))
    }

    async fn scope_revisions(&self) -> StoreResult<Vec<(Scope, Revision)>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT app, env, MAX(revision) FROM entry_versions GROUP BY app, env ORDER BY app, env",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(err("read scope revisions"))?;
        Ok(rows
            .into_iter()
            .map(|(app, env, revision)| (Scope::from_stored(&app, &env), revision))
            .collect())
    }

    async fn load_catalog(&self) -> StoreResult<Catalog> {
        let mut tx = self.reader.begin().await.map_err(err("begin read"))?;
        let catalog = read_catalog(&mut tx).await?;
        tx.commit().await.map_err(err("end read"))?;
        Ok(catalog)
    }

    async fn entry_history(&self, scope: &Scope, key: &str) -> StoreResult<Vec<EntryVersion>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLS} FROM entry_versions ev \
             WHERE ev.app = $1 AND ev.env = $2 AND ev.key = $3 ORDER BY ev.version"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(key)
        .fetch_all(&self.reader)
        .await
        .map_err(err("read entry history"))?;
        entries(rows)
    }

    async fn entry_version(
        &self,
        scope: &Scope,
        key: &str,
        version: i64,
    ) -> StoreResult<Option<EntryVersion>> {
        let row = sqlx::query(&format!(
            "SELECT {ENTRY_COLS} FROM entry_versions ev \
             WHERE ev.app = $1 AND ev.env = $2 AND ev.key = $3 AND ev.version = $4"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(key)
        .bind(version)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("read entry version"))?;
        row.as_ref().map(rows::entry).transpose()
    }

    async fn entries_at(&self, scopes: &[Scope], at: Revision) -> StoreResult<Vec<EntryVersion>> {
        let mut tx = self.reader.begin().await.map_err(err("begin read"))?;
        let (head, compacted) = read_head(&mut tx).await?;
        if at > head.revision || at < 0 {
            return Err(StoreError::NotFound {
                what: format!("revision {at}"),
            });
        }
        if at < compacted {
            return Err(StoreError::Compacted {
                requested: at,
                oldest: compacted,
            });
        }
        let mut out = Vec::new();
        for scope in scopes {
            let rows = sqlx::query(&format!(
                "SELECT {ENTRY_COLS} FROM entry_versions ev \
                 WHERE ev.app = $1 AND ev.env = $2 AND ev.revision <= $3 AND ev.version = \
                 (SELECT MAX(v.version) FROM entry_versions v \
                  WHERE v.app = ev.app AND v.env = ev.env AND v.key = ev.key AND v.revision <= $3) \
                 ORDER BY ev.key"
            ))
            .bind(scope.app_str())
            .bind(scope.env_str())
            .bind(at)
            .fetch_all(&mut *tx)
            .await
            .map_err(err("read entries at revision"))?;
            out.extend(entries(rows)?);
        }
        tx.commit().await.map_err(err("end read"))?;
        Ok(out)
    }

    async fn schema_history(&self) -> StoreResult<Vec<SchemaRecord>> {
        sqlx::query(&format!(
            "SELECT {SCHEMA_COLS} FROM schemas s ORDER BY s.revision, s.app, s.pattern, s.version"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(err("read schema history"))?
        .iter()
        .map(rows::schema)
        .collect()
    }

    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        audit::read(&self.reader, filter).await
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"))
            .bind(hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(err("read token"))?;
        row.as_ref().map(rows::token).transpose()
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at, id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(err("read tokens"))?
        .iter()
        .map(rows::token)
        .collect()
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users ORDER BY name"))
            .fetch_all(&self.reader)
            .await
            .map_err(err("read users"))?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn append_audit(
        &self,
        context: &AuditContext,
        events: Vec<AuditEvent>,
        seal: Option<AuditKey>,
        sink: Option<&Arc<dyn AuditSink>>,
    ) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err("begin audit"))?;
        let written = commit::append_events(&mut tx, context, rows::now(), events, seal).await?;
        if let Some(sink) = sink {
            if let Err(e) = sink.write(&written).await {
                let _ = tx.rollback().await;
                return Err(StoreError::Unavailable(format!("audit sink: {e}")));
            }
        }
        tx.commit().await.map_err(err("commit audit"))?;
        Ok(())
    }

    async fn add_flag_counts(&self, increments: &[FlagCount]) -> StoreResult<()> {
        if increments.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(err("begin flag counts"))?;
        for c in increments {
            sqlx::query(
                "INSERT INTO flag_counts (app, env, key, variant, count, last_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (app, env, key, variant) DO UPDATE SET \
                 count = flag_counts.count + excluded.count, \
                 last_at = CASE WHEN excluded.last_at IS NULL OR (flag_counts.last_at IS NOT NULL AND flag_counts.last_at > excluded.last_at) THEN flag_counts.last_at ELSE excluded.last_at END",
            )
            .bind(&c.app)
            .bind(&c.env)
            .bind(&c.key)
            .bind(&c.variant)
            .bind(c.count)
            .bind(c.last_at.as_ref().map(rows::micros))
            .execute(&mut *tx)
            .await
            .map_err(err("add flag counts"))?;
        }
        tx.commit().await.map_err(err("commit flag counts"))?;
        Ok(())
    }

    async fn flag_counts(&self) -> StoreResult<Vec<FlagCount>> {
        let rows = sqlx::query(
            "SELECT app, env, key, variant, count, last_at FROM flag_counts ORDER BY app, env, key, variant",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(err("read flag counts"))?;
        rows.iter()
            .map(|row| {
                Ok(FlagCount {
                    app: rows::col(row, "app")?,
                    env: rows::col(row, "env")?,
                    key: rows::col(row, "key")?,
                    variant: rows::col(row, "variant")?,
                    count: rows::col(row, "count")?,
                    last_at: rows::opt_time_col(row, "last_at")?,
                })
            })
            .collect()
    }

    async fn secrets(&self) -> StoreResult<Vec<SecretRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {SECRET_COLS} FROM secrets WHERE NOT deleted ORDER BY app, env, name"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(err("read secrets"))?;
        rows.iter().map(|r| rows::secret(r).map(|s| s.0)).collect()
    }

    async fn secret(&self, scope: &Scope, name: &str) -> StoreResult<Option<(SecretRecord, bool)>> {
        let row = sqlx::query(&format!(
            "SELECT {SECRET_COLS} FROM secrets WHERE app = $1 AND env = $2 AND name = $3"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("read secret"))?;
        row.as_ref().map(rows::secret).transpose()
    }

    async fn secret_versions(&self, scope: &Scope, name: &str) -> StoreResult<Vec<SecretVersion>> {
        let rows = sqlx::query(&format!(
            "SELECT {SECRET_VERSION_COLS} FROM secret_versions \
             WHERE app = $1 AND env = $2 AND name = $3 ORDER BY version"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .fetch_all(&self.reader)
        .await
        .map_err(err("read secret versions"))?;
        rows.iter().map(rows::secret_version).collect()
    }

    async fn secret_version(
        &self,
        scope: &Scope,
        name: &str,
        version: i64,
    ) -> StoreResult<Option<SecretVersion>> {
        let row = sqlx::query(&format!(
            "SELECT {SECRET_VERSION_COLS} FROM secret_versions \
             WHERE app = $1 AND env = $2 AND name = $3 AND version = $4"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .bind(version)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("read secret version"))?;
        row.as_ref().map(rows::secret_version).transpose()
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let expires = now.checked_add_signed(ttl).unwrap_or(now);
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(&expires))
        .bind(micros(&now))
        .fetch_optional(&self.writer)
        .await
        .map_err(err("take lease"))?;
        Ok(held.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await
            .map_err(err("release lease"))?;
        Ok(())
    }

    async fn put_applied(&self, state: &cairn_store::AppliedState) -> StoreResult<()> {
        applied::put(&self.writer, state).await
    }

    async fn applied(&self, app: &str, env: &str) -> StoreResult<Vec<cairn_store::AppliedState>> {
        applied::list(&self.reader, app, env).await
    }

    async fn prune_applied(&self, before: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        applied::prune(&self.writer, &before).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<cairn_store::WebhookRecord>> {
        webhooks::list(&self.reader).await
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<cairn_store::WebhookRecord>> {
        webhooks::one(&self.reader, id).await
    }

    async fn webhook_cursor(&self) -> StoreResult<i64> {
        webhooks::cursor(&self.reader).await
    }

    async fn enqueue_webhook_deliveries(
        &self,
        from: i64,
        to: i64,
        deliveries: &[cairn_store::NewDelivery],
    ) -> StoreResult<bool> {
        webhooks::enqueue(&self.writer, from, to, deliveries).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> StoreResult<Vec<cairn_store::DeliveryRecord>> {
        webhooks::claim(&self.writer, now, lease_until, limit).await
    }

    async fn record_webhook_attempt(
        &self,
        id: &str,
        attempt: &cairn_store::DeliveryAttempt,
        outcome: &cairn_store::DeliveryOutcome,
    ) -> StoreResult<()> {
        webhooks::record_attempt(&self.writer, id, attempt, outcome).await
    }

    async fn prune_webhook_deliveries(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        webhooks::prune(&self.writer, before).await
    }

    async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<cairn_store::DeliveryRecord>> {
        webhooks::deliveries(&self.reader, webhook_id, limit).await
    }

    async fn audit_head(&self) -> StoreResult<AuditHead> {
        let (seq, mac, signature): (i64, String, String) =
            sqlx::query_as("SELECT audit_seq, audit_mac, audit_sig FROM meta WHERE id = 1")
                .fetch_one(&self.reader)
                .await
                .map_err(err("read audit head"))?;
        Ok(AuditHead {
            seq,
            mac,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_twice_applies_migrations_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.db");
        let first = SqliteStore::open(&path).await.unwrap();
        let all: Vec<i64> = migrate::MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(first.applied_migrations().await.unwrap(), all);
        first.close().await;
        let second = SqliteStore::open(&path).await.unwrap();
        assert_eq!(second.applied_migrations().await.unwrap(), all);
        assert_eq!(second.head().await.unwrap(), Head::default());
    }
}
