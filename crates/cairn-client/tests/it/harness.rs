//! A real Cairn server (the real router over a real SQLite file) on a real
//! socket, in its own runtime on its own thread, so stopping it really drops
//! every connection (watch streams included), and it can start again on the
//! same port and data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, HttpMethod};
use cairn_core::webhooks::WebhookSettings;
use cairn_core::{Options, Service};
use serde_json::{json, Value};

/// Where a server keeps its data between starts.
pub struct Data {
    pub dir: tempfile::TempDir,
    pub opts: Options,
    /// Run the webhook dispatcher with these settings (`cairn serve` does).
    pub webhooks: Option<WebhookSettings>,
}

impl Data {
    pub fn new() -> Data {
        Data {
            dir: tempfile::tempdir().unwrap(),
            opts: Options::default(),
            webhooks: None,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("cairn.db")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The first admin token (only on the first start of a data directory).
    pub token: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Any free port, chosen when the server binds.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port nothing listens on (yet).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl TestServer {
    /// Start on `addr` (`127.0.0.1:0`: any port) over `data`.
    pub fn start(data: &Data, addr: SocketAddr) -> TestServer {
        let db = data.db();
        let opts = data.opts.clone();
        let webhooks = data.webhooks.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let store = cairn_store_sqlite::SqliteStore::open(&db).await.unwrap();
                let (svc, token) = Service::open(Arc::new(store), opts).await.unwrap();
                if let Some(settings) = webhooks {
                    svc.spawn_webhook_dispatcher(settings);
                }
                let listener = bind(addr).await;
                ready_tx
                    .send((listener.local_addr().unwrap(), token))
                    .unwrap();
                let router = cairn_server::router(svc.clone());
                tokio::select! {
                    r = cairn_server::serve(listener, router, std::future::pending()) => r.unwrap(),
                    _ = stop_rx => {}
                }
            });
            // Dropping the runtime ends every connection task.
            rt.shutdown_timeout(Duration::from_millis(200));
        });
        let (addr, token) = ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestServer {
            addr,
            token,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop: the port refuses connections when this returns.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Bind, retrying briefly while the previous server's socket goes away.
async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..50 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot bind {addr}");
}

/// The admin's HTTP client, with helpers to change things.
pub struct Admin(pub Client);

impl Admin {
    pub fn new(url: &str, token: &str) -> Admin {
        Admin(Client::new(url, Some(token.to_owned())).unwrap())
    }

    pub async fn send(&self, method: HttpMethod, path: &str, body: Value) -> Value {
        self.0
            .send_json::<Value>(method, path, &[], Some(&body))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e} {e:?}"))
    }

    pub async fn app(&self, name: &str) {
        self.send(HttpMethod::POST, "/v1/apps", json!({"name": name}))
            .await;
    }

    /// Set a config entry (`kind` config) at app scope, or at app+env when `env` is given.
    pub async fn set(&self, app: &str, env: Option<&str>, key: &str, value: Value) {
        self.put(app, env, key, "config", value).await;
    }

    pub async fn put(&self, app: &str, env: Option<&str>, key: &str, kind: &str, value: Value) {
        let q = match env {
            Some(e) => format!("app={app}&env={e}"),
            None => format!("app={app}"),
        };
        self.send(
            HttpMethod::PUT,
            &format!("/v1/entries/{key}?{q}"),
            json!({"value": value, "kind": kind}),
        )
        .await;
    }

    /// An SDK token bound to (app, env).
    pub async fn sdk_token(&self, app: &str, env: &str) -> String {
        let r = self
            .send(
                HttpMethod::POST,
                "/v1/tokens",
                json!({"name": format!("sdk-{app}-{env}"), "role": "sdk", "app": app, "env": env}),
            )
            .await;
        r["token"].as_str().unwrap().to_owned()
    }

    /// `GET path?app=…&env=…` as JSON.
    pub async fn get_view(&self, path: &str, app: &str, env: &str) -> Value {
        let q = [("app", Some(app.to_owned())), ("env", Some(env.to_owned()))];
        self.0
            .get::<Value>(path, &q)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e} {e:?}"))
    }

    /// `GET /metrics` (text).
    pub async fn metrics(&self) -> String {
        // A plain GET whose body is read whole (`open_stream` only sets `Accept`).
        let resp = self.0.open_stream("/metrics", &[], None).await.unwrap();
        resp.text().await.unwrap()
    }

    /// The flag `key` as `GET /v1/flags` lists it for (app, env).
    pub async fn listed_flag(&self, app: &str, env: &str, key: &str) -> Value {
        let flags = self.get_view("/v1/flags", app, env).await;
        flags
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .unwrap_or_else(|| panic!("no flag {key}: {flags}"))
            .clone()
    }
}

/// Wait until `f` holds for a snapshot (at most `secs` seconds).
pub async fn wait_for(
    sdk: &cairn_client::sdk::CairnClient,
    secs: u64,
    what: &str,
    f: impl Fn(&cairn_client::sdk::Snapshot) -> bool,
) {
    let mut rx = sdk.subscribe();
    let r = tokio::time::timeout(Duration::from_secs(secs), rx.wait_for(|s| f(s))).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "timed out waiting for {what}; snapshot: {:?}",
        sdk.snapshot()
    );
}

/// Wait (at most 5 s) until the SDK's watch stream is open.
pub async fn wait_connected(sdk: &cairn_client::sdk::CairnClient) {
    for _ in 0..100 {
        if sdk.is_connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sdk.is_connected(), "the SDK never connected");
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
