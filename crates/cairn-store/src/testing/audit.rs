//! Audit: one record per mutation, in the same commit, and every filter.

use std::sync::Arc;
use std::time::Duration;

use cairn_model::{checksum, Scope};
use serde_json::json;

use super::{delete, put, token};
use crate::{AuditAction, CreateApp, CreateEnv, CreateToken, PutSchema, RevokeToken, UpdateEnv};
use crate::{AuditContext, AuditFilter, AuditRecord, Commit, Committed, Mutation, Store};

fn context(actor: &str) -> AuditContext {
    AuditContext {
        actor: actor.into(),
        message: format!("by {actor}"),
        client_ip: Some("10.0.0.7".into()),
        user_agent: Some("cairn-cli/1.0".into()),
        replica: Some("replica-a".into()),
    }
}

/// `(action override, mutation)`.
type Step = (Option<AuditAction>, Mutation);

/// Commits the history the audit cases read: 9 mutations in 8 commits.
async fn history(s: &dyn Store) -> Vec<Committed> {
    let bp = Scope::new(Some("billing"), Some("prod"));
    let g = Scope::global();
    let tok = token("tok_1", &"f".repeat(64));
    let commits: Vec<(&str, Vec<Step>)> = vec![
        (
            "alice",
            vec![(
                None,
                Mutation::CreateApp(CreateApp {
                    name: "billing".into(),
                    description: "Billing".into(),
                }),
            )],
        ),
        (
            "bob",
            vec![(
                None,
                Mutation::CreateEnv(CreateEnv {
                    name: "prod".into(),
                    description: "Production".into(),
                    protected: true,
                    required_approvals: 2,
                    auto_approve: false,
                    strict_flags: false,
                    approvers: Vec::new(),
                }),
            )],
        ),
        (
            "alice",
            vec![
                (None, put(&bp, "db/pool", json!({"size": 5}))),
                (
                    Some(AuditAction::EntryRollback),
                    put(&g, "db/url", json!("x")),
                ),
            ],
        ),
        ("bob", vec![(None, delete(&g, "db/url", None))]),
        (
            "alice",
            vec![(
                None,
                Mutation::PutSchema(PutSchema {
                    app: None,
                    pattern: "db/*".into(),
                    schema: json!({"type": "object"}),
                }),
            )],
        ),
        (
            "carol",
            vec![(
                None,
                Mutation::CreateToken(CreateToken {
                    token: tok.clone(),
                    bootstrap: true,
                }),
            )],
        ),
        (
            "carol",
            vec![(
                None,
                Mutation::RevokeToken(RevokeToken { id: tok.id.clone() }),
            )],
        ),
        (
            "bob",
            vec![(
                None,
                Mutation::UpdateEnv(UpdateEnv {
                    name: "prod".into(),
                    description: None,
                    protected: Some(false),
                    required_approvals: None,
                    auto_approve: None,
                    strict_flags: None,
                    ..UpdateEnv::default()
                }),
            )],
        ),
    ];
    let mut out = Vec::new();
    for (actor, mutations) in commits {
        let c = s
            .commit(Commit {
                context: context(actor),
                mutations,
                seal: Some(super::TEST_AUDIT_KEY),
                sink: None,
                guard: None,
            })
            .await
            .unwrap();
        out.push(c);
        // Distinct commit times, so time filters have edges to test.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    out
}

pub(super) async fn one_audit_record_per_mutation(s: Arc<dyn Store>) {
    let commits = history(&*s).await;
    let audit = s.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 9);
    let seqs: Vec<i64> = audit.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    // The commit of each record, in order.
    let commit_of = [0, 1, 2, 2, 3, 4, 5, 6, 7];
    for (r, &c) in audit.iter().zip(commit_of.iter()) {
        let committed = &commits[c];
        assert_eq!(r.revision, Some(committed.revision), "{r:?}");
        assert_eq!(r.at, committed.at, "{r:?}");
        assert_eq!(r.message, format!("by {}", r.actor));
        assert_eq!(r.client_ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(r.user_agent.as_deref(), Some("cairn-cli/1.0"));
        assert_eq!(r.replica.as_deref(), Some("replica-a"));
    }
    let facts: Vec<_> = audit
        .iter()
        .map(|r| {
            (
                r.actor.as_str(),
                r.action.as_str(),
                r.app.as_deref(),
                r.env.as_deref(),
                r.key.as_deref(),
                r.from_version,
                r.to_version,
            )
        })
        .collect();
    assert_eq!(
        facts,
        vec![
            (
                "alice",
                "app.create",
                Some("billing"),
                None,
                None,
                None,
                None
            ),
            ("bob", "env.create", None, Some("prod"), None, None, None),
            (
                "alice",
                "entry.set",
                Some("billing"),
                Some("prod"),
                Some("db/pool"),
                Some(0),
                Some(1)
            ),
            (
                "alice",
                "entry.rollback",
                Some(""),
                Some(""),
                Some("db/url"),
                Some(0),
                Some(1)
            ),
            (
                "bob",
                "entry.delete",
                Some(""),
                Some(""),
                Some("db/url"),
                Some(1),
                Some(2)
            ),
            (
                "alice",
                "schema.register",
                Some(""),
                None,
                Some("db/*"),
                Some(0),
                Some(1)
            ),
            ("carol", "token.create", None, None, None, None, None),
            ("carol", "token.revoke", None, None, None, None, None),
            ("bob", "env.update", None, Some("prod"), None, None, None),
        ]
    );
    assert_eq!(
        audit[2].detail,
        json!({"kind": "config", "merge": "merge", "checksum": checksum(&json!({"size": 5}))})
    );
    assert_eq!(
        audit[4].detail,
        json!({"kind": "config", "merge": "merge", "checksum": ""})
    );
    assert_eq!(
        audit[1].detail,
        json!({"description": "Production", "protected": true, "required_approvals": 2, "auto_approve": false, "strict_flags": false})
    );
    assert_eq!(
        audit[8].detail,
        json!({"description": "Production", "protected": false, "required_approvals": 2, "auto_approve": false, "strict_flags": false}),
        "env.update records the settings after the change"
    );
    assert_eq!(
        audit[6].detail,
        json!({"id": "tok_1", "name": "tok_1 name", "role": "admin", "app": "*", "env": "*"})
    );
    assert_eq!(audit[7].detail["id"], json!("tok_1"));
}

async fn seqs(s: &dyn Store, filter: AuditFilter) -> Vec<i64> {
    s.audit(&filter)
        .await
        .unwrap()
        .iter()
        .map(|r: &AuditRecord| r.seq)
        .collect()
}

pub(super) async fn audit_filters(s: Arc<dyn Store>) {
    let commits = history(&*s).await;
    let s = &*s;
    let f = AuditFilter::default;
    let some = |v: &str| Some(v.to_owned());
    assert_eq!(seqs(s, f()).await, (1..=9).collect::<Vec<_>>());
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                key: some("db/url"),
                ..f()
            }
        )
        .await,
        vec![4, 5]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                actor: some("bob"),
                ..f()
            }
        )
        .await,
        vec![2, 5, 9]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                action: some("entry.set"),
                ..f()
            }
        )
        .await,
        vec![3]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                app: some("billing"),
                ..f()
            }
        )
        .await,
        vec![1, 3]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                app: some(""),
                ..f()
            }
        )
        .await,
        vec![4, 5, 6],
        "Some(\"\") app = global only"
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                env: some("prod"),
                ..f()
            }
        )
        .await,
        vec![2, 3, 9]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                env: some(""),
                ..f()
            }
        )
        .await,
        vec![4, 5],
        "Some(\"\") env = all-environments scope only"
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                key: some("nope"),
                ..f()
            }
        )
        .await,
        Vec::<i64>::new()
    );
    // Time range: since inclusive, until exclusive.
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                since: Some(commits[2].at),
                ..f()
            }
        )
        .await,
        (3..=9).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                until: Some(commits[2].at),
                ..f()
            }
        )
        .await,
        vec![1, 2]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                since: Some(commits[1].at),
                until: Some(commits[4].at),
                ..f()
            }
        )
        .await,
        vec![2, 3, 4, 5]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                after_seq: Some(7),
                ..f()
            }
        )
        .await,
        vec![8, 9]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                limit: Some(2),
                ..f()
            }
        )
        .await,
        vec![1, 2],
        "limit keeps the oldest"
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                after_seq: Some(3),
                limit: Some(2),
                ..f()
            }
        )
        .await,
        vec![4, 5]
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                limit: Some(0),
                ..f()
            }
        )
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        seqs(
            s,
            AuditFilter {
                actor: some("alice"),
                action: some("entry.rollback"),
                app: some(""),
                key: some("db/url"),
                ..f()
            }
        )
        .await,
        vec![4],
        "filters combine"
    );
}

/// Commits and non-change events form one sealed chain with a signed head;
/// a failed commit does not extend it.
pub(super) async fn audit_chain_is_sealed(s: Arc<dyn Store>) {
    use crate::{chain, AuditEvent};
    let key = super::TEST_AUDIT_KEY;
    history(&*s).await;
    s.append_audit(
        &context("mallory"),
        vec![
            AuditEvent {
                action: AuditAction::AccessDenied,
                app: Some("billing".into()),
                env: None,
                key: Some("db".into()),
                detail: json!({"reason": "forbidden"}),
            },
            AuditEvent {
                action: AuditAction::AuthFailed,
                app: None,
                env: None,
                key: None,
                detail: json!({"reason": "bad token"}),
            },
        ],
        Some(key),
        None,
    )
    .await
    .unwrap();
    s.append_audit(&context("x"), vec![], Some(key), None)
        .await
        .unwrap();
    let failed = s
        .commit(Commit {
            context: context("bob"),
            mutations: vec![(None, delete(&Scope::global(), "never-existed", None))],
            seal: Some(key),
            sink: None,
            guard: None,
        })
        .await;
    assert!(failed.is_err());
    let records = s.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(records.len(), 11);
    assert_eq!(records[9].action, "access.denied");
    assert_eq!(records[9].revision, None, "events take no revision");
    assert_eq!(records[10].actor, "mallory");
    let head = s.audit_head().await.unwrap();
    assert_eq!(head.seq, 11);
    assert_eq!(chain::verify(&key, &records, &head), Ok(11));
    // The wrong key does not verify.
    assert!(chain::verify(&[8u8; 32], &records, &head).is_err());
    // Dropping the last record is noticed through the head.
    let err = chain::verify(&key, &records[..10], &head).unwrap_err();
    assert_eq!(err.seq, 11);
}
