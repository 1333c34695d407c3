//! The PostgreSQL dialect: one pool per replica; the `meta` row lock
//! serializes committers of every replica and the database's clock stamps
//! commits and decides leases; claims skip rows another replica holds;
//! `LISTEN/NOTIFY` hints other replicas.

use std::str::FromStr;
use std::time::Duration;

use cairn_store::{ChangeListener, StoreError, StoreResult};
use cairn_store_sql::{Arg, Begun, Col, Dialect, Open, Query, SqlRow};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Decode, PgConnection, PgPool, Pool, Postgres, Row as _, Type};

use crate::{listen, migrate};

/// Connections per store (per replica).
const MAX_CONNECTIONS: u32 = 10;
/// How long to wait for a free connection (or a new one) before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL dialect of [`cairn_store_sql::SqlStore`]: its pool.
#[derive(Debug, Clone)]
pub struct PgDialect {
    pool: PgPool,
}

impl<S: AsRef<str> + Send> Open<S> for PgDialect {
    /// Connects to `url` (`postgres://…`) and applies pending migrations.
    async fn open(url: S) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url.as_ref())
            .map_err(|e| StoreError::Backend(format!("bad database URL: {e}")))?;
        migrate::run(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(err("connect"))?;
        Ok(PgDialect { pool })
    }
}

/// A result row.
pub struct Row(PgRow);

impl Row {
    fn value<T>(&self, col: Col<'_>) -> sqlx::Result<Option<T>>
    where
        for<'r> T: Decode<'r, Postgres> + Type<Postgres>,
    {
        match col {
            Col::Index(i) => self.0.try_get(i),
            Col::Name(name) => self.0.try_get(name),
        }
    }
}

impl SqlRow for Row {
    fn int64(&self, col: Col<'_>) -> sqlx::Result<Option<i64>> {
        self.value(col)
    }
    fn int32(&self, col: Col<'_>) -> sqlx::Result<Option<i32>> {
        self.value(col)
    }
    fn boolean(&self, col: Col<'_>) -> sqlx::Result<Option<bool>> {
        self.value(col)
    }
    fn text(&self, col: Col<'_>) -> sqlx::Result<Option<String>> {
        self.value(col)
    }
    fn bytes(&self, col: Col<'_>) -> sqlx::Result<Option<Vec<u8>>> {
        self.value(col)
    }
}

/// `query` as a sqlx statement with its values bound.
fn prepare<'q>(query: &'q Query<'_, PgDialect>) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    query
        .args()
        .iter()
        .fold(sqlx::query(query.sql()), |q, arg| match arg {
            Arg::Int64(v) => q.bind(*v),
            Arg::Int32(v) => q.bind(*v),
            Arg::Bool(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref()),
            Arg::Bytes(v) => q.bind(v.as_deref()),
        })
}

/// Maps a sqlx error to a [`StoreError`]: connection trouble is
/// `Unavailable`, the rest `Backend`. Messages name what was being done and
/// the server's message, never a bound value.
fn map_err(context: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("{context}: {e}")),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // 08: connection exception; 57P0x: shutting down / cannot connect
            // now; 53300: too many connections.
            if code.starts_with("08") || code.starts_with("57P0") || code == "53300" {
                StoreError::Unavailable(format!("{context}: {} ({code})", db.message()))
            } else {
                StoreError::Backend(format!("{context}: {} ({code})", db.message()))
            }
        }
        _ => StoreError::Backend(format!("{context}: {e}")),
    }
}

/// `map_err` as a closure for `.map_err(err("…"))`.
pub(crate) fn err(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| map_err(context, e)
}

impl Dialect for PgDialect {
    type Db = Postgres;
    type Row = Row;

    const NAME: &'static str = "postgres";
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = migrate::MIGRATIONS;
    const BEGIN_READ: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn writer(&self) -> &Pool<Postgres> {
        &self.pool
    }

    async fn execute(conn: &mut PgConnection, query: &Query<'_, Self>) -> sqlx::Result<u64> {
        Ok(prepare(query).execute(conn).await?.rows_affected())
    }

    async fn fetch_all(conn: &mut PgConnection, query: &Query<'_, Self>) -> sqlx::Result<Vec<Row>> {
        let rows = prepare(query).fetch_all(conn).await?;
        Ok(rows.into_iter().map(Row).collect())
    }

    async fn fetch_optional(
        conn: &mut PgConnection,
        query: &Query<'_, Self>,
    ) -> sqlx::Result<Option<Row>> {
        Ok(prepare(query).fetch_optional(conn).await?.map(Row))
    }

    fn map_err(context: &str, e: sqlx::Error) -> StoreError {
        map_err(context, e)
    }

    /// The meta row lock serializes committers of every replica until this
    /// transaction ends; a rollback gives the number back. The database
    /// clock stamps the commit, so times follow revisions.
    ///
    /// The same statement queues the hint for other replicas (`NOTIFY` with
    /// the revision), which PostgreSQL delivers only if this transaction
    /// commits, and in commit order: one round trip inside the lock, not two.
    /// `catalog_revision` is read from the row version the lock was taken
    /// on (the newest), not from the statement's snapshot.
    async fn begin_commit(conn: &mut PgConnection) -> StoreResult<Begun> {
        let (revision, at, catalog_revision): (i64, DateTime<Utc>, i64) = sqlx::query_as(
            "WITH m AS (UPDATE meta SET head = head + 1 WHERE id = 1 \
             RETURNING head, catalog_revision) \
             SELECT m.head, date_trunc('microseconds', clock_timestamp()), m.catalog_revision \
             FROM m, pg_notify($1, m.head::text)",
        )
        .bind(listen::CHANNEL)
        .fetch_one(conn)
        .await
        .map_err(err("allocate revision"))?;
        Ok(Begun {
            revision,
            at,
            catalog_revision,
        })
    }

    /// The same row lock commits take: the chain stays linear across replicas.
    async fn lock_audit_chain(conn: &mut PgConnection) -> StoreResult<DateTime<Utc>> {
        sqlx::query_scalar(
            "SELECT date_trunc('microseconds', clock_timestamp()) FROM meta WHERE id = 1 \
             FOR UPDATE",
        )
        .fetch_one(conn)
        .await
        .map_err(err("lock audit chain"))
    }

    /// `column LIKE pattern` (case-sensitive): `*` → `%`, `?` → `_`, and LIKE's
    /// own `%`, `_` and escape character `\` escaped to mean themselves.
    fn push_name_glob(query: &mut Query<'_, Self>, column: &str, pattern: &str) {
        let mut like = String::with_capacity(pattern.len() + 4);
        for c in pattern.chars() {
            match c {
                '*' => like.push('%'),
                '?' => like.push('_'),
                '%' | '_' | '\\' => {
                    like.push('\\');
                    like.push(c);
                }
                c => like.push(c),
            }
        }
        query.push(&format!("{column} LIKE ")).push_bind(like);
    }

    /// The database's clock decides, so replicas' clocks need not agree.
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        // Far beyond any real lease, and no overflow when added to now.
        let ttl = i64::try_from(ttl.as_micros()).map_or(i64::MAX / 2, |us| us.min(i64::MAX / 2));
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) \
             VALUES ($1, $2, cairn_micros(now()) + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < cairn_micros(now()) \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("take lease"))?;
        Ok(held.is_some())
    }

    fn change_listener(&self) -> Option<Box<dyn ChangeListener>> {
        Some(Box::new(listen::PgChangeListener::new(self.pool.clone())))
    }
}
