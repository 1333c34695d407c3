//! Concurrent writers over HTTP (reqwest), for the replica and crash tests.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

/// A write the server acknowledged with 200.
#[derive(Debug, Clone)]
pub struct Ack {
    pub key: String,
    pub value: Value,
    pub revision: i64,
    pub version: i64,
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

/// `PUT {addr}/v1/entries/{key}` → status and body.
pub async fn put_entry(
    http: &reqwest::Client,
    addr: &str,
    token: &str,
    key: &str,
    value: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let resp = http
        .put(format!("{addr}/v1/entries/{key}"))
        .bearer_auth(token)
        .json(&json!({"value": value, "message": "load"}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

pub fn ack_of(key: &str, value: &Value, body: &Value) -> Ack {
    Ack {
        key: key.to_owned(),
        value: value.clone(),
        revision: body["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no revision in {body}")),
        version: body["changes"][0]["version"]
            .as_i64()
            .unwrap_or_else(|| panic!("no version in {body}")),
    }
}

/// `GET {addr}{path}` with the token; panics unless 200.
pub async fn get_json(http: &reqwest::Client, addr: &str, token: &str, path: &str) -> Value {
    let resp = http
        .get(format!("{addr}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    assert_eq!(status.as_u16(), 200, "GET {path}: {body}");
    body
}

/// The global-scope entries whose key starts with `prefix`: key → entry,
/// asserting no key is listed twice.
pub fn entries_by_key(list: &Value, prefix: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
    {
        let key = e["key"].as_str().expect("key").to_owned();
        if key.starts_with(prefix) {
            assert!(
                out.insert(key.clone(), e.clone()).is_none(),
                "{key} listed twice"
            );
        }
    }
    out
}

/// Asserts that `revisions` are unique and exactly `min..=max`.
pub fn assert_gapless(mut revisions: Vec<i64>) {
    revisions.sort_unstable();
    let n = revisions.len();
    revisions.dedup();
    assert_eq!(revisions.len(), n, "duplicate revisions");
    if let (Some(&min), Some(&max)) = (revisions.first(), revisions.last()) {
        let holes: Vec<i64> = (min..=max)
            .filter(|r| revisions.binary_search(r).is_err())
            .collect();
        assert!(holes.is_empty(), "revisions {min}..={max} miss {holes:?}");
    }
}
