//! Server bugs found by the API fuzzer (crates/cairn-server/tests/fuzz), one
//! test each, so they stay fixed.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestApp;

/// A login lifetime beyond what a duration can hold panicked in the handler
/// (the connection dropped without an answer); it is an invalid request.
#[tokio::test]
async fn login_with_an_out_of_range_lifetime_is_refused_not_a_panic() {
    let t = TestApp::new().await;
    for ttl in [i64::MAX - 1, i64::MIN, 9_223_372_036_854_775] {
        let body = json!({"name": "alice", "password": "pw", "ttl_seconds": ttl});
        let body = Body::from(serde_json::to_vec(&body).unwrap());
        let r = t
            .raw_from(
                Some("10.0.0.1"),
                Method::POST,
                "/v1/login",
                None,
                Some(body),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{ttl}: {}", r.body);
        assert_eq!(r.body["code"], "invalid", "{}", r.body);
    }
}
