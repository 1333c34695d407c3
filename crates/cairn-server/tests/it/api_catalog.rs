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
    let r = t
        .call(
            Method::PATCH,
            "/v1/envs/qa",
            Some(json!({"required_approvals": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.get("/v1/envs/qa").await.body["required_approvals"], 1);
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
