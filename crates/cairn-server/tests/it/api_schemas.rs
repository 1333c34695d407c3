use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestApp;

fn pool_schema(max: i64) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"max": {"type": "integer", "maximum": max}, "idle": {"type": "integer"}},
        "required": ["max"]
    })
}

#[tokio::test]
async fn every_write_is_validated_against_matching_schemas() {
    let t = TestApp::new().await;
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    let r = t
        .call(
            Method::POST,
            "/v1/schemas",
            Some(json!({"pattern": "database/*", "schema": pool_schema(100)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["version"], 1);
    // draft 7 schema for one app
    let r = t
        .call(
            Method::POST,
            "/v1/schemas",
            Some(json!({"app": "billing", "pattern": "cache/**", "schema": {
                "$schema": "http://json-schema.org/draft-07/schema#", "type": "integer", "minimum": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    t.set("database/pool", "app=billing&env=prod", json!({"max": 20}))
        .await;
    let before = t.fingerprint().await;
    let bad = t
        .call(
            Method::PUT,
            "/v1/entries/database/pool?app=billing&env=prod",
            Some(json!({"value": {"max": 500, "idle": "many"}})),
        )
        .await;
    bad.assert_problem(422, "schema_violation", Some("value"));
    let mut pointers: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/idle", "/max"]);
    assert!(bad.body["errors"][0]["message"].as_str().unwrap().len() > 3);
    assert_eq!(bad.body["errors"][0]["schema"], "global/database/*@1");
    // App-specific schema applies to that app only.
    t.call(
        Method::PUT,
        "/v1/entries/cache/ttl?app=billing",
        Some(json!({"value": 0})),
    )
    .await
    .assert_problem(422, "schema_violation", None);
    // Rollback and change sets go through the same validation.
    t.call(
        Method::POST,
        "/v1/changes",
        Some(json!({"entries": [{"key": "x", "value": 1}, {"key": "database/main", "value": {"idle": 1}}]})),
    )
    .await
    .assert_problem(422, "schema_violation", None);
    assert_eq!(
        t.fingerprint().await,
        before,
        "rejected writes change nothing"
    );
    // cache/ttl at the global scope is not governed by billing's schema.
    t.set("cache/ttl", "", json!(0)).await;

    let v = t
        .call(
            Method::POST,
            "/v1/schemas/validate",
            Some(json!({"key": "database/pool", "value": {"max": 1000}})),
        )
        .await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.body["valid"], false);
    assert_eq!(v.body["violations"][0]["pointer"], "/max");
    let ok = t
        .call(
            Method::POST,
            "/v1/schemas/validate",
            Some(json!({"key": "database/pool", "value": {"max": 10}})),
        )
        .await;
    assert_eq!(ok.body["valid"], true);
}

#[tokio::test]
async fn a_schema_that_stored_values_violate_is_refused_unless_forced() {
    let t = TestApp::new().await;
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    t.set("database/pool", "app=billing", json!({"max": 50}))
        .await;
    t.set("database/ro", "", json!({"max": 5})).await;
    let r = t
        .call(
            Method::POST,
            "/v1/schemas",
            Some(json!({"pattern": "database/*", "schema": pool_schema(100)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let before = t.fingerprint().await;
    let drift = t
        .call(
            Method::POST,
            "/v1/schemas",
            Some(json!({"pattern": "database/*", "schema": pool_schema(10)})),
        )
        .await;
    drift.assert_problem(409, "schema_drift", None);
    assert_eq!(drift.body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(
        drift.body["errors"][0]["entry"],
        "billing/all:database/pool"
    );
    assert_eq!(drift.body["errors"][0]["pointer"], "/max");
    assert_eq!(
        t.fingerprint().await,
        before,
        "a refused schema changes nothing"
    );
    assert_eq!(t.get("/v1/schemas").await.body[0]["version"], 1);
    // Bad schemas and patterns.
    t.call(
        Method::POST,
        "/v1/schemas",
        Some(json!({"pattern": "database/*", "schema": {"type": 5}})),
    )
    .await
    .assert_problem(400, "invalid", Some("schema"));
    t.call(
        Method::POST,
        "/v1/schemas",
        Some(json!({"pattern": "Data/*", "schema": {}})),
    )
    .await
    .assert_problem(400, "invalid", Some("pattern"));
    t.call(
        Method::POST,
        "/v1/schemas",
        Some(json!({"app": "nope", "pattern": "a", "schema": {}})),
    )
    .await
    .assert_problem(404, "not_found", None);
    assert_eq!(t.fingerprint().await, before);

    let forced = t
        .call(
            Method::POST,
            "/v1/schemas",
            Some(json!({"pattern": "database/*", "schema": pool_schema(10), "force": true, "message": "tighten"})),
        )
        .await;
    assert_eq!(forced.status, StatusCode::CREATED, "{}", forced.body);
    assert_eq!(forced.body["version"], 2);
    assert_eq!(forced.body["drift"].as_array().unwrap().len(), 1);
    let active = t.get("/v1/schemas").await;
    assert_eq!(active.body.as_array().unwrap().len(), 1);
    assert_eq!(active.body[0]["version"], 2);
    assert_eq!(
        t.get("/v1/schemas/history")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let audit = t.get("/v1/audit?action=schema.register.forced").await;
    assert_eq!(
        audit.body.as_array().unwrap().len(),
        1,
        "forcing is flagged in the audit log"
    );
    // The new version governs writes.
    t.call(
        Method::PUT,
        "/v1/entries/database/ro",
        Some(json!({"value": {"max": 11}})),
    )
    .await
    .assert_problem(422, "schema_violation", None);
}
