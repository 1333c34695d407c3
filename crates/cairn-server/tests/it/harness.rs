use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use cairn_core::{Options, Service};
use serde_json::Value;
use tower::ServiceExt;

/// A server over a fresh SQLite file, with its first admin token.
pub struct TestApp {
    pub svc: Arc<Service>,
    pub router: Router,
    pub token: String,
    pub dir: tempfile::TempDir,
}

/// What came back.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    /// Assert a problem-details error with this status and code (and field, if given).
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["type"], format!("urn:cairn:problem:{code}"));
        assert!(!self.body["detail"].as_str().unwrap_or("").is_empty());
        if let Some(f) = field {
            assert_eq!(self.body["field"], f, "{}", self.body);
        }
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_options(Options::default()).await
    }

    /// The SQLite file behind the server.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("cairn.db")
    }

    /// The same app served with these rate limits.
    pub fn with_limits(mut self, limits: cairn_server::ratelimit::Limits) -> TestApp {
        self.router = cairn_server::router_with(self.svc.clone(), limits);
        self
    }

    pub async fn with_options(opts: Options) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store = cairn_store_sqlite::SqliteStore::open(&dir.path().join("cairn.db"))
            .await
            .unwrap();
        let (svc, token) = Service::open(Arc::new(store), opts).await.unwrap();
        let router = cairn_server::router(svc.clone());
        TestApp {
            svc,
            router,
            token: token.expect("a fresh server makes an admin token"),
            dir,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.raw_from(None, method, uri, token, body, headers).await
    }

    /// A request as if it came from `ip` over a real connection.
    pub async fn raw_from(
        &self,
        ip: Option<&str>,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(ip) = ip {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let addr = std::net::SocketAddr::new(ip, 40000);
            b = b.extension(axum::extract::ConnectInfo(addr));
        }
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let has_body = body.is_some();
        if has_body {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        let req = b.body(body.unwrap_or_else(Body::empty)).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let sse = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let raw = if sse {
            // A stream never ends: take what arrives within a moment.
            let mut raw = Vec::new();
            let mut body = resp.into_body().into_data_stream();
            let until = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
            while let Ok(Some(Ok(chunk))) =
                tokio::time::timeout_at(until, futures::StreamExt::next(&mut body)).await
            {
                raw.extend_from_slice(&chunk);
            }
            raw
        } else {
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        };
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    /// An authenticated JSON request as the admin.
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Resp {
        self.call_as(&self.token.clone(), method, uri, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Resp {
        let body = body.map(|b| Body::from(serde_json::to_vec(&b).unwrap()));
        self.raw(method, uri, Some(token), body, &[]).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, None).await
    }

    /// PUT a value and assert success; returns the new version.
    pub async fn set(&self, key: &str, query: &str, value: Value) -> i64 {
        let r = self
            .call(
                Method::PUT,
                &format!("/v1/entries/{key}?{query}"),
                Some(serde_json::json!({"value": value})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["changes"][0]["version"].as_i64().unwrap()
    }

    /// Audit records of refused requests (no revision), oldest first.
    pub async fn denials(&self) -> Vec<serde_json::Value> {
        let audit = self.get("/v1/audit?limit=10000").await;
        audit
            .body
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["revision"].is_null())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything a failed request must not have changed: the revision, the
    /// number of change records in the audit log, and every resolved view.
    pub async fn fingerprint(&self) -> (i64, usize, Value) {
        let audit = self.get("/v1/audit?limit=10000").await;
        let views = self.svc.config().view_checksums();
        (
            self.svc.revision(),
            audit
                .body
                .as_array()
                .map_or(0, |a| a.iter().filter(|r| !r["revision"].is_null()).count()),
            serde_json::to_value(
                views
                    .into_iter()
                    .map(|((a, e), c)| format!("{a}/{e}={c}"))
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        )
    }
}
