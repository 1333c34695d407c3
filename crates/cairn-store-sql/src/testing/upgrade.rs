//! The upgrade fixture: what a database written before migration 0010 (text
//! timestamps on SQLite, `timestamptz` on PostgreSQL) holds, as every read of
//! the [`Store`] must return it after the upgrade.
//!
//! Each backend's upgrade test applies its migrations up to 0009, inserts
//! its `tests/fixtures/before_0010.sql` (the same rows, written the way that
//! backend stored them), opens the store (which applies 0010 and later) and
//! calls [`check`]. The expected values below are written by hand from the
//! fixture, not read from a store. The times are chosen to catch a wrong
//! conversion: a microsecond after a whole second, half a second before the
//! epoch, the epoch itself, the last microsecond of 2999.

use std::time::Duration;

use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::testing::{commit, put, TEST_AUDIT_KEY};
use cairn_store::{
    chain, App, AppliedState, AuditFilter, AuditHead, AuditRecord, Binding, Catalog,
    DeliveryAttempt, DeliveryRecord, DeliveryStatus, EntryVersion, Environment, FlagCount, Head,
    Role, SchemaRecord, SealedSecret, SecretPolicy, SecretRecord, SecretVersion, Store,
    TokenRecord, UserRecord, WebhookRecord,
};
use chrono::{DateTime, Utc};
use serde_json::json;

/// The times of the fixture, as the SQLite fixture spells them.
pub const T_APP: &str = "2024-02-29T12:34:56.789012Z";
pub const T_ENV: &str = "2024-03-01T00:00:00.000001Z";
pub const T_SCHEMA: &str = "2024-03-01T00:00:00.000002Z";
pub const T_ROTATED: &str = "2024-06-15T08:00:00.123456Z";
pub const T_BEFORE_EPOCH: &str = "1969-12-31T23:59:59.500000Z";
pub const T_EPOCH: &str = "1970-01-01T00:00:00.000000Z";
pub const T_FAR: &str = "2999-12-31T23:59:59.999999Z";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a fixture time")
        .with_timezone(&Utc)
}

fn shop_prod() -> Scope {
    Scope::from_stored("shop", "prod")
}

/// The fixture's audit log, sealed with [`TEST_AUDIT_KEY`] (its `mac`s are
/// computed here, from the records, and match the fixtures' literals).
pub fn audit_records() -> Vec<AuditRecord> {
    let unsealed = vec![
        AuditRecord {
            seq: 1,
            revision: Some(1),
            at: t(T_APP),
            actor: "alice".into(),
            action: "app.create".into(),
            app: Some("shop".into()),
            env: None,
            key: None,
            from_version: None,
            to_version: None,
            message: "add shop".into(),
            client_ip: Some("10.0.0.1".into()),
            user_agent: Some("curl/8".into()),
            replica: Some("r1".into()),
            detail: json!({"description": "Shop"}),
            mac: String::new(),
        },
        AuditRecord {
            seq: 2,
            revision: None,
            at: t(T_BEFORE_EPOCH),
            actor: "anonymous".into(),
            action: "auth.denied".into(),
            app: None,
            env: None,
            key: None,
            from_version: None,
            to_version: None,
            message: String::new(),
            client_ip: None,
            user_agent: None,
            replica: None,
            detail: json!({}),
            mac: String::new(),
        },
        AuditRecord {
            seq: 3,
            revision: Some(4),
            at: t(T_EPOCH),
            actor: "alice".into(),
            action: "entry.delete".into(),
            app: Some("shop".into()),
            env: Some("prod".into()),
            key: Some("db.url".into()),
            from_version: Some(1),
            to_version: Some(2),
            message: "drop it".into(),
            client_ip: None,
            user_agent: None,
            replica: Some("r1".into()),
            detail: json!({"checksum": "", "kind": "config", "merge": "merge"}),
            mac: String::new(),
        },
    ];
    let mut prev = String::new();
    unsealed
        .into_iter()
        .map(|mut r| {
            r.mac = chain::record_mac(&TEST_AUDIT_KEY, &prev, &r);
            prev = r.mac.clone();
            r
        })
        .collect()
}

/// The signed head of [`audit_records`].
pub fn audit_head() -> AuditHead {
    let last = audit_records().pop().expect("records");
    AuditHead {
        seq: last.seq,
        signature: chain::head_signature(&TEST_AUDIT_KEY, last.seq, &last.mac),
        mac: last.mac,
    }
}

fn catalog() -> Catalog {
    Catalog {
        apps: vec![App {
            name: "shop".into(),
            description: "Shop".into(),
            created_at: t(T_APP),
            revision: 1,
        }],
        envs: vec![Environment {
            name: "prod".into(),
            description: "Production".into(),
            protected: true,
            required_approvals: 2,
            auto_approve: false,
            strict_flags: true,
            approvers: Vec::new(),
            created_at: t(T_ENV),
            revision: 2,
        }],
        schemas: vec![SchemaRecord {
            app: Some("shop".into()),
            pattern: "db.*".into(),
            version: 1,
            schema: json!({"type": "object"}),
            revision: 2,
            actor: "alice".into(),
            message: "schema".into(),
            created_at: t(T_SCHEMA),
        }],
    }
}

fn entry_versions() -> [EntryVersion; 3] {
    [
        EntryVersion {
            scope: shop_prod(),
            key: "db.url".into(),
            version: 1,
            kind: EntryKind::Config,
            merge: MergeMode::Merge,
            value: Some(json!({"host": "db", "port": 5432})),
            checksum: "sha256:01".into(),
            revision: 3,
            actor: "alice".into(),
            message: "connect the db".into(),
            created_at: t(T_BEFORE_EPOCH),
        },
        EntryVersion {
            scope: shop_prod(),
            key: "db.url".into(),
            version: 2,
            kind: EntryKind::Config,
            merge: MergeMode::Merge,
            value: None,
            checksum: String::new(),
            revision: 4,
            actor: "alice".into(),
            message: "drop it".into(),
            created_at: t(T_EPOCH),
        },
        EntryVersion {
            scope: Scope::global(),
            key: "site.name".into(),
            version: 1,
            kind: EntryKind::Config,
            merge: MergeMode::Replace,
            value: Some(json!("Cairn")),
            checksum: "sha256:02".into(),
            revision: 4,
            actor: "alice".into(),
            message: "drop it".into(),
            created_at: t(T_EPOCH),
        },
    ]
}

fn tokens() -> Vec<TokenRecord> {
    // Ordered by created_at: the one made before the epoch first.
    vec![
        TokenRecord {
            id: "tok_login".into(),
            name: "login".into(),
            hash: "hash-login".into(),
            role: Role::Viewer,
            app: "*".into(),
            env: "*".into(),
            created_at: t(T_BEFORE_EPOCH),
            expires_at: Some(t(T_FAR)),
            revoked_at: None,
            user: Some("alice".into()),
        },
        TokenRecord {
            id: "tok_admin".into(),
            name: "bootstrap".into(),
            hash: "hash-admin".into(),
            role: Role::Admin,
            app: "*".into(),
            env: "*".into(),
            created_at: t(T_APP),
            expires_at: None,
            revoked_at: None,
            user: None,
        },
        TokenRecord {
            id: "tok_sdk".into(),
            name: "shop sdk".into(),
            hash: "hash-sdk".into(),
            role: Role::Sdk,
            app: "shop".into(),
            env: "prod".into(),
            created_at: t(T_ENV),
            expires_at: Some(t(T_FAR)),
            revoked_at: Some(t(T_ROTATED)),
            user: None,
        },
    ]
}

fn users() -> Vec<UserRecord> {
    vec![
        UserRecord {
            name: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            bindings: vec![Binding {
                role: Role::Admin,
                app: "*".into(),
                env: "*".into(),
            }],
            created_at: t(T_APP),
            disabled: false,
        },
        UserRecord {
            name: "bob".into(),
            password_hash: "$argon2id$x".into(),
            bindings: vec![],
            created_at: t(T_ROTATED),
            disabled: true,
        },
    ]
}

fn db_pw() -> SecretRecord {
    SecretRecord {
        scope: shop_prod(),
        name: "db/pw".into(),
        current_version: 2,
        policy: SecretPolicy {
            rotation_days: Some(30),
            rotation_seconds: None,
            grace_days: 7,
            generator: Some("random:32:alnum".into()),
            hook_secret: None,
        },
        created_at: t(T_APP),
        updated_at: t(T_ROTATED),
        revision: 4,
    }
}

fn api_key() -> SecretRecord {
    SecretRecord {
        scope: Scope::global(),
        name: "api/key".into(),
        current_version: 1,
        policy: SecretPolicy {
            rotation_days: None,
            rotation_seconds: Some(3600),
            grace_days: 0,
            generator: None,
            hook_secret: Some("hooks/sign".into()),
        },
        created_at: t(T_BEFORE_EPOCH),
        updated_at: t(T_BEFORE_EPOCH),
        revision: 3,
    }
}

fn db_pw_versions() -> Vec<SecretVersion> {
    vec![
        SecretVersion {
            scope: shop_prod(),
            name: "db/pw".into(),
            version: 1,
            sealed: SealedSecret {
                kek_id: "kek-1".into(),
                wrapped_key: vec![1, 2],
                ciphertext: vec![10, 11],
            },
            created_at: t(T_APP),
            revision: 3,
            actor: "alice".into(),
        },
        SecretVersion {
            scope: shop_prod(),
            name: "db/pw".into(),
            version: 2,
            sealed: SealedSecret {
                kek_id: "kek-2".into(),
                wrapped_key: vec![3, 4],
                ciphertext: vec![12, 13],
            },
            created_at: t(T_ROTATED),
            revision: 4,
            actor: "rotator".into(),
        },
    ]
}

fn webhooks() -> Vec<WebhookRecord> {
    vec![
        WebhookRecord {
            id: "wh_1".into(),
            url: "https://hooks.example.test/cairn".into(),
            events: vec!["entry.changed".into()],
            app: None,
            env: None,
            description: "all changes".into(),
            sealed_secret: SealedSecret {
                kek_id: "kek-1".into(),
                wrapped_key: vec![7],
                ciphertext: vec![8],
            },
            created_at: t(T_APP),
            revision: 1,
            created_seq: 1,
            deleted_at: None,
            deleted_seq: None,
        },
        WebhookRecord {
            id: "wh_2".into(),
            url: "https://old.example.test/x".into(),
            events: vec!["entry.changed".into(), "secret.changed".into()],
            app: Some("shop".into()),
            env: Some("prod".into()),
            description: "old".into(),
            sealed_secret: SealedSecret {
                kek_id: "kek-1".into(),
                wrapped_key: vec![9],
                ciphertext: vec![10],
            },
            created_at: t(T_BEFORE_EPOCH),
            revision: 2,
            created_seq: 2,
            deleted_at: Some(t(T_ENV)),
            deleted_seq: Some(3),
        },
    ]
}

fn delivery_1() -> DeliveryRecord {
    DeliveryRecord {
        id: "d_1".into(),
        webhook_id: "wh_1".into(),
        audit_seq: 1,
        event: "entry.changed".into(),
        payload: "{\"seq\":1}".into(),
        status: DeliveryStatus::Pending,
        attempts: 1,
        attempt_log: vec![DeliveryAttempt {
            at: t(T_ENV),
            status: Some(500),
            error: None,
            duration_ms: 12,
        }],
        next_attempt_at: Some(t(T_ROTATED)),
        created_at: t(T_APP),
        last_attempt_at: Some(t(T_ENV)),
        delivered_at: None,
    }
}

fn delivery_2() -> DeliveryRecord {
    DeliveryRecord {
        id: "d_2".into(),
        webhook_id: "wh_1".into(),
        audit_seq: 3,
        event: "entry.changed".into(),
        payload: "{\"seq\":3}".into(),
        status: DeliveryStatus::Delivered,
        attempts: 1,
        attempt_log: vec![DeliveryAttempt {
            at: t(T_ROTATED),
            status: Some(200),
            error: None,
            duration_ms: 3,
        }],
        next_attempt_at: None,
        created_at: t(T_ENV),
        last_attempt_at: Some(t(T_ROTATED)),
        delivered_at: Some(t(T_ROTATED)),
    }
}

/// Every read of `store` returns the fixture exactly; then the store keeps
/// working on the upgraded data (time comparisons, leases, claims, pruning,
/// a new commit continuing the revisions and the audit chain).
pub async fn check(store: &dyn Store) {
    let [v1, v2, site] = entry_versions();
    let head = Head {
        revision: 4,
        catalog_revision: 2,
    };
    assert_eq!(store.head().await.unwrap(), head);
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.head, head);
    assert_eq!(snapshot.catalog, catalog());
    assert_eq!(snapshot.entries, vec![site.clone()]);
    assert_eq!(store.load_catalog().await.unwrap(), catalog());
    assert_eq!(store.schema_history().await.unwrap(), catalog().schemas);
    assert_eq!(
        store.entry_changes_since(0).await.unwrap(),
        (head, vec![v1.clone(), v2.clone(), site.clone()])
    );
    assert_eq!(
        store.entry_history(&shop_prod(), "db.url").await.unwrap(),
        vec![v1.clone(), v2.clone()]
    );
    assert_eq!(
        store
            .entry_version(&shop_prod(), "db.url", 2)
            .await
            .unwrap(),
        Some(v2)
    );
    assert_eq!(store.entries_at(&[shop_prod()], 3).await.unwrap(), vec![v1]);
    assert_eq!(
        store.scope_revisions().await.unwrap(),
        vec![(Scope::global(), 4), (shop_prod(), 4)]
    );

    let audit = audit_records();
    assert_eq!(store.audit(&AuditFilter::default()).await.unwrap(), audit);
    // Time filters compare the converted integers: the record from before
    // the epoch is the only one before it.
    let since_epoch = AuditFilter {
        since: Some(t(T_EPOCH)),
        ..AuditFilter::default()
    };
    let until_epoch = AuditFilter {
        until: Some(t(T_EPOCH)),
        ..AuditFilter::default()
    };
    let seqs = |records: Vec<AuditRecord>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.audit(&since_epoch).await.unwrap()), vec![1, 3]);
    assert_eq!(seqs(store.audit(&until_epoch).await.unwrap()), vec![2]);
    assert_eq!(store.audit_head().await.unwrap(), audit_head());
    chain::verify(&TEST_AUDIT_KEY, &audit, &audit_head()).expect("the chain verifies");

    assert_eq!(store.tokens().await.unwrap(), tokens());
    assert_eq!(
        store.token_by_hash("hash-sdk").await.unwrap(),
        Some(tokens()[2].clone())
    );
    assert_eq!(store.users().await.unwrap(), users());
    assert_eq!(
        store.flag_counts().await.unwrap(),
        vec![
            FlagCount {
                app: "shop".into(),
                env: "prod".into(),
                key: "new-ui".into(),
                variant: String::new(),
                count: 2,
                last_at: None,
            },
            FlagCount {
                app: "shop".into(),
                env: "prod".into(),
                key: "new-ui".into(),
                variant: "on".into(),
                count: 5,
                last_at: Some(t(T_ROTATED)),
            },
        ]
    );
    assert_eq!(store.secrets().await.unwrap(), vec![db_pw()]);
    assert_eq!(
        store.secret(&Scope::global(), "api/key").await.unwrap(),
        Some((api_key(), true))
    );
    assert_eq!(
        store.secret_versions(&shop_prod(), "db/pw").await.unwrap(),
        db_pw_versions()
    );
    assert_eq!(
        store
            .secret_version(&shop_prod(), "db/pw", 2)
            .await
            .unwrap(),
        Some(db_pw_versions()[1].clone())
    );
    assert_eq!(
        store.applied("shop", "prod").await.unwrap(),
        vec![
            AppliedState {
                app: "shop".into(),
                env: "prod".into(),
                instance: "i-0".into(),
                revision: 3,
                checksum: "sha256:bb".into(),
                reported_at: t(T_BEFORE_EPOCH),
            },
            AppliedState {
                app: "shop".into(),
                env: "prod".into(),
                instance: "i-1".into(),
                revision: 4,
                checksum: "sha256:aa".into(),
                reported_at: t(T_ROTATED),
            },
        ]
    );
    assert_eq!(store.webhooks().await.unwrap(), webhooks());
    assert_eq!(
        store.webhook("wh_2").await.unwrap(),
        Some(webhooks()[1].clone())
    );
    assert_eq!(store.webhook_cursor().await.unwrap(), 3);
    assert_eq!(
        store.webhook_deliveries("wh_1", 10).await.unwrap(),
        vec![delivery_2(), delivery_1()]
    );

    // The store keeps working on the converted data.
    let lease_until = t(T_FAR);
    let claimed = store
        .claim_webhook_deliveries(t(T_ROTATED), lease_until, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed,
        vec![DeliveryRecord {
            next_attempt_at: Some(lease_until),
            ..delivery_1()
        }]
    );
    let minute = Duration::from_secs(60);
    assert!(!store.try_lease("held", "b", minute).await.unwrap());
    assert!(store.try_lease("held", "a", minute).await.unwrap());
    assert!(store.try_lease("lapsed", "b", minute).await.unwrap());
    // Only what is older than the epoch: instance i-0, delivery d_3.
    assert_eq!(store.prune_applied(t(T_EPOCH)).await.unwrap(), 1);
    assert_eq!(store.prune_webhook_deliveries(t(T_EPOCH)).await.unwrap(), 1);

    let next = commit(store, vec![put(&shop_prod(), "db.url", json!("again"))])
        .await
        .unwrap();
    assert_eq!(next.revision, 5);
    let history = store.entry_history(&shop_prod(), "db.url").await.unwrap();
    assert_eq!(
        history.last().map(|v| (v.version, v.created_at)),
        Some((3, next.at))
    );
    let log = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[3].at, next.at);
    chain::verify(&TEST_AUDIT_KEY, &log, &store.audit_head().await.unwrap())
        .expect("the chain still verifies after a new commit");
}
