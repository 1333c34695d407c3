//! PostgreSQL backend of the Cairn [`Store`](cairn_store::Store): any number
//! of replicas share one database. The store itself is
//! [`cairn_store_sql::SqlStore`]; this crate is its PostgreSQL dialect
//! ([`PgDialect`]), migrations and change listener.
//!
//! Every commit transaction starts with `UPDATE meta SET head = head + 1 …
//! RETURNING head`: the row lock serializes committers across processes until
//! commit or rollback, so revisions (and audit sequence numbers) are gapless
//! and in commit order, and every check inside a commit sees every earlier
//! commit. Multi-statement reads run in one `REPEATABLE READ` transaction.
//! Migrations run under a session advisory lock, so replicas may start at once.

mod dialect;
mod listen;
mod migrate;
#[cfg(test)]
mod upgrade_tests;

pub use dialect::PgDialect;

/// The PostgreSQL store: `PostgresStore::connect(url)`. Cheap to share behind an `Arc`.
pub type PostgresStore = cairn_store_sql::SqlStore<PgDialect>;
