use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn apps_and_environments() {
    let t = TestApp::new().await;
    let envs = t.get("/v1/envs").await;
    let names: Vec<&str> = envs
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["dev", "prod", "staging"],
        "a fresh server has dev, staging, prod"
    );

    let r = t
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "billing", "description": "money"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let rev = r.body["revision"].as_i64().unwrap();
    assert_eq!(t.get("/v1/apps").await.body[0]["name"], "billing");
    assert_eq!(t.get("/v1/apps/billing").await.body["description"], "money");
    let before = t.fingerprint().await;
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await
        .assert_problem(409, "conflict", None);
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "global"})))
        .await
        .assert_problem(400, "invalid", Some("app"));
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "Has Space"})))
        .await
        .assert_problem(400, "invalid", Some("app"));
    t.call(Method::POST, "/v1/apps", Some(json!({})))
        .await
        .assert_problem(400, "invalid", Some("body"));
    t.get("/v1/apps/nope")
        .await
        .assert_problem(404, "not_found", None);
    assert_eq!(t.fingerprint().await, before);

    let r = t
        .call(
            Method::POST,
            "/v1/envs",
            Some(json!({"name": "qa", "protected": true, "required_approvals": 2})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body["revision"].as_i64().unwrap() > rev);
    let qa = t.get("/v1/envs/qa").await;
    assert_eq!(qa.body["protected"], true);
    assert_eq!(qa.body["required_approvals"], 2);
    assert_eq!(qa.body["auto_approve"], false);
    // qa is gated now: its description is written at once, a change of its
    // policy needs its approval (tests/it/changes.rs).
    let r = t
        .call(
            Method::PATCH,
            "/v1/envs/qa",
            Some(json!({"description": "quality"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.get("/v1/envs/qa").await.body["description"], "quality");
    let r = t
        .call(
            Method::PATCH,
            "/v1/envs/qa",
            Some(json!({"required_approvals": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(t.get("/v1/envs/qa").await.body["required_approvals"], 2);
    let before = t.fingerprint().await;
    t.call(
        Method::PATCH,
        "/v1/envs/nope",
        Some(json!({"protected": true})),
    )
    .await
    .assert_problem(404, "not_found", None);
    t.call(
        Method::PATCH,
        "/v1/envs/qa",
        Some(json!({"required_approvals": 99})),
    )
    .await
    .assert_problem(400, "invalid", Some("required_approvals"));
    t.call(Method::PATCH, "/v1/envs/qa", Some(json!({})))
        .await
        .assert_problem(400, "invalid", Some("settings"));
    t.call(Method::POST, "/v1/envs", Some(json!({"name": "all"})))
        .await
        .assert_problem(400, "invalid", Some("env"));
    t.call(Method::POST, "/v1/envs", Some(json!({"name": "qa"})))
        .await
        .assert_problem(409, "conflict", None);
    assert_eq!(t.fingerprint().await, before);
}

#[tokio::test]
async fn audit_records_every_change_with_actor_and_filters() {
    let t = TestApp::new().await;
    t.call(Method::POST, "/v1/apps", Some(json!({"name": "billing"})))
        .await;
    let r = t
        .raw(
            Method::PUT,
            "/v1/entries/db?app=billing&env=prod",
            Some(&t.token),
            Some(axum::body::Body::from(
                r#"{"value":{"max":1},"message":"first"}"#,
            )),
            &[("user-agent", "test-agent/1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    t.set("db", "app=billing&env=prod", json!({"max": 2})).await;
    let all = t.get("/v1/audit").await;
    let actions: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "env.create",
            "env.create",
            "env.create",
            "token.create",
            "app.create",
            "entry.set",
            "entry.set"
        ]
    );
    let seqs: Vec<i64> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    let admin = format!("token:{}", cairn_core::auth::token_id(&t.token).unwrap());
    let mine = t.get(&format!("/v1/audit?actor={admin}&key=db")).await;
    let mine = mine.body.as_array().unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0]["message"], "first");
    assert_eq!(mine[0]["user_agent"], "test-agent/1");
    assert_eq!(mine[0]["app"], "billing");
    assert_eq!(mine[0]["env"], "prod");
    assert_eq!(mine[0]["from_version"].as_i64().unwrap_or(0), 0);
    assert_eq!(mine[0]["to_version"], 1);
    assert_eq!(mine[1]["from_version"], 1);
    assert_eq!(mine[1]["to_version"], 2);
    assert!(mine[0]["detail"].to_string().contains("sha256:"));
    assert_eq!(
        t.get("/v1/audit?app=billing&env=prod")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        t.get("/v1/audit?action=entry.set&limit=1")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t.get("/v1/audit?since=2999-01-01T00:00:00Z")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        t.get("/v1/audit?until=2000-01-01T00:00:00Z")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );
    t.get("/v1/audit?since=yesterday")
        .await
        .assert_problem(400, "invalid", Some("query"));
    t.get("/v1/audit?limit=0")
        .await
        .assert_problem(400, "invalid", Some("limit"));
}

/// The `Link: <…>; rel="next"` address of a page, if more records follow.
fn next_page(r: &crate::harness::Resp) -> Option<String> {
    let link = r.headers.get(axum::http::header::LINK)?.to_str().unwrap();
    let uri = link.strip_prefix('<')?.strip_suffix(">; rel=\"next\"")?;
    Some(uri.to_owned())
}

/// Every page from `uri` on, following the next links.
async fn walk(t: &TestApp, token: &str, uri: &str) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut uri = Some(uri.to_owned());
    while let Some(u) = uri {
        let r = t.call_as(token, Method::GET, &u, None).await;
        assert_eq!(r.status, StatusCode::OK, "{u}: {}", r.body);
        let seqs: Vec<i64> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["seq"].as_i64().unwrap())
            .collect();
        pages.push(seqs);
        uri = next_page(&r);
        assert!(pages.len() <= 100, "the next links never end");
    }
    pages
}

/// A viewer of one app asking for 50 records gets 50 of the records it may
/// read even when the log is mostly another app's (visibility is applied
/// before the limit), and the next links walk all of them once, in order.
#[tokio::test]
async fn audit_pages_are_full_pages_of_readable_records() {
    let t = TestApp::new().await;
    for app in ["billing", "search"] {
        t.call(Method::POST, "/v1/apps", Some(json!({"name": app})))
            .await;
    }
    // Each change set: four search records around one billing record, and
    // a global one every tenth time.
    for i in 0..60 {
        let mut entries = vec![
            json!({"app": "search", "env": "prod", "key": "a", "value": i}),
            json!({"app": "search", "env": "dev", "key": "b", "value": i}),
            json!({"app": "billing", "env": "prod", "key": "c", "value": i}),
            json!({"app": "search", "key": "d", "value": i}),
            json!({"app": "search", "env": "staging", "key": "e", "value": i}),
        ];
        if i % 10 == 0 {
            entries.push(json!({"key": "shared", "value": i}));
        }
        let r = t
            .call(
                Method::POST,
                "/v1/changes",
                Some(json!({"message": format!("change {i}"), "entries": entries})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "v", "role": "viewer", "app": "billing", "env": "*"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let viewer = r.body["token"].as_str().unwrap().to_owned();

    // What the viewer may read, picked from the admin's whole log by hand.
    let all = t.get("/v1/audit?limit=10000").await;
    assert!(next_page(&all).is_none(), "one page holds everything");
    let all = all.body.as_array().unwrap().clone();
    let readable: Vec<i64> = all
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("entry."))
        .filter(|r| r["app"] == "billing" || r["app"] == "" || r["app"].is_null())
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(readable.len(), 66, "60 billing and 6 global records");

    let pages = walk(&t, &viewer, "/v1/audit?after=0&limit=50").await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [50, 16],
        "a full first page, then the rest: {pages:?}"
    );
    assert_eq!(pages.concat(), readable, "no duplicates, no gaps");

    // Other filters travel with the next link.
    let pages = walk(&t, &viewer, "/v1/audit?key=c&limit=7").await;
    assert_eq!(pages.len(), 9, "{pages:?}");
    let billing: Vec<i64> = all
        .iter()
        .filter(|r| r["key"] == "c")
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(billing.len(), 60);
    assert_eq!(pages.concat(), billing);

    // An admin pages through the whole log the same way.
    let pages = walk(&t, &t.token, "/v1/audit?limit=100").await;
    let every: Vec<i64> = all.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(pages.len(), every.len().div_ceil(100));
    assert_eq!(pages.concat(), every);
}
