//! The SQLite store against the conformance suite, plus file-level behaviour.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_model::Scope;
use cairn_store::testing::{self, commit, put};
use cairn_store::{Head, Store};
use cairn_store_sqlite::SqliteStore;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    testing::run_conformance(|| async {
        let path = dir
            .path()
            .join(format!("case-{}.db", n.fetch_add(1, Ordering::Relaxed)));
        Arc::new(SqliteStore::open(&path).await.unwrap()) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let store = SqliteStore::open(&path).await.unwrap();
    commit(&store, vec![put(&Scope::global(), "k", json!({"a": 1}))])
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store.head().await.unwrap(),
        Head {
            revision: 1,
            catalog_revision: 0
        }
    );
    let live = store.load().await.unwrap().entries;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].value, Some(json!({"a": 1})));
    // And it keeps counting from where it was.
    let c = commit(&store, vec![put(&Scope::global(), "k", json!(2))])
        .await
        .unwrap();
    assert_eq!(c.revision, 2);
}

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let store = SqliteStore::open(&path).await.unwrap();
    commit(&store, vec![put(&Scope::global(), "k", json!(1))])
        .await
        .unwrap();
    assert!(
        dir.path().join("cairn.db-wal").exists(),
        "a WAL file exists next to the database"
    );
}

#[tokio::test]
async fn open_fails_cleanly_on_a_bad_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("cairn.db");
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(err, cairn_store::StoreError::Unavailable(_)),
        "{err:?}"
    );
}

/// A lease taken for longer than any clock can count is held, not lapsed
/// at once (the expiry saturates).
#[tokio::test]
async fn a_lease_for_ever_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cairn.db"))
        .await
        .unwrap();
    assert!(store
        .try_lease("l", "a", std::time::Duration::MAX)
        .await
        .unwrap());
    assert!(!store
        .try_lease("l", "b", std::time::Duration::from_secs(1))
        .await
        .unwrap());
}
