//! The Rust SDK: configuration and flags of one (app, env), kept current in
//! memory.
//!
//! ```no_run
//! # async fn run() -> Result<(), cairn_client::sdk::SdkError> {
//! use cairn_client::sdk::{CairnClient, EvalContext};
//! use serde_json::json;
//!
//! let cairn = CairnClient::builder("http://127.0.0.1:8700", "shop", "prod")
//!     .token(std::env::var("CAIRN_TOKEN").unwrap_or_default())
//!     .cache_file("/var/lib/shop/cairn.cache.json")
//!     .build()
//!     .await?;
//! #[derive(serde::Deserialize)]
//! struct Pool { max: u32 }
//! let pool: Pool = cairn.get("database/pool")?;
//! let ctx = EvalContext::from_value(json!({"targetingKey": "user-1"})).unwrap();
//! let new_ui = cairn.evaluate_bool("new-ui", &ctx, false);
//! let mut changes = cairn.subscribe();
//! while changes.changed().await.is_ok() {
//!     let snapshot = changes.borrow_and_update().clone();
//!     // re-read what the application uses from `snapshot`
//! #   let _ = (&pool.max, &new_ui, snapshot);
//! }
//! # Ok(()) }
//! ```
//!
//! - **Snapshot**: the resolved values (with the secrets they reference
//!   substituted, in memory only), revision, checksum and the compiled flags,
//!   swapped atomically; reads never wait for the network.
//! - **Flags** are evaluated locally by `cairn-eval`, the server's engine, on
//!   the flagd document the server serves (same results as OFREP).
//! - **Watch**: a background task follows `GET /v1/watch` (resuming with
//!   `Last-Event-ID`, reconnecting with backoff, re-reading on `resync`) and
//!   re-reads the view and the flags (conditional GETs) on every event, and
//!   every `poll_interval` as a safety net (which also picks up rotated secrets).
//! - **Cache file**: the last view applied (unresolved: secret references,
//!   never plaintext) and flagd document, written atomically (0600); used at
//!   start when the server cannot be reached.
//! - **Reports**: every `report_interval`, `POST /v1/report` with the applied
//!   revision/checksum of this instance and the evaluation counts since the
//!   last report.

mod cache;
pub use cache::write_atomic;
mod flags;
mod report;
mod sync;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use cairn_eval::{ErrorCode, EvalContext, Reason};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

#[cfg(feature = "openfeature")]
pub(crate) use flags::as_int;
pub use flags::{Evaluation, Flags};

use crate::{Client, ClientError};

/// What can go wrong with the SDK.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The server refused or failed (at start: a 4xx is not hidden behind the cache).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// At start: the server cannot be reached and there is no cache file.
    #[error("no configuration: the server cannot be reached ({0}) and there is no cache file to start from")]
    NoConfiguration(String),
    /// The key is not in the resolved configuration.
    #[error("{key} is not in the configuration")]
    NotFound { key: String },
    /// The value does not deserialize into the type asked for.
    #[error("{key}: {message}")]
    Decode { key: String, message: String },
    /// The builder was given something unusable.
    #[error("invalid SDK settings: {0}")]
    Settings(String),
}

/// Where the current snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read from the server.
    Server,
    /// Read from the cache file at start (the server was unreachable).
    Cache,
}

/// One consistent state of (app, env): resolved values, revision, checksum
/// and compiled flags. Cheap to clone (`Arc`).
pub struct Snapshot {
    pub app: String,
    pub env: String,
    /// Revision of the resolved view.
    pub revision: i64,
    /// The server's checksum of the resolved view (references unresolved).
    pub checksum: String,
    pub source: Source,
    /// Values with referenced secrets substituted (memory only).
    values: BTreeMap<String, Value>,
    flags: Arc<Flags>,
}

impl std::fmt::Debug for Snapshot {
    /// Keys only: values may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("app", &self.app)
            .field("env", &self.env)
            .field("revision", &self.revision)
            .field("checksum", &self.checksum)
            .field("source", &self.source)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("flags", &self.flags.keys())
            .finish()
    }
}

impl Snapshot {
    /// Every resolved key and value (secrets substituted where readable).
    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    /// One resolved value.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// One resolved value, deserialized.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, SdkError> {
        let v = self.values.get(key).ok_or_else(|| SdkError::NotFound {
            key: key.to_owned(),
        })?;
        T::deserialize(v).map_err(|e| SdkError::Decode {
            key: key.to_owned(),
            message: redact_decode_error(&e.to_string()),
        })
    }

    /// The compiled flags.
    pub fn flags(&self) -> &Flags {
        &self.flags
    }
}

/// Settings of a [`CairnClient`]; see [`CairnClient::builder`].
#[derive(Clone)]
pub struct Builder {
    addr: String,
    app: String,
    env: String,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    cache_file: Option<PathBuf>,
    instance: Option<String>,
    timing: Timing,
    secrets: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("addr", &self.addr)
            .field("app", &self.app)
            .field("env", &self.env)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("cache_file", &self.cache_file)
            .field("instance", &self.instance)
            .field("timing", &self.timing)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub initial_timeout: Duration,
    pub request_timeout: Duration,
    pub report_interval: Duration,
    pub poll_interval: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Reconnect when the stream is silent this long (heartbeats are every 15 s).
    pub idle_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            initial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            report_interval: Duration::from_secs(30),
            poll_interval: Duration::from_secs(300),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(45),
        }
    }
}

impl Builder {
    /// The token (an SDK token bound to (app, env) is the usual choice).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let t = token.into();
        self.token = (!t.is_empty()).then_some(t);
        self
    }

    /// Trust these PEM CA certificate(s) for HTTPS.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Keep the last-known-good configuration in this file (no secrets in it).
    pub fn cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_file = Some(path.into());
        self
    }

    /// The instance id reported to the server (default: host name and process id).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance = Some(id.into());
        self
    }

    /// How long `build` waits for the server before starting from the cache (default 5 s).
    pub fn initial_timeout(mut self, d: Duration) -> Self {
        self.timing.initial_timeout = d;
        self
    }

    /// Timeout of each request (default 10 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.timing.request_timeout = d;
        self
    }

    /// Report applied state and evaluation counts this often (default 30 s; zero: never).
    pub fn report_interval(mut self, d: Duration) -> Self {
        self.timing.report_interval = d;
        self
    }

    /// Re-read everything (secrets included) this often even without events (default 5 min).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.timing.poll_interval = d;
        self
    }

    /// Reconnection backoff: first delay and cap (default 200 ms, 10 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.timing.min_backoff = min;
        self.timing.max_backoff = max.max(min);
        self
    }

    /// Substitute referenced secrets (default true; needs a principal that may read them).
    pub fn resolve_secrets(mut self, yes: bool) -> Self {
        self.secrets = yes;
        self
    }

    /// Connect: read the view and the flags from the server (waiting at most
    /// `initial_timeout`), or else start from the cache file; then keep them
    /// current in the background. Fails when neither is available, and when
    /// the server refuses (4xx) — a wrong token or view is not hidden.
    pub async fn build(self) -> Result<CairnClient, SdkError> {
        for (field, v) in [("app", &self.app), ("env", &self.env)] {
            if v.is_empty() || v.contains(['/', '?', '#', '%']) {
                return Err(SdkError::Settings(format!("{field} {v:?} is not a name")));
            }
        }
        let http = Client::with_ca(&self.addr, self.token.clone(), self.ca_pem.as_deref())?;
        let instance = match self.instance {
            Some(i) => i,
            None => default_instance(),
        };
        let (stop_tx, _) = watch::channel(false);
        let placeholder = Arc::new(Snapshot {
            app: self.app.clone(),
            env: self.env.clone(),
            revision: -1,
            checksum: String::new(),
            source: Source::Cache,
            values: BTreeMap::new(),
            flags: Arc::default(),
        });
        let inner = Arc::new(Inner {
            http,
            app: self.app,
            env: self.env,
            instance,
            cache_file: self.cache_file,
            secrets: self.secrets,
            timing: self.timing,
            tx: watch::channel(placeholder).0,
            counts: report::Counts::default(),
            callbacks: Mutex::default(),
            server: Mutex::default(),
            refresh_lock: tokio::sync::Mutex::new(()),
            stop: stop_tx,
            online: Default::default(),
        });
        inner.start().await?;
        let guard = Arc::new(Guard(inner.clone()));
        sync::spawn(&inner);
        Ok(CairnClient {
            inner,
            _guard: guard,
        })
    }
}

fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    format!("{clean}:{}", std::process::id())
}

type Callback = Arc<dyn Fn(&Snapshot) + Send + Sync>;

/// What the server last answered, for conditional reads and the cache.
#[derive(Debug, Default, Clone)]
pub(crate) struct ServerState {
    pub config_etag: Option<String>,
    pub flags_etag: Option<String>,
    /// The view's values as served (secret references unresolved).
    pub plain: serde_json::Map<String, Value>,
    pub flags_doc: Value,
}

pub(crate) struct Inner {
    pub http: Client,
    pub app: String,
    pub env: String,
    pub instance: String,
    pub cache_file: Option<PathBuf>,
    pub secrets: bool,
    pub timing: Timing,
    pub tx: watch::Sender<Arc<Snapshot>>,
    pub counts: report::Counts,
    pub callbacks: Mutex<Vec<Callback>>,
    pub server: Mutex<ServerState>,
    pub refresh_lock: tokio::sync::Mutex<()>,
    pub stop: watch::Sender<bool>,
    /// The last exchange with the server succeeded (and the watch stream is up).
    pub online: std::sync::atomic::AtomicBool,
}

/// Stops the background tasks when the last [`CairnClient`] clone is dropped.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.stop.send_replace(true);
    }
}

/// The SDK client of one (app, env). Clones share everything.
#[derive(Clone)]
pub struct CairnClient {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for CairnClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CairnClient")
            .field("base", &self.inner.http.base())
            .field("app", &self.inner.app)
            .field("env", &self.inner.env)
            .field("instance", &self.inner.instance)
            .finish()
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl CairnClient {
    /// Start configuring a client of (app, env) on the server at `addr`
    /// (like `http://127.0.0.1:8700`).
    pub fn builder(addr: &str, app: &str, env: &str) -> Builder {
        Builder {
            addr: addr.to_owned(),
            app: app.to_owned(),
            env: env.to_owned(),
            token: None,
            ca_pem: None,
            cache_file: None,
            instance: None,
            timing: Timing::default(),
            secrets: true,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.tx.borrow().clone()
    }

    /// One resolved value, deserialized (from the current snapshot).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, SdkError> {
        self.snapshot().get(key)
    }

    /// One resolved value, or `default` when absent or of another shape.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        self.get(key).unwrap_or(default)
    }

    /// Snapshots as they change (the receiver starts at the current one).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.tx.subscribe()
    }

    /// Call `f` with every new snapshot (from the background task: keep it short).
    pub fn on_change(&self, f: impl Fn(&Snapshot) + Send + Sync + 'static) {
        self.inner
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(f));
    }

    /// Re-read the view and the flags now (conditional requests). `true` if
    /// the snapshot changed.
    pub async fn refresh(&self) -> Result<bool, SdkError> {
        Ok(self.inner.refresh(true).await?)
    }

    /// Send a report now (applied state and the counts since the last one).
    pub async fn report(&self) -> Result<(), SdkError> {
        Ok(self.inner.report().await?)
    }

    /// Is the client in touch with the server (last read succeeded, watch
    /// stream up)? `false` while it serves the cache or reconnects.
    pub fn is_connected(&self) -> bool {
        self.inner.online.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The instance id this client reports as.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance
    }

    /// Stop the background tasks after a last report (best effort).
    pub async fn close(&self) {
        if let Err(e) = self.inner.report().await {
            tracing::debug!(error = %e, "last report failed");
        }
        self.inner.stop.send_replace(true);
    }

    fn resolve<T>(
        &self,
        key: &str,
        ctx: &EvalContext,
        eval: impl FnOnce(cairn_eval::Resolution<'_>) -> Evaluation<T>,
    ) -> Evaluation<T> {
        let snapshot = self.snapshot();
        let r = snapshot.flags.evaluate(key, ctx, now_unix());
        if r.error_code != Some(ErrorCode::FlagNotFound) {
            self.inner.counts.record(key, r.variant);
        }
        eval(r)
    }

    /// Evaluate a flag locally, untyped: its value (`None`: the caller's default applies).
    pub fn evaluate(&self, key: &str, ctx: &EvalContext) -> Evaluation<Option<Value>> {
        self.resolve(key, ctx, |r| {
            flags::typed(key, r, None, "a value", |v| Some(Some(v.clone())))
        })
    }

    /// Evaluate a boolean flag locally.
    pub fn evaluate_bool(&self, key: &str, ctx: &EvalContext, default: bool) -> Evaluation<bool> {
        self.resolve(key, ctx, |r| {
            flags::typed(key, r, default, "a boolean", Value::as_bool)
        })
    }

    /// Evaluate a string flag locally.
    pub fn evaluate_string(
        &self,
        key: &str,
        ctx: &EvalContext,
        default: &str,
    ) -> Evaluation<String> {
        self.resolve(key, ctx, |r| {
            flags::typed(key, r, default.to_owned(), "a string", |v| {
                v.as_str().map(str::to_owned)
            })
        })
    }

    /// Evaluate an integer flag locally (a whole number that fits an `i64`).
    pub fn evaluate_int(&self, key: &str, ctx: &EvalContext, default: i64) -> Evaluation<i64> {
        self.resolve(key, ctx, |r| {
            flags::typed(key, r, default, "an integer", flags::as_int)
        })
    }

    /// Evaluate a number flag locally.
    pub fn evaluate_float(&self, key: &str, ctx: &EvalContext, default: f64) -> Evaluation<f64> {
        self.resolve(key, ctx, |r| {
            flags::typed(key, r, default, "a number", Value::as_f64)
        })
    }

    /// Evaluate an object (or array) flag locally.
    pub fn evaluate_object(
        &self,
        key: &str,
        ctx: &EvalContext,
        default: Value,
    ) -> Evaluation<Value> {
        self.resolve(key, ctx, |r| {
            flags::typed(key, r, default, "an object", |v| {
                (v.is_object() || v.is_array()).then(|| v.clone())
            })
        })
    }
}

/// Whether a secret is referenced anywhere in `v` (`{"$secret": name}`).
fn has_references(v: &Value) -> bool {
    match v {
        Value::Object(m) if m.len() == 1 && m.get("$secret").is_some_and(Value::is_string) => true,
        Value::Object(m) => m.values().any(has_references),
        Value::Array(a) => a.iter().any(has_references),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_found_anywhere() {
        assert!(has_references(
            &json!({"db": {"password": {"$secret": "db/pw"}}})
        ));
        assert!(has_references(&json!([1, {"$secret": "x"}])));
        assert!(!has_references(&json!({"$secret": "x", "other": 1})));
        assert!(!has_references(&json!({"db": {"password": "plain"}})));
    }

    #[test]
    fn snapshot_debug_shows_keys_not_values() {
        let s = Snapshot {
            app: "a".into(),
            env: "e".into(),
            revision: 1,
            checksum: "sha256:x".into(),
            source: Source::Server,
            values: [("db".to_owned(), json!({"password": "hunter2"}))].into(),
            flags: Arc::default(),
        };
        let d = format!("{s:?}");
        assert!(d.contains("db") && !d.contains("hunter2"), "{d}");
    }
}

/// serde's message without the data it quotes: `invalid type: string
/// "s3cr3t", expected u64` names the value, which may be a substituted
/// secret, and errors get logged. Only serde's own words are kept: the kind
/// of error and what was expected (which comes from the type, not the data),
/// or a `missing field` and its name (also from the type).
fn redact_decode_error(message: &str) -> String {
    if message.starts_with("missing field `") && message.matches('`').count() == 2 {
        return message.to_owned();
    }
    const KINDS: &[&str] = &[
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
        "duplicate field",
    ];
    let kind = KINDS
        .iter()
        .find(|k| message.starts_with(**k))
        .copied()
        .unwrap_or("invalid data");
    match message.rfind(", expected ") {
        // What was expected is written by the type's Deserialize impl.
        Some(at) => format!("{kind}: …{}", &message[at..]),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn decode_errors_do_not_quote_the_value() {
        use serde::Deserialize;
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Db {
            port: u16,
        }
        let snapshot_value = serde_json::json!({"port": "s3cr3t-canary"});
        let e = Db::deserialize(&snapshot_value).unwrap_err().to_string();
        assert!(e.contains("s3cr3t-canary"), "serde quotes it: {e}");
        let redacted = redact_decode_error(&e);
        assert!(!redacted.contains("s3cr3t"), "{redacted}");
        assert!(redacted.contains("expected u16"), "{redacted}");
        let e = u64::deserialize(&serde_json::json!(true))
            .unwrap_err()
            .to_string();
        assert!(!redact_decode_error(&e).contains("true"), "{e}");
        assert_eq!(
            redact_decode_error("missing field `port`"),
            "missing field `port`"
        );
        // Quotes and backticks inside the value do not end the redaction.
        let e = Db::deserialize(&serde_json::json!({"port": "pa\"ss`wd, expected"}))
            .unwrap_err()
            .to_string();
        let redacted = redact_decode_error(&e);
        assert!(
            !redacted.contains("pa") && !redacted.contains("ss"),
            "{redacted}"
        );
        assert_eq!(redact_decode_error("garbage"), "invalid data");
    }
}
