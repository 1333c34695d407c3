use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use cairn_server::ratelimit::{Limiter, Limits};
use serde_json::{json, Value};

use crate::harness::TestApp;

const PW: &str = "correct horse battery";

async fn with_alice() -> TestApp {
    let t = TestApp::new().await;
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    let r = t
        .call(
            Method::POST,
            "/v1/users",
            Some(json!({"name": "alice", "password": PW,
                "bindings": [{"role": "operator", "app": "billing", "env": "staging"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    t
}

async fn login(t: &TestApp, ip: &str, name: &str, password: &str) -> crate::harness::Resp {
    let body =
        Body::from(serde_json::to_vec(&json!({"name": name, "password": password})).unwrap());
    t.raw_from(Some(ip), Method::POST, "/v1/login", None, Some(body), &[])
        .await
}

#[tokio::test]
async fn users_log_in_and_act_with_their_bindings() {
    let t = with_alice().await;
    let r = login(&t, "10.0.0.1", "alice", PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let w = t
        .call_as(
            &token,
            Method::PUT,
            "/v1/entries/db?app=billing&env=staging",
            Some(json!({"value": 1})),
        )
        .await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.body);
    let h = t.get("/v1/history/db?app=billing&env=staging").await;
    assert_eq!(h.body[0]["actor"], "user:alice", "changes name the user");
    t.call_as(
        &token,
        Method::PUT,
        "/v1/entries/db?app=billing&env=prod",
        Some(json!({"value": 1})),
    )
    .await
    .assert_problem(404, "not_found", None);
    // A grant takes effect at once on existing login tokens.
    let g = t
        .call(
            Method::PATCH,
            "/v1/users/alice",
            Some(json!({"bindings": [{"role": "operator", "app": "billing", "env": "*"}]})),
        )
        .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    let w = t
        .call_as(
            &token,
            Method::PUT,
            "/v1/entries/db?app=billing&env=prod",
            Some(json!({"value": 2})),
        )
        .await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.body);
    // Disabling the user stops its tokens.
    t.call(
        Method::PATCH,
        "/v1/users/alice",
        Some(json!({"disabled": true})),
    )
    .await;
    t.call_as(&token, Method::GET, "/v1/apps", None)
        .await
        .assert_problem(401, "unauthorized", None);
    login(&t, "10.0.0.1", "alice", PW)
        .await
        .assert_problem(401, "unauthorized", None);
    // Users are listed without password hashes.
    let users = t.get("/v1/users").await;
    assert_eq!(users.body[0]["name"], "alice");
    assert!(!String::from_utf8_lossy(&users.raw).contains("argon2"));
}

#[tokio::test]
async fn bad_user_input_and_wrong_passwords() {
    let t = with_alice().await;
    let before = t.fingerprint().await;
    for (body, status, field) in [
        (
            json!({"name": "bob", "password": "short", "bindings": [{"role": "viewer", "app": "*", "env": "*"}]}),
            400,
            Some("password"),
        ),
        (
            json!({"name": "Bob!", "password": PW, "bindings": [{"role": "viewer", "app": "*", "env": "*"}]}),
            400,
            Some("name"),
        ),
        (
            json!({"name": "bob", "password": PW, "bindings": []}),
            400,
            Some("bindings"),
        ),
        (
            json!({"name": "bob", "password": PW, "bindings": [{"role": "sdk", "app": "*", "env": "*"}]}),
            400,
            Some("role"),
        ),
        (
            json!({"name": "bob", "password": PW, "bindings": [{"role": "viewer", "app": "Bad", "env": "*"}]}),
            400,
            Some("app"),
        ),
        (
            json!({"name": "alice", "password": PW, "bindings": [{"role": "viewer", "app": "*", "env": "*"}]}),
            409,
            None,
        ),
    ] {
        let code = if status == 409 { "conflict" } else { "invalid" };
        t.call(Method::POST, "/v1/users", Some(body))
            .await
            .assert_problem(status, code, field);
    }
    assert_eq!(t.fingerprint().await, before);
    let wrong = login(&t, "10.0.0.1", "alice", "not the password").await;
    wrong.assert_problem(401, "unauthorized", None);
    let nobody = login(&t, "10.0.0.1", "nobody", PW).await;
    assert_eq!(
        nobody.body["detail"], wrong.body["detail"],
        "no hint whether the user exists"
    );
    let denials = t.denials().await;
    let failed: Vec<&Value> = denials
        .iter()
        .filter(|d| d["action"] == "auth.login_failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["actor"], "user:alice");
    assert_eq!(failed[0]["client_ip"], "10.0.0.1");
    assert!(!String::from_utf8_lossy(&t.get("/v1/audit").await.raw).contains("not the password"));
}

#[tokio::test]
async fn failed_logins_slow_one_client_without_locking_out_others() {
    let t = with_alice().await;
    for _ in 0..5 {
        login(&t, "10.0.0.9", "alice", "guess")
            .await
            .assert_problem(401, "unauthorized", None);
    }
    let blocked = login(&t, "10.0.0.9", "alice", PW).await;
    blocked.assert_problem(429, "rate_limited", None);
    let retry: u64 = blocked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // Another client logs in as usual, the same user included.
    assert_eq!(
        login(&t, "10.0.0.10", "alice", PW).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_recover() {
    let t = TestApp::new().await.with_limits(Limits {
        reads: Limiter::new(5.0, 5.0),
        ..Limits::relaxed()
    });
    for _ in 0..5 {
        assert_eq!(t.get("/v1/apps").await.status, StatusCode::OK);
    }
    let limited = t.get("/v1/apps").await;
    limited.assert_problem(429, "rate_limited", None);
    assert_eq!(limited.headers["retry-after"], "1");
    // Recovers as cells refill (one per 200 ms): ask until a read is let
    // through again, within a bound; every refusal until then says when to
    // retry. (governor's clock is the real one: waiting is observing it.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refused = 1;
    loop {
        let r = t.get("/v1/apps").await;
        if r.status == StatusCode::OK {
            break;
        }
        r.assert_problem(429, "rate_limited", None);
        assert_eq!(r.headers["retry-after"], "1", "refusal {refused}");
        refused += 1;
        assert!(
            Instant::now() < deadline,
            "no read let through within 5 s ({refused} refusals): the budget never refills"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        t.raw(Method::GET, "/healthz", None, None, &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn audit_verify_names_the_first_tampered_record() {
    let t = with_alice().await;
    for i in 0..5 {
        t.set("db", "app=billing", json!({"n": i})).await;
    }
    let ok = t.get("/v1/audit/verify").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["ok"], true, "{}", ok.body);
    let n = ok.body["records"].as_i64().unwrap();
    assert!(n >= 10);
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", t.db_path().display()))
        .await
        .unwrap();
    // Edit one record's message.
    sqlx::query("UPDATE audit SET message = 'nothing to see' WHERE seq = 7")
        .execute(&db)
        .await
        .unwrap();
    let bad = t.get("/v1/audit/verify").await;
    assert_eq!(bad.body["ok"], false);
    assert_eq!(bad.body["first_bad"]["seq"], 7, "{}", bad.body);
    assert_eq!(bad.body["records"], 6);
    // Truncating the tail is noticed through the signed head (on a fresh server).
    let t = with_alice().await;
    t.set("x", "", json!(1)).await;
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", t.db_path().display()))
        .await
        .unwrap();
    let last: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit")
        .fetch_one(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit WHERE seq = $1")
        .bind(last)
        .execute(&db)
        .await
        .unwrap();
    let bad = t.get("/v1/audit/verify").await;
    assert_eq!(bad.body["ok"], false);
    assert_eq!(bad.body["first_bad"]["seq"], last, "{}", bad.body);
    // Only admins may verify.
    let viewer = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "v", "role": "viewer"})),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    t.call_as(&viewer, Method::GET, "/v1/audit/verify", None)
        .await
        .assert_problem(403, "forbidden", None);
}
