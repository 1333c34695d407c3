//! SQLite backend of the Cairn [`Store`](cairn_store::Store): the embedded
//! default. The store itself is [`cairn_store_sql::SqlStore`]; this crate is
//! its SQLite dialect ([`SqliteDialect`]) and migrations.
//!
//! One file in WAL mode with `synchronous=FULL` and foreign keys on. Commits
//! go through exactly one writer connection (`BEGIN IMMEDIATE`); reads use a
//! small separate pool of read-only connections, so they never wait for a
//! writer. One process owns the file.

mod dialect;
mod migrate;
#[cfg(test)]
mod upgrade_tests;

pub use dialect::SqliteDialect;

/// The SQLite store: `SqliteStore::open(path)`. Cheap to share behind an `Arc`.
pub type SqliteStore = cairn_store_sql::SqlStore<SqliteDialect>;

#[cfg(test)]
mod tests {
    use cairn_store::{Head, Store};

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
