//! Watch streams (SSE) and long polls, read incrementally from the in-process router.

use std::time::{Duration, Instant};

use axum::body::{Body, BodyDataStream};
use axum::http::{header, Method, Request, StatusCode};
use cairn_core::Options;
use futures::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::harness::TestApp;

#[derive(Debug, Clone, PartialEq)]
struct Ev {
    id: i64,
    event: String,
    data: Value,
}

struct Sse {
    body: BodyDataStream,
    buf: String,
    /// Everything received, comments included.
    raw: String,
}

impl Sse {
    /// The next event within `within`, or `None`.
    async fn next(&mut self, within: Duration) -> Option<Ev> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Ev {
                    id: -1,
                    event: String::new(),
                    data: Value::Null,
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = v.trim().parse().unwrap();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data = serde_json::from_str(v.trim()).unwrap();
                        has_data = true;
                    }
                }
                if has_data {
                    return Some(ev);
                }
                continue;
            }
            match tokio::time::timeout_at(until, self.body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let s = String::from_utf8(chunk.to_vec()).unwrap();
                    self.raw.push_str(&s);
                    self.buf.push_str(&s);
                }
                _ => return None,
            }
        }
    }

    async fn take(&mut self, n: usize) -> Vec<Ev> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(Duration::from_secs(5)).await {
                Some(e) => out.push(e),
                None => panic!("only {} of {n} events: {out:?}", out.len()),
            }
        }
        out
    }
}

async fn open(t: &TestApp, token: &str, query: &str, last_id: Option<i64>) -> (StatusCode, Sse) {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/watch?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(id) = last_id {
        b = b.header("Last-Event-ID", id.to_string());
    }
    let resp = t
        .router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    (
        status,
        Sse {
            body: resp.into_body().into_data_stream(),
            buf: String::new(),
            raw: String::new(),
        },
    )
}

async fn setup() -> TestApp {
    let t = TestApp::new().await;
    for app in ["billing", "payments"] {
        let r = t
            .call(Method::POST, "/v1/apps", Some(json!({"name": app})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    t
}

async fn put(t: &TestApp, key: &str, query: &str, value: Value) -> i64 {
    t.set(key, query, value).await;
    t.svc.revision()
}

async fn token(t: &TestApp, role: &str, app: &str, env: &str) -> String {
    let r = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": format!("{role}-{app}-{env}"), "role": role, "app": app, "env": env})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn events_are_ordered_without_gaps_or_duplicates() {
    let t = setup().await;
    let (status, mut w) = open(&t, &t.token, "app=billing&env=dev", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut revisions = Vec::new();
    // Writes to the view's four scopes, back to back, plus noise elsewhere.
    for i in 0..30 {
        let q = match i % 3 {
            0 => "app=billing&env=dev",
            1 => "app=billing",
            _ => "",
        };
        revisions.push((put(&t, &format!("k{i}"), q, json!({"i": i})).await, i));
        put(&t, "other", "app=payments&env=dev", json!(i)).await;
    }
    let events = w.take(30).await;
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, revisions.iter().map(|r| r.0).collect::<Vec<_>>());
    for (e, (rev, i)) in events.iter().zip(&revisions) {
        assert_eq!(e.event, "change");
        assert_eq!(e.data["revision"], *rev);
        assert_eq!(e.data["keys"], json!([format!("k{i}")]), "{e:?}");
    }
    let view = t.get("/v1/apps/billing/envs/dev/config").await;
    assert_eq!(
        events.last().unwrap().data["checksum"],
        view.body["checksum"]
    );
    // Nothing more (the payments writes woke nobody here): the next event
    // is a sentinel written to this view.
    let sentinel = put(&t, "sentinel", "app=billing&env=dev", json!(1)).await;
    assert_eq!(w.take(1).await[0].id, sentinel);
}

#[tokio::test]
async fn resumes_with_last_event_id_and_since() {
    let t = setup().await;
    let (_, mut w) = open(&t, &t.token, "app=billing&env=dev", None).await;
    let r1 = put(&t, "a", "app=billing&env=dev", json!(1)).await;
    assert_eq!(w.take(1).await[0].id, r1);
    drop(w);
    // Missed while disconnected (another watcher keeps the view watched).
    let (_, _keep) = open(&t, &t.token, "app=billing&env=dev", None).await;
    let r2 = put(&t, "b", "app=billing&env=dev", json!(2)).await;
    let r3 = put(&t, "a", "app=billing", json!(3)).await;
    let (_, mut w) = open(&t, &t.token, "app=billing&env=dev", Some(r1)).await;
    let got = w.take(2).await;
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![r2, r3]);
    assert_eq!(got[0].data["keys"], json!(["b"]));
    // Nothing replayed twice: the next event is a sentinel's.
    let sentinel = put(&t, "s", "app=billing&env=dev", json!(0)).await;
    assert_eq!(w.take(1).await[0].id, sentinel);
    // Up to date: nothing replayed, so the first event is the next write's.
    let (_, mut w) = open(
        &t,
        &t.token,
        &format!("app=billing&env=dev&since={sentinel}"),
        None,
    )
    .await;
    let r4 = put(&t, "c", "app=billing&env=dev", json!(4)).await;
    assert_eq!(w.take(1).await[0].id, r4);
}

#[tokio::test]
async fn catch_up_without_history_in_memory_sends_one_event_with_the_changed_keys() {
    let t = setup().await;
    let r0 = put(&t, "keep", "app=billing&env=dev", json!(0)).await;
    put(&t, "x", "app=billing&env=dev", json!(1)).await;
    let r2 = put(&t, "y", "app=billing", json!(2)).await;
    let (_, mut w) = open(
        &t,
        &t.token,
        &format!("app=billing&env=dev&since={r0}"),
        None,
    )
    .await;
    let e = w.take(1).await.remove(0);
    assert_eq!((e.id, e.event.as_str()), (r2, "change"));
    assert_eq!(e.data["keys"], json!(["x", "y"]));
}

#[tokio::test]
async fn resync_when_the_revision_is_not_retained() {
    let t = setup().await;
    let r = put(&t, "a", "app=billing&env=dev", json!(1)).await;
    for q in ["since=-1".to_owned(), format!("since={}", r + 1000)] {
        let (_, mut w) = open(&t, &t.token, &format!("app=billing&env=dev&{q}"), None).await;
        let e = w.take(1).await.remove(0);
        assert_eq!((e.id, e.event.as_str()), (r, "resync"), "{q}");
        assert_eq!(e.data["revision"], r);
    }
}

#[tokio::test]
async fn only_the_affected_views_watchers_are_woken() {
    let t = setup().await;
    let (_, mut billing) = open(&t, &t.token, "app=billing&env=dev", None).await;
    let (_, mut prod) = open(&t, &t.token, "app=billing&env=prod", None).await;
    let (_, rx) = t
        .svc
        .config()
        .watch_view(&cairn_core::Principal::system(), "billing", "prod")
        .unwrap();
    put(&t, "p", "app=payments&env=dev", json!(1)).await;
    put(&t, "d", "app=billing&env=dev", json!(1)).await;
    assert!(
        !rx.has_changed().unwrap(),
        "billing/prod woken by another view's write"
    );
    assert_eq!(billing.take(1).await[0].data["keys"], json!(["d"]));
    // A global write reaches both; for billing/prod it is the first event
    // (the billing/dev and payments writes sent it none).
    let r = put(&t, "g", "", json!(1)).await;
    assert!(rx.has_changed().unwrap());
    assert_eq!(billing.take(1).await[0].id, r);
    assert_eq!(prod.take(1).await[0].id, r);
}

#[tokio::test]
async fn heartbeats_are_sent() {
    let t = TestApp::with_options(Options {
        watch_heartbeat: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let (status, mut w) = open(&t, &t.token, "app=global&env=dev", None).await;
    // The app does not exist: 404 comes before any stream.
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(w.next(Duration::from_millis(50)).await, None);
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    let (status, mut w) = open(&t, &t.token, "app=billing&env=dev", None).await;
    assert_eq!(status, StatusCode::OK);
    // Read until two heartbeats have come (at most 5 s): no event among them.
    let until = Instant::now() + Duration::from_secs(5);
    while w.raw.matches(": heartbeat\n\n").count() < 2 {
        assert!(Instant::now() < until, "no two heartbeats: {:?}", w.raw);
        assert_eq!(w.next(Duration::from_millis(50)).await, None);
    }
}

#[tokio::test]
async fn access_is_scoped() {
    let t = setup().await;
    let viewer = token(&t, "viewer", "payments", "dev").await;
    let sdk = token(&t, "sdk", "billing", "dev").await;
    let (status, _) = open(&t, &viewer, "app=billing&env=dev", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = open(&t, &sdk, "app=billing&env=prod", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, mut w) = open(&t, &sdk, "app=billing&env=dev", None).await;
    assert_eq!(status, StatusCode::OK);
    let r = put(&t, "a", "app=billing&env=dev", json!(1)).await;
    assert_eq!(w.take(1).await[0].id, r);
    let (status, _) = open(&t, &t.token, "app=billing&env=dev&since=x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = open(&t, &t.token, "app=billing&env=dev", Some(-5)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn long_poll_returns_on_change_and_on_timeout() {
    let t = setup().await;
    let r0 = put(&t, "a", "app=billing&env=dev", json!(0)).await;
    let uri = format!("/v1/apps/billing/envs/dev/config?index={r0}&wait=300ms");
    let start = Instant::now();
    let timed_out = t.get(&uri).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(timed_out.status, StatusCode::OK);
    assert_eq!(timed_out.body["revision"], r0);
    let now = t.get("/v1/apps/billing/envs/dev/config").await;
    assert_eq!(timed_out.raw, now.raw);
    assert_eq!(timed_out.headers[header::ETAG], now.headers[header::ETAG]);
    // Behind already: immediate.
    let start = Instant::now();
    let r = t
        .get(&format!(
            "/v1/apps/billing/envs/dev/config?index={}&wait=30s",
            r0 - 1
        ))
        .await;
    assert_eq!(r.body["revision"], r0);
    assert!(start.elapsed() < Duration::from_secs(1));
    // Changes while waiting. A write elsewhere first, so the hub forgets
    // the billing/dev slot the polls above left without receivers.
    put(&t, "other", "app=payments&env=dev", json!(0)).await;
    assert!(t
        .svc
        .config()
        .view_events_after("billing", "dev", r0)
        .is_none());
    let uri = format!("/v1/apps/billing/envs/dev/config?index={r0}&wait=30s");
    let waiting = {
        let router = t.router.clone();
        let token = t.token.clone();
        tokio::spawn(async move {
            let req = Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                Instant::now(),
                serde_json::from_slice::<Value>(&bytes).unwrap(),
            )
        })
    };
    // Wait until the long poll watches billing/dev (the hub holds events
    // for watched views only; the write above let go of the earlier ones).
    let until = Instant::now() + Duration::from_secs(5);
    while t
        .svc
        .config()
        .view_events_after("billing", "dev", r0)
        .is_none()
    {
        assert!(
            Instant::now() < until,
            "the long poll never started waiting"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    put(&t, "other", "app=payments&env=dev", json!(1)).await;
    // The sentinel: a write to this view. Had the other write ended the
    // wait, the answer would be the view at r0.
    let wrote = Instant::now();
    let r1 = put(&t, "a", "app=billing&env=dev", json!(1)).await;
    let (done, body) = waiting.await.unwrap();
    assert_eq!(body["revision"], r1, "another view's write ended the wait");
    assert_eq!(body["values"]["a"], 1);
    assert!(done.duration_since(wrote) < Duration::from_secs(2));
    // Bad waits.
    for w in ["abc", "10x", "-1s"] {
        t.get(&format!(
            "/v1/apps/billing/envs/dev/config?index=1&wait={w}"
        ))
        .await
        .assert_problem(400, "invalid", Some("wait"));
    }
}
