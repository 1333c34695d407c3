//! Change requests over HTTP (DESIGN.md §7, issue #13): gated writes answer
//! 202 with a request, nothing changes until the N-th distinct approval, and
//! every other way to the protected view is refused or turned into a request.

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{Resp, TestApp};

struct Fixture {
    t: TestApp,
    /// Operators of prod (every app): the requester and two approvers.
    req: String,
    a1: String,
    a2: String,
    /// A viewer of billing/prod.
    viewer: String,
    /// An operator of payments/prod only.
    other: String,
}

async fn token(t: &TestApp, name: &str, role: &str, app: Option<&str>, env: &str) -> String {
    let mut body = json!({"name": name, "role": role, "env": env});
    if let Some(app) = app {
        body["app"] = json!(app);
    }
    let r = t.call(Method::POST, "/v1/tokens", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

/// billing and payments; `db` at billing/prod at versions 1 and 2; then prod
/// protected with two approvals.
async fn fixture() -> Fixture {
    let t = TestApp::new().await;
    for app in ["billing", "payments"] {
        let r = t
            .call(Method::POST, "/v1/apps", Some(json!({"name": app})))
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    t.set("db", "app=billing&env=prod", json!({"max": 10}))
        .await;
    t.set("db", "app=billing&env=prod", json!({"max": 20}))
        .await;
    let r = t
        .call(
            Method::PATCH,
            "/v1/envs/prod",
            Some(json!({"protected": true, "required_approvals": 2, "auto_approve": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    Fixture {
        req: token(&t, "req", "operator", None, "prod").await,
        a1: token(&t, "a1", "operator", None, "prod").await,
        a2: token(&t, "a2", "operator", None, "prod").await,
        viewer: token(&t, "viewer", "viewer", Some("billing"), "prod").await,
        other: token(&t, "other", "operator", Some("payments"), "prod").await,
        t,
    }
}

impl Fixture {
    async fn as_(&self, token: &str, method: Method, uri: &str, body: Option<Value>) -> Resp {
        self.t.call_as(token, method, uri, body).await
    }

    async fn view(&self) -> Value {
        let r = self.t.get("/v1/apps/billing/envs/prod/config").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// Assert a 202 change request and return its id.
    #[track_caller]
    fn requested(&self, r: &Resp) -> String {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let id = r.body["change_id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("chg_"), "{id}");
        assert_eq!(
            r.headers.get(header::LOCATION).unwrap(),
            &format!("/v1/changes/{id}")
        );
        assert_eq!(r.body["state"], "pending");
        assert_eq!(r.body["approvals"], 0);
        assert_eq!(r.body["required"], 2);
        assert_eq!(r.body["environments"], json!(["prod"]));
        id
    }

    async fn request_pool(&self, value: Value) -> String {
        let r = self
            .as_(
                &self.req,
                Method::PUT,
                "/v1/entries/db?app=billing&env=prod",
                Some(json!({"value": value, "message": "peak"})),
            )
            .await;
        self.requested(&r)
    }

    async fn approve(&self, token: &str, id: &str) -> Resp {
        self.as_(
            token,
            Method::POST,
            &format!("/v1/changes/{id}/approve"),
            Some(json!({"note": "ok"})),
        )
        .await
    }

    async fn state(&self, id: &str) -> Value {
        let r = self.t.get(&format!("/v1/changes/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["change"]["state"].clone()
    }
}

fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_protected_write_waits_for_two_other_approvals() {
    let f = fixture().await;
    let before = f.view().await;
    let id = f.request_pool(json!({"max": 80})).await;
    assert_eq!(f.view().await, before, "nothing changes while pending");

    // Show: the entry and the view before and after.
    let r = f.t.get(&format!("/v1/changes/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["change"]["id"], id.as_str());
    let e = &r.body["preview"]["entries"][0];
    assert_eq!(e["key"], "db");
    assert_eq!(e["kind"], "config");
    assert_eq!(e["before"], json!({"max": 20}));
    assert_eq!(e["after"], json!({"max": 80}));
    assert!(e["diff"].as_str().unwrap().contains("80"), "{e}");
    let views = r.body["preview"]["views"].as_array().unwrap();
    let v = views
        .iter()
        .find(|v| v["app"] == "billing" && v["env"] == "prod")
        .expect("billing/prod is reached");
    assert_eq!(v["before"]["db"], json!({"max": 20}));
    assert_eq!(v["after"]["db"], json!({"max": 80}));
    assert_eq!(r.body["preview"]["check"], json!({"applies": true}));

    // Lists.
    assert!(ids(&f.t.get("/v1/changes?state=pending&env=prod").await).contains(&id));
    assert!(ids(&f.t.get("/v1/changes?app=billing").await).contains(&id));
    assert!(!ids(&f.t.get("/v1/changes?env=dev").await).contains(&id));
    assert!(!ids(&f.t.get("/v1/changes?app=payments").await).contains(&id));
    assert!(!ids(&f.t.get("/v1/changes?state=applied").await).contains(&id));
    assert!(ids(&f.as_(&f.viewer, Method::GET, "/v1/changes", None).await).contains(&id));
    assert!(!ids(&f.as_(&f.other, Method::GET, "/v1/changes", None).await).contains(&id));

    // Refusals: the requester, a viewer, a token of another app.
    f.approve(&f.req, &id)
        .await
        .assert_problem(403, "forbidden", None);
    assert_eq!(
        f.approve(&f.viewer, &id).await.status,
        StatusCode::FORBIDDEN
    );
    let r = f.approve(&f.other, &id).await;
    assert!(
        matches!(r.status.as_u16(), 403 | 404),
        "another app's token approved: {} {}",
        r.status,
        r.body
    );
    assert_eq!(f.state(&id).await, "pending");

    // One approval, then the same principal again: 409, counted once.
    let r = f.approve(&f.a1, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "pending");
    assert_eq!(f.approve(&f.a1, &id).await.status, StatusCode::CONFLICT);
    assert_eq!(
        f.view().await,
        before,
        "one approval of two applies nothing"
    );

    // The second distinct approval applies it.
    let r = f.approve(&f.a2, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "applied");
    assert_eq!(f.view().await["values"]["db"], json!({"max": 80}));
    assert!(ids(&f.t.get("/v1/changes?state=applied&env=prod").await).contains(&id));
    // Applied is final, and no longer checked.
    assert_eq!(f.approve(&f.a1, &id).await.status, StatusCode::CONFLICT);
    let r = f.t.get(&format!("/v1/changes/{id}")).await;
    assert_eq!(r.body["change"]["state"], "applied");
    assert!(r.body["preview"].get("check").is_none(), "{}", r.body);
}

#[tokio::test]
async fn every_way_to_the_protected_view_becomes_a_request() {
    let f = fixture().await;
    let before = f.view().await;
    let admin = f.t.token.clone();
    // Global and app-wide scopes reach prod.
    let r = f
        .as_(
            &admin,
            Method::PUT,
            "/v1/entries/db",
            Some(json!({"value": {"max": 1}})),
        )
        .await;
    f.requested(&r);
    let r = f
        .as_(
            &admin,
            Method::PUT,
            "/v1/entries/db?app=billing",
            Some(json!({"value": {"max": 2}})),
        )
        .await;
    f.requested(&r);
    // Rollback and delete.
    let r = f
        .as_(
            &f.req,
            Method::POST,
            "/v1/rollback/db?app=billing&env=prod",
            Some(json!({"version": 1, "message": "back"})),
        )
        .await;
    f.requested(&r);
    let r = f
        .as_(
            &f.req,
            Method::DELETE,
            "/v1/entries/db?app=billing&env=prod&message=gone",
            None,
        )
        .await;
    f.requested(&r);
    // A flag.
    let r = f
        .as_(
            &f.req,
            Method::PUT,
            "/v1/entries/new-checkout?app=billing&env=prod",
            Some(json!({"kind": "flag", "value": {"state": "ENABLED",
                "variants": {"on": true, "off": false}, "defaultVariant": "on"}})),
        )
        .await;
    f.requested(&r);
    // A change set mixing dev and prod: one request for the whole set.
    let r = f
        .as_(
            &admin,
            Method::POST,
            "/v1/changes",
            Some(json!({"message": "both", "entries": [
                {"app": "billing", "env": "dev", "key": "mixed", "value": 1},
                {"app": "billing", "env": "prod", "key": "mixed", "value": 2}]})),
        )
        .await;
    let mixed = f.requested(&r);
    assert_eq!(
        f.t.get("/v1/entries/mixed?app=billing&env=dev")
            .await
            .status,
        StatusCode::NOT_FOUND,
        "the unprotected half waits too"
    );
    let shown = f.t.get(&format!("/v1/changes/{mixed}")).await;
    assert_eq!(
        shown.body["preview"]["entries"].as_array().unwrap().len(),
        2
    );
    assert_eq!(f.view().await, before);
    assert_eq!(
        ids(&f.t.get("/v1/changes?state=pending&env=prod").await).len(),
        6
    );

    // Unprotected writes answer exactly as before.
    let r = f
        .as_(
            &admin,
            Method::PUT,
            "/v1/entries/db?app=billing&env=dev",
            Some(json!({"value": 5})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["changes"][0]["version"], 1);
    assert!(r.headers.get(header::LOCATION).is_none());

    // `apply_at`: approved, it waits as scheduled.
    let r = f
        .as_(
            &f.req,
            Method::PUT,
            "/v1/entries/later?app=billing&env=prod",
            Some(json!({"value": 1, "apply_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    let later = f.requested(&r);
    assert_eq!(f.approve(&f.a1, &later).await.status, StatusCode::OK);
    let r = f.approve(&f.a2, &later).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "scheduled");
    assert_eq!(r.body["apply_at"], "2999-01-01T00:00:00Z");
    assert_eq!(
        f.t.get("/v1/entries/later?app=billing&env=prod")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn editing_after_an_approval_resets_it() {
    let f = fixture().await;
    let id = f.request_pool(json!({"max": 80})).await;
    assert_eq!(f.approve(&f.a1, &id).await.status, StatusCode::OK);
    let edit =
        json!({"entries": [{"app": "billing", "env": "prod", "key": "db", "value": {"max": 90}}]});
    // Only the requester (or an admin) edits.
    assert_eq!(
        f.as_(
            &f.a2,
            Method::PATCH,
            &format!("/v1/changes/{id}"),
            Some(edit.clone())
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let r = f
        .as_(
            &f.req,
            Method::PATCH,
            &format!("/v1/changes/{id}"),
            Some(edit),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "pending");
    assert_eq!(r.body["approvals"], json!([]));
    // a1's approval of the old content no longer counts: a2 alone applies nothing.
    let r = f.approve(&f.a2, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "pending");
    assert_eq!(f.view().await["values"]["db"], json!({"max": 20}));
    // a1 may approve the new content.
    let r = f.approve(&f.a1, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "applied");
    assert_eq!(f.view().await["values"]["db"], json!({"max": 90}));
}

#[tokio::test]
async fn reject_cancel_rebase_force_and_errors() {
    let f = fixture().await;
    let admin = f.t.token.clone();
    // Reject needs a reason; then it is final.
    let id = f.request_pool(json!({"max": 1})).await;
    let reject = format!("/v1/changes/{id}/reject");
    assert_eq!(
        f.as_(&f.a1, Method::POST, &reject, Some(json!({"reason": " "})))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = f
        .as_(
            &f.a1,
            Method::POST,
            &reject,
            Some(json!({"reason": "not now"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "rejected");
    assert_eq!(f.approve(&f.a2, &id).await.status, StatusCode::CONFLICT);

    // Cancel: the requester (not an approver).
    let id = f.request_pool(json!({"max": 2})).await;
    let cancel = format!("/v1/changes/{id}/cancel");
    assert_eq!(
        f.as_(&f.a1, Method::POST, &cancel, None).await.status,
        StatusCode::FORBIDDEN
    );
    let r = f.as_(&f.req, Method::POST, &cancel, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "cancelled");

    // Rebase a pending request: pending again.
    let id = f.request_pool(json!({"max": 3})).await;
    let r = f
        .as_(
            &f.req,
            Method::POST,
            &format!("/v1/changes/{id}/rebase"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "pending");

    // Force: admins only, with a reason.
    let approve = format!("/v1/changes/{id}/approve");
    let force = |reason: Option<&str>| json!({"force": true, "reason": reason});
    assert_eq!(
        f.as_(&f.a1, Method::POST, &approve, Some(force(Some("incident"))))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        f.as_(&admin, Method::POST, &approve, Some(force(None)))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = f
        .as_(
            &admin,
            Method::POST,
            &approve,
            Some(force(Some("incident 4711"))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "applied");
    assert_eq!(r.body["forced"], true);
    assert_eq!(f.view().await["values"]["db"], json!({"max": 3}));

    // Unknown ids, a bad query.
    f.t.get("/v1/changes/chg_nope")
        .await
        .assert_problem(404, "not_found", None);
    assert_eq!(
        f.approve(&f.a1, "chg_nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.t.get("/v1/changes?state=approved").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        f.t.get("/v1/changes?limit=0").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(ids(&f.t.get("/v1/changes?limit=1").await).len(), 1);
}

/// The bypass through the environment's own policy: unprotecting prod (or
/// lowering its approvals, naming approvers) is itself a request needing
/// prod's approvals, by admins; prod stays protected and keeps gating writes
/// until it applies.
#[tokio::test]
async fn changing_the_environments_policy_to_unprotected_is_a_request() {
    let f = fixture().await;
    let adm1 = token(&f.t, "adm1", "admin", None, "*").await;
    let adm2 = token(&f.t, "adm2", "admin", None, "*").await;
    let before = f.t.get("/v1/envs/prod").await.body;
    let r =
        f.t.call(
            Method::PATCH,
            "/v1/envs/prod",
            Some(json!({"protected": false})),
        )
        .await;
    let id = f.requested(&r);
    assert_eq!(f.t.get("/v1/envs/prod").await.body, before);
    // prod still gates entry writes.
    f.request_pool(json!({"max": 99})).await;
    // Every policy field is gated; the description alone is not.
    for body in [
        json!({"required_approvals": 0}),
        json!({"auto_approve": true}),
        json!({"approvers": ["user:mallory"]}),
        json!({"strict_flags": true, "description": "x"}),
    ] {
        let r = f.t.call(Method::PATCH, "/v1/envs/prod", Some(body)).await;
        f.requested(&r);
    }
    let r =
        f.t.call(
            Method::PATCH,
            "/v1/envs/prod",
            Some(json!({"description": "Production"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["revision"].is_i64(), "{}", r.body);
    let now = f.t.get("/v1/envs/prod").await.body;
    assert_eq!(
        (
            &now["protected"],
            &now["required_approvals"],
            &now["approvers"]
        ),
        (&json!(true), &json!(2), &json!([]))
    );
    // A bad approver is refused, naming it; nothing is requested.
    let pending = ids(&f.t.get("/v1/changes?state=pending").await).len();
    f.t.call(
        Method::PATCH,
        "/v1/envs/prod",
        Some(json!({"approvers": ["role:admin", "group:ops"]})),
    )
    .await
    .assert_problem(400, "invalid", Some("approvers[1]"));
    assert_eq!(
        ids(&f.t.get("/v1/changes?state=pending").await).len(),
        pending
    );

    // The preview shows prod's settings before and after.
    let shown = f.t.get(&format!("/v1/changes/{id}")).await.body;
    let env = &shown["preview"]["environment"];
    assert_eq!(env["name"], "prod");
    assert_eq!(env["before"]["protected"], true);
    assert_eq!(env["after"]["protected"], false);
    assert_eq!(env["changed"], json!(["protected"]));
    assert_eq!(env["base_revision"], before["revision"]);
    assert_ne!(env["current_revision"], env["base_revision"]);

    // Operators of prod may not approve a policy change; the requester
    // (the bootstrap admin) neither.
    let r = f.approve(&f.a1, &id).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("admin role"),
        "{}",
        r.body
    );
    assert_eq!(
        f.approve(&f.t.token, &id).await.status,
        StatusCode::FORBIDDEN
    );
    // Two admins approve: the description moved meanwhile, so it conflicts
    // and prod stays protected; rebased and approved again, it applies.
    assert_eq!(f.approve(&adm1, &id).await.status, StatusCode::OK);
    let r = f.approve(&adm2, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "conflicted");
    assert_eq!(f.t.get("/v1/envs/prod").await.body["protected"], true);
    let r =
        f.t.call(Method::POST, &format!("/v1/changes/{id}/rebase"), None)
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(f.approve(&adm1, &id).await.status, StatusCode::OK);
    let r = f.approve(&adm2, &id).await;
    assert_eq!(r.body["state"], "applied", "{}", r.body);
    let prod = f.t.get("/v1/envs/prod").await.body;
    assert_eq!(prod["protected"], false);
    assert_eq!(prod["description"], "Production");
    // prod is open now: a write answers 200.
    let r = f
        .as_(
            &f.req,
            Method::PUT,
            "/v1/entries/db?app=billing&env=prod",
            Some(json!({"value": {"max": 30}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// An environment's approvers narrow who may approve: prod names one user.
#[tokio::test]
async fn approvers_name_who_may_approve() {
    let f = fixture().await;
    // A user with operator rights in prod, a viewer of staging, and their
    // login token.
    let r =
        f.t.call(
            Method::POST,
            "/v1/users",
            Some(json!({"name": "ann", "password": "correct horse battery",
                "bindings": [{"role": "operator", "app": "*", "env": "prod"},
                    {"role": "viewer", "app": "*", "env": "staging"}]})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r =
        f.t.call(
            Method::POST,
            "/v1/login",
            Some(json!({"name": "ann", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ann = r.body["token"].as_str().unwrap().to_owned();
    // Naming approvers on gated prod is itself a request; staging is open.
    let r =
        f.t.call(
            Method::PATCH,
            "/v1/envs/staging",
            Some(
                json!({"protected": true, "required_approvals": 1, "auto_approve": false,
                "approvers": ["user:ann"]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r =
        f.t.call(
            Method::PUT,
            "/v1/entries/db?app=billing&env=staging",
            Some(json!({"value": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        (&r.body["required"], &r.body["environments"]),
        (&json!(1), &json!(["staging"]))
    );
    let id = r.body["change_id"].as_str().unwrap().to_owned();
    // An operator token of staging is not ann.
    let op = token(&f.t, "op", "operator", None, "staging").await;
    let r = f.approve(&op, &id).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("staging is approved only by user:ann"),
        "{}",
        r.body
    );
    // ann may not write in staging: the list never widens.
    let r = f.approve(&ann, &id).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("write access"),
        "{}",
        r.body
    );
    // With a binding there, she approves and it applies.
    let r =
        f.t.call(
            Method::PATCH,
            "/v1/users/ann",
            Some(json!({"bindings": [{"role": "operator", "app": "*", "env": "*"}]})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = f.approve(&ann, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "applied");
}

#[tokio::test]
async fn a_policy_change_can_wait_for_its_time_and_creating_takes_none() {
    let f = fixture().await;
    let adm1 = token(&f.t, "adm1", "admin", None, "*").await;
    let adm2 = token(&f.t, "adm2", "admin", None, "*").await;
    let r =
        f.t.call(
            Method::PATCH,
            "/v1/envs/prod",
            Some(json!({"strict_flags": true, "apply_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    let id = f.requested(&r);
    assert_eq!(f.approve(&adm1, &id).await.status, StatusCode::OK);
    let r = f.approve(&adm2, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["state"], &r.body["apply_at"]),
        (&json!("scheduled"), &json!("2999-01-01T00:00:00Z"))
    );
    assert_eq!(f.t.get("/v1/envs/prod").await.body["strict_flags"], false);

    // A new environment is created at once: apply_at is refused, nothing created.
    f.t.call(
        Method::POST,
        "/v1/envs",
        Some(json!({"name": "later", "apply_at": "2999-01-01T00:00:00Z"})),
    )
    .await
    .assert_problem(400, "invalid", Some("apply_at"));
    assert_eq!(
        f.t.get("/v1/envs/later").await.status,
        StatusCode::NOT_FOUND
    );
}
