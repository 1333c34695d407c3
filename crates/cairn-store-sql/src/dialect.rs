//! What a SQL backend supplies: its pools, how its transactions begin, how a
//! commit takes the revision, its leases, claims and change listener, and
//! how it runs a [`Query`] with its own sqlx driver. Everything else — every
//! statement of every [`Store`](cairn_store::Store) method — is written once
//! in this crate.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use cairn_model::Revision;
use cairn_store::{ChangeListener, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::{Database, Pool};

use crate::query::{Query, SqlRow};

/// A connection of dialect `D` (a pooled one, or the one a transaction holds).
pub type Conn<D> = <<D as Dialect>::Db as Database>::Connection;

/// What [`Dialect::begin_commit`] allocated and saw, under the commit lock.
#[derive(Debug, Clone, Copy)]
pub struct Begun {
    pub revision: Revision,
    pub at: DateTime<Utc>,
    /// The last revision that changed the catalog (apps, environments,
    /// schemas, tokens, users), before this commit.
    pub catalog_revision: Revision,
}

/// A SQL backend. Implemented by `cairn-store-sqlite` and `cairn-store-postgres`.
pub trait Dialect: Clone + fmt::Debug + Send + Sync + Sized + 'static {
    /// The sqlx driver.
    type Db: Database;
    /// A result row, read through [`SqlRow`].
    type Row: SqlRow;

    /// [`Store::backend`](cairn_store::Store::backend): `sqlite`, `postgres`.
    const NAME: &'static str;
    /// The dialect's migrations, `(version, name, sql)` in order (its own
    /// runner applies them when it opens).
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)];
    /// Begins a read transaction: every statement in it sees one snapshot.
    const BEGIN_READ: &'static str;
    /// Begins a writing transaction. A commit's first statement then
    /// allocates the revision ([`Dialect::begin_commit`]).
    const BEGIN_WRITE: &'static str;
    /// Appended to a `SELECT` that reads a row it is about to change, where
    /// other processes could change it meanwhile (`""` with one writer).
    const FOR_UPDATE: &'static str;
    /// Appended to the `SELECT` of a claim, so concurrent claimers take
    /// disjoint rows (`""` with one writer).
    const SKIP_LOCKED: &'static str;

    /// The pool reads run on.
    fn reader(&self) -> &Pool<Self::Db>;
    /// The pool writes run on.
    fn writer(&self) -> &Pool<Self::Db>;

    /// Runs `query`; the number of rows it changed.
    fn execute(
        conn: &mut Conn<Self>,
        query: &Query<'_, Self>,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send;
    fn fetch_all(
        conn: &mut Conn<Self>,
        query: &Query<'_, Self>,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Row>>> + Send;
    fn fetch_optional(
        conn: &mut Conn<Self>,
        query: &Query<'_, Self>,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send;

    /// A sqlx error as a [`StoreError`]: connection trouble (and, where it
    /// means the same, a busy database) is `Unavailable`, the rest `Backend`.
    /// `context` says what was being done; no bound value is ever shown.
    fn map_err(context: &str, e: sqlx::Error) -> StoreError;

    /// [`Dialect::map_err`] as a closure: `.map_err(D::err("read entry"))`.
    fn err(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + Send {
        move |e| Self::map_err(context, e)
    }

    /// The first statement of a commit, in its [`BEGIN_WRITE`] transaction:
    /// allocates the next revision (gapless, in commit order, across every
    /// process sharing the database) under the lock that serializes
    /// committers until the transaction ends, and says when the commit
    /// happens (times follow revisions). Also returns the catalog revision
    /// as of the lock (the guard needs to read no catalog table when it did
    /// not move since the plan's basis).
    ///
    /// [`BEGIN_WRITE`]: Dialect::BEGIN_WRITE
    fn begin_commit(conn: &mut Conn<Self>) -> impl Future<Output = StoreResult<Begun>> + Send;

    /// Takes the lock commits take, for audit records that are not changes
    /// (`Store::append_audit`), so the chain stays linear; says when.
    fn lock_audit_chain(
        conn: &mut Conn<Self>,
    ) -> impl Future<Output = StoreResult<DateTime<Utc>>> + Send;

    /// Appends `column` matched against a name glob (`*`, `?`; everything
    /// else literal, case-sensitive).
    fn push_name_glob(query: &mut Query<'_, Self>, column: &str, pattern: &str);

    /// [`Store::try_lease`](cairn_store::Store::try_lease): whose clock
    /// decides expiry is the dialect's.
    fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// [`Store::change_listener`](cairn_store::Store::change_listener).
    fn change_listener(&self) -> Option<Box<dyn ChangeListener>> {
        None
    }
}

/// How a dialect is opened from `L` — a file path for SQLite, a URL for
/// PostgreSQL — with its pending migrations applied.
pub trait Open<L>: Dialect {
    fn open(location: L) -> impl Future<Output = StoreResult<Self>> + Send;
}
