//! Webhooks end to end in process: a real receiver on 127.0.0.1, the real
//! dispatcher, signatures checked independently, retries after failures,
//! private targets refused at creation and at delivery, bad input.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use cairn_core::webhooks::{verify_signature, WebhookSettings};
use cairn_core::{Options, Service};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::harness::TestApp;

const SECRET: &str = "whsec-0123456789-abcdef";
const CANARY: &str = "WEBHOOK-VALUE-CANARY-91c2";

/// What a receiver got: headers and body of every request.
type Got = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver that answers 500 to its first `fail_first` requests, then 204.
struct Receiver {
    addr: SocketAddr,
    got: Got,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        Self::start_failing_with(fail_first, StatusCode::INTERNAL_SERVER_ERROR).await
    }

    /// Answers `failure` to the first `fail_first` requests, then 204.
    async fn start_failing_with(fail_first: usize, failure: StatusCode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Got = Arc::default();
        let g = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let g = g.clone();
                async move {
                    let mut g = g.lock().unwrap();
                    g.push((headers, body.to_vec()));
                    if g.len() <= fail_first {
                        failure
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, got, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.addr.port())
    }

    fn requests(&self) -> Vec<(HeaderMap, Vec<u8>)> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fast() -> WebhookSettings {
    WebhookSettings {
        poll: Duration::from_millis(30),
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        max_attempts: 5,
        timeout: Duration::from_secs(3),
        concurrency: 4,
        retention: Duration::from_secs(3600),
    }
}

async fn allowing() -> TestApp {
    TestApp::with_options(Options {
        allow_private_targets: true,
        ..Options::default()
    })
    .await
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the dispatcher's cursor has passed every audit record written
/// so far: the deliveries those records make are then all enqueued (the
/// cursor moves in the transaction that enqueues them).
async fn dispatched(t: &TestApp) {
    let store = t.svc.store();
    let audit = store
        .audit(&cairn_store::AuditFilter::default())
        .await
        .unwrap();
    let last = audit.iter().map(|r| r.seq).max().unwrap_or(0);
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while store.webhook_cursor().await.unwrap() < last {
        assert!(
            tokio::time::Instant::now() < until,
            "the dispatcher never passed audit record {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The delivery log of webhook `id` once none of its deliveries is pending
/// (at most 15 s): nothing more will be sent for them.
async fn settled(t: &TestApp, id: &str) -> Vec<Value> {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let log = t.get(&format!("/v1/webhooks/{id}/deliveries")).await.body;
        let log = log.as_array().unwrap().clone();
        if log.iter().all(|d| d["status"] != "pending") {
            return log;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "deliveries still pending: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The payloads a receiver got, in arrival order.
fn payloads(rx: &Receiver) -> Vec<Value> {
    rx.requests()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect()
}

/// An independent check of `Cairn-Signature: t=<unix>,v1=<hex>`.
fn hmac_hex(secret: &str, t: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(t.as_bytes());
    m.update(b".");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn create(t: &TestApp, body: Value) -> String {
    let r = t.call(Method::POST, "/v1/webhooks", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body.get("secret").is_none(), "{}", r.body);
    assert!(!String::from_utf8_lossy(&r.raw).contains(SECRET));
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_are_retried_until_the_receiver_accepts() {
    let t = allowing().await;
    let rx = Receiver::start(2).await;
    for app in ["billing", "shop"] {
        t.call(Method::POST, "/v1/apps", Some(json!({"name": app})))
            .await;
    }
    let id = create(
        &t,
        json!({"url": rx.url(), "events": ["config.changed"], "app": "billing",
            "env": "prod", "secret": SECRET, "description": "ci"}),
    )
    .await;
    let dispatcher = t.svc.spawn_webhook_dispatcher(fast());

    // Heard: a config change at billing/prod. Not heard: a flag (other event
    // type), another app, another environment.
    t.set(
        "db/pool",
        "app=billing&env=prod",
        json!({"password_hint": CANARY}),
    )
    .await;
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/beta?app=billing&env=prod",
            Some(json!({"kind": "flag", "value": {"state": "ENABLED",
                "variants": {"on": true, "off": false}, "defaultVariant": "on"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.set("db/pool", "app=shop&env=prod", json!(1)).await;
    t.set("db/pool", "app=billing&env=dev", json!(1)).await;

    eventually("three attempts", || rx.requests().len() >= 3).await;
    // Every change above dispatched, and every delivery it made finished:
    // nothing more is on its way.
    dispatched(&t).await;
    settled(&t, &id).await;
    let got = rx.requests();
    assert_eq!(got.len(), 3, "two failures and one success, nothing else");

    let body0 = &got[0].1;
    for (headers, body) in &got {
        assert_eq!(body, body0, "every attempt sends the same body");
        assert_eq!(header(headers, "content-type"), "application/json");
        assert_eq!(header(headers, "cairn-event"), "config.changed");
        let sig = header(headers, "cairn-signature");
        let (t_part, v1) = sig.split_once(',').unwrap();
        let ts = t_part.strip_prefix("t=").unwrap();
        let v1 = v1.strip_prefix("v1=").unwrap();
        assert_eq!(v1, hmac_hex(SECRET, ts, body), "{sig}");
        assert_ne!(v1, hmac_hex("another-secret-of-length", ts, body));
        let now = chrono::Utc::now().timestamp();
        assert!(verify_signature(
            SECRET.as_bytes(),
            sig,
            body,
            now,
            Duration::from_secs(300)
        ));
        assert!(!verify_signature(
            b"another-secret-of-length",
            sig,
            body,
            now,
            Duration::from_secs(300)
        ));
        assert!(!verify_signature(
            SECRET.as_bytes(),
            sig,
            b"{}",
            now,
            Duration::from_secs(300)
        ));
    }
    let payload: Value = serde_json::from_slice(body0).unwrap();
    assert_eq!(payload["event"], "config.changed");
    assert_eq!(payload["webhook_id"], id.as_str());
    assert_eq!(payload["id"], header(&got[0].0, "cairn-delivery"));
    assert_eq!(payload["app"], "billing");
    assert_eq!(payload["env"], "prod");
    assert_eq!(payload["key"], "db/pool");
    assert_eq!(payload["kind"], "config");
    assert_eq!(payload["to_version"], 1);
    assert!(
        payload.get("checksum").is_none(),
        "no hash of the value: {payload}"
    );
    assert!(
        !String::from_utf8_lossy(body0).contains(CANARY),
        "no values in payloads"
    );

    // The delivery log: one delivery, three attempts, the first two failed.
    let mut log = Value::Null;
    for _ in 0..100 {
        log = t.get(&format!("/v1/webhooks/{id}/deliveries")).await.body;
        if log[0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    let d = &log[0];
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"], 3, "{d}");
    assert_eq!(d["id"], payload["id"]);
    assert_eq!(d["event"], "config.changed");
    let attempts = d["attempt_log"].as_array().unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(204)], "{d}");
    assert_eq!(attempts[0]["error"], "HTTP 500");
    assert!(attempts[2]["error"].is_null());
    assert!(!d["delivered_at"].is_null());
    assert!(d.get("payload").is_none());
    // Counted in the metrics, outcome by outcome.
    let metrics = t.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&metrics.raw).into_owned();
    assert!(
        text.contains(r#"cairn_webhook_delivery_attempts_total{outcome="retry"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"cairn_webhook_delivery_attempts_total{outcome="delivered"} 1"#),
        "{text}"
    );
    dispatcher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_the_subscription_lifecycle() {
    let t = allowing().await;
    let rx = Receiver::start(0).await;
    // A change before the subscription exists is not announced.
    t.set("before", "", json!(1)).await;
    let id = create(
        &t,
        json!({"url": rx.url(), "events": ["*"], "secret": SECRET}),
    )
    .await;
    let dispatcher = t.svc.spawn_webhook_dispatcher(fast());
    let r = t
        .call(
            Method::POST,
            "/v1/secrets",
            Some(json!({"name": "db-password", "value": CANARY})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = t
        .call(
            Method::POST,
            "/v1/secret-rotate/db-password",
            Some(json!({"value": format!("{CANARY}-2")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    eventually("two secret events", || rx.requests().len() >= 2).await;
    // Deliveries run concurrently: receivers order by `audit_seq`.
    let mut events: Vec<Value> = rx
        .requests()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    events.sort_by_key(|e| e["audit_seq"].as_i64());
    assert_eq!(events[0]["event"], "secret.created");
    assert_eq!(events[1]["event"], "secret.rotated");
    assert_eq!(events[1]["key"], "db-password");
    assert_eq!(events[1]["to_version"], 2);
    for (_, b) in rx.requests() {
        let text = String::from_utf8_lossy(&b);
        assert!(!text.contains(CANARY) && !text.contains("hmac"), "{text}");
    }

    // Deleted: later changes are not delivered; the subscription and its
    // log stay readable; a second delete is 404.
    let r = t
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.set("after", "", json!(1)).await;
    // Once the dispatcher has passed the change, and nothing is pending,
    // nothing more can come.
    dispatched(&t).await;
    assert_eq!(
        settled(&t, &id).await.len(),
        2,
        "nothing enqueued after the delete"
    );
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(t.get("/v1/webhooks").await.body, json!([]));
    let r = t.get(&format!("/v1/webhooks/{id}")).await;
    assert!(!r.body["deleted_at"].is_null(), "{}", r.body);
    let r = t.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(r.body.as_array().unwrap().len(), 2, "{}", r.body);
    // The log is pruned after the retention (finished deliveries only).
    assert_eq!(
        t.svc
            .webhooks()
            .prune_webhook_deliveries(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        t.svc
            .webhooks()
            .prune_webhook_deliveries(Duration::ZERO)
            .await
            .unwrap(),
        2
    );
    let r = t.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(r.body, json!([]));
    t.call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await
        .assert_problem(404, "not_found", None);
    t.get("/v1/webhooks/wh_nope/deliveries")
        .await
        .assert_problem(404, "not_found", None);

    // Both changes are in the audit chain, which still verifies.
    let audit = t.get("/v1/audit?action=webhook.create").await.body;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["key"], id.as_str());
    assert!(!audit.to_string().contains(SECRET));
    let audit = t.get("/v1/audit?action=webhook.delete").await.body;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(t.get("/v1/audit/verify").await.body["ok"], true);
    dispatcher.abort();
}

#[tokio::test]
async fn private_targets_are_refused_at_creation_without_the_option() {
    let t = TestApp::new().await;
    let rx = Receiver::start(0).await;
    let before = t.fingerprint().await;
    for url in [
        rx.url(),
        format!("http://localhost:{}/hook", rx.addr.port()),
        format!("http://[::1]:{}/hook", rx.addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/hook", rx.addr.port()),
        "http://10.1.2.3/hook".into(),
        "http://192.168.0.10/hook".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://100.64.0.1/hook".into(),
        "http://0.0.0.0/hook".into(),
        "http://[fd00::1]/hook".into(),
    ] {
        let r = t
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(json!({"url": url, "events": ["config.changed"], "secret": SECRET})),
            )
            .await;
        r.assert_problem(400, "invalid", Some("url"));
        assert!(
            r.body["detail"].as_str().unwrap().contains("refused"),
            "{url}: {}",
            r.body
        );
    }
    assert_eq!(t.get("/v1/webhooks").await.body, json!([]));
    assert_eq!(t.fingerprint().await, before, "nothing was written");
    assert!(rx.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_at_delivery_without_the_option() {
    // Subscribed while private targets were allowed…
    let t = allowing().await;
    let rx = Receiver::start(0).await;
    let id = create(
        &t,
        json!({"url": rx.url(), "events": ["config.changed"], "secret": SECRET}),
    )
    .await;
    t.set("k", "", json!(1)).await;
    // …then delivered by a server on the same database that refuses them.
    let store = cairn_store_sqlite::SqliteStore::open(&t.db_path())
        .await
        .unwrap();
    let opts = Options {
        master_key: t.svc.options().master_key.clone(),
        allow_private_targets: false,
        ..Options::default()
    };
    let (strict, _) = Service::open(Arc::new(store), opts).await.unwrap();
    assert_eq!(strict.webhooks().dispatch_webhooks().await.unwrap(), 1);
    assert_eq!(strict.deliver_due_webhooks(&fast(), 10).await.unwrap(), 1);
    assert!(
        rx.requests().is_empty(),
        "nothing reached the private target"
    );
    let log = t.get(&format!("/v1/webhooks/{id}/deliveries")).await.body;
    let d = &log[0];
    // Refused for good: retrying cannot help.
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"], 1, "{d}");
    let error = d["attempt_log"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("refused") && error.contains("127.0.0.1"),
        "{error}"
    );
    assert!(d["attempt_log"][0]["status"].is_null());
    // The allowing server would have delivered it: a new change arrives.
    t.set("k", "", json!(2)).await;
    assert_eq!(t.svc.webhooks().dispatch_webhooks().await.unwrap(), 1);
    assert_eq!(t.svc.deliver_due_webhooks(&fast(), 10).await.unwrap(), 1);
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let t = TestApp::with_options(Options {
        allow_private_targets: true,
        ..Options::default()
    })
    .await;
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    let before = t.fingerprint().await;
    let ok =
        json!({"url": "http://127.0.0.1:9/hook", "events": ["config.changed"], "secret": SECRET});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, u16, Option<&str>)> = vec![
        (with("url", json!("not a url")), 400, Some("url")),
        (with("url", json!("ftp://example.com/x")), 400, Some("url")),
        (with("url", json!("file:///etc/passwd")), 400, Some("url")),
        (
            with("url", json!("http://user:pw@127.0.0.1/")),
            400,
            Some("url"),
        ),
        (with("url", json!("")), 400, Some("url")),
        (
            with(
                "url",
                json!(format!("http://127.0.0.1/{}", "a".repeat(3000))),
            ),
            413,
            Some("url"),
        ),
        (with("events", json!([])), 400, Some("events")),
        (
            with("events", json!(["config.chnaged"])),
            400,
            Some("events"),
        ),
        (
            with("events", json!(["config.changed", "nope"])),
            400,
            Some("events"),
        ),
        (with("app", json!("nope")), 400, Some("app")),
        (with("app", json!("Bad App!")), 400, Some("app")),
        (with("app", json!("global")), 400, Some("app")),
        (with("env", json!("nope")), 400, Some("env")),
        (with("env", json!("all")), 400, Some("env")),
        (with("secret", json!("")), 400, Some("secret")),
        (with("secret", json!("short")), 400, Some("secret")),
    ];
    for (body, status, field) in cases {
        let r = t
            .call(Method::POST, "/v1/webhooks", Some(body.clone()))
            .await;
        let code = if status == 413 {
            "too_large"
        } else {
            "invalid"
        };
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.body);
        r.assert_problem(status, code, field);
        assert!(!r.body.to_string().contains(SECRET), "{}", r.body);
    }
    // Malformed bodies: unknown field, missing secret, wrong type.
    for body in [
        with("colour", json!("red")),
        json!({"url": "http://127.0.0.1:9/hook", "events": ["config.changed"]}),
        with("events", json!("config.changed")),
    ] {
        let r = t
            .call(Method::POST, "/v1/webhooks", Some(body.clone()))
            .await;
        assert!(r.status.is_client_error(), "{body}: {}", r.body);
    }
    assert_eq!(t.get("/v1/webhooks").await.body, json!([]));
    assert_eq!(t.fingerprint().await, before, "nothing was written");

    // An operator may not manage webhooks.
    let r = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "op", "role": "operator"})),
        )
        .await;
    let op = r.body["token"].as_str().unwrap().to_owned();
    let r = t
        .call_as(&op, Method::POST, "/v1/webhooks", Some(ok.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get("/v1/webhooks").await.body, json!([]));
}

#[tokio::test]
async fn the_signing_secret_is_stored_sealed_and_never_returned() {
    let t = allowing().await;
    let id = create(
        &t,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": SECRET}),
    )
    .await;
    for uri in [
        "/v1/webhooks".to_string(),
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/deliveries"),
        "/v1/audit?limit=1000".into(),
    ] {
        let r = t.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(!String::from_utf8_lossy(&r.raw).contains(SECRET), "{uri}");
    }
    let listed = t.get("/v1/webhooks").await.body;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["events"], json!(["*"]));
    // Not in the database files either (WAL included).
    for entry in std::fs::read_dir(t.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret is in clear in {}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_rewraps_signing_secrets() {
    let t = allowing().await;
    let rx = Receiver::start(0).await;
    create(
        &t,
        json!({"url": rx.url(), "events": ["config.changed"], "secret": SECRET}),
    )
    .await;
    let key_a = t.svc.options().master_key.clone();
    let (key_b, _) = cairn_core::keys::MasterKey::generate();
    let server = |master_key, previous_master_keys| {
        let (path, token) = (t.db_path(), t.token.clone());
        async move {
            let store = cairn_store_sqlite::SqliteStore::open(&path).await.unwrap();
            let opts = Options {
                master_key,
                previous_master_keys,
                allow_private_targets: true,
                ..Options::default()
            };
            let (svc, _) = Service::open(Arc::new(store), opts).await.unwrap();
            TestApp {
                router: cairn_server::router(svc.clone()),
                svc,
                token,
                dir: tempfile::tempdir().unwrap(),
            }
        }
    };
    // The new key with the old one as previous: rekey re-wraps the secret.
    let b = server(key_b.clone(), vec![key_a]).await;
    let r = b
        .call(
            Method::POST,
            "/v1/admin/rekey",
            Some(json!({"message": "new key"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["rewrapped"], 1, "{}", r.body);
    let audit = b.get("/v1/audit?action=webhook.rewrap").await.body;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    // Only the new key: deliveries are still signed with the same secret.
    let c = server(key_b, vec![]).await;
    c.set("k", "", json!(1)).await;
    assert_eq!(c.svc.webhooks().dispatch_webhooks().await.unwrap(), 1);
    assert_eq!(c.svc.deliver_due_webhooks(&fast(), 10).await.unwrap(), 1);
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    let now = chrono::Utc::now().timestamp();
    assert!(verify_signature(
        SECRET.as_bytes(),
        header(headers, "cairn-signature"),
        body,
        now,
        Duration::from_secs(300)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_fails_for_good_after_the_last_attempt() {
    let t = allowing().await;
    // Redirects count as failures: they are never followed.
    let rx = Receiver::start_failing_with(usize::MAX, StatusCode::FOUND).await;
    let id = create(
        &t,
        json!({"url": rx.url(), "events": ["config.changed"], "secret": SECRET}),
    )
    .await;
    let settings = WebhookSettings {
        max_attempts: 3,
        ..fast()
    };
    let dispatcher = t.svc.spawn_webhook_dispatcher(settings);
    t.set("k", "", json!(1)).await;
    let mut d = Value::Null;
    for _ in 0..300 {
        d = t.get(&format!("/v1/webhooks/{id}/deliveries")).await.body[0].clone();
        if d["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"], 3, "{d}");
    assert!(d["next_attempt_at"].is_null(), "{d}");
    for a in d["attempt_log"].as_array().unwrap() {
        assert_eq!(a["status"], 302, "{d}");
        assert_eq!(a["error"], "HTTP 302 (redirects are not followed)", "{d}");
    }
    // A sentinel: a second change, whose delivery fails for good too. Its
    // three attempts span several passes of the dispatcher after the first
    // delivery failed, none of which may attempt that one again.
    t.set("k", "", json!(2)).await;
    dispatched(&t).await;
    let log = settled(&t, &id).await;
    assert_eq!(log.len(), 2, "{log:?}");
    for d in &log {
        assert_eq!(
            (&d["status"], &d["attempts"]),
            (&json!("failed"), &json!(3)),
            "{d}"
        );
    }
    let sent: Vec<(Value, Value)> = payloads(&rx)
        .iter()
        .map(|p| (p["id"].clone(), p["to_version"].clone()))
        .collect();
    let (first, second) = (log[1]["id"].clone(), log[0]["id"].clone());
    assert_eq!(
        sent,
        [vec![(first, json!(1)); 3], vec![(second, json!(2)); 3]].concat(),
        "no attempt after the last"
    );
    dispatcher.abort();
}

/// The rotation scheduler's work is announced: a failed scheduled rotation
/// (`secret.rotation_failed`, with the error and the retry time) and the
/// rotation that succeeds after the backoff (`secret.rotated`); neither
/// payload carries the value the hook made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rotations_and_their_failures_are_announced() {
    const HOOK_VALUE: &str = "HOOK-MADE-VALUE-5e21";
    let t = allowing().await;
    let rx = Receiver::start(0).await;
    // A rotation hook that fails once, then makes values.
    let calls = Arc::new(Mutex::new(0usize));
    let c = calls.clone();
    let hook = axum::Router::new().route(
        "/rotate",
        axum::routing::post(move || {
            let c = c.clone();
            async move {
                let mut n = c.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    (StatusCode::BAD_GATEWAY, String::new())
                } else {
                    (
                        StatusCode::OK,
                        json!({"value": format!("{HOOK_VALUE}-{n}")}).to_string(),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/rotate", listener.local_addr().unwrap());
    let hook_task = tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let hook_id = create(
        &t,
        json!({"url": rx.url(), "events": ["secret.rotated", "secret.rotation_failed"],
            "secret": SECRET}),
    )
    .await;
    let r = t
        .call(
            Method::POST,
            "/v1/secrets",
            Some(json!({"name": "hooks/signing", "value": "hook-signing-key-42"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = t
        .call(
            Method::POST,
            "/v1/secrets",
            Some(json!({"name": "db/password", "value": "initial-value-1",
                "generator": format!("hook:{hook_url}"), "hook_secret": "hooks/signing",
                "rotation_seconds": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let due = chrono::Utc::now() + chrono::Duration::minutes(2);
    let run = t.svc.secrets().rotate_due(due).await.unwrap();
    assert_eq!(run.failed.len(), 1, "{run:?}");
    let run = t
        .svc
        .secrets()
        .rotate_due(due + chrono::Duration::seconds(31))
        .await
        .unwrap();
    assert_eq!(run.rotated.len(), 1, "{run:?}");

    let dispatcher = t.svc.spawn_webhook_dispatcher(fast());
    eventually("two announcements", || rx.requests().len() >= 2).await;
    // Every audit record dispatched, every delivery finished: nothing else
    // (the secrets' creation, the webhook's) is on its way.
    dispatched(&t).await;
    assert_eq!(settled(&t, &hook_id).await.len(), 2);
    let got = rx.requests();
    assert_eq!(got.len(), 2);
    // Deliveries are not ordered: order by the audit record they announce.
    let mut events: Vec<Value> = got
        .iter()
        .map(|(_, body)| serde_json::from_slice(body).unwrap())
        .collect();
    events.sort_by_key(|e| e["audit_seq"].as_i64());
    assert_eq!(
        events[0]["event"], "secret.rotation_failed",
        "{}",
        events[0]
    );
    assert_eq!(events[0]["key"], "db/password");
    assert_eq!(events[0]["attempts"], 1);
    assert!(
        events[0]["error"].as_str().unwrap().contains("HTTP 502"),
        "{}",
        events[0]
    );
    assert!(!events[0]["retry_at"].is_null());
    assert_eq!(events[1]["event"], "secret.rotated", "{}", events[1]);
    assert_eq!(events[1]["to_version"], 2);
    assert_eq!(events[1]["actor"], "system:rotation");
    for (headers, body) in &got {
        assert!(!String::from_utf8_lossy(body).contains(HOOK_VALUE));
        let sig = header(headers, "cairn-signature");
        let t_part = sig.split(',').next().unwrap().trim_start_matches("t=");
        assert!(sig.ends_with(&hmac_hex(SECRET, t_part, body)), "{sig}");
    }
    dispatcher.abort();
    hook_task.abort();
}
