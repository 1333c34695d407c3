//! The rotation scheduler through the service: due secrets rotate once,
//! spread; hooks make values; failures back off and are reported.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use cairn_core::secrets::{NewValue, Plaintext, VersionState};
use cairn_core::{Error, Options, Origin, Principal, Service};
use cairn_model::Scope;
use cairn_store::{AuditFilter, Role, SecretPolicy, Store};
use cairn_store_sqlite::SqliteStore;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use super::who;

const HOOK_CANARY: &str = "hook-error-body-canary-31d7";

async fn service(dir: &std::path::Path, allow_private: bool) -> Arc<Service> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("cairn.db")).await.unwrap());
    let opts = Options {
        allow_private_targets: allow_private,
        rotation_retry_base: StdDuration::from_secs(10),
        ..Options::default()
    };
    Service::open(store, opts).await.unwrap().0
}

/// The name and value of the secret that signs hook requests.
const SIGNER: &str = "hooks/signing";
const SIGNING_KEY: &str = "hook-signing-key-0123456789";

fn every(seconds: i64, generator: Option<&str>) -> SecretPolicy {
    SecretPolicy {
        rotation_days: None,
        rotation_seconds: Some(seconds),
        grace_days: 1,
        generator: generator.map(str::to_owned),
        hook_secret: generator
            .is_some_and(|g| g.starts_with("hook:"))
            .then(|| SIGNER.to_owned()),
    }
}

/// The global secret whose value signs hook requests.
async fn signer(svc: &Service) {
    svc.secrets()
        .create_secret(
            &who(Role::Admin),
            &Origin::default(),
            &Scope::global(),
            SIGNER,
            NewValue::Given(Plaintext::new(SIGNING_KEY)),
            SecretPolicy::default(),
            "hook signing key",
        )
        .await
        .unwrap();
}

/// `create_secret` with the message "new" and no origin.
async fn create(
    svc: &Service,
    who: &Principal,
    scope: &Scope,
    name: &str,
    value: NewValue,
    policy: SecretPolicy,
) -> cairn_core::Result<cairn_core::secrets::SecretWritten> {
    svc.secrets()
        .create_secret(who, &Origin::default(), scope, name, value, policy, "new")
        .await
}

/// A rotation hook on 127.0.0.1: fails the first `fail_first` calls with a
/// 500 whose body is a canary, then answers `{"value": "hooked-N"}`.
#[derive(Clone, Default)]
struct Hook {
    calls: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
    fail_first: usize,
}

async fn hook_handler(
    State(h): State<Hook>,
    headers: axum::http::HeaderMap,
    raw: axum::body::Bytes,
) -> (StatusCode, String) {
    let n = h.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let signature = headers
        .get("cairn-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let signed = cairn_core::webhooks::verify_signature(
        SIGNING_KEY.as_bytes(),
        signature,
        &raw,
        Utc::now().timestamp(),
        StdDuration::from_secs(300),
    );
    let mut body: Value = serde_json::from_slice(&raw).unwrap();
    body["signed"] = json!(signed);
    body["idempotency_header"] = json!(headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(""));
    h.bodies.lock().unwrap().push(body);
    if !signed {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    if n <= h.fail_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, HOOK_CANARY.to_owned());
    }
    (
        StatusCode::OK,
        json!({"value": format!("hooked-{n}")}).to_string(),
    )
}

async fn start_hook(fail_first: usize) -> (String, Hook) {
    let hook = Hook {
        fail_first,
        ..Hook::default()
    };
    let app = Router::new()
        .route("/rotate", post(hook_handler))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/rotate"), hook)
}

#[tokio::test]
async fn due_secrets_rotate_once_spread_and_overdue_ones_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), false).await;
    let (admin, o, g) = (who(Role::Admin), Origin::default(), Scope::global());
    for i in 0..5 {
        create(
            &svc,
            &admin,
            &g,
            &format!("gen/{i}"),
            NewValue::Generate,
            every(3600, Some("random:20:alnum")),
        )
        .await
        .unwrap();
    }
    // Due too, but nothing can make a value: overdue.
    create(
        &svc,
        &admin,
        &g,
        "manual",
        NewValue::Given(Plaintext::new("v1-value")),
        every(3600, None),
    )
    .await
    .unwrap();
    // Never rotates.
    create(
        &svc,
        &admin,
        &g,
        "static",
        NewValue::Given(Plaintext::new("v1-value")),
        SecretPolicy {
            generator: Some("random:20:alnum".into()),
            ..SecretPolicy::default()
        },
    )
    .await
    .unwrap();

    // Nothing is due yet.
    let run = svc.secrets().rotate_due(Utc::now()).await.unwrap();
    assert!(
        run.rotated.is_empty() && run.failed.is_empty() && run.overdue.is_empty(),
        "{run:?}"
    );

    // Spread: secrets created together on one schedule get distinct times,
    // each within a tenth of the interval after its due time.
    let infos = svc.secrets().secrets(&admin).await.unwrap();
    let mut nexts = Vec::new();
    for info in infos.iter().filter(|i| i.name.starts_with("gen/")) {
        let next = info
            .next_rotation
            .expect("a rotating secret has a next rotation");
        let offset = next - info.rotated_at - Duration::hours(1);
        assert!(
            offset >= Duration::zero() && offset < Duration::minutes(6),
            "{offset}"
        );
        nexts.push(next);
    }
    nexts.sort();
    nexts.dedup();
    assert_eq!(nexts.len(), 5, "five distinct rotation times");
    assert!(infos
        .iter()
        .find(|i| i.name == "static")
        .unwrap()
        .next_rotation
        .is_none());

    let later = Utc::now() + Duration::hours(2);
    let run = svc.secrets().rotate_due(later).await.unwrap();
    let mut rotated: Vec<_> = run
        .rotated
        .iter()
        .map(|r| (r.name.clone(), r.version))
        .collect();
    rotated.sort();
    assert_eq!(
        rotated,
        (0..5).map(|i| (format!("gen/{i}"), 2)).collect::<Vec<_>>()
    );
    assert_eq!(
        run.overdue
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        vec!["manual"]
    );
    assert!(run.failed.is_empty());
    assert!(svc
        .render_metrics()
        .await
        .contains("cairn_secret_rotations_total 5"));
    assert!(svc
        .render_metrics()
        .await
        .contains("cairn_secrets_rotation_overdue 1"));

    // The new version is current, the old one readable in its grace period.
    let info = svc
        .secrets()
        .secret_info(&admin, &g, "gen/0")
        .await
        .unwrap();
    let states: Vec<_> = info.versions.iter().map(|v| v.state).collect();
    assert_eq!(
        states,
        vec![VersionState::PreviousInGrace, VersionState::Current]
    );
    assert_eq!(info.versions[1].actor, "system:rotation");
    let (_, v1) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "gen/0", Some(1))
        .await
        .unwrap();
    let (_, v2) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "gen/0", None)
        .await
        .unwrap();
    assert_ne!(v1, v2);

    // Rotated just now: not due again now.
    let run = svc.secrets().rotate_due(Utc::now()).await.unwrap();
    assert!(run.rotated.is_empty(), "{run:?}");

    // Audited as the scheduler, with a keyed hash, never the value.
    let audit = svc
        .identity()
        .audit(
            &admin,
            &AuditFilter {
                action: Some("secret.rotate".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap()
        .records;
    let scheduled: Vec<_> = audit
        .iter()
        .filter(|r| r.actor == "system:rotation")
        .collect();
    assert_eq!(scheduled.len(), 5);
    assert!(scheduled.iter().all(|r| r.message == "scheduled rotation"));
    let v2 = v2.as_str().unwrap().to_owned();
    assert!(!serde_json::to_string(&audit).unwrap().contains(&v2));
}

#[tokio::test]
async fn a_hook_makes_the_values() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), true).await;
    let (admin, o) = (who(Role::Admin), Origin::default());
    let shop = Scope::new(Some("shop"), Some("prod"));
    svc.config()
        .create_app(&admin, &o, "shop", "")
        .await
        .unwrap();
    signer(&svc).await;
    let (url, hook) = start_hook(0).await;
    // Created without a value: the hook makes the first one too.
    let made = create(
        &svc,
        &admin,
        &shop,
        "db/password",
        NewValue::Generate,
        every(60, Some(&format!("hook:{url}"))),
    )
    .await
    .unwrap();
    assert_eq!(made.version, 1);
    let (_, v) = svc
        .secrets()
        .get_secret(&admin, &o, &shop, "db/password", None)
        .await
        .unwrap();
    assert_eq!(v.as_str().unwrap(), "hooked-1");

    let run = svc
        .secrets()
        .rotate_due(Utc::now() + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(run.rotated.len(), 1, "{run:?}");
    let (version, v) = svc
        .secrets()
        .get_secret(&admin, &o, &shop, "db/password", None)
        .await
        .unwrap();
    assert_eq!((version, v.as_str().unwrap()), (2, "hooked-2"));
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(
        bodies[1],
        json!({"event": "secret.rotate", "name": "db/password", "app": "shop", "env": "prod",
               "current_version": 1, "new_version": 2, "idempotency_key": "shop/prod/db/password/v2",
               "signed": true, "idempotency_header": "shop/prod/db/password/v2"})
    );
    // Every use of the signing key is audited, as a read by the scheduler.
    let reads = svc
        .identity()
        .audit(
            &admin,
            &AuditFilter {
                action: Some("secret.read".into()),
                key: Some(SIGNER.into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap()
        .records;
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.iter().all(|r| r.detail["via"] == "hook-signature"));
    // The signing key cannot be deleted while a hook uses it (unless forced).
    let e = svc
        .secrets()
        .delete_secret(&admin, &o, &Scope::global(), SIGNER, false, "cleanup")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Conflict { message, .. } if message.contains("rotation hook of secret db/password")),
        "{e:?}"
    );
    // Non-admins see the hook's origin only.
    let info = svc
        .secrets()
        .secret_info(&who(Role::Viewer), &shop, "db/password")
        .await
        .unwrap();
    let origin = url.trim_end_matches("/rotate");
    assert_eq!(info.policy.generator, Some(format!("hook:{origin}")));
    let info = svc
        .secrets()
        .secret_info(&admin, &shop, "db/password")
        .await
        .unwrap();
    assert_eq!(info.policy.generator, Some(format!("hook:{url}")));
}

#[tokio::test]
async fn failing_hooks_back_off_are_reported_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), true).await;
    let (admin, o, g) = (who(Role::Admin), Origin::default(), Scope::global());
    signer(&svc).await;
    let (url, hook) = start_hook(2).await;
    create(
        &svc,
        &admin,
        &g,
        "api/key",
        NewValue::Given(Plaintext::new("first-value")),
        every(60, Some(&format!("hook:{url}"))),
    )
    .await
    .unwrap();
    let t = Utc::now() + Duration::minutes(2);

    let run = svc.secrets().rotate_due(t).await.unwrap();
    assert!(run.rotated.is_empty());
    assert_eq!(run.failed.len(), 1);
    let failed = &run.failed[0];
    assert_eq!(failed.attempts, Some(1));
    assert_eq!(failed.retry_at, Some(t + Duration::seconds(10)));
    let error = failed.error.clone().unwrap();
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(
        !error.contains(HOOK_CANARY),
        "the hook's answer is not echoed: {error}"
    );
    assert_eq!(hook.calls.load(Ordering::SeqCst), 1);

    // Backing off: not called again before the retry time.
    let run = svc
        .secrets()
        .rotate_due(t + Duration::seconds(5))
        .await
        .unwrap();
    assert!(run.failed.is_empty() && run.rotated.is_empty());
    assert_eq!(hook.calls.load(Ordering::SeqCst), 1);

    // Second failure doubles the delay.
    let run = svc
        .secrets()
        .rotate_due(t + Duration::seconds(11))
        .await
        .unwrap();
    assert_eq!(run.failed[0].attempts, Some(2));
    assert_eq!(run.failed[0].retry_at, Some(t + Duration::seconds(31)));
    let run = svc
        .secrets()
        .rotate_due(t + Duration::seconds(25))
        .await
        .unwrap();
    assert!(run.failed.is_empty() && run.rotated.is_empty());

    // Then the hook recovers.
    let run = svc
        .secrets()
        .rotate_due(t + Duration::seconds(32))
        .await
        .unwrap();
    assert_eq!(run.rotated.len(), 1, "{run:?}");
    let (version, v) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "api/key", None)
        .await
        .unwrap();
    assert_eq!((version, v.as_str().unwrap()), (2, "hooked-3"));

    // Reported: two audit records, a metric, and nothing of the hook's body.
    let audit = svc
        .identity()
        .audit(
            &admin,
            &AuditFilter {
                action: Some("secret.rotation_failed".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap()
        .records;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].key.as_deref(), Some("api/key"));
    assert_eq!(audit[1].detail["attempts"], 2);
    assert!(!serde_json::to_string(&audit).unwrap().contains(HOOK_CANARY));
    assert!(svc
        .render_metrics()
        .await
        .contains("cairn_secret_rotation_failures_total 2"));
    assert!(svc.identity().verify_audit(&admin).await.unwrap().ok);
}

#[tokio::test]
async fn hooks_to_private_targets_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), false).await;
    let (admin, g) = (who(Role::Admin), Scope::global());
    signer(&svc).await;
    let (url, hook_server) = start_hook(0).await;
    let e = create(
        &svc,
        &admin,
        &g,
        "db/password",
        NewValue::Generate,
        every(60, Some(&format!("hook:{url}"))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { field, .. } if field == "generator"),
        "{e:?}"
    );
    assert!(e.to_string().contains("--allow-private-targets"), "{e}");
    for bad in ["hook:ftp://example.com/x", "hook:not a url", "hook:"] {
        let e = create(
            &svc,
            &admin,
            &g,
            "db/password",
            NewValue::Given(Plaintext::new("value-1")),
            every(60, Some(bad)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field, .. } if field == "generator"),
            "{bad}: {e:?}"
        );
    }
    let hook = |hook_secret: Option<&str>| SecretPolicy {
        generator: Some("hook:https://rotator.example.com/db".into()),
        hook_secret: hook_secret.map(str::to_owned),
        ..SecretPolicy::default()
    };
    let plain = |f: &dyn Fn(&mut SecretPolicy)| {
        let mut p = SecretPolicy::default();
        f(&mut p);
        p
    };
    for (policy, field) in [
        (hook(None), "hook_secret"),
        (hook(Some("no/such/secret")), "hook_secret"),
        (hook(Some("db/password")), "hook_secret"),
        (
            plain(&|p| p.hook_secret = Some(SIGNER.into())),
            "hook_secret",
        ),
        (
            plain(&|p| p.rotation_days = Some(100_000_000)),
            "rotation_days",
        ),
        (
            plain(&|p| p.rotation_seconds = Some(i64::MAX)),
            "rotation_seconds",
        ),
        (plain(&|p| p.grace_days = 100_000_000), "grace_days"),
        (
            SecretPolicy {
                rotation_seconds: Some(0),
                ..SecretPolicy::default()
            },
            "rotation_seconds",
        ),
        (
            SecretPolicy {
                rotation_seconds: Some(60),
                rotation_days: Some(1),
                ..SecretPolicy::default()
            },
            "rotation_seconds",
        ),
    ] {
        let e = create(
            &svc,
            &admin,
            &g,
            "db/password",
            NewValue::Given(Plaintext::new("value-1")),
            policy,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field: f, .. } if f == field),
            "{e:?}"
        );
    }
    // Choosing the hook and its key means receiving HMACs under the key:
    // an operator (who may not read secrets) may not.
    let e = create(
        &svc,
        &who(Role::Operator),
        &g,
        "db/password",
        NewValue::Given(Plaintext::new("value-1")),
        hook(Some(SIGNER)),
    )
    .await
    .unwrap_err();
    assert!(matches!(&e, Error::Forbidden(_)), "{e:?}");
    let names: Vec<_> = svc
        .secrets()
        .secrets(&admin)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec![SIGNER.to_owned()], "nothing else was written");
    assert_eq!(
        hook_server.calls.load(Ordering::SeqCst),
        0,
        "the hook was never called"
    );
}
