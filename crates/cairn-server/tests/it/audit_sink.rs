use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use cairn_core::sink::FileAuditSink;
use cairn_core::Options;
use serde_json::{json, Value};

use crate::harness::TestApp;

#[tokio::test]
async fn the_audit_file_holds_every_record_as_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = FileAuditSink::open(&path, Duration::from_secs(2)).unwrap();
    let t = TestApp::with_options(Options {
        audit_sink: Some(Arc::new(sink)),
        ..Options::default()
    })
    .await;
    t.set("a", "", json!(1)).await;
    t.raw(
        Method::GET,
        "/v1/apps",
        Some("cairn_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        None,
        &[],
    )
    .await
    .assert_problem(401, "unauthorized", None);
    let in_db = t.get("/v1/audit?limit=10000").await.body;
    let in_file: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        Value::Array(in_file.clone()),
        in_db,
        "the file mirrors the log, macs included"
    );
    assert_eq!(in_file.last().unwrap()["action"], "auth.failed");
    assert!(in_file
        .iter()
        .all(|r| r["mac"].as_str().unwrap().len() == 64));
}

#[tokio::test]
async fn a_sink_that_cannot_be_written_fails_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let ok_path = dir.path().join("audit.jsonl");
    let t = TestApp::with_options(Options {
        audit_sink: Some(Arc::new(
            FileAuditSink::open(&ok_path, Duration::from_secs(2)).unwrap(),
        )),
        ..Options::default()
    })
    .await;
    // The same service, now with a sink on a device that is always full.
    let full =
        FileAuditSink::open(std::path::Path::new("/dev/full"), Duration::from_secs(2)).unwrap();
    let store = t.svc.store().clone();
    drop(t.router);
    let (svc, _) = cairn_core::Service::open(
        store,
        Options {
            audit_sink: Some(Arc::new(full)),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let revision = svc.revision();
    let router = cairn_server::router(svc.clone());
    let req = axum::http::Request::builder()
        .method(Method::PUT)
        .uri("/v1/entries/k")
        .header("authorization", format!("Bearer {}", t.token))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"value": 1}"#))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["code"], "unavailable");
    assert!(
        body["detail"].as_str().unwrap().contains("audit sink"),
        "{body}"
    );
    svc.sync().await.unwrap();
    assert_eq!(svc.revision(), revision, "nothing was committed");
}
