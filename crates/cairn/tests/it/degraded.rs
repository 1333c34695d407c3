//! The database goes away: reads keep being served from memory (marked
//! stale), writes fail fast with 503, and everything resumes by itself.

use std::time::Duration;

use cairn_store::testing::pg::TestPg;

use crate::harness::{poll, write_file, ServeOpts, Server};
use crate::load::{http_client, runtime};

#[test]
fn reads_survive_a_lost_database_and_writes_resume_by_themselves() {
    let Some(pg) = TestPg::shared() else {
        return; // CAIRN_SKIP_PG=1
    };
    let url = pg.create_database();
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let keys = tempfile::tempdir().unwrap();
    let key_file = write_file(keys.path(), "master.key", &"7c".repeat(32));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        ServeOpts {
            database_url: Some(url),
            extra: vec![
                "--sync-interval-ms".into(),
                "200".into(),
                "--master-key-file".into(),
                key_file,
            ],
        },
    );
    let token = s.admin_token();
    let cli = s.cli(&token);
    cli.ok(&["app", "create", "svc"]);
    cli.ok(&["set", "db", "--app", "svc", "--value", r#"{"max": 5}"#]);
    let rt = runtime();
    let http = http_client();
    let config = format!("{}/v1/apps/svc/envs/dev/config", s.addr);
    let get = |url: &str| {
        rt.block_on(async {
            let r = http
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("request");
            let stale = r
                .headers()
                .get("cairn-stale")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            (
                r.status().as_u16(),
                stale,
                r.text().await.unwrap_or_default(),
            )
        })
    };
    let (status, stale, _) = get(&config);
    assert_eq!(status, 200);
    assert_ne!(stale.as_deref(), Some("true"));

    // Cut the database off: no new connections, existing ones terminated.
    pg.psql(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"));
    pg.psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ));
    poll(
        Duration::from_secs(20),
        "the server to notice (readyz stale)",
        || {
            let (status, _, body) = get(&format!("{}/readyz", s.addr));
            if status == 503 && body.contains("stale") {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        },
    );
    let (status, stale, body) = get(&config);
    assert_eq!(status, 200, "reads are served from memory: {body}");
    assert_eq!(stale.as_deref(), Some("true"));
    assert!(body.contains("\"max\":5"), "{body}");
    let started = std::time::Instant::now();
    let write = cli.run(&["set", "db", "--app", "svc", "--value", r#"{"max": 6}"#]);
    assert_eq!(write.code, 1, "a write fails (503): {write}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "and fails fast enough"
    );

    // The database comes back; so does everything else.
    pg.psql(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"));
    poll(Duration::from_secs(30), "writes to work again", || {
        let out = cli.run(&["set", "db", "--app", "svc", "--value", r#"{"max": 7}"#]);
        if out.code == 0 {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
    poll(
        Duration::from_secs(10),
        "readyz ready and reads fresh",
        || {
            let (status, _, body) = get(&format!("{}/readyz", s.addr));
            let (_, stale, cfg) = get(&config);
            if status == 200 && stale.as_deref() != Some("true") && cfg.contains("\"max\":7") {
                Ok(())
            } else {
                Err(format!("{status} {body} {stale:?} {cfg}"))
            }
        },
    );
}
