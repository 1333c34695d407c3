//! SDK reports: applied state per instance and evaluation counts
//! (`POST /v1/report`, `GET /v1/applied`); bad input changes nothing.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{Resp, TestApp};

/// App `shop` with config and flag `new-ui`; an SDK token bound to shop/prod;
/// the revision and checksum of shop/prod.
async fn fixture() -> (TestApp, String, i64, String) {
    let t = TestApp::new().await;
    let r = t
        .call(Method::POST, "/v1/apps", Some(json!({"name": "shop"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    t.set("db", "app=shop&env=prod", json!({"pool": 5})).await;
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/new-ui?app=shop",
            Some(json!({"kind": "flag", "value": {"state": "ENABLED",
                "variants": {"on": true, "off": false}, "defaultVariant": "off"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
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
    let view = t.get("/v1/apps/shop/envs/prod/config").await.body;
    let rev = view["revision"].as_i64().unwrap();
    let sum = view["checksum"].as_str().unwrap().to_owned();
    (t, sdk, rev, sum)
}

async fn post_report(t: &TestApp, token: &str, body: Value) -> Resp {
    t.call_as(token, Method::POST, "/v1/report", Some(body))
        .await
}

/// Post a report that must be accepted; the answer.
async fn accepted(t: &TestApp, token: &str, body: Value) -> Value {
    let r = post_report(t, token, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

fn report(instance: &str, revision: i64, checksum: &str, evaluations: Value) -> Value {
    json!({"instance": instance, "revision": revision, "checksum": checksum,
        "evaluations": evaluations})
}

/// (applied list, new-ui counts in shop/prod): what a bad report must not change.
async fn observed(t: &TestApp) -> (Value, Value) {
    let applied = t.get("/v1/applied?app=shop&env=prod").await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    let flags = t.get("/v1/flags?app=shop&env=prod").await;
    let counts = flags
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "new-ui")
        .unwrap()["counts"]
        .clone();
    (applied.body, counts)
}

#[tokio::test]
async fn reports_store_applied_state_and_feed_flag_counts() {
    let (t, sdk, rev, sum) = fixture().await;
    let sum = sum.as_str();
    // An SDK token reports for the view it is bound to.
    let r = accepted(
        &t,
        &sdk,
        report(
            "web-1",
            rev,
            sum,
            json!([{"flag": "new-ui", "variant": "on", "count": 5},
                {"flag": "new-ui", "variant": "off", "count": 2},
                {"flag": "gone", "variant": "on", "count": 1},
                {"flag": "new-ui", "variant": "nope", "count": 1}]),
        ),
    )
    .await;
    assert_eq!(r["app"], "shop");
    assert_eq!(r["env"], "prod");
    assert_eq!(r["counted"], 7);
    assert_eq!(r["ignored"], json!(["gone/on", "new-ui/nope"]));
    // Another instance, behind: it reported an older checksum.
    let old = format!("sha256:{}", "0".repeat(64));
    accepted(&t, &sdk, report("web-2", rev - 1, &old, json!([]))).await;
    let (applied, counts) = observed(&t).await;
    assert_eq!(counts, json!({"on": 5, "off": 2}));
    let rows = applied.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{applied}");
    assert_eq!(rows[0]["instance"], "web-1");
    assert_eq!(rows[0]["revision"], rev);
    assert_eq!(rows[0]["checksum"], sum);
    assert_eq!(rows[0]["current"], true);
    assert!(rows[0]["reported_at"].is_string());
    assert_eq!(rows[1]["instance"], "web-2");
    assert_eq!(rows[1]["current"], false);
    // The next report of an instance replaces its row; counts add up.
    accepted(
        &t,
        &sdk,
        report(
            "web-2",
            rev,
            sum,
            json!([{"flag": "new-ui", "variant": "on", "count": 1}, {"flag": "new-ui", "count": 3}]),
        ),
    )
    .await;
    let (applied, counts) = observed(&t).await;
    assert_eq!(counts, json!({"on": 6, "off": 2, "": 3}));
    assert_eq!(applied.as_array().unwrap().len(), 2);
    assert_eq!(applied[1]["current"], true);
    // A principal not bound to one view names it; the admin may report anywhere.
    accepted(
        &t,
        &t.token,
        json!({"app": "shop", "env": "dev", "instance": "ops-box", "revision": 0,
            "checksum": old}),
    )
    .await;
    let dev = t.get("/v1/applied?app=shop&env=dev").await;
    assert_eq!(dev.body.as_array().unwrap().len(), 1, "{}", dev.body);
    // Reports are not changes: no revision, no audit record of a change.
    let before = t.fingerprint().await;
    accepted(&t, &sdk, report("web-1", rev, sum, json!([]))).await;
    assert_eq!(t.fingerprint().await, before);
    // An SDK token cannot list applied state (it only resolves).
    t.call_as(&sdk, Method::GET, "/v1/applied?app=shop&env=prod", None)
        .await
        .assert_problem(403, "forbidden", None);
}

#[tokio::test]
async fn bad_reports_get_a_clear_4xx_and_change_nothing() {
    let (t, sdk, rev, sum) = fixture().await;
    accepted(
        &t,
        &sdk,
        report(
            "web-1",
            rev,
            &sum,
            json!([{"flag": "new-ui", "variant": "on", "count": 1}]),
        ),
    )
    .await;
    let before = observed(&t).await;
    let fingerprint = t.fingerprint().await;
    let good = |evaluations: Value| report("web-1", rev + 1, &sum, evaluations);
    // (what, as whom, body, status, code, field)
    type Case<'a> = (&'a str, &'a str, Value, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "unknown app",
            "admin",
            json!({"app": "nope", "env": "prod", "instance": "x", "revision": 1, "checksum": sum}),
            404,
            "not_found",
            None,
        ),
        (
            "unknown env",
            "admin",
            json!({"app": "shop", "env": "nope", "instance": "x", "revision": 1, "checksum": sum}),
            404,
            "not_found",
            None,
        ),
        (
            "another view than the token's",
            "sdk",
            json!({"app": "shop", "env": "dev", "instance": "x", "revision": 1, "checksum": sum}),
            404,
            "not_found",
            None,
        ),
        (
            "no view for an unbound token",
            "admin",
            good(json!([])),
            400,
            "invalid",
            Some("app"),
        ),
        (
            "app without env",
            "admin",
            json!({"app": "shop", "instance": "x", "revision": 1, "checksum": sum}),
            400,
            "invalid",
            Some("env"),
        ),
        (
            "negative count",
            "sdk",
            good(
                json!([{"flag": "new-ui", "variant": "on", "count": 2}, {"flag": "new-ui", "variant": "off", "count": -1}]),
            ),
            400,
            "invalid",
            Some("evaluations[1].count"),
        ),
        (
            "missing instance",
            "sdk",
            json!({"revision": 1, "checksum": sum}),
            400,
            "invalid",
            Some("body"),
        ),
        (
            "missing checksum",
            "sdk",
            json!({"instance": "x", "revision": 1}),
            400,
            "invalid",
            Some("body"),
        ),
        (
            "missing count",
            "sdk",
            good(json!([{"flag": "new-ui"}])),
            400,
            "invalid",
            Some("body"),
        ),
        (
            "unknown field",
            "sdk",
            json!({"instance": "x", "revision": 1, "checksum": sum, "extra": 1}),
            400,
            "invalid",
            Some("body"),
        ),
        (
            "bad instance",
            "sdk",
            report("has space", 1, &sum, json!([])),
            400,
            "invalid",
            Some("instance"),
        ),
        (
            "negative revision",
            "sdk",
            report("x", -1, &sum, json!([])),
            400,
            "invalid",
            Some("revision"),
        ),
        (
            "bad checksum",
            "sdk",
            report("x", 1, "md5:abc", json!([])),
            400,
            "invalid",
            Some("checksum"),
        ),
        (
            "bad flag key",
            "sdk",
            good(json!([{"flag": "Bad Key", "count": 1}])),
            400,
            "invalid",
            Some("evaluations[0].flag"),
        ),
        (
            "not JSON",
            "sdk",
            Value::String("{".into()),
            400,
            "invalid",
            Some("body"),
        ),
    ];
    for (what, who, body, status, code, field) in cases {
        let token = if who == "sdk" { &sdk } else { &t.token };
        let r = match body {
            Value::String(raw) => {
                t.raw(
                    Method::POST,
                    "/v1/report",
                    Some(token),
                    Some(axum::body::Body::from(raw)),
                    &[],
                )
                .await
            }
            body => post_report(&t, token, body).await,
        };
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
        r.assert_problem(status, code, field);
        assert_eq!(observed(&t).await, before, "{what} changed something");
    }
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"flag": "new-ui", "variant": "on", "count": 1}))
        .collect();
    post_report(&t, &sdk, good(Value::Array(many)))
        .await
        .assert_problem(413, "too_large", Some("evaluations"));
    assert_eq!(observed(&t).await, before);
    assert_eq!(t.fingerprint().await, fingerprint);
    // Listing needs both app and env, and an existing view.
    t.get("/v1/applied?app=shop")
        .await
        .assert_problem(400, "invalid", Some("query"));
    t.get("/v1/applied?app=shop&env=nope")
        .await
        .assert_problem(404, "not_found", None);
}
