//! The typed client against a real server: the server's own wire types
//! (`cairn_api`) round-trip over the socket — entries and catalog here;
//! identity (tokens, users, login, audit pages), secrets (rekey across a
//! master-key change), webhooks (a delivery by the real dispatcher) and flag
//! reads (OFREP single and bulk, list, stale, lint, flagd document) in the
//! submodules. Expected values are written out by hand.

mod flags;
mod identity;
mod secrets;
mod webhooks;

use cairn_client::cairn_api::{
    ChangeEntryBody, ChangeSetBody, CreateAppBody, EnvBody, RollbackBody, SetEntryBody,
};
use cairn_client::{At, ClientError};
use cairn_model::{EntryKind, MergeMode, Scope};
use serde_json::{json, Value};

use crate::harness::{any_port, Admin, Data, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_entry_calls_round_trip_the_servers_wire_types() {
    let data = Data::new();
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    admin.app("shop").await;
    let c = &admin.0;
    let shop = At {
        app: Some("shop"),
        env: None,
    };
    let put = |value, expected_version| SetEntryBody {
        value,
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        message: "typed".into(),
        expected_version,
        apply_at: None,
    };
    let r = c
        .put_entry(shop, "db/pool", &put(json!({"max": 5}), Some(0)))
        .await
        .unwrap()
        .written()
        .expect("not gated");
    assert_eq!(r.changes.len(), 1);
    assert_eq!(
        (r.changes[0].version, r.changes[0].previous_version),
        (1, 0)
    );
    assert_eq!(r.changes[0].scope, Scope::new(Some("shop"), None));
    assert!(r.warnings.is_empty());
    // Compare-and-set refused: 409, typed as the client's error.
    let err = c
        .put_entry(shop, "db/pool", &put(json!({"max": 6}), Some(0)))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    // A flag with a rule that can never work: its warning arrives typed.
    let flag = SetEntryBody {
        value: json!({"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a",
                      "targeting": {"starts_with": [{"var": "email"}]}}),
        kind: EntryKind::Flag,
        merge: MergeMode::Replace,
        message: String::new(),
        expected_version: None,
        apply_at: None,
    };
    let r = c
        .put_entry(shop, "signupFlow", &flag)
        .await
        .unwrap()
        .written()
        .expect("not gated");
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert_eq!(
        (r.warnings[0].code.as_str(), r.warnings[0].key.as_str()),
        ("argument-count", "signupFlow")
    );
    // A change set, one revision for both entries.
    let entry = |key: &str, value| ChangeEntryBody {
        app: Some("shop".into()),
        env: Some("prod".into()),
        key: key.into(),
        value: Some(value),
        delete: false,
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        expected_version: None,
    };
    let set = ChangeSetBody {
        message: "both".into(),
        entries: vec![entry("a", json!(1)), entry("b", json!(2))],
        apply_at: None,
    };
    let r = c.change_set(&set).await.unwrap().written().unwrap();
    assert_eq!(r.changes.len(), 2);
    let keys: Vec<&str> = r.changes.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    // Rollback and delete.
    c.put_entry(shop, "db/pool", &put(json!({"max": 9}), Some(1)))
        .await
        .unwrap();
    let rb = RollbackBody {
        version: 1,
        message: "back".into(),
        expected_version: Some(2),
        apply_at: None,
    };
    let r = c
        .rollback(shop, "db/pool", &rb)
        .await
        .unwrap()
        .written()
        .unwrap();
    assert_eq!(
        (r.changes[0].version, r.changes[0].previous_version),
        (3, 2)
    );
    let e = c.entry(shop, "db/pool", None, None).await.unwrap();
    assert_eq!(
        (e.version, e.revision, e.value, e.kind, e.merge),
        (
            3,
            r.revision,
            Some(json!({"max": 5})),
            EntryKind::Config,
            MergeMode::Merge
        )
    );
    assert_eq!(
        (e.scope, e.key, e.message),
        (
            Scope::new(Some("shop"), None),
            "db/pool".to_owned(),
            "back".to_owned()
        )
    );
    let r = c
        .delete_entry(shop, "db/pool", "gone", Some(3))
        .await
        .unwrap()
        .written()
        .unwrap();
    assert_eq!(r.changes[0].version, 4);
    let err = c.entry(shop, "db/pool", None, None).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    // The past stays readable, by version.
    let v2 = c.entry(shop, "db/pool", Some(2), None).await.unwrap();
    assert_eq!((v2.version, v2.value), (2, Some(json!({"max": 9}))));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_catalog_calls_round_trip() {
    let data = Data::new();
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    let c = &admin.0;
    let head = |v: &serde_json::Value| v["revision"].as_i64().unwrap_or(-1);
    let r1 = c
        .create_app(&CreateAppBody {
            name: "shop".into(),
            description: "the shop".into(),
        })
        .await
        .unwrap();
    let qa = EnvBody {
        name: Some("qa".into()),
        protected: Some(true),
        required_approvals: Some(2),
        ..EnvBody::default()
    };
    let r2 = c.create_env(&qa).await.unwrap();
    assert_eq!(r2.revision, r1.revision + 1);
    // A description is written at once (200: a `Revised`) ...
    let described = EnvBody {
        description: Some("quality".into()),
        ..EnvBody::default()
    };
    let r3 = c
        .update_env("qa", &described)
        .await
        .unwrap()
        .written()
        .expect("written at once");
    assert_eq!(r3.revision, r2.revision + 1);
    // ... a change of gated qa's policy becomes a change request (202).
    let strict = EnvBody {
        strict_flags: Some(true),
        ..EnvBody::default()
    };
    let out = c.update_env("qa", &strict).await.unwrap();
    let requested = out.requested().expect("a change request").clone();
    assert_eq!(
        (requested.required, requested.environments.clone()),
        (2, vec!["qa".to_owned()])
    );
    assert!(requested.change_id.starts_with("chg_"));
    let env: serde_json::Value = c.get("/v1/envs/qa", &[]).await.unwrap();
    assert_eq!(
        (
            &env["protected"],
            &env["required_approvals"],
            &env["strict_flags"],
            &env["description"]
        ),
        (&json!(true), &json!(2), &json!(false), &json!("quality"))
    );
    assert_eq!(head(&env), r3.revision);
    // An environment that exists already: 409, nothing changed.
    let err = c.create_env(&qa).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    server.stop();
}

/// The problem code of an API error (OFREP's `errorCode` included).
pub fn code(e: &ClientError) -> &str {
    match e {
        ClientError::Api { problem, .. } => &problem.code,
        ClientError::Transport(_) => "",
    }
}

pub fn field(e: &ClientError) -> Option<&str> {
    match e {
        ClientError::Api { problem, .. } => problem.field.as_deref(),
        ClientError::Transport(_) => None,
    }
}

pub fn rev(v: &Value) -> i64 {
    v["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no revision in {v}"))
}
