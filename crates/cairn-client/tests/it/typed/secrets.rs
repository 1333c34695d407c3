//! Secrets, typed: create, list, reveal, rotate, rekey under a new master
//! key, delete.

use cairn_client::cairn_api::{
    AuditQuery, CreateSecretBody, RekeyBody, RevealedSecret, RotateSecretBody,
};
use cairn_client::At;
use cairn_core::keys::MasterKey;
use serde_json::{json, Value};

use super::{field, rev};
use crate::harness::{any_port, Admin, Data, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_secret_calls_round_trip_and_rekey_across_a_master_key_change() {
    const FIRST: &str = "first-value-0123";
    const SECOND: &str = "second-value-4567";
    let (key_a, key_a_text) = MasterKey::generate();
    let (key_b, _) = MasterKey::generate();
    let mut data = Data::new();
    data.opts.master_key = key_a.clone();
    let server = TestServer::start(&data, any_port());
    let token = server.token.clone().unwrap();
    let admin = Admin::new(&server.url(), &token);
    let c = &admin.0;
    admin.app("shop").await;
    let shop = At {
        app: Some("shop"),
        env: None,
    };
    let name = "db/password";

    let created = c
        .create_secret(&CreateSecretBody {
            name: name.into(),
            app: Some("shop".into()),
            value: Some(FIRST.into()),
            rotation_days: Some(30),
            grace_days: 2,
            message: "typed".into(),
            ..CreateSecretBody::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (&created["name"], &created["version"]),
        (&json!(name), &json!(1))
    );
    let listed = c.secrets().await.unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let s = &listed[0];
    assert_eq!(
        (&s["name"], &s["app"], &s["env"], &s["current_version"]),
        (&json!(name), &json!("shop"), &Value::Null, &json!(1))
    );
    assert_eq!(
        s["policy"],
        json!({"rotation_days": 30, "grace_days": 2, "generator": null})
    );
    assert!(s.get("value").is_none(), "{s}");
    let revealed = |r: RevealedSecret| (r.name, r.app, r.env, r.version, r.value);
    let got = c.reveal_secret(shop, name, None).await.unwrap();
    assert_eq!(
        revealed(got),
        (name.into(), Some("shop".into()), None, 1, FIRST.into())
    );
    // Another scope does not see it.
    let err = c.secret(At::default(), name).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    let rotated = c
        .rotate_secret(
            shop,
            name,
            &RotateSecretBody {
                value: Some(SECOND.into()),
                message: "rotate".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (&rotated["version"], rev(&rotated)),
        (&json!(2), rev(&created) + 1)
    );
    let info = c.secret(shop, name).await.unwrap();
    let states: Vec<(&Value, &Value, &Value)> = info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (&v["version"], &v["state"], &v["kek_id"]))
        .collect();
    let a = json!(key_a.id());
    assert_eq!(
        states,
        [
            (&json!(1), &json!("previous_in_grace"), &a),
            (&json!(2), &json!("current"), &a)
        ]
    );
    let got = c.reveal_secret(shop, name, None).await.unwrap();
    assert_eq!((got.version, got.value.as_str()), (2, SECOND));
    let got = c.reveal_secret(shop, name, Some(1)).await.unwrap();
    assert_eq!((got.version, got.value.as_str()), (1, FIRST));

    // A new master key: the old one given to the rekey, which re-wraps both versions.
    server.stop();
    data.opts.master_key = key_b.clone();
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), &token);
    let c = &admin.0;
    let rekeyed = c
        .rekey(&RekeyBody {
            old_key: Some(key_a_text),
            message: "new master key".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        rekeyed,
        json!({"kek_id": key_b.id(), "rewrapped": 2, "unchanged": 0, "skipped": 0})
    );
    let got = c.reveal_secret(shop, name, Some(1)).await.unwrap();
    assert_eq!(got.value, FIRST);
    let err = c
        .rekey(&RekeyBody {
            old_key: Some("not a key".into()),
            message: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!((err.status(), field(&err)), (Some(400), Some("old_key")));

    // Delete: a reason is required; then it is gone.
    let err = c.delete_secret(shop, name, " ", false).await.unwrap_err();
    assert_eq!((err.status(), field(&err)), (Some(400), Some("message")));
    let deleted = c.delete_secret(shop, name, "gone", false).await.unwrap();
    let audit = c
        .audit(&AuditQuery {
            action: Some("secret.delete".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let recorded: Vec<(Option<i64>, Option<&str>, &str)> = audit
        .records
        .iter()
        .map(|r| (r.revision, r.key.as_deref(), r.message.as_str()))
        .collect();
    assert_eq!(recorded, [(Some(deleted.revision), Some(name), "gone")]);
    let err = c.secret(shop, name).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(c.secrets().await.unwrap(), json!([]));
    server.stop();
}
