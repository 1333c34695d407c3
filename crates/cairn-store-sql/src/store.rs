//! [`SqlStore`]: the [`Store`] over a [`Dialect`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_model::{Revision, Scope};
use cairn_store::{
    AppliedState, AuditContext, AuditEvent, AuditFilter, AuditHead, AuditKey, AuditRecord,
    AuditSink, Catalog, ChangeFilter, ChangeListener, ChangeRecord, Commit, Committed,
    DeliveryAttempt, DeliveryOutcome, DeliveryRecord, EntryVersion, FlagCount, Head, NewDelivery,
    SchemaRecord, SecretRecord, SecretVersion, Snapshot, Store, StoreError, StoreResult,
    TokenRecord, UserRecord, WebhookRecord,
};
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use crate::dialect::{Dialect, Open};
use crate::query::{query, query_as, query_scalar};
use crate::rows::{self, SECRET_COLS, SECRET_VERSION_COLS, TOKEN_COLS, USER_COLS};
use crate::{audit, changes, commit, read, telemetry, webhooks};

/// The Cairn store over SQL dialect `D`. Cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub struct SqlStore<D> {
    dialect: D,
}

impl<D: Dialect> SqlStore<D> {
    /// The store over an opened (and migrated) dialect.
    pub fn new(dialect: D) -> Self {
        SqlStore { dialect }
    }

    /// Opens the store at `location` (a file path for SQLite, a URL for
    /// PostgreSQL), applying pending migrations.
    pub async fn open<L>(location: L) -> StoreResult<Self>
    where
        D: Open<L>,
    {
        Ok(SqlStore::new(D::open(location).await?))
    }

    /// [`SqlStore::open`], as a server's store is usually spoken of.
    pub async fn connect<L>(location: L) -> StoreResult<Self>
    where
        D: Open<L>,
    {
        Self::open(location).await
    }

    pub fn dialect(&self) -> &D {
        &self.dialect
    }

    /// Every migration version this build knows, ascending.
    pub fn known_migrations() -> Vec<i64> {
        D::MIGRATIONS.iter().map(|m| m.0).collect()
    }

    /// Migration versions applied to this database, ascending.
    pub async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        let mut conn = self.read().await?;
        query_scalar::<D, i64>("SELECT version FROM _cairn_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .map_err(D::err("read _cairn_migrations"))
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.dialect.writer().close().await;
        self.dialect.reader().close().await;
    }

    async fn acquire(pool: &Pool<D::Db>) -> StoreResult<PoolConnection<D::Db>> {
        pool.acquire().await.map_err(D::err("acquire"))
    }

    /// A connection for one read statement.
    async fn read(&self) -> StoreResult<PoolConnection<D::Db>> {
        Self::acquire(self.dialect.reader()).await
    }

    /// A connection for one writing statement (its own transaction).
    async fn write(&self) -> StoreResult<PoolConnection<D::Db>> {
        Self::acquire(self.dialect.writer()).await
    }

    /// A read transaction: every statement in it sees the same data.
    async fn snapshot(&self) -> StoreResult<Transaction<'static, D::Db>> {
        self.dialect
            .reader()
            .begin_with(D::BEGIN_READ)
            .await
            .map_err(D::err("begin read"))
    }

    async fn end_read(tx: Transaction<'static, D::Db>) -> StoreResult<()> {
        tx.commit().await.map_err(D::err("end read"))
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.read().await?;
        query::<D>("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(D::err("ping"))?;
        Ok(())
    }

    async fn commit(&self, commit: Commit) -> StoreResult<Committed> {
        commit::commit(&self.dialect, commit).await
    }

    async fn head(&self) -> StoreResult<Head> {
        let mut conn = self.read().await?;
        Ok(read::head::<D>(&mut conn).await?.0)
    }

    async fn load(&self) -> StoreResult<Snapshot> {
        let mut tx = self.snapshot().await?;
        let (head, _) = read::head::<D>(&mut tx).await?;
        let catalog = read::catalog::<D>(&mut tx).await?;
        let entries = read::live_entries::<D>(&mut tx).await?;
        Self::end_read(tx).await?;
        Ok(Snapshot {
            head,
            catalog,
            entries,
        })
    }

    async fn entry_changes_since(&self, after: Revision) -> StoreResult<(Head, Vec<EntryVersion>)> {
        let mut tx = self.snapshot().await?;
        let (head, compacted) = read::head::<D>(&mut tx).await?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted,
            });
        }
        let changes = read::entry_changes::<D>(&mut tx, after, head.revision).await?;
        Self::end_read(tx).await?;
        Ok((head, changes))
    }

    async fn scope_revisions(&self) -> StoreResult<Vec<(Scope, Revision)>> {
        read::scope_revisions::<D>(&mut *self.read().await?).await
    }

    async fn load_catalog(&self) -> StoreResult<Catalog> {
        let mut tx = self.snapshot().await?;
        let catalog = read::catalog::<D>(&mut tx).await?;
        Self::end_read(tx).await?;
        Ok(catalog)
    }

    async fn entry_history(&self, scope: &Scope, key: &str) -> StoreResult<Vec<EntryVersion>> {
        read::entry_history::<D>(&mut *self.read().await?, scope, key).await
    }

    async fn entry_version(
        &self,
        scope: &Scope,
        key: &str,
        version: i64,
    ) -> StoreResult<Option<EntryVersion>> {
        read::entry_version::<D>(&mut *self.read().await?, scope, key, version).await
    }

    async fn entries_at(&self, scopes: &[Scope], at: Revision) -> StoreResult<Vec<EntryVersion>> {
        let mut tx = self.snapshot().await?;
        let found = read::entries_at::<D>(&mut tx, scopes, at).await?;
        Self::end_read(tx).await?;
        Ok(found)
    }

    async fn schema_history(&self) -> StoreResult<Vec<SchemaRecord>> {
        read::schema_history::<D>(&mut *self.read().await?).await
    }

    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        audit::read::<D>(&mut *self.read().await?, filter).await
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let found = query::<D>(format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"))
            .bind(hash)
            .fetch_optional(&mut *self.read().await?)
            .await
            .map_err(D::err("read token"))?;
        found.as_ref().map(rows::token).transpose()
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let found = query::<D>(format!(
            "SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at, id"
        ))
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(D::err("read tokens"))?;
        rows::all(&found, rows::token)
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let found = query::<D>(format!("SELECT {USER_COLS} FROM users ORDER BY name"))
            .fetch_all(&mut *self.read().await?)
            .await
            .map_err(D::err("read users"))?;
        rows::all(&found, rows::user)
    }

    async fn append_audit(
        &self,
        context: &AuditContext,
        events: Vec<AuditEvent>,
        seal: Option<AuditKey>,
        sink: Option<&Arc<dyn AuditSink>>,
    ) -> StoreResult<()> {
        commit::append_audit(&self.dialect, context, events, seal, sink).await
    }

    async fn add_flag_counts(&self, increments: &[FlagCount]) -> StoreResult<()> {
        telemetry::add_flag_counts(&self.dialect, increments).await
    }

    async fn flag_counts(&self) -> StoreResult<Vec<FlagCount>> {
        telemetry::flag_counts::<D>(&mut *self.read().await?).await
    }

    async fn audit_head(&self) -> StoreResult<AuditHead> {
        let (seq, mac, signature): (i64, String, String) =
            query_as::<D, _>("SELECT audit_seq, audit_mac, audit_sig FROM meta WHERE id = 1")
                .fetch_one(&mut *self.read().await?)
                .await
                .map_err(D::err("read audit head"))?;
        Ok(AuditHead {
            seq,
            mac,
            signature,
        })
    }

    async fn secrets(&self) -> StoreResult<Vec<SecretRecord>> {
        let found = query::<D>(format!(
            "SELECT {SECRET_COLS} FROM secrets WHERE NOT deleted ORDER BY app, env, name"
        ))
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(D::err("read secrets"))?;
        rows::all(&found, |r| rows::secret(r).map(|s| s.0))
    }

    async fn secret(&self, scope: &Scope, name: &str) -> StoreResult<Option<(SecretRecord, bool)>> {
        let found = query::<D>(format!(
            "SELECT {SECRET_COLS} FROM secrets WHERE app = $1 AND env = $2 AND name = $3"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .fetch_optional(&mut *self.read().await?)
        .await
        .map_err(D::err("read secret"))?;
        found.as_ref().map(rows::secret).transpose()
    }

    async fn secret_versions(&self, scope: &Scope, name: &str) -> StoreResult<Vec<SecretVersion>> {
        let found = query::<D>(format!(
            "SELECT {SECRET_VERSION_COLS} FROM secret_versions \
             WHERE app = $1 AND env = $2 AND name = $3 ORDER BY version"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(D::err("read secret versions"))?;
        rows::all(&found, rows::secret_version)
    }

    async fn secret_version(
        &self,
        scope: &Scope,
        name: &str,
        version: i64,
    ) -> StoreResult<Option<SecretVersion>> {
        let found = query::<D>(format!(
            "SELECT {SECRET_VERSION_COLS} FROM secret_versions \
             WHERE app = $1 AND env = $2 AND name = $3 AND version = $4"
        ))
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *self.read().await?)
        .await
        .map_err(D::err("read secret version"))?;
        found.as_ref().map(rows::secret_version).transpose()
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        self.dialect.try_lease(name, holder, ttl).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        query::<D>("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&mut *self.write().await?)
            .await
            .map_err(D::err("release lease"))?;
        Ok(())
    }

    async fn put_applied(&self, state: &AppliedState) -> StoreResult<()> {
        telemetry::put_applied::<D>(&mut *self.write().await?, state).await
    }

    async fn applied(&self, app: &str, env: &str) -> StoreResult<Vec<AppliedState>> {
        telemetry::applied::<D>(&mut *self.read().await?, app, env).await
    }

    async fn prune_applied(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        telemetry::prune_applied::<D>(&mut *self.write().await?, &before).await
    }

    async fn change(&self, id: &str) -> StoreResult<Option<ChangeRecord>> {
        changes::one::<D>(&mut *self.read().await?, id).await
    }

    async fn changes(&self, filter: &ChangeFilter) -> StoreResult<Vec<ChangeRecord>> {
        changes::list::<D>(&mut *self.read().await?, filter).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        webhooks::list::<D>(&mut *self.read().await?).await
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        webhooks::one::<D>(&mut *self.read().await?, id).await
    }

    async fn webhook_cursor(&self) -> StoreResult<i64> {
        webhooks::cursor::<D>(&mut *self.read().await?).await
    }

    async fn enqueue_webhook_deliveries(
        &self,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        webhooks::enqueue(&self.dialect, from, to, deliveries).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        webhooks::claim::<D>(&mut *self.write().await?, now, lease_until, limit).await
    }

    async fn record_webhook_attempt(
        &self,
        id: &str,
        attempt: &DeliveryAttempt,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()> {
        webhooks::record_attempt(&self.dialect, id, attempt, outcome).await
    }

    async fn prune_webhook_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        webhooks::prune::<D>(&mut *self.write().await?, before).await
    }

    async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        webhooks::deliveries::<D>(&mut *self.read().await?, webhook_id, limit).await
    }

    async fn change_listener(&self) -> Option<Box<dyn ChangeListener>> {
        self.dialect.change_listener()
    }
}
