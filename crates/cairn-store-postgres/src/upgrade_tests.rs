//! Upgrading in place: a database written before migration 0010
//! (`timestamptz` columns) opens, and every read gives back exactly what was
//! written, whatever the sessions' time zone.

use std::str::FromStr;

use cairn_store::testing::pg::TestPg;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::{migrate, PostgresStore};

#[tokio::test]
async fn a_database_from_before_0010_upgrades_in_place() {
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.create_database();
    let options = PgConnectOptions::from_str(&url).unwrap();
    let mut conn = options.connect().await.unwrap();
    // Far from UTC, with a quarter-hour offset: the conversion must not care.
    conn.execute("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone TO %L', current_database(), 'Pacific/Chatham'); END $$")
        .await
        .unwrap();
    conn.close().await.unwrap();

    migrate::run_up_to(&options, 9).await.unwrap();
    let mut conn = options.connect().await.unwrap();
    conn.execute(include_str!("../tests/fixtures/before_0010.sql"))
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(
        store.applied_migrations().await.unwrap(),
        PostgresStore::known_migrations()
    );
    cairn_store_sql::testing::upgrade::check(&store).await;
}
