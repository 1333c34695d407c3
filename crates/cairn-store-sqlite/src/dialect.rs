//! The SQLite dialect: one writer connection (so commits of this process
//! queue on it, and `BEGIN IMMEDIATE` takes the file's write lock up front),
//! read-only connections for reads, the process clock, no row locks.

use std::path::Path;
use std::time::Duration;

use cairn_store::{StoreError, StoreResult};
use cairn_store_sql::{micros, Arg, Begun, Col, Dialect, Open, Query, SqlRow};
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Decode, Pool, Row as _, Sqlite, SqliteConnection, SqlitePool, Type};

use crate::migrate;

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections; reads are short.
const READERS: u32 = 4;

/// The SQLite dialect of [`cairn_store_sql::SqlStore`]: its two pools.
#[derive(Debug, Clone)]
pub struct SqliteDialect {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl<P: AsRef<Path> + Send> Open<P> for SqliteDialect {
    /// Opens (creating if needed) the database file at `path` and applies
    /// pending migrations.
    async fn open(path: P) -> StoreResult<Self> {
        let base = SqliteConnectOptions::new()
            .filename(path.as_ref())
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
        Ok(SqliteDialect { writer, reader })
    }
}

/// A result row.
pub struct Row(SqliteRow);

impl Row {
    fn value<T>(&self, col: Col<'_>) -> sqlx::Result<Option<T>>
    where
        for<'r> T: Decode<'r, Sqlite> + Type<Sqlite>,
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
fn prepare<'q>(
    query: &'q Query<'_, SqliteDialect>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
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

/// Maps a sqlx error to a [`StoreError`]: connection trouble (and a locked
/// database file) is `Unavailable`, the rest `Backend`. Messages name what
/// was being done, never a bound value.
fn map_err(context: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("{context}: {e}")),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // Primary result code: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_CANTOPEN (14).
            let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
            if matches!(primary, 5 | 6 | 14) {
                StoreError::Unavailable(format!("{context}: {}", db.message()))
            } else {
                StoreError::Backend(format!("{context}: {} (sqlite code {code})", db.message()))
            }
        }
        _ => StoreError::Backend(format!("{context}: {e}")),
    }
}

/// `map_err` as a closure for `.map_err(err("…"))`.
pub(crate) fn err(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| map_err(context, e)
}

/// Now, at the precision the store keeps (microseconds).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Row = Row;

    const NAME: &'static str = "sqlite";
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = migrate::MIGRATIONS;
    const BEGIN_READ: &'static str = "BEGIN";
    // IMMEDIATE takes the database write lock up front.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    // One writer: nothing else changes a row between reading and writing it.
    const FOR_UPDATE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";

    fn reader(&self) -> &Pool<Sqlite> {
        &self.reader
    }

    fn writer(&self) -> &Pool<Sqlite> {
        &self.writer
    }

    async fn execute(conn: &mut SqliteConnection, query: &Query<'_, Self>) -> sqlx::Result<u64> {
        Ok(prepare(query).execute(conn).await?.rows_affected())
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        query: &Query<'_, Self>,
    ) -> sqlx::Result<Vec<Row>> {
        let rows = prepare(query).fetch_all(conn).await?;
        Ok(rows.into_iter().map(Row).collect())
    }

    async fn fetch_optional(
        conn: &mut SqliteConnection,
        query: &Query<'_, Self>,
    ) -> sqlx::Result<Option<Row>> {
        Ok(prepare(query).fetch_optional(conn).await?.map(Row))
    }

    fn map_err(context: &str, e: sqlx::Error) -> StoreError {
        map_err(context, e)
    }

    /// The writer connection is the only one, and `BEGIN IMMEDIATE` holds
    /// the file's write lock: the process clock stamps the commit.
    async fn begin_commit(conn: &mut SqliteConnection) -> StoreResult<Begun> {
        let (revision, catalog_revision): (i64, i64) = sqlx::query_as(
            "UPDATE meta SET head = head + 1 WHERE id = 1 RETURNING head, catalog_revision",
        )
        .fetch_one(conn)
        .await
        .map_err(err("allocate revision"))?;
        Ok(Begun {
            revision,
            at: now(),
            catalog_revision,
        })
    }

    /// `BEGIN IMMEDIATE` took the write lock already.
    async fn lock_audit_chain(_conn: &mut SqliteConnection) -> StoreResult<DateTime<Utc>> {
        Ok(now())
    }

    /// `column GLOB pattern`: case-sensitive, `*` and `?` as in a name glob;
    /// `[` opens a class in GLOB, so it is written as the class `[[]`.
    fn push_name_glob(query: &mut Query<'_, Self>, column: &str, pattern: &str) {
        query
            .push(&format!("{column} GLOB "))
            .push_bind(pattern.replace('[', "[[]"));
    }

    /// One process owns the file: its clock decides expiry.
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Utc::now();
        // A ttl beyond what the clock counts holds until the end of time,
        // rather than expiring at once.
        let expires = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
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
}
