//! Real flagd documents: flagd's keys stored verbatim (one kind per key), flag-set
//! metadata, import → export giving the same document back, warnings in write
//! results, the strict-flags policy, and `GET /v1/flags/lint`.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{Resp, TestApp};

async fn app() -> TestApp {
    let t = TestApp::new().await;
    let r = t
        .call(Method::POST, "/v1/apps", Some(json!({"name": "shop"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    t
}

/// PUT `def` as an entry of `kind` at `uri_key` (already percent-encoded).
async fn put(t: &TestApp, uri_key: &str, query: &str, kind: &str, value: Value) -> Resp {
    t.call(
        Method::PUT,
        &format!("/v1/entries/{uri_key}?{query}"),
        Some(json!({"value": value, "kind": kind})),
    )
    .await
}

async fn eval(t: &TestApp, key: &str, context: Value) -> Resp {
    t.call(
        Method::POST,
        &format!("/v1/apps/shop/envs/prod/ofrep/v1/evaluate/flags/{key}"),
        Some(json!({ "context": context })),
    )
    .await
}

fn bool_flag() -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"})
}

#[tokio::test]
async fn flagd_keys_are_stored_verbatim() {
    let t = app().await;
    // (key as sent in the URI, key as stored): camelCase, spaces, `?`, `%`, non-ASCII.
    let keys = [
        ("newWelcomeBanner", "newWelcomeBanner"),
        (
            "fractional-flag-A-shared-seed",
            "fractional-flag-A-shared-seed",
        ),
        ("checkout.v2", "checkout.v2"),
        ("header%20Color%3F", "header Color?"),
        ("100%25%20sure", "100% sure"),
        ("caf%C3%A9/Men%C3%BC", "café/Menü"),
    ];
    for (uri, _) in keys {
        let r = put(&t, uri, "app=shop", "flag", bool_flag()).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
    }
    let doc = t.get("/v1/apps/shop/envs/prod/flagd.json").await;
    let mut stored: Vec<&str> = doc.body["flags"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    stored.sort_unstable();
    let mut want: Vec<&str> = keys.iter().map(|(_, k)| *k).collect();
    want.sort_unstable();
    assert_eq!(stored, want);
    // Case-sensitive: `newwelcomebanner` is another key.
    let r = eval(&t, "newWelcomeBanner", json!({})).await;
    assert_eq!((r.status, &r.body["value"]), (StatusCode::OK, &json!(true)));
    let r = eval(&t, "newwelcomebanner", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = eval(&t, "header%20Color%3F", json!({})).await;
    assert_eq!(r.body["key"], "header Color?", "{}", r.body);
    // Read back at its entry, history included.
    let r = t.get("/v1/entries/100%25%20sure?app=shop").await;
    assert_eq!(
        (r.status, &r.body["key"]),
        (StatusCode::OK, &json!("100% sure"))
    );
    let r = t.get("/v1/history/caf%C3%A9/Men%C3%BC?app=shop").await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1), "{}", r.body);
}

#[tokio::test]
async fn bad_flag_keys_and_kind_changes_are_refused_and_change_nothing() {
    let t = app().await;
    put(&t, "shared", "app=shop", "config", json!({"a": 1})).await;
    let before = t.fingerprint().await;
    // Configuration keys keep their rules.
    let r = put(&t, "newWelcomeBanner", "app=shop", "config", json!(1)).await;
    r.assert_problem(400, "invalid", Some("key"));
    // Control characters, and more than 256 bytes.
    let r = put(&t, "a%0Ab", "app=shop", "flag", bool_flag()).await;
    r.assert_problem(400, "invalid", Some("key"));
    let long = "x".repeat(257);
    let r = put(&t, &long, "app=shop", "flag", bool_flag()).await;
    r.assert_problem(400, "invalid", Some("key"));
    // One key holds one kind: a flag does not silently replace a config value.
    let r = put(&t, "shared", "app=shop", "flag", bool_flag()).await;
    r.assert_problem(409, "conflict", None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("config entry"),
        "{}",
        r.body
    );
    // In a change set too, and then nothing of the set is written.
    let r = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"entries": [
                {"app": "shop", "key": "fine", "kind": "flag", "value": bool_flag()},
                {"app": "shop", "key": "shared", "kind": "segment", "value": {"==": [1, 1]}},
            ]})),
        )
        .await;
    r.assert_problem(409, "conflict", None);
    assert_eq!(t.fingerprint().await, before);
    // A delete removes what lives at the key, whatever kind the caller named.
    let r = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"message": "gone", "entries": [
                {"app": "shop", "key": "shared", "kind": "flag", "delete": true},
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = put(&t, "shared", "app=shop", "flag", bool_flag()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A flagd document with camelCase keys, `$evaluators` and document metadata.
fn document() -> Value {
    json!({
        "flags": {
            "newWelcomeBanner": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "targeting": {"if": [{"$ref": "isStaff"}, "on", "off"]},
                "metadata": {"owner": "web", "version": 3}
            },
            "headerColor": {
                "state": "ENABLED",
                "variants": {"red": "#f00", "blue": "#00f"},
                "defaultVariant": "red"
            }
        },
        "$evaluators": {
            "isStaff": {"ends_with": [{"var": "email"}, "@example.com"]}
        },
        "metadata": {"owner": "platform", "team": "growth"}
    })
}

/// The document as `cairn flag import` sends it: one change set.
fn import_body(doc: &Value) -> Value {
    let mut entries = vec![
        json!({"app": "shop", "env": "prod", "key": "", "kind": "flagset", "value": doc["metadata"]}),
    ];
    for (k, v) in doc["$evaluators"].as_object().unwrap() {
        entries
            .push(json!({"app": "shop", "env": "prod", "key": k, "kind": "segment", "value": v}));
    }
    for (k, v) in doc["flags"].as_object().unwrap() {
        entries.push(json!({"app": "shop", "env": "prod", "key": k, "kind": "flag", "value": v}));
    }
    json!({"message": "import", "entries": entries})
}

#[tokio::test]
async fn an_imported_document_exports_unchanged_and_metadata_merges_as_flagd() {
    let t = app().await;
    let doc = document();
    let r = t
        .call(Method::POST, "/v1/changes", Some(import_body(&doc)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let out = t.get("/v1/apps/shop/envs/prod/flagd.json").await.body;
    for member in ["flags", "$evaluators", "metadata"] {
        assert_eq!(out[member], doc[member], "{member}");
    }
    // The flag's own metadata over the flag set's (hand-written expectations).
    let r = eval(&t, "newWelcomeBanner", json!({"email": "a@example.com"})).await;
    assert_eq!(
        r.body,
        json!({"key": "newWelcomeBanner", "value": true, "variant": "on",
               "reason": "TARGETING_MATCH",
               "metadata": {"owner": "web", "version": 3, "team": "growth"}})
    );
    let r = eval(&t, "headerColor", json!({})).await;
    assert_eq!(
        r.body["metadata"],
        json!({"owner": "platform", "team": "growth"})
    );
    // Another environment sees none of it.
    let dev = t.get("/v1/apps/shop/envs/dev/flagd.json").await.body;
    assert_eq!(dev["flags"], json!({}));
    assert!(dev.get("metadata").is_none(), "{dev}");
    // Flag-set metadata must be scalars; refused with a pointer, nothing written.
    let before = t.fingerprint().await;
    let r = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"entries": [{"app": "shop", "key": "", "kind": "flagset", "value": {"x": {"y": 1}}}]})),
        )
        .await;
    r.assert_problem(422, "schema_violation", None);
    assert_eq!(r.body["errors"][0]["pointer"], "/x", "{}", r.body);
    // The empty key is only for flag-set metadata.
    let r = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"entries": [{"app": "shop", "key": "", "kind": "flag", "value": bool_flag()}]})),
        )
        .await;
    r.assert_problem(400, "invalid", Some("key"));
    assert_eq!(t.fingerprint().await, before);
}

/// A flag whose `sem_ver` operator is unknown: flagd stores it; it can only yield null.
fn never_works() -> Value {
    json!({
        "state": "ENABLED",
        "variants": {"a": "a", "b": "b"},
        "defaultVariant": "a",
        "targeting": {"if": [{"sem_ver": [{"var": "v"}, "=~", "1.0.0"]}, "b", "a"]}
    })
}

#[tokio::test]
async fn warnings_are_reported_and_a_strict_environment_refuses_them() {
    let t = app().await;
    // Stored, with a warning naming the pointer.
    let r = put(&t, "semverFlag", "app=shop&env=dev", "flag", never_works()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let w = &r.body["warnings"];
    assert_eq!(w.as_array().map(Vec::len), Some(1), "{}", r.body);
    assert_eq!(w[0]["code"], "unknown-operator");
    assert_eq!(w[0]["key"], "semverFlag");
    assert_eq!(w[0]["entry"], "shop/dev:semverFlag");
    assert_eq!(w[0]["pointer"], "/targeting/if/0/sem_ver/1");
    // A clean write carries no warnings member.
    let r = put(&t, "clean", "app=shop&env=dev", "flag", bool_flag()).await;
    assert!(r.body.get("warnings").is_none(), "{}", r.body);
    // The same rule is evaluated as flagd does: null, so the else branch.
    let r = t
        .call(
            Method::POST,
            "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags/semverFlag",
            Some(json!({"context": {"v": "1.0.0"}})),
        )
        .await;
    assert_eq!(
        (&r.body["value"], &r.body["reason"]),
        (&json!("a"), &json!("TARGETING_MATCH"))
    );
    // Lint finds it.
    let r = t.get("/v1/flags/lint?app=shop&env=dev").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let views = r.body.as_array().unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0]["warnings"][0]["code"], "unknown-operator");
    assert_eq!(views[0]["warnings"][0]["key"], "semverFlag");
    assert_eq!(views[0]["errors"], json!([]));

    // prod becomes strict.
    let r = t
        .call(
            Method::PATCH,
            "/v1/envs/prod",
            Some(json!({"strict_flags": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.get("/v1/envs/prod").await.body["strict_flags"], true);
    let before = t.fingerprint().await;
    // At prod, and at every scope that reaches prod: refused with pointers.
    for query in ["app=shop&env=prod", "app=shop", "env=prod", ""] {
        let r = put(&t, "semverFlag", query, "flag", never_works()).await;
        r.assert_problem(422, "schema_violation", None);
        assert_eq!(
            r.body["errors"][0]["pointer"], "/targeting/if/0/sem_ver/1",
            "{query}: {}",
            r.body
        );
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("strict_flags"),
            "{}",
            r.body
        );
    }
    assert_eq!(t.fingerprint().await, before);
    // Elsewhere the warning stays a warning.
    let r = put(
        &t,
        "semverFlag",
        "app=shop&env=staging",
        "flag",
        never_works(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["warnings"][0]["code"], "unknown-operator");
}

#[tokio::test]
async fn a_segment_a_flag_needs_cannot_be_deleted() {
    let t = app().await;
    let r = put(
        &t,
        "isStaff",
        "",
        "segment",
        json!({"==": [{"var": "staff"}, true]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut f = bool_flag();
    f["targeting"] = json!({"if": [{"$ref": "isStaff"}, "on", "off"]});
    let r = put(&t, "gated", "app=shop", "flag", f).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("warnings").is_none(), "{}", r.body);
    let before = t.fingerprint().await;
    let r = t
        .call(Method::DELETE, "/v1/entries/isStaff?message=cleanup", None)
        .await;
    r.assert_problem(422, "schema_violation", None);
    assert_eq!(r.body["errors"][0]["entry"], "shop/all:gated", "{}", r.body);
    assert_eq!(t.fingerprint().await, before);
    // A new flag may name a missing segment (flagd stores it): PARSE_ERROR when evaluated.
    let mut f = bool_flag();
    f["targeting"] = json!({"if": [{"$ref": "nobody"}, "on", "off"]});
    let r = put(&t, "dangling", "app=shop", "flag", f).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["warnings"][0]["code"], "missing-ref", "{}", r.body);
    let r = eval(&t, "dangling", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["errorCode"], "PARSE_ERROR", "{}", r.body);
}
