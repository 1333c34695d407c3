//! Time-dependent behaviour through the kernel's one clock (`Options::clock`):
//! token expiry, time-based flag rules (`$flagd.timestamp`) and stale flags,
//! tested by moving a `ManualClock`, never by sleeping.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use cairn_core::clock::{Clock, ManualClock};
use cairn_core::Options;
use chrono::Duration;
use serde_json::json;

use crate::harness::TestApp;

async fn app_with(clock: &Arc<ManualClock>) -> TestApp {
    let t = TestApp::with_options(Options {
        clock: clock.clone(),
        ..Options::default()
    })
    .await;
    let r = t
        .call(Method::POST, "/v1/apps", Some(json!({"name": "shop"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    t
}

async fn read(t: &TestApp, token: &str) -> crate::harness::Resp {
    t.call_as(token, Method::GET, "/v1/apps", None).await
}

async fn eval(t: &TestApp) -> serde_json::Value {
    t.call(
        Method::POST,
        "/v1/apps/shop/envs/prod/ofrep/v1/evaluate/flags/launch",
        Some(json!({"context": {}})),
    )
    .await
    .body["value"]
        .clone()
}

async fn stale(t: &TestApp) -> Vec<String> {
    let r = t.get("/v1/flags/stale?app=shop&env=prod&days=30").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut keys: Vec<String> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_token_expires_when_the_clock_passes_its_expiry() {
    let clock = ManualClock::starting_now();
    let t = app_with(&clock).await;
    let expires = clock.now() + Duration::hours(1);
    let r = t
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "ci", "role": "viewer", "expires_at": expires.to_rfc3339()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(read(&t, &token).await.status, StatusCode::OK);
    clock.advance(Duration::minutes(59));
    assert_eq!(read(&t, &token).await.status, StatusCode::OK);
    clock.advance(Duration::minutes(2));
    let r = read(&t, &token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // The clock going back (an operator's fix) makes it valid again: expiry is
    // computed from the clock, not remembered.
    clock.advance(Duration::minutes(-2));
    assert_eq!(read(&t, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_scheduled_flag_turns_on_when_the_clock_reaches_its_time() {
    let clock = ManualClock::starting_now();
    let t = app_with(&clock).await;
    let at = clock.now().timestamp() + 3600;
    let def = json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, at]}, "on", "off"]}
    });
    let r = t
        .call(
            Method::PUT,
            "/v1/entries/launch?app=shop",
            Some(json!({"value": def, "kind": "flag"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(eval(&t).await, json!(false));
    clock.advance(Duration::seconds(3599));
    assert_eq!(eval(&t).await, json!(false));
    clock.advance(Duration::seconds(1));
    assert_eq!(eval(&t).await, json!(true));
}

#[tokio::test]
async fn a_flag_nobody_evaluates_goes_stale_as_the_clock_moves() {
    let clock = ManualClock::starting_now();
    let t = app_with(&clock).await;
    for key in ["used", "unused"] {
        let r = t
            .call(
                Method::PUT,
                &format!("/v1/entries/{key}?app=shop"),
                Some(json!({"kind": "flag", "value": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(stale(&t).await, Vec::<String>::new());
    clock.advance(Duration::days(29));
    // `used` is evaluated now (day 29 of the clock), `unused` never.
    let r = t
        .call(
            Method::POST,
            "/v1/apps/shop/envs/prod/ofrep/v1/evaluate/flags/used",
            Some(json!({"context": {}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(stale(&t).await, Vec::<String>::new());
    clock.advance(Duration::days(2));
    assert_eq!(stale(&t).await, vec!["unused".to_owned()]);
    clock.advance(Duration::days(30));
    assert_eq!(
        stale(&t).await,
        vec!["unused".to_owned(), "used".to_owned()]
    );
}
