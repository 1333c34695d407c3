//! The access matrix, walked: every route × every kind of principal (admin,
//! operator, viewer and SDK token of billing/staging, an operator and an SDK
//! token of payments/dev, a user who views everything, anonymous, expired,
//! revoked). The expected outcome of every cell is written by hand in
//! [`EXPECTED`], from DESIGN.md §10 — never computed with the policy code
//! under test — and the table must list exactly the routes of [`MATRIX`]. A
//! principal of another scope must never see billing/staging's data.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{Method, StatusCode};
use cairn_core::Options;
use cairn_server::access::MATRIX;
use serde_json::{json, Value};

use crate::harness::{Resp, TestApp};

const CANARY: &str = "BILLING-CANARY-7f3a";

pub(crate) struct Who {
    pub(crate) label: &'static str,
    pub(crate) token: Option<String>,
}

/// The principals with a column in [`EXPECTED`], in column order.
const COLUMNS: [&str; 7] = [
    "admin",
    "operator",
    "viewer",
    "sdk",
    "wrong-scope",
    "sdk-other",
    "viewer-all",
];

/// Not authenticated at all: 401 on every route that needs a token.
const UNAUTHENTICATED: [&str; 3] = ["anonymous", "expired", "revoked"];

/// What one principal gets from one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Ok,
    /// 403: its role never allows this, anywhere.
    Deny,
    /// 404: its role would allow it, but not on billing/staging, which it
    /// may not even know exists.
    Hide,
    /// 400: OFREP without a path prefix, and the principal is not bound to
    /// exactly one view to evaluate in.
    NoView,
    /// 403 without a body: OFREP's answer for a view the principal may not
    /// see (DESIGN §4.1: refusals carry no body, and its 404 means "no such flag").
    Bare,
}

/// A row of [`EXPECTED`].
#[derive(Debug, Clone, Copy)]
enum Row {
    /// No token needed: every principal (the unauthenticated ones too) is served.
    Public,
    /// By principal, in [`COLUMNS`] order; [`UNAUTHENTICATED`] get 401.
    Roles([Expect; 7]),
}

use Expect::{Bare as BARE, Deny as DENY, Hide as HIDE, NoView as VIEW, Ok as OK};
use Row::{Public, Roles};

/// Every route × principal, by hand, from DESIGN.md §10: viewers read
/// (never a secret's plaintext); operators also write configuration and
/// flags, create and rotate secrets without reading them; admins do
/// everything (apps, environments, schemas, tokens, users, webhooks, audit
/// verification, rekey); an SDK token is bound to one (app, env): it
/// resolves that view's configuration, evaluates its flags, watches it and
/// reports on it — nothing else. Lists without a single object (apps,
/// environments, schemas, audit, secrets) answer every reader, filtered.
/// The request behind each row is [`request`]'s: objects are at
/// billing/staging unless it says otherwise.
#[rustfmt::skip]
const EXPECTED: &[(&str, &str, Row)] = &[
    //                                                                   admin operator viewer sdk  wrong-scope sdk-other viewer-all
    ("GET",    "/healthz",                                                Public),
    ("GET",    "/readyz",                                                 Public),
    ("GET",    "/openapi.json",                                           Public),
    ("POST",   "/v1/login",                                               Public),
    ("GET",    "/metrics",                                                Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("GET",    "/v1/apps",                                                Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("POST",   "/v1/apps",                                                Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/apps/{app}",                                          Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("GET",    "/v1/apps/{app}/envs/{env}/config",                        Roles([OK,  OK,  OK,  OK,   HIDE, HIDE, OK  ])),
    ("GET",    "/v1/envs",                                                Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("POST",   "/v1/envs",                                                Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    // Environments are catalog objects of no app: every reader may read one.
    ("GET",    "/v1/envs/{env}",                                          Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("PATCH",  "/v1/envs/{env}",                                          Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/entries",                                             Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("GET",    "/v1/entries/{*key}",                                      Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("PUT",    "/v1/entries/{*key}",                                      Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    ("DELETE", "/v1/entries/{*key}",                                      Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    ("POST",   "/v1/changes",                                             Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    // Change requests (made at billing/staging by another operator): readers
    // list and show them; approvers (writers of every environment a request
    // reaches) approve and reject; the requester or an admin edits, cancels, rebases.
    ("GET",    "/v1/changes",                                             Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("GET",    "/v1/changes/{id}",                                        Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("PATCH",  "/v1/changes/{id}",                                        Roles([OK,  DENY, DENY, DENY, HIDE, DENY, DENY])),
    ("POST",   "/v1/changes/{id}/approve",                                Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    ("POST",   "/v1/changes/{id}/reject",                                 Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    ("POST",   "/v1/changes/{id}/cancel",                                 Roles([OK,  DENY, DENY, DENY, HIDE, DENY, DENY])),
    ("POST",   "/v1/changes/{id}/rebase",                                 Roles([OK,  DENY, DENY, DENY, HIDE, DENY, DENY])),
    ("GET",    "/v1/history/{*key}",                                      Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("GET",    "/v1/diff/{*key}",                                         Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("POST",   "/v1/rollback/{*key}",                                     Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    ("GET",    "/v1/schemas",                                             Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("POST",   "/v1/schemas",                                             Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/schemas/history",                                     Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("POST",   "/v1/schemas/validate",                                    Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("GET",    "/v1/audit",                                               Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("GET",    "/v1/audit/verify",                                        Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/tokens",                                              Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("POST",   "/v1/tokens",                                              Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("DELETE", "/v1/tokens/{id}",                                         Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/users",                                               Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("POST",   "/v1/users",                                               Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("PATCH",  "/v1/users/{name}",                                        Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/apps/{app}/envs/{env}/flagd.json",                    Roles([OK,  OK,  OK,  OK,   HIDE, HIDE, OK  ])),
    // Without a prefix the principal's one binding is the view (the flag exists in both).
    ("POST",   "/ofrep/v1/evaluate/flags",                                Roles([VIEW, OK, OK,  OK,   OK,   OK,   VIEW])),
    ("POST",   "/ofrep/v1/evaluate/flags/{*key}",                         Roles([VIEW, OK, OK,  OK,   OK,   OK,   VIEW])),
    ("POST",   "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags",       Roles([OK,  OK,  OK,  OK,   BARE, BARE, OK  ])),
    ("POST",   "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags/{*key}", Roles([OK, OK,  OK,  OK,   BARE, BARE, OK  ])),
    ("GET",    "/v1/flags",                                               Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("GET",    "/v1/flags/stale",                                         Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("GET",    "/v1/flags/lint",                                          Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("GET",    "/v1/watch",                                               Roles([OK,  OK,  OK,  OK,   HIDE, HIDE, OK  ])),
    ("GET",    "/v1/webhooks",                                            Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("POST",   "/v1/webhooks",                                            Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/webhooks/{id}",                                       Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("DELETE", "/v1/webhooks/{id}",                                       Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/webhooks/{id}/deliveries",                            Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
    ("GET",    "/v1/secrets",                                             Roles([OK,  OK,  OK,  DENY, OK,   DENY, OK  ])),
    ("POST",   "/v1/secrets",                                             Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    // Metadata only (no `reveal`): every reader of the scope. The SDK token
    // reads referenced secrets through `config?secrets=true`, not here.
    ("GET",    "/v1/secrets/{*name}",                                     Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    // DESIGN names create and rotate; deleting is writing the secret (it
    // reveals nothing), as deleting an entry is writing it.
    ("DELETE", "/v1/secrets/{*name}",                                     Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    ("POST",   "/v1/secret-rotate/{*name}",                               Roles([OK,  OK,  DENY, DENY, HIDE, DENY, DENY])),
    // Whoever may resolve a view reports on it (applied state, counts).
    ("POST",   "/v1/report",                                              Roles([OK,  OK,  OK,  OK,   HIDE, HIDE, OK  ])),
    ("GET",    "/v1/applied",                                             Roles([OK,  OK,  OK,  DENY, HIDE, DENY, OK  ])),
    ("POST",   "/v1/admin/rekey",                                         Roles([OK,  DENY, DENY, DENY, DENY, DENY, DENY])),
];

/// A secret's plaintext (`reveal=true` on a matrix route): admins only.
#[rustfmt::skip]
const REVEAL: [Expect; 7] = [OK, DENY, DENY, DENY, HIDE, DENY, DENY];

async fn token(t: &TestApp, body: Value) -> (String, String) {
    let r = t.call(Method::POST, "/v1/tokens", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["token"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    )
}

/// A user with `bindings`, created by the admin.
async fn user(t: &TestApp, name: &str, bindings: Value) {
    let r = t
        .call(
            Method::POST,
            "/v1/users",
            Some(json!({"name": name, "password": "a-long-enough-password",
                "bindings": bindings})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A login token of `name`.
async fn login(t: &TestApp, name: &str) -> String {
    let body = json!({"name": name, "password": "a-long-enough-password"});
    let body = axum::body::Body::from(serde_json::to_vec(&body).unwrap());
    let r = t
        .raw(Method::POST, "/v1/login", None, Some(body), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

pub(crate) async fn fixture() -> (TestApp, Vec<Who>) {
    fixture_with(Options::default()).await
}

/// The walk's server (with `opts`), its data and its principals.
pub(crate) async fn fixture_with(opts: Options) -> (TestApp, Vec<Who>) {
    let t = TestApp::with_options(opts).await;
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
    user(
        &t,
        "walker",
        json!([{"role": "viewer", "app": "*", "env": "*"}]),
    )
    .await;
    let viewer_all = login(&t, "walker").await;
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
    let (sdk_other, _) = token(
        &t,
        json!({"name": "sdk-other", "role": "sdk", "app": "payments", "env": "dev"}),
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
    let who = [
        ("admin", Some(t.token.clone())),
        ("operator", Some(op)),
        ("viewer", Some(viewer)),
        ("sdk", Some(sdk)),
        ("wrong-scope", Some(wrong)),
        ("sdk-other", Some(sdk_other)),
        ("viewer-all", Some(viewer_all)),
        ("anonymous", None),
        ("expired", Some(expired)),
        ("revoked", Some(revoked)),
    ]
    .into_iter()
    .map(|(label, token)| Who { label, token })
    .collect();
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
        ("POST", "/v1/login") => {
            // A user of its own: the walk spends no user's login budget twice.
            let name = unique("login");
            user(
                t,
                &name,
                json!([{"role": "viewer", "app": "*", "env": "*"}]),
            )
            .await;
            (
                path.into(),
                Some(json!({"name": name, "password": "a-long-enough-password"})),
                None,
            )
        }
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
        ("GET", "/v1/changes") => (path.into(), None, None),
        ("GET", "/v1/changes/{id}") => (format!("/v1/changes/{}", walk_change(t).await), None, bs),
        ("PATCH", "/v1/changes/{id}") => {
            let id = walk_change(t).await;
            let key = id_key(t, &id).await;
            (
                format!("/v1/changes/{id}"),
                Some(
                    json!({"entries": [{"app": "billing", "env": "staging", "key": key, "value": {"n": 3}}]}),
                ),
                bs,
            )
        }
        ("POST", "/v1/changes/{id}/approve") => (
            format!("/v1/changes/{}/approve", walk_change(t).await),
            Some(json!({"note": "walk"})),
            bs,
        ),
        ("POST", "/v1/changes/{id}/reject") => (
            format!("/v1/changes/{}/reject", walk_change(t).await),
            Some(json!({"reason": "walk"})),
            bs,
        ),
        ("POST", "/v1/changes/{id}/cancel") => (
            format!("/v1/changes/{}/cancel", walk_change(t).await),
            None,
            bs,
        ),
        ("POST", "/v1/changes/{id}/rebase") => (
            format!("/v1/changes/{}/rebase", walk_change(t).await),
            None,
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
        ("GET", "/v1/flags/lint") => ("/v1/flags/lint?app=billing&env=staging".into(), None, bs),
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

/// A pending change request at billing/staging, made by an operator of
/// its own while staging is protected (one approval), staging unprotected
/// again afterwards so the rest of the walk writes directly (a change of
/// staging's policy, itself gated: requested, then forced by the admin);
/// its id.
pub(crate) async fn walk_change(t: &TestApp) -> String {
    let policy = |protected: bool| json!({"protected": protected, "required_approvals": 1, "auto_approve": !protected});
    let r = t
        .call(Method::PATCH, "/v1/envs/staging", Some(policy(true)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (requester, _) = token(
        t,
        json!({"name": unique("requester"), "role": "operator", "app": "billing", "env": "staging"}),
    )
    .await;
    let key = unique("walk-change");
    let r = t
        .call_as(
            &requester,
            Method::PUT,
            &format!("/v1/entries/{key}?app=billing&env=staging"),
            Some(json!({"value": {"n": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r2 = t
        .call(Method::PATCH, "/v1/envs/staging", Some(policy(false)))
        .await;
    assert_eq!(r2.status, StatusCode::ACCEPTED, "{}", r2.body);
    let unprotect = r2.body["change_id"].as_str().unwrap();
    let r3 = t
        .call(
            Method::POST,
            &format!("/v1/changes/{unprotect}/approve"),
            Some(json!({"force": true, "reason": "the walk writes directly"})),
        )
        .await;
    assert_eq!(r3.body["state"], "applied", "{}", r3.body);
    r.body["change_id"].as_str().unwrap().to_owned()
}

/// The key of the one entry of change `id`.
async fn id_key(t: &TestApp, id: &str) -> String {
    let r = t.get(&format!("/v1/changes/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["preview"]["entries"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned()
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

/// Does `r` answer as `e` says?
fn matches(e: Expect, r: &Resp) -> bool {
    let status = r.status.as_u16();
    match e {
        Expect::Ok => (200..300).contains(&status),
        Expect::Deny => status == 403,
        Expect::Hide => status == 404,
        Expect::NoView => status == 400,
        Expect::Bare => status == 403 && r.raw.is_empty(),
    }
}

/// `r` is what `want` says (`None`: 401); on OFREP routes refusals
/// (401, 403) have no body (DESIGN §4.1).
fn answers(want: Option<Expect>, path: &str, r: &Resp) -> bool {
    let status = r.status.as_u16();
    let ok = match want {
        None => status == 401,
        Some(e) => matches(e, r),
    };
    let bare = !path.contains("/ofrep/") || !matches!(status, 401 | 403) || r.raw.is_empty();
    ok && bare
}

/// The hand-written expectation of `label` on a row (`None`: 401).
fn expected(row: Row, label: &str) -> Option<Expect> {
    match row {
        Public => Some(Expect::Ok),
        Roles(cells) => {
            if UNAUTHENTICATED.contains(&label) {
                return None;
            }
            let i = COLUMNS
                .iter()
                .position(|c| *c == label)
                .unwrap_or_else(|| panic!("no column for principal {label}"));
            Some(cells[i])
        }
    }
}

#[test]
fn the_expected_table_lists_exactly_the_matrix_routes() {
    let routes = |rows: &mut dyn Iterator<Item = (&str, &str)>| {
        let mut seen = BTreeSet::new();
        for (m, p) in rows {
            assert!(seen.insert((m.to_owned(), p.to_owned())), "{m} {p} twice");
        }
        seen
    };
    let table = routes(&mut EXPECTED.iter().map(|(m, p, _)| (*m, *p)));
    let matrix = routes(&mut MATRIX.iter().map(|(m, p, _)| (*m, *p)));
    let untabled: Vec<_> = matrix.difference(&table).collect();
    let unrouted: Vec<_> = table.difference(&matrix).collect();
    assert!(
        untabled.is_empty() && unrouted.is_empty(),
        "MATRIX rows without an expectation (add them to EXPECTED, by hand, from \
         DESIGN.md §10): {untabled:?}; expectations of no MATRIX row: {unrouted:?}"
    );
}

#[tokio::test]
async fn every_route_times_every_kind_of_principal() {
    let (t, who) = fixture().await;
    let labels: Vec<&str> = who.iter().map(|w| w.label).collect();
    let mut all: Vec<&str> = COLUMNS.to_vec();
    all.extend(UNAUTHENTICATED);
    assert_eq!(labels, all, "one principal per column");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (method, path, _) in MATRIX {
        let row = EXPECTED
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, row)| *row)
            .unwrap_or_else(|| panic!("{method} {path} has no row in EXPECTED"));
        for w in &who {
            let (uri, body, _) = request(&t, method, path).await;
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let body = body.map(|b| axum::body::Body::from(serde_json::to_vec(&b).unwrap()));
            let r = t.raw(m, &uri, w.token.as_deref(), body, &[]).await;
            let s = r.status.as_u16();
            let want = expected(row, w.label);
            if !answers(want, path, &r) {
                let want = want.map_or("401".to_owned(), |e| format!("{e:?}"));
                wrong.push(format!(
                    "{method} {uri} as {}: expected {want}, got {s} {}",
                    w.label, r.body
                ));
            }
            if matches!(
                w.label,
                "wrong-scope" | "sdk-other" | "anonymous" | "expired" | "revoked"
            ) {
                assert!(
                    !String::from_utf8_lossy(&r.raw).contains(CANARY),
                    "data of billing/staging leaked to {}: {method} {uri}: {s} {}",
                    w.label,
                    r.body
                );
            }
            checked += 1;
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(checked, MATRIX.len() * who.len());
    assert!(checked >= 500, "{checked} cells");
}

/// The plaintext of a secret, as every principal: the admin only.
#[tokio::test]
async fn only_an_admin_reveals_a_secret() {
    let (t, who) = fixture().await;
    walk_secret(&t, "walk/reveal").await;
    let uri = "/v1/secrets/walk/reveal?app=billing&env=staging&reveal=true";
    for w in &who {
        let r = t.raw(Method::GET, uri, w.token.as_deref(), None, &[]).await;
        let s = r.status.as_u16();
        let want = expected(Roles(REVEAL), w.label);
        assert!(
            answers(want, uri, &r),
            "{uri} as {}: expected {want:?} (None: 401), got {s} {}",
            w.label,
            r.body
        );
        // A value only in the admin's answer.
        assert_eq!(
            r.body.get("value").is_some(),
            w.label == "admin",
            "{} {}",
            w.label,
            r.body
        );
    }
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
