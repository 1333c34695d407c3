//! Secrets through the service: roles, audit, references, rotation, rekey.

use std::sync::Arc;

use cairn_core::keys::MasterKey;
use cairn_core::secrets::{NewValue, Plaintext, VersionState};
use cairn_core::{ChangeItem, Error, Options, Origin, Principal, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::{AuditFilter, Binding, Role, SecretPolicy, Store};
use cairn_store_sqlite::SqliteStore;
use serde_json::json;

#[path = "secrets/rotation.rs"]
mod rotation;

const CANARY: &str = "canary-7f3a9c-plaintext";

pub(crate) fn who(role: Role) -> Principal {
    Principal {
        actor: format!("test:{}", role.as_str()),
        name: role.as_str().into(),
        bindings: vec![Binding {
            role,
            app: "*".into(),
            env: "*".into(),
        }],
    }
}

async fn service(path: &std::path::Path, key: MasterKey, previous: Vec<MasterKey>) -> Arc<Service> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).await.unwrap());
    let opts = Options {
        master_key: key,
        previous_master_keys: previous,
        ..Options::default()
    };
    Service::open(store, opts).await.unwrap().0
}

fn policy(grace_days: i32) -> SecretPolicy {
    SecretPolicy {
        rotation_days: Some(30),
        rotation_seconds: None,
        grace_days,
        generator: Some("random:24:alnum".into()),
        hook_secret: None,
    }
}

#[tokio::test]
async fn roles_audit_references_rotation_and_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let (key_a, _) = MasterKey::generate();
    let svc = service(&path, key_a.clone(), vec![]).await;
    let o = Origin::default();
    let (admin, op, viewer) = (who(Role::Admin), who(Role::Operator), who(Role::Viewer));
    let g = Scope::global();
    svc.config()
        .create_app(&admin, &o, "shop", "")
        .await
        .unwrap();

    // Operators create; nobody but admins reads the value.
    let created = svc
        .secrets()
        .create_secret(
            &op,
            &o,
            &g,
            "db/password",
            NewValue::Given(Plaintext::new(CANARY)),
            policy(7),
            "new",
        )
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    for p in [&op, &viewer] {
        let e = svc
            .secrets()
            .get_secret(p, &o, &g, "db/password", None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    }
    let e = svc
        .secrets()
        .create_secret(&viewer, &o, &g, "x", NewValue::Generate, policy(1), "no")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    let (v, value) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "db/password", None)
        .await
        .unwrap();
    assert_eq!((v, value.as_str().unwrap()), (1, CANARY));

    // Metadata for viewers; no value in it.
    let list = svc.secrets().secrets(&viewer).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(!serde_json::to_string(&list).unwrap().contains(CANARY));

    // References: a missing secret is refused; an existing one is fine.
    let item = |name: &str| ChangeItem {
        scope: Scope::new(Some("shop"), None),
        key: "db".into(),
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        value: Some(json!({"password": {"$secret": name}, "host": "db"})),
        expected_version: None,
    };
    let e = svc
        .config()
        .write_entries(&op, &o, "ref", vec![item("nope")], None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnknownReference { .. }), "{e:?}");
    svc.config()
        .write_entries(&op, &o, "ref", vec![item("db/password")], None)
        .await
        .unwrap();

    // Resolution: admins get plaintext, viewers the reference unchanged.
    let resolved = svc
        .secrets()
        .resolve_with_secrets(&admin, &o, "shop", "prod")
        .await
        .unwrap()
        .values;
    assert_eq!(resolved["db"]["password"], CANARY);
    let resolved = svc
        .secrets()
        .resolve_with_secrets(&viewer, &o, "shop", "prod")
        .await
        .unwrap()
        .values;
    assert_eq!(
        resolved["db"]["password"],
        json!({"$secret": "db/password"})
    );
    let sdk = Principal {
        actor: "test:sdk".into(),
        name: "sdk".into(),
        bindings: vec![Binding {
            role: Role::Sdk,
            app: "shop".into(),
            env: "prod".into(),
        }],
    };
    let resolved = svc
        .secrets()
        .resolve_with_secrets(&sdk, &o, "shop", "prod")
        .await
        .unwrap()
        .values;
    assert_eq!(resolved["db"]["password"], CANARY);

    // Deleting a referenced secret is refused unless forced.
    let e = svc
        .secrets()
        .delete_secret(&op, &o, &g, "db/password", false, "rm")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");

    // Rotation: the previous version stays readable during the grace period.
    let rotated = svc
        .secrets()
        .rotate_secret(&op, &o, &g, "db/password", NewValue::Generate, "rotate")
        .await
        .unwrap();
    assert_eq!(rotated.version, 2);
    let (_, v2) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "db/password", None)
        .await
        .unwrap();
    assert_eq!(v2.as_bytes().len(), 24);
    let (_, v1) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "db/password", Some(1))
        .await
        .unwrap();
    assert_eq!(v1.as_str().unwrap(), CANARY);
    let info = svc
        .secrets()
        .secret_info(&viewer, &g, "db/password")
        .await
        .unwrap();
    let states: Vec<_> = info.versions.iter().map(|v| v.state).collect();
    assert_eq!(
        states,
        vec![VersionState::PreviousInGrace, VersionState::Current]
    );

    // With no grace, the previous version retires at once.
    svc.secrets()
        .create_secret(&op, &o, &g, "api/key", NewValue::Generate, policy(0), "new")
        .await
        .unwrap();
    svc.secrets()
        .rotate_secret(&op, &o, &g, "api/key", NewValue::Generate, "rotate")
        .await
        .unwrap();
    let e = svc
        .secrets()
        .get_secret(&admin, &o, &g, "api/key", Some(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Gone(_)), "{e:?}");

    // The audit log has the reads, with a keyed hash, never the value.
    let audit = svc.store().audit(&AuditFilter::default()).await.unwrap();
    let reads: Vec<_> = audit.iter().filter(|r| r.action == "secret.read").collect();
    assert!(reads.len() >= 4, "{reads:?}");
    let hash = svc.secrets().secret_value_hash(&Plaintext::new(CANARY));
    assert!(reads
        .iter()
        .any(|r| r.detail["value_hmac"] == hash.as_str()));
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(CANARY));
    drop(svc);

    // Rekey: a new master key, the old one as previous; reads keep working
    // before and after; after the rekey the old key is not needed.
    let (key_b, _) = MasterKey::generate();
    let svc = service(&path, key_b.clone(), vec![key_a.clone()]).await;
    let (_, v1) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "db/password", Some(1))
        .await
        .unwrap();
    assert_eq!(v1.as_str().unwrap(), CANARY);
    let e = svc
        .secrets()
        .rekey(&op, &o, Some(&key_a), "rekey")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    let rekeyed = svc
        .secrets()
        .rekey(&admin, &o, Some(&key_a), "rekey")
        .await
        .unwrap();
    assert_eq!((rekeyed.rewrapped, rekeyed.unchanged), (4, 0));
    drop(svc);
    let svc = service(&path, key_b, vec![]).await;
    let (_, v1) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "db/password", Some(1))
        .await
        .unwrap();
    assert_eq!(v1.as_str().unwrap(), CANARY);
    let (_, cur) = svc
        .secrets()
        .get_secret(&admin, &o, &g, "db/password", None)
        .await
        .unwrap();
    assert_eq!(cur, v2);

    // Forced delete works; the raw database never holds the canary.
    svc.secrets()
        .delete_secret(&op, &o, &g, "db/password", true, "rm")
        .await
        .unwrap();
    // Re-created: numbering continues; the versions of its former life are retired.
    let again = svc
        .secrets()
        .create_secret(
            &op,
            &o,
            &g,
            "db/password",
            NewValue::Given(Plaintext::new("new-life")),
            policy(7),
            "again",
        )
        .await
        .unwrap();
    assert_eq!(again.version, 3);
    let info = svc
        .secrets()
        .secret_info(&viewer, &g, "db/password")
        .await
        .unwrap();
    let states: Vec<_> = info.versions.iter().map(|v| v.state).collect();
    assert_eq!(
        states,
        vec![
            VersionState::Retired,
            VersionState::Retired,
            VersionState::Current
        ]
    );
    let e = svc
        .secrets()
        .get_secret(&admin, &o, &g, "db/password", Some(2))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Gone(_)), "{e:?}");
    drop(svc);
    for f in ["cairn.db", "cairn.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(f)) {
            assert!(
                !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
                "{f}"
            );
        }
    }
}
