//! Entries: versions, tombstones, compare-and-set, atomicity, point in time.

use std::sync::Arc;

use cairn_model::{checksum, EntryKind, MergeMode, Scope};
use serde_json::json;

use super::{commit, commit_with, ctx, delete, put, put_cas};
use crate::{
    Applied, AuditFilter, Commit, EntryVersion, Head, Mutation, Snapshot, Store, StoreError,
};
use crate::{CreateApp, CreateEnv, PutEntry, PutSchema, RevokeToken, UpdateEnv};

/// Everything a failed commit must leave unchanged.
pub(super) async fn observe(
    s: &dyn Store,
) -> (Head, Snapshot, Vec<EntryVersion>, Vec<crate::AuditRecord>) {
    let snapshot = s.load().await.unwrap();
    let (head, changes) = s.entry_changes_since(0).await.unwrap();
    let audit = s.audit(&AuditFilter::default()).await.unwrap();
    (head, snapshot, changes, audit)
}

fn applied(from: i64, to: i64) -> Vec<Applied> {
    vec![Applied {
        from_version: Some(from),
        to_version: Some(to),
    }]
}

fn billing_prod() -> Scope {
    Scope::new(Some("billing"), Some("prod"))
}

pub(super) async fn empty_store(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
    assert!(!s.backend().is_empty());
    assert_eq!(s.head().await.unwrap(), Head::default());
    assert_eq!(s.load().await.unwrap(), Snapshot::default());
    assert_eq!(s.load_catalog().await.unwrap(), Default::default());
    assert!(s.audit(&AuditFilter::default()).await.unwrap().is_empty());
    assert!(s.tokens().await.unwrap().is_empty());
    assert!(s.schema_history().await.unwrap().is_empty());
    assert!(s.scope_revisions().await.unwrap().is_empty());
    assert!(s
        .entries_at(&[Scope::global()], 0)
        .await
        .unwrap()
        .is_empty());
    let beyond = s.entries_at(&[Scope::global()], 1).await;
    assert!(
        matches!(beyond, Err(StoreError::NotFound { .. })),
        "entries_at beyond head: {beyond:?}"
    );
    assert_eq!(
        s.entry_changes_since(0).await.unwrap(),
        (Head::default(), vec![])
    );
    assert!(s
        .entry_history(&Scope::global(), "a")
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .entry_version(&Scope::global(), "a", 1)
        .await
        .unwrap()
        .is_none());
    assert!(s.token_by_hash("00").await.unwrap().is_none());
    let empty = s
        .commit(Commit {
            context: ctx("a", "m"),
            mutations: vec![],
            seal: None,
            sink: None,
            guard: None,
        })
        .await;
    assert!(
        matches!(empty, Err(StoreError::Backend(_))),
        "empty commit: {empty:?}"
    );
    assert_eq!(s.head().await.unwrap(), Head::default());
}

pub(super) async fn set_get_and_history(s: Arc<dyn Store>) {
    let g = Scope::global();
    let bp = billing_prod();
    let c1 = commit_with(
        &*s,
        ctx("alice", "first"),
        vec![put(&g, "db/pool", json!({"size": 5}))],
    )
    .await
    .unwrap();
    assert_eq!(c1.revision, 1);
    assert_eq!(c1.applied, applied(0, 1));
    let c2 = commit_with(
        &*s,
        ctx("bob", "second"),
        vec![put(&g, "db/pool", json!({"size": 10}))],
    )
    .await
    .unwrap();
    assert_eq!(c2.revision, 2);
    assert_eq!(c2.applied, applied(1, 2));
    // Same key in another scope is another entry.
    let flag = Mutation::PutEntry(PutEntry {
        scope: bp.clone(),
        key: "db/pool".into(),
        kind: EntryKind::Flag,
        merge: MergeMode::Replace,
        value: Some(json!(7)),
        checksum: checksum(&json!(7)),
        expected_version: None,
    });
    let c3 = commit(&*s, vec![flag]).await.unwrap();
    assert_eq!(c3.revision, 3);
    assert_eq!(c3.applied, applied(0, 1));
    assert_eq!(
        s.head().await.unwrap(),
        Head {
            revision: 3,
            catalog_revision: 0
        }
    );

    let history = s.entry_history(&g, "db/pool").await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    for (v, c, value, actor, message) in [
        (&history[0], &c1, json!({"size": 5}), "alice", "first"),
        (&history[1], &c2, json!({"size": 10}), "bob", "second"),
    ] {
        assert_eq!(v.scope, g);
        assert_eq!(v.key, "db/pool");
        assert_eq!(v.kind, EntryKind::Config);
        assert_eq!(v.merge, MergeMode::Merge);
        assert_eq!(v.checksum, checksum(&value));
        assert_eq!(v.value, Some(value));
        assert_eq!(v.revision, c.revision);
        assert_eq!(v.created_at, c.at);
        assert_eq!(v.actor, actor);
        assert_eq!(v.message, message);
        assert!(!v.is_tombstone());
    }
    assert_eq!(history[0].version, 1);
    assert_eq!(history[1].version, 2);
    assert_eq!(
        s.entry_version(&g, "db/pool", 1).await.unwrap().as_ref(),
        Some(&history[0])
    );
    assert_eq!(
        s.entry_version(&g, "db/pool", 2).await.unwrap().as_ref(),
        Some(&history[1])
    );
    assert!(s.entry_version(&g, "db/pool", 3).await.unwrap().is_none());
    assert!(s.entry_history(&g, "db/other").await.unwrap().is_empty());

    let other = s.entry_history(&bp, "db/pool").await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].scope, bp);
    assert_eq!(other[0].kind, EntryKind::Flag);
    assert_eq!(other[0].merge, MergeMode::Replace);
    assert_eq!(other[0].value, Some(json!(7)));
    // Partial scopes are distinct from each other too.
    let app_only = Scope::new(Some("billing"), None);
    let env_only = Scope::new(None, Some("prod"));
    commit(
        &*s,
        vec![
            put(&app_only, "k", json!("app")),
            put(&env_only, "k", json!("env")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        s.entry_history(&app_only, "k").await.unwrap()[0].value,
        Some(json!("app"))
    );
    assert_eq!(
        s.entry_history(&env_only, "k").await.unwrap()[0].value,
        Some(json!("env"))
    );
    assert!(s.entry_history(&g, "k").await.unwrap().is_empty());
}

pub(super) async fn delete_is_a_tombstone_and_recreate_continues_numbering(s: Arc<dyn Store>) {
    let g = Scope::global();
    commit(&*s, vec![put(&g, "a", json!(1))]).await.unwrap();
    let del = commit(&*s, vec![delete(&g, "a", None)]).await.unwrap();
    assert_eq!(del.revision, 2);
    assert_eq!(del.applied, applied(1, 2));
    let history = s.entry_history(&g, "a").await.unwrap();
    assert_eq!(history.len(), 2);
    let tomb = &history[1];
    assert!(tomb.is_tombstone());
    assert_eq!(tomb.value, None);
    assert_eq!(tomb.version, 2);
    assert_eq!(tomb.checksum, "");
    assert_eq!(tomb.revision, 2);
    assert!(s.load().await.unwrap().entries.is_empty());

    // Deleting a deleted or never-written entry is NotFound and writes nothing.
    let before = observe(&*s).await;
    for key in ["a", "never"] {
        let again = commit(&*s, vec![delete(&g, key, None)]).await;
        assert!(
            matches!(again, Err(StoreError::NotFound { .. })),
            "delete of absent {key}: {again:?}"
        );
    }
    assert_eq!(observe(&*s).await, before);

    // Re-creating continues the numbering; a deleted entry counts as absent for CAS.
    let again = commit(&*s, vec![put_cas(&g, "a", json!(3), Some(0))])
        .await
        .unwrap();
    assert_eq!(again.revision, 3);
    assert_eq!(again.applied, applied(0, 3));
    let history = s.entry_history(&g, "a").await.unwrap();
    let versions: Vec<i64> = history.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let live = s.load().await.unwrap().entries;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].version, 3);
    assert_eq!(live[0].value, Some(json!(3)));
}

pub(super) async fn compare_and_set(s: Arc<dyn Store>) {
    let g = Scope::global();
    let bp = billing_prod();
    assert_eq!(
        commit(&*s, vec![put_cas(&bp, "k", json!(1), Some(0))])
            .await
            .unwrap()
            .applied,
        applied(0, 1)
    );
    let check_conflict =
        |r: crate::StoreResult<crate::Committed>, expected: i64, actual: i64| match r {
            Err(StoreError::Conflict {
                scope,
                key,
                expected: e,
                actual: a,
            }) => {
                assert_eq!((scope, key.as_str()), (bp.clone(), "k"));
                assert_eq!((e, a), (expected, actual), "expected/actual");
            }
            other => panic!("expected a conflict, got {other:?}"),
        };
    let before = observe(&*s).await;
    check_conflict(
        commit(&*s, vec![put_cas(&bp, "k", json!(2), Some(0))]).await,
        0,
        1,
    );
    check_conflict(
        commit(&*s, vec![put_cas(&bp, "k", json!(2), Some(5))]).await,
        5,
        1,
    );
    assert_eq!(observe(&*s).await, before, "a conflict must write nothing");

    commit(&*s, vec![put_cas(&bp, "k", json!(2), Some(1))])
        .await
        .unwrap();
    check_conflict(
        commit(&*s, vec![put_cas(&bp, "k", json!(3), Some(1))]).await,
        1,
        2,
    );
    // Deletes check too.
    check_conflict(commit(&*s, vec![delete(&bp, "k", Some(1))]).await, 1, 2);
    commit(&*s, vec![delete(&bp, "k", Some(2))]).await.unwrap();
    // A deleted entry's current version is 0.
    check_conflict(
        commit(&*s, vec![put_cas(&bp, "k", json!(4), Some(3))]).await,
        3,
        0,
    );
    assert_eq!(
        commit(&*s, vec![put_cas(&bp, "k", json!(4), Some(0))])
            .await
            .unwrap()
            .applied,
        applied(0, 4)
    );
    // Never written: current version 0.
    let r = commit(&*s, vec![put_cas(&g, "fresh", json!(1), Some(1))]).await;
    assert!(
        matches!(
            r,
            Err(StoreError::Conflict {
                expected: 1,
                actual: 0,
                ..
            })
        ),
        "{r:?}"
    );
    let versions: Vec<i64> = s
        .entry_history(&bp, "k")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    assert_eq!(s.head().await.unwrap().revision, 4);
    assert_eq!(s.audit(&AuditFilter::default()).await.unwrap().len(), 4);
}

pub(super) async fn failed_commit_writes_nothing(s: Arc<dyn Store>) {
    let g = Scope::global();
    commit(
        &*s,
        vec![Mutation::CreateApp(CreateApp {
            name: "billing".into(),
            description: String::new(),
        })],
    )
    .await
    .unwrap();
    let before = observe(&*s).await;
    let catalog = s.load_catalog().await.unwrap();
    let create_env = || {
        Mutation::CreateEnv(CreateEnv {
            name: "prod".into(),
            description: String::new(),
            protected: false,
            required_approvals: 0,
            auto_approve: false,
            strict_flags: false,
            approvers: Vec::new(),
        })
    };
    let attempts: Vec<(Vec<Mutation>, &str)> = vec![
        (
            vec![
                put(&g, "x", json!(1)),
                Mutation::CreateApp(CreateApp {
                    name: "shop".into(),
                    description: String::new(),
                }),
                put(&g, "y", json!(2)),
                Mutation::CreateApp(CreateApp {
                    name: "billing".into(),
                    description: String::new(),
                }),
            ],
            "exists",
        ),
        (
            vec![put(&g, "x", json!(1)), put_cas(&g, "y", json!(2), Some(7))],
            "conflict",
        ),
        (
            vec![put(&g, "x", json!(1)), delete(&g, "z", None)],
            "notfound",
        ),
        (
            vec![
                create_env(),
                Mutation::UpdateEnv(UpdateEnv {
                    name: "staging".into(),
                    description: None,
                    protected: Some(true),
                    required_approvals: None,
                    auto_approve: None,
                    strict_flags: None,
                    ..UpdateEnv::default()
                }),
            ],
            "notfound",
        ),
        (
            vec![
                Mutation::PutSchema(PutSchema {
                    app: None,
                    pattern: "x/*".into(),
                    schema: json!({"type": "object"}),
                }),
                Mutation::RevokeToken(RevokeToken {
                    id: "tok_nope".into(),
                }),
            ],
            "notfound",
        ),
        (
            vec![put(&g, "x", json!(1)), put_cas(&g, "x", json!(2), Some(0))],
            "conflict",
        ),
    ];
    for (i, (mutations, want)) in attempts.into_iter().enumerate() {
        let r = commit(&*s, mutations).await;
        let ok = match want {
            "exists" => matches!(r, Err(StoreError::AlreadyExists { .. })),
            "conflict" => matches!(r, Err(StoreError::Conflict { .. })),
            _ => matches!(r, Err(StoreError::NotFound { .. })),
        };
        assert!(ok, "attempt {i}: wanted {want}, got {r:?}");
        assert_eq!(observe(&*s).await, before, "attempt {i} wrote something");
        assert_eq!(s.load_catalog().await.unwrap(), catalog, "attempt {i}");
        assert!(s.schema_history().await.unwrap().is_empty(), "attempt {i}");
    }

    // Within one commit, later mutations see earlier ones.
    let ok = commit(
        &*s,
        vec![
            put(&g, "x", json!(1)),
            put_cas(&g, "x", json!(2), Some(1)),
            create_env(),
            Mutation::UpdateEnv(UpdateEnv {
                name: "prod".into(),
                description: None,
                protected: Some(true),
                required_approvals: None,
                auto_approve: None,
                strict_flags: None,
                ..UpdateEnv::default()
            }),
        ],
    )
    .await
    .unwrap();
    assert_eq!(ok.revision, 2, "failed commits must not use up revisions");
    assert_eq!(ok.applied.len(), 4);
    assert_eq!(ok.applied[0], applied(0, 1)[0]);
    assert_eq!(ok.applied[1], applied(1, 2)[0]);
    let audit = s.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 5);
    assert!(audit[1..].iter().all(|r| r.revision == Some(2)));
    assert_eq!(
        s.head().await.unwrap(),
        Head {
            revision: 2,
            catalog_revision: 2
        }
    );
    assert!(s.load_catalog().await.unwrap().envs[0].protected);
}

pub(super) async fn revisions_are_gapless(s: Arc<dyn Store>) {
    let g = Scope::global();
    let mut revisions = Vec::new();
    for i in 0..10i64 {
        let c = commit(&*s, vec![put_cas(&g, "k", json!(i), Some(i))])
            .await
            .unwrap();
        revisions.push(c.revision);
        let bad = commit(&*s, vec![put_cas(&g, "k", json!(i), Some(i))]).await;
        assert!(matches!(bad, Err(StoreError::Conflict { .. })), "{bad:?}");
        let bad = commit(&*s, vec![delete(&g, "absent", None)]).await;
        assert!(matches!(bad, Err(StoreError::NotFound { .. })), "{bad:?}");
    }
    assert_eq!(revisions, (1..=10).collect::<Vec<_>>());
    assert_eq!(s.head().await.unwrap().revision, 10);
    let seqs: Vec<i64> = s
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

fn summary(v: &[EntryVersion]) -> Summary {
    let mut out: Vec<_> = v
        .iter()
        .map(|e| {
            (
                e.scope.to_string(),
                e.key.clone(),
                e.version,
                e.value.clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

type Summary = Vec<(String, String, i64, Option<serde_json::Value>)>;

fn sorted(mut v: Summary) -> Summary {
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

pub(super) async fn entries_at_reads_the_past(s: Arc<dyn Store>) {
    let g = Scope::global();
    let bp = billing_prod();
    commit(&*s, vec![put(&g, "k1", json!(1))]).await.unwrap(); // r1
    commit(&*s, vec![put(&g, "k2", json!("a"))]).await.unwrap(); // r2
    commit(&*s, vec![put(&g, "k1", json!(2))]).await.unwrap(); // r3
    commit(&*s, vec![delete(&g, "k2", None)]).await.unwrap(); // r4
    commit(&*s, vec![put(&bp, "k1", json!(9))]).await.unwrap(); // r5
    commit(&*s, vec![put(&g, "k3", json!(true))]).await.unwrap(); // r6
    let at = |scopes: Vec<Scope>, rev| {
        let s = s.clone();
        async move { summary(&s.entries_at(&scopes, rev).await.unwrap()) }
    };
    let e = |scope: &Scope, key: &str, version, value: Option<serde_json::Value>| {
        (scope.to_string(), key.to_owned(), version, value)
    };
    assert_eq!(at(vec![g.clone()], 0).await, vec![]);
    assert_eq!(
        at(vec![g.clone()], 1).await,
        vec![e(&g, "k1", 1, Some(json!(1)))]
    );
    assert_eq!(
        at(vec![g.clone()], 2).await,
        vec![
            e(&g, "k1", 1, Some(json!(1))),
            e(&g, "k2", 1, Some(json!("a")))
        ]
    );
    assert_eq!(
        at(vec![g.clone()], 3).await,
        vec![
            e(&g, "k1", 2, Some(json!(2))),
            e(&g, "k2", 1, Some(json!("a")))
        ]
    );
    // After the delete the tombstone is returned, so callers see the delete.
    assert_eq!(
        at(vec![g.clone()], 4).await,
        vec![e(&g, "k1", 2, Some(json!(2))), e(&g, "k2", 2, None)]
    );
    assert_eq!(
        at(vec![g.clone(), bp.clone()], 5).await,
        sorted(vec![
            e(&g, "k1", 2, Some(json!(2))),
            e(&g, "k2", 2, None),
            e(&bp, "k1", 1, Some(json!(9))),
        ])
    );
    assert_eq!(
        at(vec![bp.clone()], 6).await,
        vec![e(&bp, "k1", 1, Some(json!(9)))]
    );
    assert_eq!(at(vec![bp.clone()], 4).await, vec![]);
    assert_eq!(at(vec![], 6).await, vec![]);
    assert_eq!(at(vec![Scope::new(Some("other"), None)], 6).await, vec![]);
    let full = s.entries_at(std::slice::from_ref(&g), 6).await.unwrap();
    assert!(full.iter().all(|v| v.revision <= 6 && v.scope == g));
    let k3 = full.iter().find(|v| v.key == "k3").unwrap();
    assert_eq!(
        Some(k3),
        s.entry_history(&g, "k3").await.unwrap().first(),
        "entries_at returns whole versions"
    );
    let beyond = s.entries_at(std::slice::from_ref(&g), 7).await;
    match beyond {
        Err(StoreError::NotFound { what }) => assert!(what.contains('7'), "{what}"),
        other => panic!("entries_at beyond head: {other:?}"),
    }
}

pub(super) async fn entry_changes_since_in_commit_order(s: Arc<dyn Store>) {
    let g = Scope::global();
    let bp = billing_prod();
    commit(&*s, vec![put(&g, "a", json!(1))]).await.unwrap(); // r1
    commit(
        &*s,
        vec![
            put(&bp, "b", json!(1)),
            put(&g, "a", json!(2)),
            put(&g, "a", json!(3)),
            delete(&bp, "b", None),
        ],
    )
    .await
    .unwrap(); // r2
    commit(
        &*s,
        vec![Mutation::CreateApp(CreateApp {
            name: "billing".into(),
            description: String::new(),
        })],
    )
    .await
    .unwrap(); // r3: catalog only
    commit(&*s, vec![put(&g, "c", json!(1))]).await.unwrap(); // r4
    let seen = |after| {
        let s = s.clone();
        async move {
            let (head, versions) = s.entry_changes_since(after).await.unwrap();
            assert_eq!(
                head,
                Head {
                    revision: 4,
                    catalog_revision: 3
                }
            );
            versions
                .iter()
                .map(|v| {
                    (
                        v.revision,
                        v.scope.to_string(),
                        v.key.clone(),
                        v.version,
                        v.value.clone(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let all = vec![
        (1, g.to_string(), "a".to_owned(), 1, Some(json!(1))),
        (2, bp.to_string(), "b".to_owned(), 1, Some(json!(1))),
        (2, g.to_string(), "a".to_owned(), 2, Some(json!(2))),
        (2, g.to_string(), "a".to_owned(), 3, Some(json!(3))),
        (2, bp.to_string(), "b".to_owned(), 2, None),
        (4, g.to_string(), "c".to_owned(), 1, Some(json!(1))),
    ];
    assert_eq!(seen(0).await, all);
    assert_eq!(seen(1).await, all[1..].to_vec());
    assert_eq!(seen(2).await, all[5..].to_vec());
    assert_eq!(seen(3).await, all[5..].to_vec());
    assert_eq!(seen(4).await, vec![]);
}

pub(super) async fn load_has_live_entries_only(s: Arc<dyn Store>) {
    let g = Scope::global();
    let bp = billing_prod();
    commit(
        &*s,
        vec![
            Mutation::CreateApp(CreateApp {
                name: "billing".into(),
                description: "d".into(),
            }),
            Mutation::CreateEnv(CreateEnv {
                name: "prod".into(),
                description: String::new(),
                protected: true,
                required_approvals: 1,
                auto_approve: false,
                strict_flags: false,
                approvers: Vec::new(),
            }),
            put(&g, "a", json!(1)),
            put(&g, "b", json!(1)),
            put(&bp, "a", json!({"x": 1})),
        ],
    )
    .await
    .unwrap();
    commit(&*s, vec![put(&g, "a", json!(2)), delete(&g, "b", None)])
        .await
        .unwrap();
    commit(&*s, vec![put(&bp, "c", json!([1, 2]))])
        .await
        .unwrap();
    let snap = s.load().await.unwrap();
    assert_eq!(
        snap.head,
        Head {
            revision: 3,
            catalog_revision: 1
        }
    );
    assert_eq!(snap.catalog, s.load_catalog().await.unwrap());
    assert_eq!(snap.catalog.apps.len(), 1);
    assert_eq!(snap.catalog.envs.len(), 1);
    assert_eq!(
        summary(&snap.entries),
        sorted(vec![
            (g.to_string(), "a".to_owned(), 2, Some(json!(2))),
            (bp.to_string(), "a".to_owned(), 1, Some(json!({"x": 1}))),
            (bp.to_string(), "c".to_owned(), 1, Some(json!([1, 2]))),
        ])
    );
    for e in &snap.entries {
        let latest = s.entry_history(&e.scope, &e.key).await.unwrap();
        assert_eq!(
            latest.last(),
            Some(e),
            "load returns whole current versions"
        );
    }
}

pub(super) async fn scope_revisions_include_deletes(s: Arc<dyn Store>) {
    let g = Scope::global();
    let bp = billing_prod();
    commit(&*s, vec![put(&g, "a", json!(1)), put(&bp, "a", json!(1))])
        .await
        .unwrap(); // r1
    commit(&*s, vec![put(&g, "b", json!(1))]).await.unwrap(); // r2
    commit(&*s, vec![delete(&bp, "a", None)]).await.unwrap(); // r3
    commit(
        &*s,
        vec![Mutation::CreateApp(CreateApp {
            name: "x".into(),
            description: String::new(),
        })],
    )
    .await
    .unwrap(); // r4: not an entry
    let mut got = s.scope_revisions().await.unwrap();
    got.sort();
    let mut want = vec![(g, 2), (bp, 3)];
    want.sort();
    assert_eq!(got, want);
}
