//! Catalog: apps, environments, schemas, tokens.

use std::sync::Arc;

use serde_json::json;

use super::{commit, commit_with, ctx, put, token};
use crate::{Applied, AuditFilter, Head, Mutation, Role, Store, StoreError};
use crate::{CreateApp, CreateEnv, CreateToken, PutSchema, PutUser, RevokeToken, UpdateEnv};

fn create_env(name: &str, protected: bool, approvals: i32) -> Mutation {
    Mutation::CreateEnv(CreateEnv {
        name: name.into(),
        description: format!("{name} env"),
        protected,
        required_approvals: approvals,
        auto_approve: false,
        strict_flags: false,
        approvers: Vec::new(),
    })
}

/// An environment's approvers round-trip (migration 0012: environments
/// created before it read `[]`), and `UpdateEnv.expected_revision` is a
/// compare-and-set on the revision its settings last changed at.
pub(super) async fn environment_approvers_and_compare_and_set(s: Arc<dyn Store>) {
    let approvers = vec!["role:admin".to_owned(), "user:ann".to_owned()];
    let created = commit(
        &*s,
        vec![
            Mutation::CreateEnv(CreateEnv {
                approvers: approvers.clone(),
                ..match create_env("prod", true, 2) {
                    Mutation::CreateEnv(c) => c,
                    _ => unreachable!(),
                }
            }),
            create_env("dev", false, 0),
        ],
    )
    .await
    .unwrap();
    let env = |name: &'static str| {
        let s = s.clone();
        async move {
            s.load_catalog()
                .await
                .unwrap()
                .envs
                .into_iter()
                .find(|e| e.name == name)
                .unwrap()
        }
    };
    assert_eq!(env("prod").await.approvers, approvers);
    assert_eq!(env("dev").await.approvers, Vec::<String>::new());
    assert_eq!(env("prod").await.revision, created.revision);

    // Another environment's change does not move prod's revision.
    commit(
        &*s,
        vec![Mutation::UpdateEnv(UpdateEnv {
            name: "dev".into(),
            approvers: Some(vec!["user:bob".into()]),
            ..UpdateEnv::default()
        })],
    )
    .await
    .unwrap();
    assert_eq!(env("dev").await.approvers, vec!["user:bob".to_owned()]);
    let cas = |expected: i64| {
        Mutation::UpdateEnv(UpdateEnv {
            name: "prod".into(),
            protected: Some(false),
            approvers: Some(Vec::new()),
            expected_revision: Some(expected),
            ..UpdateEnv::default()
        })
    };
    // A stale expectation writes nothing: not the settings, not the revision.
    let head = s.head().await.unwrap();
    let stale = commit(&*s, vec![cas(created.revision - 1)]).await;
    match stale {
        Err(StoreError::EnvConflict {
            name,
            expected,
            actual,
        }) => assert_eq!(
            (name.as_str(), expected, actual),
            ("prod", created.revision - 1, created.revision)
        ),
        other => panic!("expected an environment conflict, got {other:?}"),
    }
    assert_eq!(s.head().await.unwrap(), head);
    let prod = env("prod").await;
    assert!(prod.protected);
    assert_eq!(prod.approvers, approvers);
    // The current one applies; keeping the list (`None`) keeps it.
    let c = commit(&*s, vec![cas(created.revision)]).await.unwrap();
    let prod = env("prod").await;
    assert!(!prod.protected);
    assert!(prod.approvers.is_empty());
    assert_eq!(prod.revision, c.revision);
    commit(
        &*s,
        vec![Mutation::UpdateEnv(UpdateEnv {
            name: "prod".into(),
            approvers: Some(approvers.clone()),
            ..UpdateEnv::default()
        })],
    )
    .await
    .unwrap();
    commit(
        &*s,
        vec![Mutation::UpdateEnv(UpdateEnv {
            name: "prod".into(),
            description: Some("production".into()),
            ..UpdateEnv::default()
        })],
    )
    .await
    .unwrap();
    assert_eq!(env("prod").await.approvers, approvers);
    // The audit record of a change names the list.
    let records = s
        .audit(&AuditFilter {
            action: Some("env.update".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let last = records.last().unwrap();
    assert_eq!(last.detail["approvers"], json!(approvers));
}

pub(super) async fn apps_and_environments(s: Arc<dyn Store>) {
    let c1 = commit(
        &*s,
        vec![Mutation::CreateApp(CreateApp {
            name: "billing".into(),
            description: "Billing service".into(),
        })],
    )
    .await
    .unwrap();
    assert_eq!(
        c1.applied,
        vec![Applied {
            from_version: None,
            to_version: None
        }]
    );
    assert_eq!(
        s.head().await.unwrap(),
        Head {
            revision: 1,
            catalog_revision: 1
        }
    );
    let catalog = s.load_catalog().await.unwrap();
    assert_eq!(catalog.apps.len(), 1);
    let app = &catalog.apps[0];
    assert_eq!(
        (
            app.name.as_str(),
            app.description.as_str(),
            app.revision,
            app.created_at
        ),
        ("billing", "Billing service", 1, c1.at)
    );
    let dup = commit(
        &*s,
        vec![Mutation::CreateApp(CreateApp {
            name: "billing".into(),
            description: "again".into(),
        })],
    )
    .await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );

    let c2 = commit(&*s, vec![create_env("prod", true, 2)])
        .await
        .unwrap();
    assert_eq!(c2.revision, 2);
    let dup = commit(&*s, vec![create_env("prod", false, 0)]).await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );
    let env = s.load_catalog().await.unwrap().envs[0].clone();
    assert_eq!(env.name, "prod");
    assert_eq!(env.description, "prod env");
    assert!(env.protected);
    assert_eq!(env.required_approvals, 2);
    assert!(!env.auto_approve);
    assert!(!env.strict_flags);
    assert_eq!(env.created_at, c2.at);
    assert_eq!(env.revision, 2);

    let c3 = commit(
        &*s,
        vec![Mutation::UpdateEnv(UpdateEnv {
            name: "prod".into(),
            description: None,
            protected: None,
            required_approvals: Some(1),
            auto_approve: Some(true),
            strict_flags: Some(true),
            ..UpdateEnv::default()
        })],
    )
    .await
    .unwrap();
    let updated = s.load_catalog().await.unwrap().envs[0].clone();
    assert_eq!(updated.required_approvals, 1);
    assert!(updated.auto_approve);
    assert!(updated.strict_flags);
    assert!(updated.protected, "unset fields keep their value");
    assert_eq!(updated.description, "prod env");
    assert_eq!(updated.created_at, c2.at, "created_at never changes");
    assert_eq!(updated.revision, c3.revision);
    let missing = commit(
        &*s,
        vec![Mutation::UpdateEnv(UpdateEnv {
            name: "staging".into(),
            description: Some("x".into()),
            protected: None,
            required_approvals: None,
            auto_approve: None,
            strict_flags: None,
            ..UpdateEnv::default()
        })],
    )
    .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    // Entries do not move the catalog revision.
    let c4 = commit(&*s, vec![put(&crate::Scope::global(), "k", json!(1))])
        .await
        .unwrap();
    assert_eq!(
        s.head().await.unwrap(),
        Head {
            revision: c4.revision,
            catalog_revision: c3.revision
        }
    );
    commit(
        &*s,
        vec![
            create_env("dev", false, 0),
            Mutation::CreateApp(CreateApp {
                name: "auth".into(),
                description: String::new(),
            }),
        ],
    )
    .await
    .unwrap();
    let catalog = s.load_catalog().await.unwrap();
    let apps: Vec<&str> = catalog.apps.iter().map(|a| a.name.as_str()).collect();
    let envs: Vec<&str> = catalog.envs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(apps, vec!["auth", "billing"], "apps sorted by name");
    assert_eq!(envs, vec!["dev", "prod"], "environments sorted by name");
    assert_eq!(s.head().await.unwrap().catalog_revision, 5);
}

pub(super) async fn schemas_are_versioned(s: Arc<dyn Store>) {
    let schema = |n: i64| json!({"type": "object", "properties": {"n": {"const": n}}});
    let put_schema = |app: Option<&str>, pattern: &str, n: i64| {
        Mutation::PutSchema(PutSchema {
            app: app.map(str::to_owned),
            pattern: pattern.into(),
            schema: schema(n),
        })
    };
    let c1 = commit_with(&*s, ctx("alice", "v1"), vec![put_schema(None, "db/*", 1)])
        .await
        .unwrap();
    assert_eq!(
        c1.applied,
        vec![Applied {
            from_version: Some(0),
            to_version: Some(1)
        }]
    );
    let c2 = commit(&*s, vec![put_schema(None, "db/*", 2)])
        .await
        .unwrap();
    assert_eq!(
        c2.applied,
        vec![Applied {
            from_version: Some(1),
            to_version: Some(2)
        }]
    );
    let c3 = commit(
        &*s,
        vec![
            put_schema(Some("billing"), "db/*", 3),
            put_schema(None, "flags/**", 4),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        c3.applied[0],
        Applied {
            from_version: Some(0),
            to_version: Some(1)
        },
        "an app's schema is versioned apart from the global one"
    );
    assert_eq!(s.head().await.unwrap().catalog_revision, 3);

    let active: Vec<_> = s
        .load_catalog()
        .await
        .unwrap()
        .schemas
        .into_iter()
        .map(|r| (r.app, r.pattern, r.version, r.schema, r.revision))
        .collect();
    let mut want = vec![
        (None, "db/*".to_owned(), 2, schema(2), 2),
        (None, "flags/**".to_owned(), 1, schema(4), 3),
        (
            Some("billing".to_owned()),
            "db/*".to_owned(),
            1,
            schema(3),
            3,
        ),
    ];
    let mut got = active.clone();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    want.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        got, want,
        "active schemas are the latest per (app, pattern)"
    );

    let history = s.schema_history().await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[0].version, 1);
    assert_eq!(history[0].schema, schema(1));
    assert_eq!(history[0].actor, "alice");
    assert_eq!(history[0].message, "v1");
    assert_eq!(history[0].created_at, c1.at);
    assert_eq!(history[0].app, None);
    assert_eq!(history[1].version, 2);
    let revisions: Vec<i64> = history.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, vec![1, 2, 3, 3], "oldest first");
}

pub(super) async fn tokens(s: Arc<dyn Store>) {
    let mut t1 = token("tok_1", &"a".repeat(64));
    t1.role = Role::Admin;
    t1.expires_at = Some(t1.created_at + chrono::Duration::days(30));
    let c1 = commit(
        &*s,
        vec![Mutation::CreateToken(CreateToken {
            token: t1.clone(),
            bootstrap: true,
        })],
    )
    .await
    .unwrap();
    assert_eq!(s.head().await.unwrap().catalog_revision, c1.revision);
    assert_eq!(s.token_by_hash(&t1.hash).await.unwrap(), Some(t1.clone()));

    let mut t2 = token("tok_2", &"b".repeat(64));
    t2.role = Role::Sdk;
    t2.app = "billing".into();
    t2.env = "prod".into();
    let again = commit(
        &*s,
        vec![Mutation::CreateToken(CreateToken {
            token: t2.clone(),
            bootstrap: true,
        })],
    )
    .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "bootstrap only once: {again:?}"
    );
    assert_eq!(s.tokens().await.unwrap().len(), 1);
    commit(
        &*s,
        vec![Mutation::CreateToken(CreateToken {
            token: t2.clone(),
            bootstrap: false,
        })],
    )
    .await
    .unwrap();
    for clash in [token("tok_2", &"c".repeat(64)), token("tok_3", &t1.hash)] {
        let r = commit(
            &*s,
            vec![Mutation::CreateToken(CreateToken {
                token: clash,
                bootstrap: false,
            })],
        )
        .await;
        assert!(
            matches!(r, Err(StoreError::AlreadyExists { .. })),
            "duplicate id or hash: {r:?}"
        );
    }
    let mut all = s.tokens().await.unwrap();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(all, vec![t1.clone(), t2.clone()]);

    let revoked = commit(
        &*s,
        vec![Mutation::RevokeToken(RevokeToken { id: "tok_2".into() })],
    )
    .await
    .unwrap();
    let got = s.token_by_hash(&t2.hash).await.unwrap().unwrap();
    assert_eq!(got.revoked_at, Some(revoked.at));
    assert_eq!(got.role, Role::Sdk);
    assert_eq!((got.app.as_str(), got.env.as_str()), ("billing", "prod"));
    // Revoking again succeeds and keeps the first revocation time.
    commit(
        &*s,
        vec![Mutation::RevokeToken(RevokeToken { id: "tok_2".into() })],
    )
    .await
    .unwrap();
    assert_eq!(
        s.token_by_hash(&t2.hash).await.unwrap().unwrap().revoked_at,
        Some(revoked.at)
    );
    let missing = commit(
        &*s,
        vec![Mutation::RevokeToken(RevokeToken { id: "tok_9".into() })],
    )
    .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert!(s.token_by_hash(&"d".repeat(64)).await.unwrap().is_none());
    assert_eq!(
        s.token_by_hash(&t1.hash).await.unwrap().unwrap().revoked_at,
        None
    );

    // The audit log names tokens but never carries their hash.
    let audit = s.audit(&AuditFilter::default()).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "token.create",
            "token.create",
            "token.revoke",
            "token.revoke"
        ]
    );
    assert_eq!(
        audit[1].detail,
        json!({"id": "tok_2", "name": "tok_2 name", "role": "sdk", "app": "billing", "env": "prod"})
    );
    for r in &audit {
        let text = serde_json::to_string(r).unwrap();
        assert!(
            !text.contains(&t1.hash) && !text.contains(&t2.hash),
            "{text}"
        );
    }
}

/// Users: create once, update password/bindings/state, and login tokens name their user.
pub(super) async fn users(s: Arc<dyn Store>) {
    use crate::{Binding, Role};
    let b = |role, app: &str, env: &str| Binding {
        role,
        app: app.into(),
        env: env.into(),
    };
    let create = Mutation::PutUser(PutUser {
        name: "alice".into(),
        create: true,
        password_hash: Some("$argon2id$v=19$fake".into()),
        bindings: Some(vec![b(Role::Operator, "billing", "staging")]),
        disabled: None,
    });
    super::commit(&*s, vec![create.clone()]).await.unwrap();
    let again = super::commit(&*s, vec![create]).await;
    assert!(
        matches!(again, Err(crate::StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    let users = s.users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].password_hash, "$argon2id$v=19$fake");
    assert_eq!(
        users[0].bindings,
        vec![b(Role::Operator, "billing", "staging")]
    );
    assert!(!users[0].disabled);
    let update = Mutation::PutUser(PutUser {
        name: "alice".into(),
        create: false,
        password_hash: None,
        bindings: Some(vec![
            b(Role::Operator, "billing", "staging"),
            b(Role::Viewer, "*", "prod"),
        ]),
        disabled: Some(true),
    });
    super::commit(&*s, vec![update]).await.unwrap();
    let u = &s.users().await.unwrap()[0];
    assert_eq!(u.password_hash, "$argon2id$v=19$fake", "password kept");
    assert_eq!(u.bindings.len(), 2);
    assert!(u.disabled);
    let missing = Mutation::PutUser(PutUser {
        name: "bob".into(),
        create: false,
        password_hash: None,
        bindings: None,
        disabled: Some(false),
    });
    let r = super::commit(&*s, vec![missing]).await;
    assert!(
        matches!(r, Err(crate::StoreError::NotFound { .. })),
        "{r:?}"
    );
    let mut t = token("tok_login", &"a".repeat(64));
    t.user = Some("alice".into());
    super::commit(
        &*s,
        vec![Mutation::CreateToken(CreateToken {
            token: t,
            bootstrap: false,
        })],
    )
    .await
    .unwrap();
    let found = s.token_by_hash(&"a".repeat(64)).await.unwrap().unwrap();
    assert_eq!(found.user.as_deref(), Some("alice"));
    let audit = s.audit(&crate::AuditFilter::default()).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["user.create", "user.update", "token.create"]);
    assert!(
        !serde_json::to_string(&audit).unwrap().contains("argon2"),
        "no password hash in audit"
    );
}

/// Flag evaluation counts: increments add up, the latest time wins.
pub(super) async fn flag_counts(s: Arc<dyn Store>) {
    use chrono::{SubsecRound, TimeZone, Utc};
    let c = |key: &str, variant: &str, count: i64, secs: Option<i64>| crate::FlagCount {
        app: "billing".into(),
        env: "prod".into(),
        key: key.into(),
        variant: variant.into(),
        count,
        last_at: secs
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
            .map(|t| t.trunc_subsecs(6)),
    };
    assert!(s.flag_counts().await.unwrap().is_empty());
    s.add_flag_counts(&[c("f", "on", 3, Some(100)), c("f", "off", 1, Some(50))])
        .await
        .unwrap();
    s.add_flag_counts(&[c("f", "on", 2, Some(90)), c("g", "", 1, None)])
        .await
        .unwrap();
    s.add_flag_counts(&[]).await.unwrap();
    let all = s.flag_counts().await.unwrap();
    assert_eq!(
        all,
        vec![
            c("f", "off", 1, Some(50)),
            c("f", "on", 5, Some(100)),
            c("g", "", 1, None)
        ],
        "counts add up and the later time is kept"
    );
}
