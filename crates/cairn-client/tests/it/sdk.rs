//! The SDK: start from the cache with the server down, converge when it comes
//! up; the watch keeps the snapshot current; secrets only in memory; reports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::sdk::{CairnClient, EvalContext, Reason, SdkError, Source};
use cairn_client::HttpMethod;
use serde_json::{json, Value};

use crate::harness::{
    any_port, free_port, read, wait_connected, wait_for, Admin, Data, TestServer,
};

const PASSWORD: &str = "s3cr3t-PLAINTEXT-canary";

fn new_ui() -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
        "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on"]}})
}

/// A server with app `shop`: config, a flag, a secret referenced by config; an SDK token.
async fn fixture(data: &Data, addr: std::net::SocketAddr) -> (TestServer, Admin, String) {
    let server = TestServer::start(data, addr);
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    admin.app("shop").await;
    admin
        .set("shop", None, "db", json!({"pool": 5, "host": "db"}))
        .await;
    admin.put("shop", None, "new-ui", "flag", new_ui()).await;
    admin
        .send(
            HttpMethod::POST,
            "/v1/secrets",
            json!({"name": "db/pw", "app": "shop", "value": PASSWORD}),
        )
        .await;
    admin
        .set(
            "shop",
            Some("prod"),
            "creds",
            json!({"user": "app", "password": {"$secret": "db/pw"}}),
        )
        .await;
    let token = admin.sdk_token("shop", "prod").await;
    (server, admin, token)
}

fn builder(url: &str, token: &str, data: &Data) -> cairn_client::sdk::Builder {
    CairnClient::builder(url, "shop", "prod")
        .token(token)
        .cache_file(data.path("shop.cache.json"))
        // Generous: the machine may be busy; a down server is refused at once anyway.
        .initial_timeout(Duration::from_secs(20))
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .report_interval(Duration::ZERO)
}

/// `new-ui` as `GET /v1/flags` lists it in shop/prod (counts included).
async fn listed_new_ui(admin: &Admin) -> Value {
    admin.listed_flag("shop", "prod", "new-ui").await
}

/// How many times anyone read a flagd document (`GET …/flagd.json`, any
/// status), from the server's metrics: once per SDK refresh.
async fn flag_reads(admin: &Admin) -> u64 {
    let prefix =
        r#"cairn_http_requests_total{method="GET",route="/v1/apps/{app}/envs/{env}/flagd.json","#;
    admin
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Stand in for a server that is down at `addr`: accept `n` connections,
/// hanging up on each at once, then free the port (at most 20 s).
async fn refuse_connections(addr: std::net::SocketAddr, n: usize) {
    let mut listener = None;
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            // The stopped server's socket may still be going away.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let listener = listener.unwrap_or_else(|| panic!("cannot bind {addr}"));
    let accepted = tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..n {
            drop(listener.accept().await.unwrap());
        }
    })
    .await;
    assert!(accepted.is_ok(), "the SDK stopped trying to reconnect");
}

/// `GET /v1/applied` of shop/prod.
async fn applied(admin: &Admin) -> Value {
    admin.get_view("/v1/applied", "shop", "prod").await
}

fn ann() -> EvalContext {
    EvalContext::from_value(json!({"targetingKey": "u1", "email": "ann@example.com"})).unwrap()
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Db {
    pool: u32,
    host: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_from_the_cache_with_the_server_down_then_converges() {
    let data = Data::new();
    let (server, admin, token) = fixture(&data, free_port()).await;
    let addr = server.addr;
    let url = server.url();
    let cache = data.path("shop.cache.json");

    // 1. Online: the snapshot comes from the server, secrets substituted in memory only.
    let sdk = builder(&url, &token, &data).build().await.unwrap();
    assert_eq!(sdk.snapshot().source, Source::Server);
    assert_eq!(
        sdk.get::<Db>("db").unwrap(),
        Db {
            pool: 5,
            host: "db".into()
        }
    );
    assert_eq!(sdk.get::<Value>("creds").unwrap()["password"], PASSWORD);
    assert!(sdk.evaluate_bool("new-ui", &ann(), false).value);
    let text = read(&cache);
    assert!(text.contains("\"pool\":5"), "{text}");
    assert!(
        text.contains("$secret"),
        "the cache keeps the reference: {text}"
    );
    assert!(!text.contains(PASSWORD), "a secret reached the cache file");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let applied_revision = sdk.snapshot().revision;
    sdk.close().await;
    drop(sdk);

    // 2. The server goes down. Without a cache there is nothing to start from.
    server.stop();
    let err = CairnClient::builder(&url, "shop", "prod")
        .token(&token)
        .initial_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::NoConfiguration(_)), "{err:?}");
    // With the cache, the application starts with the last configuration.
    let sdk = builder(&url, &token, &data).build().await.unwrap();
    let snap = sdk.snapshot();
    assert_eq!(snap.source, Source::Cache);
    assert_eq!(snap.revision, applied_revision);
    assert!(!sdk.is_connected());
    assert_eq!(sdk.get::<Db>("db").unwrap().pool, 5);
    // Flags evaluate from the cached document; secrets are not there.
    let e = sdk.evaluate_bool("new-ui", &ann(), false);
    assert!(e.value);
    assert_eq!(e.reason, Reason::TargetingMatch);
    assert_eq!(
        sdk.get::<Value>("creds").unwrap()["password"],
        json!({"$secret": "db/pw"})
    );
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    sdk.on_change(move |s| seen.lock().unwrap().push((s.revision, s.source)));
    // The SDK keeps trying: let three of its attempts reach the port and
    // fail (a listener that hangs up at once); nothing changes meanwhile.
    refuse_connections(addr, 3).await;
    assert!(
        changes.lock().unwrap().is_empty(),
        "nothing changes while the server is down: {:?}",
        changes.lock().unwrap()
    );

    // 3. The server comes back (same port, same data) and the value changes: the SDK converges.
    let server = TestServer::start(&data, addr);
    admin
        .set("shop", None, "db", json!({"pool": 9, "host": "db"}))
        .await;
    wait_for(&sdk, 20, "pool 9 from the server", |s| {
        s.source == Source::Server && s.value("db").is_some_and(|v| v["pool"] == 9)
    })
    .await;
    assert_eq!(sdk.get::<Value>("creds").unwrap()["password"], PASSWORD);
    assert!(sdk.snapshot().revision > applied_revision);
    wait_connected(&sdk).await;
    // Every change came from the server: the outage published nothing.
    let seen = changes.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|(_, src)| *src == Source::Server),
        "{seen:?}"
    );
    // The cache follows (written just after the snapshot is published).
    let mut text = read(&cache);
    for _ in 0..50 {
        if text.contains("\"pool\":9") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = read(&cache);
    }
    assert!(
        text.contains("\"pool\":9") && !text.contains(PASSWORD),
        "{text}"
    );
    sdk.close().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_keeps_the_snapshot_current_across_a_restart() {
    let data = Data::new();
    let (server, admin, token) = fixture(&data, any_port()).await;
    let addr = server.addr;
    let sdk = builder(&server.url(), &token, &data).build().await.unwrap();
    let revisions = Arc::new(Mutex::new(Vec::new()));
    let seen = revisions.clone();
    sdk.on_change(move |s| seen.lock().unwrap().push(s.revision));
    for pool in 10..15 {
        admin
            .set("shop", Some("prod"), "db", json!({"pool": pool}))
            .await;
        wait_for(&sdk, 10, &format!("pool {pool}"), |s| {
            s.value("db").is_some_and(|v| v["pool"] == pool)
        })
        .await;
    }
    // Merged across scopes: host from the app scope, pool from app+env.
    assert_eq!(
        sdk.get::<Db>("db").unwrap(),
        Db {
            pool: 14,
            host: "db".into()
        }
    );
    // A flag change reaches local evaluation.
    let mut off = new_ui();
    off["state"] = json!("DISABLED");
    admin.put("shop", None, "new-ui", "flag", off).await;
    wait_for(&sdk, 10, "new-ui disabled", |s| {
        s.flags().evaluate("new-ui", &ann(), 0).reason == Reason::Disabled
    })
    .await;
    // Disabled: no variant, and the caller's default (true here, unlike the
    // flag's default variant `off`).
    let e = sdk.evaluate_bool("new-ui", &ann(), true);
    assert_eq!(
        (e.value, e.variant.as_deref(), e.reason),
        (true, None, Reason::Disabled)
    );
    // Another view's change wakes nothing here: write it, then a sentinel
    // to this view; once the sentinel is seen, it is the only change, and
    // the only re-read of the flags (one per refresh) is the sentinel's.
    let before = revisions.lock().unwrap().len();
    let reads = flag_reads(&admin).await;
    admin
        .set("shop", Some("dev"), "db", json!({"pool": 1}))
        .await;
    let sentinel = admin
        .send(
            HttpMethod::PUT,
            "/v1/entries/sentinel?app=shop&env=prod",
            json!({"value": 1}),
        )
        .await["revision"]
        .as_i64()
        .unwrap();
    wait_for(&sdk, 10, "the sentinel", |s| s.revision == sentinel).await;
    assert_eq!(
        revisions.lock().unwrap()[before..],
        [sentinel],
        "{:?}",
        revisions.lock().unwrap()
    );
    assert_eq!(
        flag_reads(&admin).await - reads,
        1,
        "the SDK refreshed for another view's change"
    );
    let seen = revisions.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "revisions only grow: {seen:?}"
    );
    // Restart: the stream reconnects and resumes.
    server.stop();
    let _server = TestServer::start(&data, addr);
    admin
        .set("shop", Some("prod"), "db", json!({"pool": 99}))
        .await;
    wait_for(&sdk, 20, "pool 99 after the restart", |s| {
        s.value("db").is_some_and(|v| v["pool"] == 99)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_carry_applied_state_and_local_evaluation_counts() {
    let data = Data::new();
    let (server, admin, token) = fixture(&data, any_port()).await;
    let sdk = builder(&server.url(), &token, &data)
        .instance_id("web-1")
        .build()
        .await
        .unwrap();
    let bob = EvalContext::from_value(json!({"email": "bob@other.org"})).unwrap();
    for _ in 0..3 {
        sdk.evaluate_bool("new-ui", &ann(), false);
    }
    sdk.evaluate_bool("new-ui", &bob, false);
    sdk.evaluate_bool("no-such-flag", &bob, false);
    sdk.report().await.unwrap();
    let applied = applied(&admin).await;
    let snap = sdk.snapshot();
    assert_eq!(applied[0]["instance"], "web-1", "{applied}");
    assert_eq!(applied[0]["revision"], snap.revision);
    assert_eq!(applied[0]["checksum"], snap.checksum.as_str());
    assert_eq!(applied[0]["current"], true);
    let f = listed_new_ui(&admin).await;
    assert_eq!(f["counts"], json!({"on": 3, "off": 1}), "{f}");
    assert!(f["last_evaluated"].is_string());
    // Counts are sent once.
    sdk.report().await.unwrap();
    let f = listed_new_ui(&admin).await;
    assert_eq!(f["evaluations"], 4);
    // With the server down a report fails and its counts wait for the next one.
    let addr = server.addr;
    server.stop();
    sdk.evaluate_bool("new-ui", &ann(), false);
    assert!(sdk.report().await.is_err());
    let _server = TestServer::start(&data, addr);
    sdk.report().await.unwrap();
    // The restarted server holds what was reported since it started (this
    // test server never flushes counts to the database): the given-back one.
    let f = listed_new_ui(&admin).await;
    assert_eq!(f["counts"], json!({"on": 1}), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_at_start_is_not_hidden_behind_the_cache() {
    let data = Data::new();
    let (server, _admin, token) = fixture(&data, any_port()).await;
    // Fill the cache, then start with a view the token may not read.
    let sdk = builder(&server.url(), &token, &data).build().await.unwrap();
    drop(sdk);
    let url = server.url();
    assert_eq!(refusal(&url, "dev", &token, &data).await, 404);
    let bad = "cairn_000000000000_not-a-real-token-but-long-enough-to-look-like-one";
    assert_eq!(refusal(&url, "prod", bad, &data).await, 401);
}

/// The status the server refuses a start of shop/`env` with (the cache file set).
async fn refusal(url: &str, env: &str, token: &str, data: &Data) -> u16 {
    let err = CairnClient::builder(url, "shop", env)
        .token(token)
        .cache_file(data.path("shop.cache.json"))
        .build()
        .await
        .unwrap_err();
    match err {
        SdkError::Client(ref e) if e.status().is_some() => e.status().unwrap(),
        _ => panic!("not a refusal of the server: {err:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_sent_periodically_in_the_background() {
    let data = Data::new();
    let (server, admin, token) = fixture(&data, any_port()).await;
    let sdk = builder(&server.url(), &token, &data)
        .instance_id("worker-7")
        .report_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    sdk.evaluate_bool("new-ui", &ann(), false);
    let mut counted = Value::Null;
    for _ in 0..100 {
        counted = listed_new_ui(&admin).await["counts"].clone();
        if counted == json!({"on": 1}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted, json!({"on": 1}));
    let applied = applied(&admin).await;
    assert_eq!(applied[0]["instance"], "worker-7", "{applied}");
    assert_eq!(applied[0]["current"], true);
}
