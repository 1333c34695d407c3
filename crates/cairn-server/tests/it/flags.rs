//! Feature flags: validated writes, per-scope resolution, the flagd document,
//! OFREP (single, bulk, every status), token binding vs path prefix, counts.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use cairn_server::ratelimit::{Limiter, Limits};
use serde_json::{json, Value};

use crate::harness::{Resp, TestApp};

fn bool_flag(default: &str) -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": default})
}

async fn put_flag(t: &TestApp, key: &str, query: &str, def: Value) -> Resp {
    t.call(
        Method::PUT,
        &format!("/v1/entries/{key}?{query}"),
        Some(json!({"value": def, "kind": "flag"})),
    )
    .await
}

async fn put_segment(t: &TestApp, key: &str, query: &str, rule: Value) -> Resp {
    t.call(
        Method::PUT,
        &format!("/v1/entries/{key}?{query}"),
        Some(json!({"value": rule, "kind": "segment"})),
    )
    .await
}

/// POST an OFREP body with a token (or none) and extra headers.
async fn ofrep(
    t: &TestApp,
    token: Option<&str>,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Resp {
    t.raw(
        Method::POST,
        uri,
        token,
        Some(Body::from(body.to_owned())),
        headers,
    )
    .await
}

async fn app_with_flags() -> TestApp {
    let t = TestApp::new().await;
    let r = t
        .call(Method::POST, "/v1/apps", Some(json!({"name": "shop"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = put_segment(
        &t,
        "staff",
        "",
        json!({"ends_with": [{"var": "email"}, "@example.com"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut new_ui = bool_flag("off");
    new_ui["targeting"] = json!({"if": [{"$ref": "staff"}, "on"]});
    new_ui["metadata"] =
        json!({"owner": "team-web", "description": "the new UI", "tags": "ui, web"});
    for (key, def) in [
        ("new-ui", new_ui),
        (
            "banner",
            json!({"state": "ENABLED", "variants": {"a": "hello", "b": "bye"}, "defaultVariant": "a"}),
        ),
        (
            "limits",
            json!({"state": "ENABLED", "variants": {"small": {"max": 1}, "big": {"max": 9}}, "defaultVariant": "small"}),
        ),
        (
            "old",
            json!({"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}),
        ),
        (
            "code-default",
            json!({"state": "ENABLED", "variants": {"on": true, "off": false}}),
        ),
        (
            "computed",
            json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"var": "pick"}}),
        ),
    ] {
        let r = put_flag(&t, key, "app=shop", def).await;
        assert_eq!(r.status, StatusCode::OK, "{key}: {}", r.body);
    }
    t
}

#[tokio::test]
async fn invalid_flags_and_segments_are_rejected_with_a_pointer_and_nothing_is_written() {
    let t = app_with_flags().await;
    let before = t.fingerprint().await;
    // A default variant that is not a variant.
    let r = put_flag(&t, "bad", "app=shop", bool_flag("maybe")).await;
    r.assert_problem(422, "schema_violation", Some("value"));
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", r.body);
    assert_eq!(errors[0]["schema"], "flagd");
    assert_eq!(errors[0]["pointer"], "/defaultVariant", "{}", r.body);
    // Variants of mixed types (flagd's schema refuses them), with a pointer.
    let r = put_flag(
        &t,
        "bad",
        "app=shop",
        json!({"state": "ENABLED", "variants": {"on": true, "off": "no"}, "defaultVariant": "on"}),
    )
    .await;
    r.assert_problem(422, "schema_violation", None);
    assert!(
        r.body["errors"][0]["pointer"]
            .as_str()
            .unwrap()
            .starts_with("/variants/"),
        "{}",
        r.body
    );
    // A state flagd does not know.
    let mut def = bool_flag("off");
    def["state"] = json!("ON");
    put_flag(&t, "bad", "app=shop", def)
        .await
        .assert_problem(422, "schema_violation", None);
    // (Rules flagd stores but that can never work — an unknown `sem_ver`
    // operator, a `$ref` to a missing segment — are stored with warnings:
    // see `flag_documents`.)
    // A segment that is not a rule object.
    let r = put_segment(&t, "seg", "", json!("everyone")).await;
    r.assert_problem(422, "schema_violation", None);
    assert_eq!(r.body["errors"][0]["pointer"], "");
    // Deleting a segment a flag uses would break the flag: refused, naming it.
    let r = t
        .call(Method::DELETE, "/v1/entries/staff?message=cleanup", None)
        .await;
    r.assert_problem(422, "schema_violation", None);
    assert_eq!(
        r.body["errors"][0]["entry"], "shop/all:new-ui",
        "{}",
        r.body
    );
    // In a change set every problem is listed, each naming its entry.
    let r = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"entries": [
                {"app": "shop", "key": "x1", "kind": "flag", "value": bool_flag("nope")},
                {"app": "shop", "key": "x2", "kind": "flag", "value": {"state": "ON", "variants": {"a": 1}}},
            ]})),
        )
        .await;
    r.assert_problem(422, "schema_violation", None);
    let entries: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    assert_eq!(entries, ["shop/all:x1", "shop/all:x2"], "{}", r.body);
    assert_eq!(
        t.fingerprint().await,
        before,
        "a rejected write changed something"
    );
    // A change set that brings its own segment is fine.
    let r = t
        .call(
            Method::POST,
            "/v1/changes",
            Some(json!({"entries": [
                {"app": "shop", "key": "beta", "kind": "segment", "value": {"in": [{"var": "targetingKey"}, ["u1", "u2"]]}},
                {"app": "shop", "key": "beta-ui", "kind": "flag",
                 "value": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                           "targeting": {"if": [{"$ref": "beta"}, "on"]}}},
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Config values are not flags: anything goes.
    t.set("bad", "app=shop", json!({"defaultVariant": "maybe"}))
        .await;
}

#[tokio::test]
async fn the_most_specific_scope_wins_and_flagd_json_serves_it_with_etag() {
    let t = app_with_flags().await;
    // prod overrides the whole flag (replace, not merge), and the segment.
    let r = put_flag(
        &t,
        "banner",
        "app=shop&env=prod",
        json!({"state": "ENABLED", "variants": {"z": "prod!"}, "defaultVariant": "z"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = put_segment(
        &t,
        "staff",
        "app=shop&env=prod",
        json!({"==": [{"var": "email"}, "boss@example.com"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let dev = t.get("/v1/apps/shop/envs/dev/flagd.json").await;
    assert_eq!(dev.status, StatusCode::OK);
    assert_eq!(
        dev.body["flags"]["banner"]["variants"],
        json!({"a": "hello", "b": "bye"})
    );
    assert_eq!(
        dev.body["$evaluators"]["staff"],
        json!({"ends_with": [{"var": "email"}, "@example.com"]})
    );
    // Nothing invented: no scope set flag-set metadata, so the document has none.
    assert!(dev.body.get("metadata").is_none(), "{}", dev.body);
    let prod = t.get("/v1/apps/shop/envs/prod/flagd.json").await;
    assert_eq!(
        prod.body["flags"]["banner"],
        json!({"state": "ENABLED", "variants": {"z": "prod!"}, "defaultVariant": "z"})
    );
    assert_eq!(
        prod.body["$evaluators"]["staff"]["=="][1],
        "boss@example.com"
    );
    assert_eq!(prod.body["flags"].as_object().unwrap().len(), 6);
    // The document is a flagd document the engine itself accepts.
    cairn_eval::FlagSet::parse(&prod.body).expect("flagd.json parses as a flag set");

    // Evaluation follows the same resolution.
    let eval = |env: &'static str, email: &'static str| {
        let t = &t;
        async move {
            ofrep(
                t,
                Some(&t.token),
                &format!("/v1/apps/shop/envs/{env}/ofrep/v1/evaluate/flags/new-ui"),
                &json!({"context": {"email": email}}).to_string(),
                &[],
            )
            .await
            .body["value"]
                .clone()
        }
    };
    assert_eq!(eval("dev", "ann@example.com").await, json!(true));
    assert_eq!(eval("prod", "ann@example.com").await, json!(false));
    assert_eq!(eval("prod", "boss@example.com").await, json!(true));

    // ETag and 304; a change to the flags changes the ETag.
    let etag = prod.headers["etag"].to_str().unwrap().to_owned();
    let r = t
        .raw(
            Method::GET,
            "/v1/apps/shop/envs/prod/flagd.json",
            Some(&t.token),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.raw.is_empty());
    put_flag(
        &t,
        "banner",
        "app=shop&env=prod",
        json!({"state": "DISABLED", "variants": {"z": "prod!"}, "defaultVariant": "z"}),
    )
    .await;
    let r = t
        .raw(
            Method::GET,
            "/v1/apps/shop/envs/prod/flagd.json",
            Some(&t.token),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["flags"]["banner"]["state"], "DISABLED");
    // A config write does not change the flag document's ETag.
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    t.set("db", "app=shop&env=prod", json!(1)).await;
    let r = t
        .raw(
            Method::GET,
            "/v1/apps/shop/envs/prod/flagd.json",
            Some(&t.token),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // Unknown app: problem details, like every /v1 route.
    t.get("/v1/apps/nope/envs/prod/flagd.json")
        .await
        .assert_problem(404, "not_found", None);
}

#[tokio::test]
async fn ofrep_single_evaluation_answers_every_outcome_in_its_shape() {
    let t = app_with_flags().await;
    let base = "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags";
    let tok = Some(t.token.as_str());
    let call = |key: &'static str, body: &'static str| {
        let t = &t;
        async move { ofrep(t, tok, &format!("{base}/{key}"), body, &[]).await }
    };
    // STATIC, with metadata.
    let r = call("banner", r#"{"context": {}}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"key": "banner", "value": "hello", "reason": "STATIC", "variant": "a", "metadata": {}})
    );
    // The flag set is named in a header, not in the flag's metadata.
    assert_eq!(r.headers["cairn-flag-set"], "shop/dev");
    // TARGETING_MATCH without a targeting key; object values.
    let r = call("new-ui", r#"{"context": {"email": "x@example.com"}}"#).await;
    assert_eq!(
        (
            r.body["value"].clone(),
            r.body["reason"].clone(),
            r.body["variant"].clone()
        ),
        (json!(true), json!("TARGETING_MATCH"), json!("on"))
    );
    assert_eq!(r.body["metadata"]["owner"], "team-web");
    let r = call(
        "new-ui",
        r#"{"context": {"targetingKey": "u1", "email": "x@elsewhere.org"}}"#,
    )
    .await;
    assert_eq!(
        (r.body["value"].clone(), r.body["reason"].clone()),
        (json!(false), json!("DEFAULT"))
    );
    let r = call("limits", "").await;
    assert_eq!(r.body["value"], json!({"max": 1}));
    // DISABLED is a success with no value and no variant: the caller's default applies.
    let r = call("old", "{}").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"key": "old", "reason": "DISABLED", "variant": null, "metadata": {}})
    );
    // No default variant: no value (the caller's code default), still a variant field.
    let r = call("code-default", "{}").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("value").is_none(), "{}", r.body);
    assert_eq!(
        (r.body["reason"].clone(), r.body["variant"].clone()),
        (json!("DEFAULT"), json!(""))
    );
    // 404 FLAG_NOT_FOUND.
    let r = call("missing", "{}").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["key"], "missing");
    assert_eq!(r.body["errorCode"], "FLAG_NOT_FOUND");
    assert!(r.body["errorDetails"].is_string());
    // 400: a rule that names no variant (GENERAL), a bad body (PARSE_ERROR), a bad context.
    let r = call("computed", r#"{"context": {"pick": "purple"}}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (r.body["key"].clone(), r.body["errorCode"].clone()),
        (json!("computed"), json!("GENERAL"))
    );
    let r = call("computed", r#"{"context": {"pick": "on"}}"#).await;
    assert_eq!(
        (r.status, r.body["value"].clone()),
        (StatusCode::OK, json!(true))
    );
    let r = call("banner", "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errorCode"], "PARSE_ERROR");
    assert_eq!(r.body["key"], "banner");
    let r = call("banner", r#"{"context": [1, 2]}"#).await;
    assert_eq!(
        (r.status, r.body["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_CONTEXT"))
    );
    let r = call("banner", r#"{"context": {"targetingKey": 7}}"#).await;
    assert_eq!(r.body["errorCode"], "INVALID_CONTEXT");
    // Flag keys with slashes work too.
    put_flag(&t, "checkout/fast-pay", "app=shop", bool_flag("on")).await;
    let r = call("checkout/fast-pay", "{}").await;
    assert_eq!(
        (r.status, r.body["key"].clone()),
        (StatusCode::OK, json!("checkout/fast-pay"))
    );
}

#[tokio::test]
async fn ofrep_refusals_have_no_body() {
    let t = app_with_flags().await.with_limits(Limits {
        reads: Limiter::new(1.0, 3.0),
        ..Limits::relaxed()
    });
    let key = "/ofrep/v1/evaluate/flags/banner";
    let scoped = "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags/banner";
    // 401: no token, a bad token.
    for token in [None, Some("cairn_000000000000_nope")] {
        for uri in [key, scoped, "/ofrep/v1/evaluate/flags"] {
            let r = ofrep(&t, token, uri, "{}", &[]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(
                r.raw.is_empty(),
                "{uri}: {:?}",
                String::from_utf8_lossy(&r.raw)
            );
        }
    }
    // 403: an SDK token bound elsewhere asking by path prefix; a role without Resolve is
    // impossible (every role resolves), so the middleware's 403 is covered by the matrix walk.
    let r = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "sdk", "role": "sdk", "app": "shop", "env": "prod"})),
        )
        .await;
    let sdk = r.body["token"].as_str().unwrap().to_owned();
    let r = ofrep(&t, Some(&sdk), scoped, "{}", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.raw.is_empty());
    let r = ofrep(
        &t,
        Some(&sdk),
        "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags",
        "{}",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.raw.is_empty());
    // The refusals were audited.
    assert!(t.denials().await.len() >= 2);
    // 429 with Retry-After, no body (the burst of 3 is spent by now).
    let mut limited = None;
    for _ in 0..5 {
        let r = ofrep(&t, Some(&sdk), key, "{}", &[]).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the per-principal limit answers 429");
    assert!(r.raw.is_empty());
    assert!(r.headers.contains_key("retry-after"));
    // Other routes keep their problem details.
    let r = t.raw(Method::GET, "/v1/apps", None, None, &[]).await;
    r.assert_problem(401, "unauthorized", None);
}

#[tokio::test]
async fn the_sdk_token_binding_or_the_path_prefix_chooses_the_view() {
    let t = app_with_flags().await;
    put_flag(
        &t,
        "banner",
        "app=shop&env=prod",
        json!({"state": "ENABLED", "variants": {"z": "prod!"}, "defaultVariant": "z"}),
    )
    .await;
    let sdk = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "sdk", "role": "sdk", "app": "shop", "env": "prod"})),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = ofrep(&t, Some(&sdk), "/ofrep/v1/evaluate/flags/banner", "{}", &[]).await;
    assert_eq!(r.body["value"], "prod!");
    // The same token with its own prefix: the same answer.
    let r = ofrep(
        &t,
        Some(&sdk),
        "/v1/apps/shop/envs/prod/ofrep/v1/evaluate/flags/banner",
        "{}",
        &[],
    )
    .await;
    assert_eq!(r.body["value"], "prod!");
    // An admin token is bound to everything: it needs the prefix.
    let r = ofrep(
        &t,
        Some(&t.token),
        "/ofrep/v1/evaluate/flags/banner",
        "{}",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errorCode"], "GENERAL");
    assert!(r.body["errorDetails"]
        .as_str()
        .unwrap()
        .contains("/v1/apps/{app}/envs/{env}"));
    let r = ofrep(
        &t,
        Some(&t.token),
        "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags/banner",
        "{}",
        &[],
    )
    .await;
    assert_eq!(r.body["value"], "hello");
    // A missing app through the prefix is a missing flag (single) or a bad request (bulk).
    let r = ofrep(
        &t,
        Some(&t.token),
        "/v1/apps/nope/envs/dev/ofrep/v1/evaluate/flags/banner",
        "{}",
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.body["errorCode"].clone()),
        (StatusCode::NOT_FOUND, json!("FLAG_NOT_FOUND"))
    );
    let r = ofrep(
        &t,
        Some(&t.token),
        "/v1/apps/nope/envs/dev/ofrep/v1/evaluate/flags",
        "{}",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ofrep_bulk_evaluates_every_flag_with_etag_and_304() {
    let t = app_with_flags().await;
    let sdk = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "sdk", "role": "sdk", "app": "shop", "env": "dev"})),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bulk = "/ofrep/v1/evaluate/flags";
    let body = r#"{"context": {"targetingKey": "u1", "email": "a@example.com", "pick": "purple"}}"#;
    let r = ofrep(&t, Some(&sdk), bulk, body, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let flags = r.body["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 6);
    let by_key = |k: &str| flags.iter().find(|f| f["key"] == k).unwrap().clone();
    assert_eq!(by_key("new-ui")["value"], true);
    assert_eq!(by_key("new-ui")["reason"], "TARGETING_MATCH");
    assert_eq!(by_key("old")["reason"], "DISABLED");
    // A failing flag is reported inline.
    assert_eq!(by_key("computed")["errorCode"], "GENERAL");
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    // Same context: 304 without a body.
    let r = ofrep(&t, Some(&sdk), bulk, body, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.raw.is_empty());
    assert_eq!(r.headers["etag"].to_str().unwrap(), etag);
    // Another context: another ETag.
    let other = r#"{"context": {"targetingKey": "u2"}}"#;
    let r = ofrep(&t, Some(&sdk), bulk, other, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.headers["etag"].to_str().unwrap(), etag);
    // A flag change: another ETag for the same context.
    put_flag(
        &t,
        "banner",
        "app=shop",
        json!({"state": "ENABLED", "variants": {"a": "hello", "b": "bye"}, "defaultVariant": "b"}),
    )
    .await;
    let r = ofrep(&t, Some(&sdk), bulk, body, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == "banner")
            .unwrap()["value"],
        "bye"
    );
    // Bad bodies: 400 with an error code and no key.
    let r = ofrep(&t, Some(&sdk), bulk, "[", &[]).await;
    assert_eq!(
        (r.status, r.body["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("PARSE_ERROR"))
    );
    assert!(r.body.get("key").is_none());
    // The path prefix works for bulk too.
    let r = ofrep(
        &t,
        Some(&t.token),
        "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags",
        "",
        &[],
    )
    .await;
    assert_eq!(r.body["flags"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn evaluations_are_counted_and_never_evaluated_flags_go_stale() {
    let t = app_with_flags().await;
    let base = "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags";
    for email in ["a@example.com", "b@example.com", "c@other.org"] {
        let body = json!({"context": {"email": email}}).to_string();
        ofrep(&t, Some(&t.token), &format!("{base}/new-ui"), &body, &[]).await;
    }
    let r = t.get("/v1/flags?app=shop&env=dev").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let flags = r.body.as_array().unwrap();
    assert_eq!(flags.len(), 6);
    let new_ui = flags.iter().find(|f| f["key"] == "new-ui").unwrap();
    assert_eq!(new_ui["evaluations"], 3);
    assert_eq!(new_ui["counts"], json!({"on": 2, "off": 1}));
    assert!(new_ui["last_evaluated"].is_string());
    assert_eq!(new_ui["owner"], "team-web");
    assert_eq!(new_ui["description"], "the new UI");
    assert_eq!(new_ui["tags"], json!(["ui", "web"]));
    assert_eq!(new_ui["scope"], json!({"app": "shop"}));
    assert!(new_ui["created_at"].is_string());
    let banner = flags.iter().find(|f| f["key"] == "banner").unwrap();
    assert_eq!(banner["evaluations"], 0);
    assert!(banner["last_evaluated"].is_null());
    // Counts are per (app, env).
    let prod = t.get("/v1/flags?app=shop&env=prod").await;
    let new_ui_prod = prod
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "new-ui")
        .unwrap()
        .clone();
    assert_eq!(new_ui_prod["evaluations"], 0);
    // Without app/env: every (app, env) the caller can read.
    let all = t.get("/v1/flags").await;
    assert_eq!(all.body.as_array().unwrap().len(), 6 * 3);
    // created_at is version 1's, updated_at the current version's.
    put_flag(&t, "banner", "app=shop", bool_flag("on")).await;
    let r = t.get("/v1/flags?app=shop&env=dev").await;
    let banner = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "banner")
        .unwrap()
        .clone();
    assert_eq!(banner["version"], 2);
    assert!(banner["created_at"].as_str() <= banner["updated_at"].as_str());
    // Stale: nothing is 1 day old. (Flags going stale as time passes is tested
    // by moving the kernel clock: `clock::a_flag_nobody_evaluates_goes_stale_as_the_clock_moves`.)
    let r = t.get("/v1/flags/stale?app=shop&env=dev&days=1").await;
    assert_eq!(r.body, json!([]));
    // An SDK token cannot list flags.
    let sdk = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "sdk", "role": "sdk", "app": "shop", "env": "dev"})),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    t.call_as(&sdk, Method::GET, "/v1/flags?app=shop&env=dev", None)
        .await
        .assert_problem(403, "forbidden", None);
}

#[tokio::test]
async fn evaluation_counts_are_flushed_to_the_store_and_survive_a_restart() {
    let t = app_with_flags().await;
    let base = "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags";
    for email in ["a@example.com", "b@example.com", "c@other.org"] {
        let body = json!({"context": {"email": email}}).to_string();
        ofrep(&t, Some(&t.token), &format!("{base}/new-ui"), &body, &[]).await;
    }
    t.svc.flags().flush_flag_counts().await.unwrap();
    // Flushing again writes nothing new (increments, not totals).
    t.svc.flags().flush_flag_counts().await.unwrap();
    let stored = t.svc.store().flag_counts().await.unwrap();
    let total: i64 = stored
        .iter()
        .filter(|c| c.key == "new-ui")
        .map(|c| c.count)
        .sum();
    assert_eq!(total, 3, "{stored:?}");
    // A new service on the same database (a restart) starts from the stored totals.
    let (svc, _) = cairn_core::Service::open(t.svc.store().clone(), cairn_core::Options::default())
        .await
        .unwrap();
    let admin = svc.identity().authenticate(&t.token).unwrap();
    let flags = svc
        .flags()
        .flags(&admin, Some("shop"), Some("dev"))
        .await
        .unwrap();
    let new_ui = flags.iter().find(|f| f.key == "new-ui").unwrap();
    assert_eq!(new_ui.evaluations, 3);
    assert_eq!(new_ui.counts.get("on"), Some(&2));
    assert!(new_ui.last_evaluated.is_some());
    // More evaluations after the restart add up in the store.
    let router = cairn_server::router(svc.clone());
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/new-ui"))
        .header("authorization", format!("Bearer {}", t.token))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"context": {"email": "d@example.com"}}).to_string(),
        ))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    svc.flags().flush_flag_counts().await.unwrap();
    let stored = svc.store().flag_counts().await.unwrap();
    let on: i64 = stored
        .iter()
        .filter(|c| c.key == "new-ui" && c.variant == "on")
        .map(|c| c.count)
        .sum();
    assert_eq!(on, 3);
}
