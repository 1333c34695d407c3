//! Upgrading in place: a database written before migration 0010 (text
//! timestamps) opens, and every read gives back exactly what was written.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{migrate, SqliteStore};

#[tokio::test]
async fn a_database_from_before_0010_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    migrate::run_up_to(&options, 9).await.unwrap();
    let mut conn = options.connect().await.unwrap();
    sqlx::raw_sql(include_str!("../tests/fixtures/before_0010.sql"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store.applied_migrations().await.unwrap(),
        migrate::MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    cairn_store_sql::testing::upgrade::check(&store).await;
}

#[tokio::test]
async fn a_timestamp_in_another_form_stops_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    migrate::run_up_to(&options, 9).await.unwrap();
    let mut conn = options.connect().await.unwrap();
    sqlx::raw_sql("INSERT INTO apps (name, description, created_at, revision) VALUES ('a', '', '2024-02-29 12:34:56Z', 1)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    // Nothing of 0010 was applied: the data is as it was.
    let mut conn = options.connect().await.unwrap();
    let kept: String = sqlx::query_scalar("SELECT created_at FROM apps")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, "2024-02-29 12:34:56Z");
}
