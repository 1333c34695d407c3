//! The PostgreSQL store against the conformance suite, several stores
//! (replicas) on one database, and migrations.
//!
//! Uses `DATABASE_URL` if set, else a throwaway local cluster; fails when no
//! PostgreSQL is found unless `CAIRN_SKIP_PG=1`.

use std::sync::Arc;

use cairn_model::Scope;
use cairn_store::testing::pg::TestPg;
use cairn_store::testing::{self, commit, put};
use cairn_store::CreateToken;
use cairn_store::{Head, Mutation, Store, StoreError};
use cairn_store_postgres::PostgresStore;
use serde_json::json;

async fn store(url: &str) -> Arc<dyn Store> {
    Arc::new(PostgresStore::connect(url).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(pg) = TestPg::shared() else { return };
    testing::run_conformance(|| async { store(&pg.create_database()).await }).await;
}

/// Two replicas (separate pools) on one database commit at once: revisions
/// stay gapless with no duplicates, CAS holds across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_commit_concurrently() {
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.create_database();
    let a = store(&url).await;
    let b = store(&url).await;
    testing::concurrent_writers(vec![a.clone(), b.clone()], 8, 25).await;
    testing::concurrent_cas(vec![a.clone(), b.clone()], 8).await;
    // Each replica sees the other's commits.
    assert_eq!(a.head().await.unwrap(), b.head().await.unwrap());
    assert_eq!(a.load().await.unwrap(), b.load().await.unwrap());
}

/// Bootstrap is safe across replicas: exactly one of several racing
/// bootstrap tokens is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_token_once_across_replicas() {
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.create_database();
    let replicas = [store(&url).await, store(&url).await, store(&url).await];
    let mut handles = Vec::new();
    for (i, s) in replicas.iter().cycle().take(6).enumerate() {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let token = testing::token(&format!("tok_{i}"), &format!("{i:064}"));
            commit(
                &*s,
                vec![Mutation::CreateToken(CreateToken {
                    token,
                    bootstrap: true,
                })],
            )
            .await
        }));
    }
    let mut created = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(replicas[0].tokens().await.unwrap().len(), 1);
}

/// Replicas starting at once on a new database migrate it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_startup_migrates_once() {
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.create_database();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        handles.push(tokio::spawn(
            async move { PostgresStore::connect(&url).await },
        ));
    }
    let mut stores = Vec::new();
    for h in handles {
        stores.push(h.await.unwrap().unwrap());
    }
    let applied = stores[0].applied_migrations().await.unwrap();
    assert_eq!(applied, PostgresStore::known_migrations());
    assert!(applied.len() >= 5);
    assert_eq!(stores[1].head().await.unwrap(), Head::default());
}

#[tokio::test]
async fn reconnecting_keeps_data_and_migrations() {
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.create_database();
    let first = PostgresStore::connect(&url).await.unwrap();
    commit(&first, vec![put(&Scope::global(), "k", json!({"a": 1}))])
        .await
        .unwrap();
    first.close().await;
    let second = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(
        second.applied_migrations().await.unwrap(),
        PostgresStore::known_migrations()
    );
    assert_eq!(second.head().await.unwrap().revision, 1);
    assert_eq!(
        second.load().await.unwrap().entries[0].value,
        Some(json!({"a": 1}))
    );
}

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    if cairn_store::testing::pg::skip_requested() {
        return;
    }
    // Nothing listens on port 1.
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// A lease taken for longer than any clock can count is held, not lapsed
/// at once, and the expiry does not overflow.
#[tokio::test]
async fn a_lease_for_ever_is_held() {
    let Some(pg) = TestPg::shared() else { return };
    let store = PostgresStore::connect(&pg.create_database()).await.unwrap();
    assert!(store
        .try_lease("l", "a", std::time::Duration::MAX)
        .await
        .unwrap());
    assert!(!store
        .try_lease("l", "b", std::time::Duration::from_secs(1))
        .await
        .unwrap());
}
