//! Tokens, users, login and the audit log, typed.

use cairn_client::cairn_api::{
    AuditQuery, Binding, CreateTokenBody, CreateUserBody, LoginBody, Role, UpdateUserBody,
};
use cairn_client::Client;
use serde_json::{json, Value};

use super::{field, rev};
use crate::harness::{any_port, Admin, Data, TestServer};

const PW: &str = "correct horse battery";
const PW2: &str = "staple battery horse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_identity_calls_round_trip() {
    let data = Data::new();
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    let c = &admin.0;
    admin.app("shop").await;

    // Tokens: created (the secret once), listed (never the hash), revoked.
    let expires: chrono::DateTime<chrono::Utc> = "2099-01-01T00:00:00Z".parse().unwrap();
    let created = c
        .create_token(&CreateTokenBody {
            name: "ci".into(),
            role: Role::Viewer,
            app: Some("shop".into()),
            env: None,
            expires_at: Some(expires),
        })
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tok_"), "{created}");
    // `cairn_<hex of the id>_<secret>`.
    let hex = id.strip_prefix("tok_").unwrap();
    assert!(secret.starts_with(&format!("cairn_{hex}_")), "{created}");
    let tokens = c.tokens().await.unwrap();
    let listed = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} in {tokens}"));
    for (k, want) in [
        ("name", json!("ci")),
        ("role", json!("viewer")),
        ("app", json!("shop")),
        ("env", json!("*")),
        ("expires_at", json!("2099-01-01T00:00:00Z")),
        ("revoked_at", Value::Null),
    ] {
        assert_eq!(listed[k], want, "{k} of {listed}");
    }
    assert!(listed.get("hash").is_none(), "{listed}");
    let viewer = Client::new(&server.url(), Some(secret)).unwrap();
    let err = viewer.users().await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    let revoked = c.revoke_token(&id).await.unwrap();
    assert_eq!(revoked.revision, rev(&created) + 1);
    let err = viewer.secrets().await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    let err = c.revoke_token("tok_nosuch").await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // Users: created, listed, rebound and disabled, re-enabled with a new password.
    let viewer_binding = Binding {
        role: Role::Viewer,
        app: "shop".into(),
        env: "*".into(),
    };
    let operator_binding = Binding {
        role: Role::Operator,
        app: "shop".into(),
        env: "prod".into(),
    };
    let alice = |bindings| CreateUserBody {
        name: "alice".into(),
        password: PW.into(),
        bindings,
    };
    let r1 = c
        .create_user(&alice(vec![viewer_binding.clone()]))
        .await
        .unwrap();
    let err = c
        .create_user(&alice(vec![viewer_binding.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    let bob = |password: &str, bindings| CreateUserBody {
        name: "bob".into(),
        password: password.into(),
        bindings,
    };
    let err = c
        .create_user(&bob("short", vec![viewer_binding.clone()]))
        .await
        .unwrap_err();
    assert_eq!((err.status(), field(&err)), (Some(400), Some("password")));
    let err = c.create_user(&bob(PW, vec![])).await.unwrap_err();
    assert_eq!((err.status(), field(&err)), (Some(400), Some("bindings")));
    let users = c.users().await.unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(
        (
            users[0].name.as_str(),
            &users[0].bindings,
            users[0].disabled,
            users[0].password_hash.as_str()
        ),
        ("alice", &vec![viewer_binding.clone()], false, "")
    );
    let both = vec![viewer_binding.clone(), operator_binding.clone()];
    let r2 = c
        .update_user(
            "alice",
            &UpdateUserBody {
                bindings: Some(both.clone()),
                disabled: Some(true),
                ..UpdateUserBody::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r2.revision, r1.revision + 1);
    let users = c.users().await.unwrap();
    assert_eq!((&users[0].bindings, users[0].disabled), (&both, true));
    let login = |password: &str, ttl_seconds| LoginBody {
        name: "alice".into(),
        password: password.into(),
        ttl_seconds,
    };
    let err = c.login(&login(PW, None)).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "a disabled user: {err}");
    let r3 = c
        .update_user(
            "alice",
            &UpdateUserBody {
                password: Some(PW2.into()),
                disabled: Some(false),
                ..UpdateUserBody::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r3.revision, r2.revision + 1);
    let err = c
        .update_user(
            "nobody",
            &UpdateUserBody {
                disabled: Some(true),
                ..UpdateUserBody::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // Login: the old password no longer works, the new one does, for its TTL.
    let err = c.login(&login(PW, None)).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    let err = c.login(&login(PW2, Some(8 * 86_400))).await.unwrap_err();
    assert_eq!((err.status(), field(&err)), (Some(400), Some("ttl")));
    let session = c.login(&login(PW2, Some(3600))).await.unwrap();
    let as_alice = Client::new(
        &server.url(),
        Some(session["token"].as_str().unwrap().to_owned()),
    )
    .unwrap();
    assert_eq!(as_alice.secrets().await.unwrap(), json!([]));
    let err = as_alice.users().await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    let tokens = c.tokens().await.unwrap();
    let login_token = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == session["id"])
        .unwrap_or_else(|| panic!("{session} in {tokens}"));
    assert_eq!(login_token["user"], "alice");

    // The audit log, a page at a time: two updates, one per page.
    let updates = AuditQuery {
        action: Some("user.update".into()),
        limit: Some(1),
        ..AuditQuery::default()
    };
    let first = c.audit(&updates).await.unwrap();
    assert_eq!(first.records.len(), 1);
    let seq = first.records[0].seq;
    assert_eq!(first.next, Some(seq));
    let second = c
        .audit(&AuditQuery {
            after: first.next,
            ..updates.clone()
        })
        .await
        .unwrap();
    assert_eq!(second.next, None);
    let pages: Vec<(&str, Option<i64>, &Value)> = first
        .records
        .iter()
        .chain(&second.records)
        .map(|r| (r.action.as_str(), r.revision, &r.detail["user"]))
        .collect();
    assert_eq!(
        pages,
        [
            ("user.update", Some(r2.revision), &json!("alice")),
            ("user.update", Some(r3.revision), &json!("alice"))
        ]
    );
    let future = AuditQuery {
        since: Some(expires),
        ..AuditQuery::default()
    };
    let none = c.audit(&future).await.unwrap();
    assert_eq!((none.records.len(), none.next), (0, None));
    let err = c
        .audit(&AuditQuery {
            limit: Some(0),
            ..AuditQuery::default()
        })
        .await
        .unwrap_err();
    assert_eq!((err.status(), field(&err)), (Some(400), Some("limit")));

    // The chain verifies, every record of it.
    let all = c
        .audit(&AuditQuery {
            limit: Some(10_000),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.next, None);
    let verified = c.verify_audit().await.unwrap();
    assert_eq!(
        verified,
        json!({"ok": true, "records": all.records.len(), "first_bad": null})
    );
    server.stop();
}
