//! Rust client of Cairn's HTTP API.
//!
//! - [`Client`]: a thin, typed-enough HTTP client (the CLI uses it).
//! - [`sdk::CairnClient`]: the SDK for applications — typed reads of the
//!   resolved configuration, local flag evaluation with `cairn-eval`, a
//!   background watch keeping an in-memory snapshot current, change
//!   notification, a last-known-good cache file, and reports of applied state
//!   and evaluation counts.
//! - `openfeature::CairnProvider` (feature `openfeature`): an OpenFeature
//!   provider evaluating through the SDK.

pub use cairn_api;

mod calls;
#[cfg(feature = "openfeature")]
pub mod openfeature;
pub mod sdk;
pub mod sse;

pub use calls::{At, AuditPage, WriteOutcome};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A problem-details body from the server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub code: String,
    pub field: Option<String>,
    #[serde(default)]
    pub errors: Vec<Value>,
    pub current_version: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{}", .problem.detail)]
    Api { status: u16, problem: Box<Problem> },
    /// The server could not be reached or the answer could not be read.
    #[error("cannot reach the server: {0}")]
    Transport(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(_) => None,
        }
    }
}

/// A response with its ETag (for conditional reads).
#[derive(Debug, Clone)]
pub struct Conditional<T> {
    /// `None` on 304 Not Modified.
    pub body: Option<T>,
    pub etag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// `addr` like `http://127.0.0.1:8700`.
    pub fn new(addr: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_ca(addr, token, None)
    }

    /// Like [`Client::new`], also trusting the CA certificate(s) in `ca_pem`.
    pub fn with_ca(
        addr: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ClientError> {
        let mut builder =
            reqwest::Client::builder().user_agent(concat!("cairn-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Transport(format!("bad CA certificate: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Client {
            base: addr.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    async fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = rb
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        read_json(resp).await
    }

    /// GET with query parameters (pairs with `None` values are left out).
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path).query(&present(query)))
            .await
    }

    /// GET honouring an ETag: `None` body on 304.
    pub async fn get_conditional<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
        etag: Option<&str>,
    ) -> Result<Conditional<T>, ClientError> {
        let mut rb = self.request(Method::GET, path).query(&present(query));
        if let Some(e) = etag {
            rb = rb.header(reqwest::header::IF_NONE_MATCH, e);
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Conditional { body: None, etag });
        }
        let body = read_json(resp).await?;
        Ok(Conditional {
            body: Some(body),
            etag,
        })
    }

    /// Open a Server-Sent Events stream (GET); the caller reads the body
    /// incrementally (`Response::chunk`). API errors are returned as for `get`.
    pub async fn open_stream(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut rb = self
            .request(Method::GET, path)
            .query(&present(query))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            rb = rb.header("Last-Event-ID", id);
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            return Err(api_error(status, &bytes));
        }
        Ok(resp)
    }

    /// A request with a JSON body.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, Option<String>)],
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let mut rb = self.request(method, path).query(&present(query));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb).await
    }
}

/// What a key must escape to be one path segment or a `{*key}` tail: everything
/// but unreserved characters and `/` (flag keys are any UTF-8 string).
const KEY_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// An entry or flag key as it goes into a URL path (`/v1/entries/{key}`):
/// percent-encoded, so that `?`, `#`, `%`, spaces and non-ASCII arrive intact.
pub fn key_path(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, KEY_ESCAPES).to_string()
}

fn present<'a>(query: &'a [(&'a str, Option<String>)]) -> Vec<(&'a str, &'a str)> {
    query
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect()
}

/// A response's body as `T`, or the API error its status and body say.
pub(crate) async fn read_json<T: DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, ClientError> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    if !status.is_success() {
        return Err(api_error(status, &bytes));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Transport(format!("unreadable response: {e}")))
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let mut problem = serde_json::from_slice::<Problem>(bytes).unwrap_or_else(|_| Problem {
        status: status.as_u16(),
        detail: format!(
            "{} {}",
            status.as_u16(),
            String::from_utf8_lossy(bytes)
                .chars()
                .take(500)
                .collect::<String>()
        ),
        ..Problem::default()
    });
    if problem.detail.is_empty() {
        // OFREP errors are `{key, errorCode, errorDetails}`, not problem details.
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            problem.code = field("errorCode");
            problem.detail = format!("{}: {}", problem.code, field("errorDetails"));
        }
    }
    ClientError::Api {
        status: status.as_u16(),
        problem: Box::new(problem),
    }
}

pub use reqwest::Method as HttpMethod;
