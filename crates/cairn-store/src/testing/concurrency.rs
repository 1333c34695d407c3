//! Concurrent committers: one store, or several stores sharing one database.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cairn_model::Scope;
use serde_json::json;

use super::{commit, put, put_cas};
use crate::{AuditFilter, Store, StoreError};

pub(super) async fn concurrent_commits_are_serialized(s: Arc<dyn Store>) {
    concurrent_writers(vec![s.clone()], 8, 25).await;
    concurrent_cas(vec![s], 8).await;
}

fn scope() -> Scope {
    Scope::new(Some("concurrency"), None)
}

/// `tasks` tasks (spread round-robin over `stores`, which must all be views
/// of one database) each commit `commits_per_task` times at once. Each commit
/// writes the task's own key with compare-and-set and a key every task shares.
/// Checks: every commit acknowledged once with a distinct revision, the
/// revisions are exactly the next `tasks × commits_per_task` after the
/// starting head, every entry's versions are 1..=n in revision order, and
/// the audit log got exactly two gapless records per commit.
pub async fn concurrent_writers(
    stores: Vec<Arc<dyn Store>>,
    tasks: usize,
    commits_per_task: usize,
) {
    assert!(!stores.is_empty());
    let first = stores[0].clone();
    let base = first.head().await.unwrap().revision;
    let audit_base = first
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .last()
        .map_or(0, |r| r.seq);
    let total = (tasks * commits_per_task) as i64;

    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = stores[t % stores.len()].clone();
        handles.push(tokio::spawn(async move {
            let own = format!("writer/{t}");
            let mut acks = Vec::new();
            for j in 0..commits_per_task as i64 {
                let c = commit(
                    &*store,
                    vec![
                        put_cas(&scope(), &own, json!({"task": t, "n": j}), Some(j)),
                        put(&scope(), "shared", json!([t, j])),
                    ],
                )
                .await
                .unwrap_or_else(|e| panic!("task {t} commit {j}: {e}"));
                assert_eq!(c.applied[0].to_version, Some(j + 1));
                acks.push(c.revision);
            }
            (t, acks)
        }));
    }
    let mut acked: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for h in handles {
        let (t, acks) = h.await.unwrap();
        acked.insert(t, acks);
    }

    let all: Vec<i64> = acked.values().flatten().copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a revision was acknowledged twice"
    );
    assert_eq!(
        distinct.into_iter().collect::<Vec<_>>(),
        ((base + 1)..=(base + total)).collect::<Vec<_>>(),
        "revisions are gapless"
    );
    assert_eq!(first.head().await.unwrap().revision, base + total);

    for s in &stores {
        for (t, acks) in &acked {
            let history = s
                .entry_history(&scope(), &format!("writer/{t}"))
                .await
                .unwrap();
            let versions: Vec<i64> = history.iter().map(|v| v.version).collect();
            assert_eq!(versions, (1..=commits_per_task as i64).collect::<Vec<_>>());
            let revisions: Vec<i64> = history.iter().map(|v| v.revision).collect();
            assert_eq!(
                &revisions, acks,
                "task {t}: versions carry their commit's revision"
            );
        }
        let shared = s.entry_history(&scope(), "shared").await.unwrap();
        let versions: Vec<i64> = shared.iter().map(|v| v.version).collect();
        let start = versions.first().copied().unwrap_or(1);
        assert_eq!(
            versions,
            (start..start + total).collect::<Vec<_>>(),
            "shared key versions are gapless"
        );
        let revisions: Vec<i64> = shared.iter().map(|v| v.revision).collect();
        let tail = revisions[revisions.len() - total as usize..].to_vec();
        assert_eq!(
            tail,
            ((base + 1)..=(base + total)).collect::<Vec<_>>(),
            "shared key versions are in revision order"
        );
    }

    let (head, changes) = first.entry_changes_since(base).await.unwrap();
    assert_eq!(head.revision, base + total);
    assert_eq!(changes.len(), 2 * total as usize);
    let change_revisions: Vec<i64> = changes.iter().map(|v| v.revision).collect();
    let expected: Vec<i64> = ((base + 1)..=(base + total)).flat_map(|r| [r, r]).collect();
    assert_eq!(
        change_revisions, expected,
        "changes in revision order, two per commit"
    );

    let audit = first
        .audit(&AuditFilter {
            after_seq: Some(audit_base),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let seqs: Vec<i64> = audit.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        ((audit_base + 1)..=(audit_base + 2 * total)).collect::<Vec<_>>(),
        "audit seq is gapless"
    );
    let audit_revisions: Vec<Option<i64>> = audit.iter().map(|r| r.revision).collect();
    assert_eq!(
        audit_revisions,
        expected.into_iter().map(Some).collect::<Vec<_>>(),
        "audit records in commit order"
    );
}

/// `tasks` tasks (round-robin over `stores`) race to create the same key with
/// `expected_version = 0`, then to update it from version 1: each round
/// exactly one wins and every other gets `Conflict`.
pub async fn concurrent_cas(stores: Vec<Arc<dyn Store>>, tasks: usize) {
    assert!(!stores.is_empty());
    let key = "cas-race";
    for (round, expected) in [(0, 0), (1, 1)] {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = stores[t % stores.len()].clone();
            handles.push(tokio::spawn(async move {
                commit(
                    &*store,
                    vec![put_cas(&scope(), key, json!([round, t]), Some(expected))],
                )
                .await
            }));
        }
        let mut wins = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { actual, .. }) => {
                    assert_eq!(actual, expected + 1, "round {round}")
                }
                Err(e) => panic!("round {round}: unexpected error {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one compare-and-set wins");
    }
    let history = stores[0].entry_history(&scope(), key).await.unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
}
