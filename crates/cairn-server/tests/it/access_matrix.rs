//! The access matrix, walked: every route × {admin, operator, viewer, sdk,
//! anonymous, expired, revoked, wrong-scope}. The expected outcome is derived
//! from the declared matrix and the role table, then checked against what the
//! server does; a wrong-scope principal must never see the other scope's data.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{Method, StatusCode};
use cairn_core::policy::{allowed, allowed_somewhere};
use cairn_server::access::{Access, MATRIX};
use cairn_store::{Binding, Role};
use serde_json::{json, Value};

use crate::harness::TestApp;

const CANARY: &str = "BILLING-CANARY-7f3a";

pub(crate) struct Who {
    pub(crate) label: &'static str,
    pub(crate) token: Option<String>,
    /// `None`: not authenticated at all (anonymous, expired, revoked).
    bindings: Option<Vec<Binding>>,
}

fn b(role: Role, app: &str, env: &str) -> Vec<Binding> {
    vec![Binding {
        role,
        app: app.into(),
        env: env.into(),
    }]
}

async fn token(t: &TestApp, body: Value) -> (String, String) {
    let r = t.call(Method::POST, "/v1/tokens", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["token"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn fixture() -> (TestApp, Vec<Who>) {
    let t = TestApp::new().await;
    for app in ["billing", "payments"] {
        t.call(Method::POST, "/v1/apps", Some(json!({"name": app})))
            .await;
    }
    t.set(
        "db",
        "app=billing&env=staging",
        json!({"secret_ish": CANARY, "n": 0}),
    )
    .await;
    t.set("db", "app=billing&env=prod", json!({"secret_ish": CANARY}))
        .await;
    t.set("db", "app=payments&env=dev", json!({"n": 1})).await;
    let r = t
        .call(
            Method::POST,
            "/v1/schemas",
            Some(json!({"app": "billing", "pattern": "billing-only-pattern/*", "schema": {"type": "object"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .call(
            Method::POST,
            "/v1/users",
            Some(
                json!({"name": "walker", "password": "a-long-enough-password",
                "bindings": [{"role": "viewer", "app": "*", "env": "*"}]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (op, _) = token(
        &t,
        json!({"name": "op", "role": "operator", "app": "billing", "env": "staging"}),
    )
    .await;
    let (viewer, _) = token(
        &t,
        json!({"name": "v", "role": "viewer", "app": "billing", "env": "staging"}),
    )
    .await;
    let (sdk, _) = token(
        &t,
        json!({"name": "sdk", "role": "sdk", "app": "billing", "env": "staging"}),
    )
    .await;
    let (wrong, _) = token(
        &t,
        json!({"name": "w", "role": "operator", "app": "payments", "env": "dev"}),
    )
    .await;
    let (expired, _) = token(
        &t,
        json!({"name": "old", "role": "admin", "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await;
    let (revoked, revoked_id) = token(&t, json!({"name": "gone", "role": "admin"})).await;
    assert_eq!(
        t.call(Method::DELETE, &format!("/v1/tokens/{revoked_id}"), None)
            .await
            .status,
        StatusCode::OK
    );
    let who = vec![
        Who {
            label: "admin",
            token: Some(t.token.clone()),
            bindings: Some(b(Role::Admin, "*", "*")),
        },
        Who {
            label: "operator",
            token: Some(op),
            bindings: Some(b(Role::Operator, "billing", "staging")),
        },
        Who {
            label: "viewer",
            token: Some(viewer),
            bindings: Some(b(Role::Viewer, "billing", "staging")),
        },
        Who {
            label: "sdk",
            token: Some(sdk),
            bindings: Some(b(Role::Sdk, "billing", "staging")),
        },
        Who {
            label: "wrong-scope",
            token: Some(wrong),
            bindings: Some(b(Role::Operator, "payments", "dev")),
        },
        Who {
            label: "anonymous",
            token: None,
            bindings: None,
        },
        Who {
            label: "expired",
            token: Some(expired),
            bindings: None,
        },
        Who {
            label: "revoked",
            token: Some(revoked),
            bindings: None,
        },
    ];
    (t, who)
}

static N: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A concrete request for a matrix row, the scope of the object it touches
/// (`None`: no single object), and whether the admin must prepare something.
pub(crate) async fn request(
    t: &TestApp,
    method: &str,
    path: &str,
) -> (
    String,
    Option<Value>,
    Option<(Option<&'static str>, Option<&'static str>)>,
) {
    let bs = Some((Some("billing"), Some("staging")));
    match (method, path) {
        ("GET", "/healthz") | ("GET", "/readyz") | ("GET", "/openapi.json") => {
            (path.into(), None, None)
        }
        ("POST", "/v1/login") => (
            path.into(),
            Some(json!({"name": "walker", "password": "a-long-enough-password"})),
            None,
        ),
        ("GET", "/v1/apps")
        | ("GET", "/v1/envs")
        | ("GET", "/v1/schemas")
        | ("GET", "/v1/schemas/history")
        | ("GET", "/v1/audit")
        | ("GET", "/v1/audit/verify")
        | ("GET", "/v1/tokens")
        | ("GET", "/metrics")
        | ("GET", "/v1/users") => (path.into(), None, None),
        ("POST", "/v1/apps") => (
            path.into(),
            Some(json!({"name": unique("app")})),
            Some((None, None)),
        ),
        ("GET", "/v1/apps/{app}") => (
            "/v1/apps/billing".into(),
            None,
            Some((Some("billing"), None)),
        ),
        ("GET", "/v1/apps/{app}/envs/{env}/config") => {
            ("/v1/apps/billing/envs/staging/config".into(), None, bs)
        }
        ("GET", "/v1/watch") => ("/v1/watch?app=billing&env=staging&since=0".into(), None, bs),
        ("POST", "/v1/envs") => (
            path.into(),
            Some(json!({"name": unique("env")})),
            Some((None, None)),
        ),
        ("GET", "/v1/envs/{env}") => ("/v1/envs/staging".into(), None, None),
        ("PATCH", "/v1/envs/{env}") => (
            "/v1/envs/staging".into(),
            Some(json!({"description": "x"})),
            Some((None, None)),
        ),
        ("GET", "/v1/entries") => ("/v1/entries?app=billing&env=staging".into(), None, bs),
        ("GET", "/v1/entries/{*key}") => {
            ("/v1/entries/db?app=billing&env=staging".into(), None, bs)
        }
        ("PUT", "/v1/entries/{*key}") => (
            "/v1/entries/db?app=billing&env=staging".into(),
            Some(json!({"value": {"secret_ish": CANARY, "n": 2}})),
            bs,
        ),
        ("DELETE", "/v1/entries/{*key}") => {
            t.set("tmp", "app=billing&env=staging", json!(1)).await;
            (
                "/v1/entries/tmp?app=billing&env=staging&message=walk".into(),
                None,
                bs,
            )
        }
        ("POST", "/v1/changes") => (
            path.into(),
            Some(
                json!({"entries": [{"app": "billing", "env": "staging", "key": "db", "value": {"secret_ish": CANARY}}]}),
            ),
            bs,
        ),
        ("GET", "/v1/history/{*key}") => {
            ("/v1/history/db?app=billing&env=staging".into(), None, bs)
        }
        ("GET", "/v1/diff/{*key}") => (
            "/v1/diff/db?app=billing&env=staging&from=1&to=1".into(),
            None,
            bs,
        ),
        ("POST", "/v1/rollback/{*key}") => (
            "/v1/rollback/db?app=billing&env=staging".into(),
            Some(json!({"version": 1, "message": "walk"})),
            bs,
        ),
        ("POST", "/v1/schemas") => (
            path.into(),
            Some(json!({"pattern": "walk/*", "schema": {"type": "object"}})),
            Some((None, None)),
        ),
        ("POST", "/v1/schemas/validate") => (
            path.into(),
            Some(json!({"app": "billing", "env": "staging", "key": "db", "value": 1})),
            bs,
        ),
        ("POST", "/v1/tokens") => (
            path.into(),
            Some(json!({"name": "n", "role": "viewer"})),
            Some((None, None)),
        ),
        ("DELETE", "/v1/tokens/{id}") => {
            let (_, id) = token(t, json!({"name": "to-revoke", "role": "viewer"})).await;
            (format!("/v1/tokens/{id}"), None, Some((None, None)))
        }
        ("POST", "/v1/users") => (
            path.into(),
            Some(
                json!({"name": unique("user"), "password": "a-long-enough-password",
                "bindings": [{"role": "viewer", "app": "*", "env": "*"}]}),
            ),
            Some((None, None)),
        ),
        ("PATCH", "/v1/users/{name}") => (
            "/v1/users/walker".into(),
            Some(json!({"disabled": false})),
            Some((None, None)),
        ),
        ("GET", "/v1/apps/{app}/envs/{env}/flagd.json") => {
            ("/v1/apps/billing/envs/staging/flagd.json".into(), None, bs)
        }
        ("POST", "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags") => (
            "/v1/apps/billing/envs/staging/ofrep/v1/evaluate/flags".into(),
            Some(json!({"context": {"targetingKey": "u1"}})),
            bs,
        ),
        ("POST", "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags/{*key}") => {
            walk_flag(t, "billing", "staging").await;
            (
                "/v1/apps/billing/envs/staging/ofrep/v1/evaluate/flags/walk-flag".into(),
                Some(json!({"context": {}})),
                bs,
            )
        }
        // Without a prefix the token's own binding chooses the view: no single scope.
        ("POST", "/ofrep/v1/evaluate/flags") => (path.into(), Some(json!({})), None),
        ("POST", "/ofrep/v1/evaluate/flags/{*key}") => {
            walk_flag(t, "billing", "staging").await;
            walk_flag(t, "payments", "dev").await;
            (
                "/ofrep/v1/evaluate/flags/walk-flag".into(),
                Some(json!({"context": {}})),
                None,
            )
        }
        ("GET", "/v1/flags") => ("/v1/flags?app=billing&env=staging".into(), None, bs),
        ("GET", "/v1/flags/stale") => (
            "/v1/flags/stale?app=billing&env=staging&days=1".into(),
            None,
            bs,
        ),
        ("GET", "/v1/secrets") => (path.into(), None, None),
        ("POST", "/v1/secrets") => (
            path.into(),
            Some(
                json!({"name": unique("walk-secret"), "app": "billing", "env": "staging",
                "value": CANARY}),
            ),
            bs,
        ),
        ("GET", "/v1/secrets/{*name}") => {
            walk_secret(t, "walk/get").await;
            (
                "/v1/secrets/walk/get?app=billing&env=staging".into(),
                None,
                bs,
            )
        }
        ("DELETE", "/v1/secrets/{*name}") => {
            let name = unique("walk-del");
            walk_secret(t, &name).await;
            (
                format!("/v1/secrets/{name}?app=billing&env=staging&message=walk"),
                None,
                bs,
            )
        }
        ("POST", "/v1/secret-rotate/{*name}") => {
            walk_secret(t, "walk/rotate").await;
            (
                "/v1/secret-rotate/walk/rotate?app=billing&env=staging".into(),
                Some(json!({"message": "walk"})),
                bs,
            )
        }
        ("POST", "/v1/admin/rekey") => (path.into(), Some(json!({})), Some((None, None))),
        ("POST", "/v1/report") => (
            path.into(),
            Some(
                json!({"app": "billing", "env": "staging", "instance": "walk",
                "revision": 1, "checksum": format!("sha256:{}", "0".repeat(64))}),
            ),
            bs,
        ),
        ("GET", "/v1/applied") => ("/v1/applied?app=billing&env=staging".into(), None, bs),
        ("GET", "/v1/webhooks") => (path.into(), None, Some((None, None))),
        ("POST", "/v1/webhooks") => (
            path.into(),
            Some(json!({"url": WALK_HOOK_URL, "events": ["config.changed"],
                "secret": "walk-signing-secret"})),
            Some((None, None)),
        ),
        ("GET", "/v1/webhooks/{id}") => (
            format!("/v1/webhooks/{}", walk_webhook(t).await),
            None,
            Some((None, None)),
        ),
        ("DELETE", "/v1/webhooks/{id}") => (
            format!("/v1/webhooks/{}", walk_webhook(t).await),
            None,
            Some((None, None)),
        ),
        ("GET", "/v1/webhooks/{id}/deliveries") => (
            format!("/v1/webhooks/{}/deliveries", walk_webhook(t).await),
            None,
            Some((None, None)),
        ),
        other => panic!("the walk has no request for matrix row {other:?}: add one"),
    }
}

/// A secret at billing/staging with a generator, created by the admin once.
async fn walk_secret(t: &TestApp, name: &str) {
    let r = t
        .call(
            Method::POST,
            "/v1/secrets",
            Some(json!({"name": name, "app": "billing", "env": "staging",
                "generator": "random:16:alnum"})),
        )
        .await;
    assert!(
        r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT,
        "{}",
        r.body
    );
}

/// A public address literal: passes the target check without DNS (the
/// in-process server runs no dispatcher, so nothing is ever sent to it).
const WALK_HOOK_URL: &str = "https://1.1.1.1/cairn-walk";

/// A webhook subscription made by the admin; its id.
async fn walk_webhook(t: &TestApp) -> String {
    let r = t
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": WALK_HOOK_URL, "events": ["*"], "secret": "walk-signing-secret"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// A flag at (app, env), written by the admin.
async fn walk_flag(t: &TestApp, app: &str, env: &str) {
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/entries/walk-flag?app={app}&env={env}"),
            Some(json!({"kind": "flag", "value": {"state": "ENABLED",
                "variants": {"on": true, "off": false}, "defaultVariant": "on"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Bound to exactly one app and environment (OFREP without a path prefix needs that).
fn single_view(bindings: &[Binding]) -> bool {
    matches!(bindings, [b] if !b.app.contains('*') && !b.env.contains('*'))
}

#[tokio::test]
async fn every_route_times_every_kind_of_principal() {
    let (t, who) = fixture().await;
    let mut checked = 0;
    for (method, path, access) in MATRIX {
        for w in &who {
            let (uri, body, scope) = request(&t, method, path).await;
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let body = body.map(|b| axum::body::Body::from(serde_json::to_vec(&b).unwrap()));
            let r = t.raw(m, &uri, w.token.as_deref(), body, &[]).await;
            let s = r.status.as_u16();
            let ctx = format!("{method} {uri} as {}: {} {}", w.label, s, r.body);
            match (access, &w.bindings) {
                (Access::Public, _) => assert!(s < 400, "public route refused: {ctx}"),
                (Access::Needs(_), None) => assert_eq!(s, 401, "{ctx}"),
                (Access::Needs(action), Some(bindings)) => {
                    let somewhere = allowed_somewhere(bindings, *action);
                    let here = scope.is_none_or(|(app, env)| allowed(bindings, *action, app, env));
                    if !somewhere {
                        assert_eq!(s, 403, "{ctx}");
                    } else if path.starts_with("/ofrep/") && !single_view(bindings) {
                        assert_eq!(s, 400, "no view to evaluate in: {ctx}");
                    } else if !here {
                        assert!(s == 403 || s == 404, "{ctx}");
                    } else {
                        assert!((200..300).contains(&s), "allowed request failed: {ctx}");
                    }
                }
            }
            if matches!(w.label, "wrong-scope" | "anonymous" | "expired" | "revoked") {
                assert!(
                    !String::from_utf8_lossy(&r.raw).contains(CANARY),
                    "data of billing/staging leaked to {}: {ctx}",
                    w.label
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, MATRIX.len() * who.len());
    assert!(checked >= 250, "{checked} cells");
}

#[tokio::test]
async fn every_documented_route_has_exactly_one_matrix_row() {
    let doc: Value = serde_json::from_str(&cairn_server::openapi_json()).unwrap();
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut declared: Vec<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.replace("{*", "{")))
        .collect();
    declared.sort();
    let before = declared.len();
    declared.dedup();
    assert_eq!(before, declared.len(), "duplicate matrix rows");
    assert_eq!(
        declared, documented,
        "the access matrix and the routes differ"
    );
}

#[tokio::test]
async fn an_operator_sees_only_its_scope_in_every_response() {
    let (t, who) = fixture().await;
    let op = who
        .iter()
        .find(|w| w.label == "operator")
        .unwrap()
        .token
        .clone()
        .unwrap();
    let get = |uri: &'static str| {
        let t = &t;
        let op = op.clone();
        async move { t.call_as(&op, Method::GET, uri, None).await }
    };
    // Its own scope works.
    assert_eq!(
        get("/v1/entries/db?app=billing&env=staging").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get("/v1/apps/billing/envs/staging/config").await.status,
        StatusCode::OK
    );
    // billing/prod: not even its existence.
    for uri in [
        "/v1/entries/db?app=billing&env=prod",
        "/v1/entries?app=billing&env=prod",
        "/v1/history/db?app=billing&env=prod",
        "/v1/apps/billing/envs/prod/config",
        "/v1/apps/payments",
        "/v1/entries?app=payments&env=dev",
        "/v1/apps/payments/envs/dev/config",
    ] {
        let r = get(uri).await;
        r.assert_problem(404, "not_found", None);
        assert!(!String::from_utf8_lossy(&r.raw).contains(CANARY), "{uri}");
    }
    t.call_as(
        &op,
        Method::PUT,
        "/v1/entries/db?app=billing&env=prod",
        Some(json!({"value": 1})),
    )
    .await
    .assert_problem(404, "not_found", None);
    // It can read global values (they are part of its view) but not change them.
    t.call_as(
        &op,
        Method::PUT,
        "/v1/entries/db",
        Some(json!({"value": 1})),
    )
    .await
    .assert_problem(403, "forbidden", None);
    // Lists leave out what it may not see.
    let apps = get("/v1/apps").await;
    let names: Vec<&str> = apps
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing"]);
    let audit = get("/v1/audit").await;
    let audit_text = String::from_utf8_lossy(&audit.raw).to_string();
    assert!(!audit_text.contains("payments"), "{audit_text}");
    assert!(!audit_text.contains("\"prod\""), "{audit_text}");
    assert!(
        !audit_text.contains("token.create"),
        "catalog records are for admins"
    );
    assert!(audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["app"] == "billing"
            && (r["env"] == "staging" || r["env"].is_null() || r["env"] == "")));
    assert!(
        audit_text.contains("billing-only-pattern"),
        "its app's schema changes are visible"
    );
    // The refusals were recorded.
    let denials = t.denials().await;
    assert!(denials.len() >= 9, "{denials:?}");
    assert!(denials.iter().all(|d| d["action"] == "access.denied"));
}
