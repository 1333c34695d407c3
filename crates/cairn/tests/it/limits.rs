//! Rate limits of the real server with its default settings and with
//! `--rate-limit-reads`; 405 for undeclared methods (DESIGN §10).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::harness::{ServeOpts, Server};
use crate::load::{http_client, runtime};

const BAD: &str = "cairn_000000000000_nope";

/// An app `shop` with one flag, and an SDK token bound to shop/dev.
async fn sdk_token(http: &reqwest::Client, addr: &str, admin: &str) -> String {
    let r = http
        .post(format!("{addr}/v1/apps"))
        .bearer_auth(admin)
        .json(&json!({"name": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = http
        .put(format!("{addr}/v1/entries/banner?app=shop"))
        .bearer_auth(admin)
        .json(&json!({"kind": "flag", "value": {"state": "ENABLED",
            "variants": {"a": "hello", "b": "bye"}, "defaultVariant": "a"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{addr}/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": "fleet", "role": "sdk", "app": "shop", "env": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn evaluate(http: &reqwest::Client, addr: &str, token: &str, i: usize) -> u16 {
    http.post(format!("{addr}/ofrep/v1/evaluate/flags/banner"))
        .bearer_auth(token)
        .json(&json!({"context": {"targetingKey": format!("user-{i}")}}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("evaluation {i}: {e}"))
}

async fn get_apps(http: &reqwest::Client, addr: &str, token: &str) -> reqwest::Response {
    http.get(format!("{addr}/v1/apps"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[test]
fn default_limits_let_a_fleet_read_and_never_lock_out_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::sqlite(dir.path());
    let (addr, admin) = (server.addr.clone(), server.admin_token());
    runtime().block_on(async {
        let http = http_client();
        let sdk = sdk_token(&http, &addr, &admin).await;
        // 20,000 evaluations by one SDK token, 16 at a time over loopback.
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (http, addr, sdk, next) = (http.clone(), addr.clone(), sdk.clone(), next.clone());
            workers.spawn(async move {
                let mut statuses = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= 20_000 {
                        return statuses;
                    }
                    statuses.push(evaluate(&http, &addr, &sdk, i).await);
                }
            });
        }
        let mut statuses = Vec::new();
        while let Some(part) = workers.join_next().await {
            statuses.extend(part.expect("an evaluation worker panicked"));
        }
        let limited = statuses.iter().filter(|s| **s == 429).count();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!((limited, ok), (0, 20_000), "{}", server.log());

        // A hundred bad tokens from this address, then the valid ones still work.
        let mut refused = Vec::new();
        for _ in 0..100 {
            refused.push(get_apps(&http, &addr, BAD).await.status().as_u16());
        }
        assert!(
            refused.iter().all(|s| *s == 401 || *s == 429),
            "{refused:?}"
        );
        assert_eq!(get_apps(&http, &addr, &admin).await.status().as_u16(), 200);
        assert_eq!(evaluate(&http, &addr, &sdk, 0).await, 200);
        // Further failures from the address are slowed down.
        let mut limited = None;
        for _ in 0..100 {
            let r = get_apps(&http, &addr, BAD).await;
            if r.status().as_u16() == 429 {
                limited = Some(r);
                break;
            }
        }
        let r = limited.expect("failed authentications are limited per address");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert_eq!(get_apps(&http, &addr, &admin).await.status().as_u16(), 200);

        // Undeclared methods: 405 with Allow; unknown paths: 404.
        for (method, path, allow) in [
            ("TRACE", "/healthz", "GET, HEAD"),
            ("TRACE", "/v1/apps", "GET, HEAD, POST"),
            ("PATCH", "/v1/apps", "GET, HEAD, POST"),
            ("GET", "/ofrep/v1/evaluate/flags/banner", "POST"),
            (
                "DELETE",
                "/v1/apps/shop/envs/dev/ofrep/v1/evaluate/flags",
                "POST",
            ),
        ] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = http
                .request(m, format!("{addr}{path}"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 405, "{method} {path}");
            assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        }
        let r = http.get(format!("{addr}/nope")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
    });
}

#[test]
fn rate_limit_reads_limits_reads_per_principal_and_leaves_writes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ServeOpts {
        extra: vec!["--rate-limit-reads".into(), "0.001".into()],
        ..ServeOpts::default()
    };
    let server = Server::start(dir.path(), opts);
    let (addr, admin) = (server.addr.clone(), server.admin_token());
    runtime().block_on(async {
        let http = http_client();
        // Writes are another class.
        let sdk = sdk_token(&http, &addr, &admin).await;
        assert_eq!(evaluate(&http, &addr, &sdk, 1).await, 200);
        let r = http
            .post(format!("{addr}/ofrep/v1/evaluate/flags/banner"))
            .bearer_auth(&sdk)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 429);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 60, "{retry}");
        // The admin's reads have their own budget; its writes are not reads.
        assert_eq!(get_apps(&http, &addr, &admin).await.status().as_u16(), 200);
        assert_eq!(get_apps(&http, &addr, &admin).await.status().as_u16(), 429);
        let r = http
            .put(format!("{addr}/v1/entries/n"))
            .bearer_auth(&admin)
            .json(&json!({"value": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    });
}
