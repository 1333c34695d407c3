use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestApp;

async fn app_with_billing() -> TestApp {
    let t = TestApp::new().await;
    let r = t
        .call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    t
}

#[tokio::test]
async fn four_scopes_resolve_by_merge_patch_with_revision_and_checksum() {
    let t = app_with_billing().await;
    t.set(
        "database/pool",
        "",
        json!({"max": 10, "idle": 5, "host": "db"}),
    )
    .await;
    t.set("database/pool", "env=prod", json!({"host": "prod-db"}))
        .await;
    t.set("database/pool", "app=billing", json!({"max": 20}))
        .await;
    t.set(
        "database/pool",
        "app=billing&env=prod",
        json!({"idle": null, "tls": true}),
    )
    .await;
    t.set("feature/x", "env=dev", json!(1)).await;
    let r = t.get("/v1/apps/billing/envs/prod/config").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["values"],
        json!({"database/pool": {"max": 20, "host": "prod-db", "tls": true}})
    );
    assert_eq!(r.body["app"], "billing");
    assert_eq!(r.body["env"], "prod");
    assert_eq!(
        r.body["revision"],
        t.svc.revision() - 1,
        "the view last changed before feature/x was written"
    );
    let expected = cairn_model::checksum(&r.body["values"]);
    assert_eq!(r.body["checksum"], expected);
    let dev = t.get("/v1/apps/billing/envs/dev/config").await;
    assert_eq!(dev.body["values"]["feature/x"], 1);
    assert_eq!(
        dev.body["values"]["database/pool"],
        json!({"max": 20, "idle": 5, "host": "db"})
    );
}

#[tokio::test]
async fn replace_mode_replaces_the_lower_scopes() {
    let t = app_with_billing().await;
    t.set("limits", "", json!({"a": 1, "b": 2})).await;
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/limits?app=billing",
            Some(json!({"value": {"c": 3}, "merge": "replace"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = t.get("/v1/apps/billing/envs/prod/config").await;
    assert_eq!(v.body["values"]["limits"], json!({"c": 3}));
}

#[tokio::test]
async fn etag_gives_304_until_the_view_changes() {
    let t = app_with_billing().await;
    t.set("a", "app=billing", json!(1)).await;
    let first = t.get("/v1/apps/billing/envs/prod/config").await;
    let etag = first
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let same = t
        .raw(
            Method::GET,
            "/v1/apps/billing/envs/prod/config",
            Some(&t.token),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.raw.is_empty());
    // A change elsewhere (another app's env) does not touch this view.
    t.set("a", "env=dev", json!(2)).await;
    let still = t
        .raw(
            Method::GET,
            "/v1/apps/billing/envs/prod/config",
            Some(&t.token),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(still.status, StatusCode::NOT_MODIFIED);
    t.set("a", "app=billing&env=prod", json!(3)).await;
    let changed = t
        .raw(
            Method::GET,
            "/v1/apps/billing/envs/prod/config",
            Some(&t.token),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body["values"]["a"], 3);
    assert_ne!(changed.headers.get("etag").unwrap().to_str().unwrap(), etag);
}

#[tokio::test]
async fn resolving_at_a_revision_gives_exactly_what_was_served_then() {
    let t = app_with_billing().await;
    let mut served = Vec::new();
    let writes = [
        ("db", "", json!({"max": 1})),
        ("db", "app=billing", json!({"max": 2, "x": [1]})),
        ("cache", "env=prod", json!("on")),
        ("db", "app=billing&env=prod", json!({"x": null})),
        ("other", "env=dev", json!(true)),
    ];
    for (key, q, v) in writes {
        t.set(key, q, v).await;
        let r = t.get("/v1/apps/billing/envs/prod/config").await;
        served.push((t.svc.revision(), r.raw.clone()));
    }
    let r = t
        .call(
            Method::DELETE,
            "/v1/entries/cache?env=prod&message=gone",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    served.push((
        t.svc.revision(),
        t.get("/v1/apps/billing/envs/prod/config").await.raw,
    ));
    for (rev, body) in &served {
        let past = t
            .get(&format!("/v1/apps/billing/envs/prod/config?revision={rev}"))
            .await;
        assert_eq!(past.status, StatusCode::OK);
        assert_eq!(
            String::from_utf8_lossy(&past.raw),
            String::from_utf8_lossy(body),
            "revision {rev}"
        );
    }
    let beyond = t
        .get(&format!(
            "/v1/apps/billing/envs/prod/config?revision={}",
            t.svc.revision() + 5
        ))
        .await;
    beyond.assert_problem(404, "not_found", None);
}

#[tokio::test]
async fn get_list_versions_diff_rollback_and_delete() {
    let t = app_with_billing().await;
    for i in 1..=5 {
        t.set("database/pool", "app=billing", json!({"max": i * 10}))
            .await;
    }
    t.set("database/replica", "app=billing", json!({})).await;
    t.set("cache/ttl", "app=billing", json!(60)).await;
    let g = t.get("/v1/entries/database/pool?app=billing").await;
    assert_eq!(g.body["version"], 5);
    assert_eq!(g.body["value"], json!({"max": 50}));
    assert_eq!(
        g.body["actor"],
        format!("token:{}", cairn_core::auth::token_id(&t.token).unwrap())
    );
    let v2 = t
        .get("/v1/entries/database/pool?app=billing&version=2")
        .await;
    assert_eq!(v2.body["value"], json!({"max": 20}));
    let rev_of_v3 = t
        .get("/v1/entries/database/pool?app=billing&version=3")
        .await
        .body["revision"]
        .as_i64()
        .unwrap();
    let at = t
        .get(&format!(
            "/v1/entries/database/pool?app=billing&revision={rev_of_v3}"
        ))
        .await;
    assert_eq!(at.body["version"], 3);

    let list = t.get("/v1/entries?app=billing&filter=database/*").await;
    let keys: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["database/pool", "database/replica"]);
    let old_list = t
        .get(&format!("/v1/entries?app=billing&revision={rev_of_v3}"))
        .await;
    assert_eq!(old_list.body.as_array().unwrap().len(), 1);

    let h = t.get("/v1/history/database/pool?app=billing").await;
    let versions: Vec<i64> = h
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert!(h.body[0]["checksum"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    let d = t
        .get("/v1/diff/database/pool?app=billing&from=2&to=5")
        .await;
    assert_eq!(
        d.body["patch"],
        json!([{"op": "replace", "path": "/max", "value": 50}])
    );
    assert!(d.body["text"].as_str().unwrap().contains("-  \"max\": 20"));

    let rb = t
        .call(
            Method::POST,
            "/v1/rollback/database/pool?app=billing",
            Some(json!({"version": 3, "message": "too many connections"})),
        )
        .await;
    assert_eq!(rb.status, StatusCode::OK, "{}", rb.body);
    assert_eq!(rb.body["changes"][0]["version"], 6);
    assert_eq!(rb.body["changes"][0]["previous_version"], 5);
    assert_eq!(
        t.get("/v1/entries/database/pool?app=billing").await.body["value"],
        json!({"max": 30})
    );
    let audit = t.get("/v1/audit?action=entry.rollback").await;
    assert_eq!(audit.body.as_array().unwrap().len(), 1);
    assert_eq!(audit.body[0]["message"], "too many connections");

    let del = t
        .call(
            Method::DELETE,
            "/v1/entries/cache/ttl?app=billing&message=unused",
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::OK);
    t.get("/v1/entries/cache/ttl?app=billing")
        .await
        .assert_problem(404, "not_found", None);
    let hist = t.get("/v1/history/cache/ttl?app=billing").await;
    assert_eq!(hist.body[1]["value"], serde_json::Value::Null);
    // Re-creating continues the numbering.
    assert_eq!(t.set("cache/ttl", "app=billing", json!(30)).await, 3);
}

#[tokio::test]
async fn compare_and_set() {
    let t = app_with_billing().await;
    let put = |v: serde_json::Value| Some(v);
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/k",
            put(json!({"value": 1, "expected_version": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let before = t.fingerprint().await;
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/k",
            put(json!({"value": 2, "expected_version": 0})),
        )
        .await;
    r.assert_problem(409, "conflict", None);
    assert_eq!(r.body["current_version"], 1);
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/k",
            put(json!({"value": 2, "expected_version": 7})),
        )
        .await;
    r.assert_problem(409, "conflict", None);
    let r = t
        .call(
            Method::DELETE,
            "/v1/entries/k?message=x&expected_version=3",
            None,
        )
        .await;
    r.assert_problem(409, "conflict", None);
    assert_eq!(
        t.fingerprint().await,
        before,
        "a failed CAS changes nothing"
    );
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/k",
            put(json!({"value": 2, "expected_version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["changes"][0]["version"], 2);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let t = TestApp::with_options(cairn_core::Options {
        max_value_bytes: 4096,
        ..Default::default()
    })
    .await;
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    t.set("ok", "", json!(1)).await;
    let before = t.fingerprint().await;
    /// (method, uri, body, status, code, field)
    type Case<'a> = (Method, String, Option<Body>, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            Method::PUT,
            "/v1/entries/Bad/Key".into(),
            Some(Body::from(r#"{"value":1}"#)),
            400,
            "invalid",
            Some("key"),
        ),
        (
            Method::PUT,
            "/v1/entries/a//b".into(),
            Some(Body::from(r#"{"value":1}"#)),
            400,
            "invalid",
            Some("key"),
        ),
        (
            Method::PUT,
            format!("/v1/entries/{}", "k".repeat(300)),
            Some(Body::from(r#"{"value":1}"#)),
            400,
            "invalid",
            Some("key"),
        ),
        (
            Method::PUT,
            "/v1/entries/k".into(),
            Some(Body::from("{not json")),
            400,
            "invalid",
            Some("body"),
        ),
        (
            Method::PUT,
            "/v1/entries/k".into(),
            Some(Body::from(r#"{"valu":1}"#)),
            400,
            "invalid",
            Some("body"),
        ),
        (
            Method::PUT,
            "/v1/entries/k".into(),
            Some(Body::from(r#"{"value":1,"kind":"bogus"}"#)),
            400,
            "invalid",
            Some("body"),
        ),
        (
            Method::PUT,
            "/v1/entries/k".into(),
            Some(Body::from(format!(r#"{{"value":"{}"}}"#, "x".repeat(5000)))),
            413,
            "too_large",
            Some("value"),
        ),
        (
            Method::PUT,
            "/v1/entries/k".into(),
            Some(Body::from(format!(
                r#"{{"value":"{}"}}"#,
                "x".repeat(3 * 1024 * 1024)
            ))),
            413,
            "too_large",
            Some("body"),
        ),
        (
            Method::PUT,
            "/v1/entries/k?app=nope".into(),
            Some(Body::from(r#"{"value":1}"#)),
            404,
            "not_found",
            None,
        ),
        (
            Method::PUT,
            "/v1/entries/k?env=nope".into(),
            Some(Body::from(r#"{"value":1}"#)),
            404,
            "not_found",
            None,
        ),
        (
            Method::PUT,
            "/v1/entries/k?app=Bad".into(),
            Some(Body::from(r#"{"value":1}"#)),
            400,
            "invalid",
            Some("app"),
        ),
        (
            Method::PUT,
            "/v1/entries/k?bogus=1".into(),
            Some(Body::from(r#"{"value":1}"#)),
            400,
            "invalid",
            Some("query"),
        ),
        (
            Method::DELETE,
            "/v1/entries/ok".into(),
            None,
            400,
            "invalid",
            Some("message"),
        ),
        (
            Method::DELETE,
            "/v1/entries/missing?message=x".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/v1/entries/missing".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/v1/entries/ok?version=1&revision=1".into(),
            None,
            400,
            "invalid",
            Some("version"),
        ),
        (
            Method::GET,
            "/v1/entries?filter=A**".into(),
            None,
            400,
            "invalid",
            Some("filter"),
        ),
        (
            Method::GET,
            "/v1/apps/billing/envs/nope/config".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/v1/apps/nope/envs/prod/config".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/v1/apps/billing/envs/prod/config?revision=-1".into(),
            None,
            400,
            "invalid",
            Some("revision"),
        ),
        (
            Method::POST,
            "/v1/rollback/ok".into(),
            Some(Body::from(r#"{"version":1,"message":""}"#)),
            400,
            "invalid",
            Some("message"),
        ),
        (
            Method::POST,
            "/v1/rollback/ok".into(),
            Some(Body::from(r#"{"version":9,"message":"x"}"#)),
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/v1/diff/ok?from=1&to=9".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/v1/history/missing".into(),
            None,
            404,
            "not_found",
            None,
        ),
    ];
    for (method, uri, body, status, code, field) in cases {
        let r = t.raw(method.clone(), &uri, Some(&t.token), body, &[]).await;
        r.assert_problem(status, code, field);
    }
    assert_eq!(t.fingerprint().await, before);
}

#[tokio::test]
async fn missing_or_bad_tokens_are_refused() {
    let t = TestApp::new().await;
    for (token, uri) in [
        (None, "/v1/apps"),
        (Some("nonsense"), "/v1/apps"),
        (
            Some("cairn_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "/v1/apps",
        ),
        (None, "/v1/apps/billing/envs/prod/config"),
    ] {
        let r = t.raw(Method::GET, uri, token, None, &[]).await;
        r.assert_problem(401, "unauthorized", None);
        assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    }
    let before = t.fingerprint().await;
    let r = t
        .raw(
            Method::PUT,
            "/v1/entries/k",
            None,
            Some(Body::from(r#"{"value":1}"#)),
            &[],
        )
        .await;
    r.assert_problem(401, "unauthorized", None);
    assert_eq!(t.fingerprint().await, before);
    assert_eq!(
        t.raw(Method::GET, "/healthz", None, None, &[]).await.status,
        StatusCode::OK
    );
    let ready = t.raw(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["backend"], "sqlite");
}

#[tokio::test]
async fn change_sets_are_atomic() {
    let t = app_with_billing().await;
    t.set("a", "", json!(1)).await;
    let before = t.fingerprint().await;
    let bad = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"message": "batch", "entries": [
                {"key": "b", "value": 2},
                {"key": "c", "app": "billing", "value": 3},
                {"key": "a", "value": 9, "expected_version": 5}
            ]})),
        )
        .await;
    bad.assert_problem(409, "conflict", None);
    assert_eq!(
        t.fingerprint().await,
        before,
        "nothing of a failed change set is written"
    );
    let dup = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"entries": [{"key": "b", "value": 2}, {"key": "b", "value": 3}]})),
        )
        .await;
    dup.assert_problem(400, "invalid", Some("entries[1].key"));
    let too_many: Vec<_> = (0..65)
        .map(|i| json!({"key": format!("k{i}"), "value": i}))
        .collect();
    t.call(
        Method::POST,
        "/v1/changes",
        Some(json!({"entries": too_many})),
    )
    .await
    .assert_problem(413, "too_large", Some("entries"));
    t.call(Method::POST, "/v1/changes", Some(json!({"entries": []})))
        .await
        .assert_problem(400, "invalid", Some("entries"));
    t.call(
        Method::POST,
        "/v1/changes",
        Some(json!({"entries": [{"key": "x"}]})),
    )
    .await
    .assert_problem(400, "invalid", Some("entries[0].value"));
    assert_eq!(t.fingerprint().await, before);

    let ok = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"message": "batch", "entries": [
                {"key": "b", "value": 2},
                {"key": "c", "app": "billing", "env": "prod", "value": 3},
                {"key": "a", "delete": true, "expected_version": 1}
            ]})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(
        ok.body["revision"],
        before.0 + 1,
        "one change set, one revision"
    );
    let view = t.get("/v1/apps/billing/envs/prod/config").await;
    assert_eq!(view.body["values"], json!({"b": 2, "c": 3}));
    let audit = t.get(&format!("/v1/audit?after={}", before.1)).await;
    assert_eq!(
        audit.body.as_array().unwrap().len(),
        3,
        "one audit record per entry"
    );
    assert!(audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["revision"] == ok.body["revision"]));
}

#[tokio::test]
async fn viewers_cannot_write_and_revoked_tokens_stop_working() {
    let t = TestApp::new().await;
    let created = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let viewer = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        t.call_as(&viewer, Method::GET, "/v1/apps", None)
            .await
            .status,
        StatusCode::OK
    );
    let before = t.fingerprint().await;
    t.call_as(
        &viewer,
        Method::PUT,
        "/v1/entries/k",
        Some(json!({"value": 1})),
    )
    .await
    .assert_problem(403, "forbidden", None);
    t.call_as(
        &viewer,
        Method::POST,
        "/v1/apps",
        Some(json!({"name": "x"})),
    )
    .await
    .assert_problem(403, "forbidden", None);
    assert_eq!(t.fingerprint().await, before);
    let denials = t.denials().await;
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(denials
        .iter()
        .all(|d| d["action"] == "access.denied" && d["actor"] == format!("token:{id}")));
    let list = t.get("/v1/tokens").await;
    assert!(
        !list
            .raw
            .windows(viewer.len())
            .any(|w| w == viewer.as_bytes()),
        "secrets are never listed"
    );
    assert!(!String::from_utf8_lossy(&list.raw).contains("hash"));
    assert_eq!(
        t.call(Method::DELETE, &format!("/v1/tokens/{id}"), None)
            .await
            .status,
        StatusCode::OK
    );
    t.call_as(&viewer, Method::GET, "/v1/apps", None)
        .await
        .assert_problem(401, "unauthorized", None);
}
