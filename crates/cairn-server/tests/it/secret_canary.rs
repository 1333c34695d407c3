//! The exhaustive canary search: a secret with a canary value, referenced
//! from configuration; every route of the access matrix requested as every
//! kind of principal, plus the plaintext paths (reveal, `?secrets=true`) as
//! every principal; then every response (status line, headers, body), the
//! stored audit records, the audit file, the metrics, the server's log
//! output (every tracing event, at every level) and the raw database files
//! (main, WAL, shared memory) are searched for the canary in every form of
//! [`forms::Forms`]. Exactly the admin's two reveals and the admin's and
//! the view's SDK token's `?secrets=true` carry it, and each of them — and
//! nothing else — is audited as one `secret.read`.

mod forms;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use cairn_core::sink::FileAuditSink;
use cairn_core::Options;
use cairn_server::access::MATRIX;
use serde_json::{json, Value};

use crate::access_matrix::{fixture_with, request};
use forms::Forms;

/// With characters that JSON and URLs escape, and one beyond ASCII, so
/// that every form differs from the plain bytes.
const SECRET: &str = "SECRET-CANARY-\"e41c\\9a77/é";

#[tokio::test]
async fn no_route_gives_a_secret_value_to_anyone_it_should_not() {
    let log = Log::capture();
    let forms = Forms::of(SECRET);
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_file = audit_dir.path().join("audit.jsonl");
    let sink = FileAuditSink::open(&audit_file, Duration::from_secs(2)).unwrap();
    let (t, who) = fixture_with(Options {
        audit_sink: Some(Arc::new(sink)),
        ..Options::default()
    })
    .await;
    let r = t
        .call(
            Method::POST,
            "/v1/secrets",
            Some(
                json!({"name": "walk/canary", "app": "billing", "env": "staging",
                "value": SECRET, "rotation_days": 30, "grace_days": 7, "message": "canary"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Rotated by hand once: the canary is now the previous version, in grace.
    let r = t
        .call(
            Method::POST,
            "/v1/secret-rotate/walk/canary?app=billing&env=staging",
            Some(json!({"value": format!("{SECRET}-v2"), "message": "rotate"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.set(
        "dsn",
        "app=billing&env=staging",
        json!({"password": {"$secret": "walk/canary"}}),
    )
    .await;

    // The plaintext paths, as every principal, besides the whole matrix.
    let plaintext_paths = [
        "/v1/secrets/walk/canary?app=billing&env=staging&reveal=true",
        "/v1/secrets/walk/canary?app=billing&env=staging&reveal=true&version=1",
        "/v1/apps/billing/envs/staging/config?secrets=true",
    ];
    let mut searched = 0;
    let mut allowed = Vec::new();
    let mut hits = Vec::new();
    let mut search = |label: &str, uri: &str, resp: &crate::harness::Resp| {
        let mut found = forms.found_in(&resp.raw);
        for (n, v) in &resp.headers {
            found.extend(forms.found_in(n.as_str().as_bytes()));
            found.extend(forms.found_in(v.as_bytes()));
        }
        let may = match label {
            "admin" => uri.contains("reveal=true") || uri.contains("secrets=true"),
            "sdk" => uri.contains("secrets=true"),
            _ => false,
        };
        if may {
            allowed.push((label.to_owned(), uri.to_owned(), !found.is_empty()));
        } else {
            searched += 1;
            if !found.is_empty() {
                hits.push(format!("{} {uri} as {label}: {found:?}", resp.status));
            }
        }
    };
    for (method, path, _) in MATRIX {
        for w in &who {
            let (uri, body, _) = request(&t, method, path).await;
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let body = body.map(|b| axum::body::Body::from(serde_json::to_vec(&b).unwrap()));
            let r = t.raw(m, &uri, w.token.as_deref(), body, &[]).await;
            search(w.label, &uri, &r);
        }
    }
    for uri in plaintext_paths {
        for w in &who {
            let r = t.raw(Method::GET, uri, w.token.as_deref(), None, &[]).await;
            search(w.label, uri, &r);
        }
    }
    // The allowed reads, exactly, and each did return the value: the
    // admin's reveals (current and previous version), the admin's and the
    // SDK token's `?secrets=true`.
    let [reveal, reveal_v1, resolve] = plaintext_paths.map(str::to_owned);
    let (admin, sdk) = ("admin".to_owned(), "sdk".to_owned());
    assert_eq!(
        allowed,
        [
            (admin.clone(), reveal, true),
            (admin.clone(), reveal_v1, true),
            (admin, resolve.clone(), true),
            (sdk, resolve, true),
        ]
    );

    // Each allowed read is one `secret.read` record, and there is no other.
    let audit = t
        .svc
        .store()
        .audit(&cairn_store::AuditFilter::default())
        .await
        .unwrap();
    let reads: Vec<(String, Value, Value)> = audit
        .iter()
        .filter(|r| r.action == "secret.read")
        .map(|r| {
            assert_eq!(r.key.as_deref(), Some("walk/canary"), "{r:?}");
            (
                r.actor.clone(),
                r.detail["via"].clone(),
                r.detail["version"].clone(),
            )
        })
        .collect();
    let actor_of = |label: &str| {
        let token = who
            .iter()
            .find(|w| w.label == label)
            .unwrap()
            .token
            .clone()
            .unwrap();
        // `cairn_<id>_<secret>`: records name the token by its id.
        let id = token.split('_').nth(1).unwrap().to_owned();
        assert!(
            reads.iter().any(|(a, _, _)| a.contains(&id)),
            "no read by {label} ({id}): {reads:?}"
        );
        reads
            .iter()
            .find(|(a, _, _)| a.contains(&id))
            .unwrap()
            .0
            .clone()
    };
    let (admin, sdk) = (actor_of("admin"), actor_of("sdk"));
    assert_eq!(
        reads,
        [
            (admin.clone(), json!("read"), json!(2)),
            (admin.clone(), json!("read"), json!(1)),
            (admin, json!("resolve"), json!(2)),
            (sdk, json!("resolve"), json!(2)),
        ],
        "one secret.read per allowed read, nothing else"
    );

    // Stored audit records, the audit file, the metrics, the log, the files.
    let mut places = vec![
        (
            "audit records".to_owned(),
            serde_json::to_vec(&audit).unwrap(),
        ),
        ("audit file".to_owned(), std::fs::read(&audit_file).unwrap()),
        (
            "metrics".to_owned(),
            t.svc.render_metrics().await.into_bytes(),
        ),
    ];
    for suffix in ["", "-wal", "-shm"] {
        let mut path = t.db_path().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            places.push((format!("cairn.db{suffix}"), bytes));
        }
    }
    assert!(places.len() >= 6, "the database and its WAL exist");
    let logged = log.stop();
    // The log holds the statements that stored the sealed versions.
    assert!(
        String::from_utf8_lossy(&logged).contains("secret_versions"),
        "the capture missed the server's log"
    );
    places.push(("server log".to_owned(), logged));
    for (what, bytes) in &places {
        searched += 1;
        let found = forms.found_in(bytes);
        if !found.is_empty() {
            hits.push(format!("{what}: {found:?}"));
        }
    }
    assert!(hits.is_empty(), "the canary leaked to: {hits:#?}");
    let cells = (MATRIX.len() + plaintext_paths.len()) * who.len();
    assert_eq!(searched + allowed.len(), cells + places.len());
    // Fewer than named where two coincide (base64 of a whole number of
    // 3-byte groups needs no padding, and is its own offset-0 core).
    assert!(forms.len() >= 10, "{} forms", forms.len());
}

/// The server's log output: every tracing event and span field, at every
/// level, from every thread (the SQLite worker's too), while a capture is
/// on. One subscriber for the whole test binary, installed on first use.
struct Log;

static CAPTURING: AtomicBool = AtomicBool::new(false);
static LOGGED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

impl Log {
    fn capture() -> Log {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            tracing::subscriber::set_global_default(Capture::default())
                .expect("no other global subscriber in this test binary");
        });
        LOGGED.lock().unwrap().clear();
        CAPTURING.store(true, Ordering::SeqCst);
        Log
    }

    /// Everything logged since [`Log::capture`] (by any test meanwhile).
    fn stop(self) -> Vec<u8> {
        CAPTURING.store(false, Ordering::SeqCst);
        std::mem::take(&mut *LOGGED.lock().unwrap())
    }
}

#[derive(Default)]
struct Capture {
    next_span: AtomicU64,
}

/// Writes fields as `name=value`: strings as they are, the rest with
/// `Debug` (which is `Display` for `%` fields).
struct Fields<'a>(&'a mut Vec<u8>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .extend_from_slice(format!(" {}={value}", field.name()).as_bytes());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .extend_from_slice(format!(" {}={value:?}", field.name()).as_bytes());
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Asked again on every event: the capture is on only at times.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        CAPTURING.load(Ordering::Relaxed)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut buf = format!("\nspan {}:", span.metadata().name()).into_bytes();
        span.record(&mut Fields(&mut buf));
        LOGGED.lock().unwrap().extend_from_slice(&buf);
        tracing::span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut buf = b"\nspan fields:".to_vec();
        values.record(&mut Fields(&mut buf));
        LOGGED.lock().unwrap().extend_from_slice(&buf);
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let m = event.metadata();
        let mut buf = format!("\n{} {}:", m.level(), m.target()).into_bytes();
        event.record(&mut Fields(&mut buf));
        LOGGED.lock().unwrap().extend_from_slice(&buf);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
