//! Rate limits by route class, failed-authentication and login budgets, and
//! the 405 of undeclared methods (DESIGN §10).

use axum::body::Body;
use axum::http::{Method, StatusCode};
use cairn_server::access::{allowed_methods, MATRIX};
use cairn_server::ratelimit::{Limiter, Limits};
use futures::StreamExt;
use serde_json::json;

use crate::harness::{Resp, TestApp};

const BAD: &str = "cairn_000000000000_nope";
/// One cell a day: once a burst is spent, nothing refills during a test.
const PER_DAY: f64 = 1.0 / 86_400.0;

/// An app `shop` with one flag and an SDK token bound to shop/dev.
async fn shop(t: &TestApp) -> String {
    let r = t
        .call(Method::POST, "/v1/apps", Some(json!({"name": "shop"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/banner?app=shop",
            Some(json!({"kind": "flag", "value": {"state": "ENABLED",
                "variants": {"a": "hello", "b": "bye"}, "defaultVariant": "a"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "fleet", "role": "sdk", "app": "shop", "env": "dev"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

async fn get_from(t: &TestApp, ip: &str, token: &str) -> Resp {
    t.raw_from(Some(ip), Method::GET, "/v1/apps", Some(token), None, &[])
        .await
}

fn retry_after(r: &Resp) -> u64 {
    r.headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn twenty_thousand_ofrep_evaluations_by_one_sdk_token_get_no_429_by_default() {
    let t = TestApp::new().await.with_limits(Limits::defaults());
    let sdk = shop(&t).await;
    let statuses: Vec<StatusCode> = futures::stream::iter(0..20_000)
        .map(|i| {
            let (t, sdk) = (&t, &sdk);
            async move {
                let body = json!({"context": {"targetingKey": format!("user-{i}")}});
                let r = t
                    .raw_from(
                        Some("10.20.0.1"),
                        Method::POST,
                        "/ofrep/v1/evaluate/flags/banner",
                        Some(sdk),
                        Some(Body::from(body.to_string())),
                        &[],
                    )
                    .await;
                r.status
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!((limited, ok), (0, 20_000));
}

#[tokio::test]
async fn writes_spend_their_own_per_principal_budget_and_reads_stay_free() {
    let t = TestApp::new().await;
    let sdk = shop(&t).await;
    let t = t.with_limits(Limits {
        writes: Limiter::new(PER_DAY, 3.0),
        ..Limits::defaults()
    });
    for i in 0..3 {
        t.set("n", "", json!(i)).await;
    }
    let r = t
        .call(Method::PUT, "/v1/entries/n", Some(json!({"value": 9})))
        .await;
    r.assert_problem(429, "rate_limited", None);
    assert!(retry_after(&r) > 3600, "{:?}", r.headers);
    // Reads of the same principal are another class: still served.
    assert_eq!(t.get("/v1/entries/n").await.status, StatusCode::OK);
    let r = t
        .call(
            Method::POST,
            "/v1/schemas/validate",
            Some(json!({"key": "n", "value": 1})),
        )
        .await;
    assert_ne!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    // Another principal has its own budget; an SDK report is a write.
    let report = json!({"instance": "web-1", "revision": 1, "checksum": "x", "evaluations": []});
    for _ in 0..3 {
        let r = t
            .call_as(&sdk, Method::POST, "/v1/report", Some(report.clone()))
            .await;
        assert_ne!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    }
    let r = t
        .call_as(&sdk, Method::POST, "/v1/report", Some(report))
        .await;
    r.assert_problem(429, "rate_limited", None);
    let r = t
        .raw(
            Method::POST,
            "/ofrep/v1/evaluate/flags/banner",
            Some(&sdk),
            Some(Body::from("{}")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "evaluations are reads");
}

#[tokio::test]
async fn a_valid_token_is_served_after_a_hundred_failures_from_its_address() {
    let t = TestApp::new().await;
    let token = t.token.clone();
    let t = t.with_limits(Limits {
        auth_failures: Limiter::new(PER_DAY, 50.0),
        ..Limits::defaults()
    });
    let mut refused = [0usize; 2];
    for _ in 0..100 {
        let r = get_from(&t, "10.30.0.1", BAD).await;
        match r.status.as_u16() {
            401 => refused[0] += 1,
            429 => {
                retry_after(&r);
                refused[1] += 1
            }
            s => panic!("{s}: {}", r.body),
        }
    }
    assert_eq!(refused, [50, 50], "[401, 429] after a budget of 50");
    for _ in 0..20 {
        let r = get_from(&t, "10.30.0.1", &token).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a valid token is served: {}",
            r.body
        );
    }
    let r = get_from(&t, "10.30.0.1", BAD).await;
    r.assert_problem(429, "rate_limited", None);
    assert!(retry_after(&r) >= 1);
    assert_eq!(
        get_from(&t, "10.30.0.2", BAD).await.status,
        StatusCode::UNAUTHORIZED,
        "another address has its own budget"
    );
    // Only the failures within the budget were audited, not the 429s.
    let failed = t
        .denials()
        .await
        .iter()
        .filter(|d| d["action"] == "auth.failed")
        .count();
    assert_eq!(failed, 51);
}

#[tokio::test]
async fn failed_authentications_from_one_ipv6_64_share_a_budget() {
    let t = TestApp::new().await;
    let token = t.token.clone();
    let t = t.with_limits(Limits {
        auth_failures: Limiter::new(PER_DAY, 10.0),
        ..Limits::defaults()
    });
    // Every request from another address of the same /64.
    let mut statuses = Vec::new();
    for i in 1..=30 {
        let ip = format!("2001:db8:7:1::{i:x}");
        statuses.push(get_from(&t, &ip, BAD).await.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20);
    assert_eq!(
        get_from(&t, "2001:db8:7:2::1", BAD).await.status,
        StatusCode::UNAUTHORIZED,
        "another /64 has its own budget"
    );
    assert_eq!(
        get_from(&t, "2001:db8:7:1::ffff", &token).await.status,
        StatusCode::OK
    );
}

async fn with_users(t: &TestApp) {
    for name in ["alice", "bob"] {
        let r = t
            .call(
                Method::POST,
                "/v1/users",
                Some(json!({"name": name, "password": "correct horse battery",
                    "bindings": [{"role": "viewer", "app": "*", "env": "*"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
}

async fn login(t: &TestApp, ip: &str, name: &str, password: &str) -> Resp {
    let body = Body::from(json!({"name": name, "password": password}).to_string());
    t.raw_from(Some(ip), Method::POST, "/v1/login", None, Some(body), &[])
        .await
}

async fn login_failures_audited(t: &TestApp) -> usize {
    t.denials()
        .await
        .iter()
        .filter(|d| d["action"] == "auth.login_failed")
        .count()
}

#[tokio::test]
async fn concurrent_guesses_from_one_address_hash_at_most_its_login_budget() {
    let t = TestApp::new().await;
    with_users(&t).await;
    let guesses: Vec<Resp> = futures::future::join_all((0..20).map(|i| {
        login(
            &t,
            "10.40.0.1",
            "alice",
            if i % 2 == 0 { "guess" } else { "other" },
        )
    }))
    .await;
    let statuses: Vec<u16> = guesses.iter().map(|r| r.status.as_u16()).collect();
    let hashed = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(hashed, 5, "the per-address burst is 5: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15);
    for r in guesses
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
    {
        assert!((1..=10).contains(&retry_after(r)));
    }
    assert_eq!(
        login_failures_audited(&t).await,
        5,
        "only 5 passwords were checked"
    );
    // Another address logs in as usual.
    let r = login(&t, "10.40.0.2", "bob", "correct horse battery").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn guesses_at_one_user_from_many_addresses_spend_that_users_budget() {
    let t = TestApp::new().await;
    with_users(&t).await;
    let mut statuses = Vec::new();
    for i in 1..=15 {
        statuses.push(
            login(&t, &format!("10.50.0.{i}"), "alice", "guess")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "the per-user burst is 10: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 5);
    assert_eq!(login_failures_audited(&t).await, 10);
    let r = login(&t, "10.50.0.99", "alice", "correct horse battery").await;
    r.assert_problem(429, "rate_limited", None);
    // Other users are not affected.
    let r = login(&t, "10.50.0.99", "bob", "correct horse battery").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A concrete URI for a route path of the matrix.
fn concrete(path: &str) -> String {
    path.replace("{app}", "shop")
        .replace("{env}", "dev")
        .replace("{*key}", "a/b")
        .replace("{*name}", "a/b")
        .replace("{id}", "x1")
        .replace("{name}", "x1")
}

#[tokio::test]
async fn undeclared_methods_answer_405_with_allow_on_every_route() {
    let t = TestApp::new().await;
    let token = t.token.clone();
    let mut paths: Vec<&str> = MATRIX.iter().map(|(_, p, _)| *p).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let allowed = allowed_methods(path);
        for method in [
            "TRACE", "CONNECT", "OPTIONS", "PATCH", "PUT", "DELETE", "POST",
        ] {
            if allowed.contains(&method) {
                continue;
            }
            let uri = concrete(path);
            for tok in [None, Some(token.as_str())] {
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                let r = t.raw(m, &uri, tok, None, &[]).await;
                let ctx = format!("{method} {uri}: {} {}", r.status, r.body);
                assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{ctx}");
                assert_eq!(r.headers["allow"], allowed.join(", "), "{ctx}");
                assert_eq!(r.body["status"], 405, "{ctx}");
                assert_eq!(r.body["code"], "method_not_allowed", "{ctx}");
            }
        }
    }
}

#[tokio::test]
async fn method_not_allowed_names_the_declared_methods_and_unknown_paths_stay_404() {
    let t = TestApp::new().await;
    let token = t.token.clone();
    let tok = Some(token.as_str());
    for (method, uri, allow) in [
        ("TRACE", "/healthz", "GET, HEAD"),
        ("TRACE", "/v1/apps", "GET, HEAD, POST"),
        ("PATCH", "/v1/apps", "GET, HEAD, POST"),
        ("PUT", "/v1/envs/dev", "GET, HEAD, PATCH"),
        ("GET", "/ofrep/v1/evaluate/flags", "POST"),
        ("DELETE", "/ofrep/v1/evaluate/flags/banner", "POST"),
        (
            "GET",
            "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags",
            "POST",
        ),
        (
            "PUT",
            "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags/a/b",
            "POST",
        ),
        ("GET", "/v1/login", "POST"),
    ] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = t.raw(m, uri, tok, None, &[]).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(r.headers["allow"], allow, "{method} {uri}");
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{method} {uri}"
        );
    }
    // HEAD follows GET.
    let r = t.raw(Method::HEAD, "/healthz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t.raw(Method::HEAD, "/v1/apps", tok, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t.raw(Method::HEAD, "/v1/apps", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for (method, uri) in [
        (Method::GET, "/nope"),
        (Method::TRACE, "/nope"),
        (Method::GET, "/v1/nope"),
        (Method::POST, "/ofrep/v2/evaluate"),
    ] {
        let r = t.raw(method.clone(), uri, tok, None, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    // A 405 is counted as one method label, not as the client's method name.
    let metrics = t.get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.raw);
    assert!(!text.contains("method=\"TRACE\""), "{text}");
}

#[tokio::test]
async fn login_with_a_bad_body_spends_no_budget() {
    let t = TestApp::new().await;
    with_users(&t).await;
    for _ in 0..10 {
        let r = t
            .raw_from(
                Some("10.60.0.1"),
                Method::POST,
                "/v1/login",
                None,
                Some(Body::from("{\"name\": 1}")),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    let r = login(&t, "10.60.0.1", "alice", "correct horse battery").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
