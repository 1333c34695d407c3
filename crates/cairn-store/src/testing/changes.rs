//! Change requests: created once, replaced only under compare-and-set on
//! their version, atomic with the entries the applying commit writes, listed
//! by state newest first, audited once per transition.

use std::sync::Arc;

use cairn_model::Scope;
use chrono::{Duration, SubsecRound, Utc};
use serde_json::json;

use super::{commit, put, put_cas};
use crate::{
    AuditAction, AuditFilter, ChangeApproval, ChangeFilter, ChangeRecord, ChangeState, Mutation,
    PutChange, Store, StoreError,
};

fn record(id: &str, minutes_ago: i64) -> ChangeRecord {
    let at = (Utc::now() - Duration::minutes(minutes_ago)).trunc_subsecs(6);
    ChangeRecord {
        id: id.to_owned(),
        version: 1,
        state: ChangeState::Pending,
        requester: "user:ann".into(),
        requester_actor: "user:ann (operator)".into(),
        message: "peak".into(),
        content: json!({"entries": [{"key": "db/pool", "value": {"max": 80}, "base_version": 0}]}),
        content_hash: "sha256:aa".into(),
        environments: vec!["prod".into()],
        required_approvals: 2,
        approvals: Vec::new(),
        reason: None,
        forced: false,
        apply_at: None,
        expires_at: at + Duration::days(14),
        created_at: at,
        updated_at: at,
        applied_revision: None,
        conflict: None,
    }
}

fn put_change(record: &ChangeRecord, expected_version: i64) -> Mutation {
    Mutation::PutChange(PutChange {
        record: record.clone(),
        expected_version,
    })
}

/// The next version of `r` in `state`.
fn next(r: &ChangeRecord, state: ChangeState) -> ChangeRecord {
    let mut n = r.clone();
    n.version += 1;
    n.state = state;
    n
}

pub(super) async fn change_requests_are_compare_and_set(s: Arc<dyn Store>) {
    let s = &*s;
    assert_eq!(s.change("chg_1").await.unwrap(), None);
    let r1 = record("chg_1", 0);
    let c = commit(s, vec![put_change(&r1, 0)]).await.unwrap();
    assert_eq!(c.applied[0].from_version, Some(0));
    assert_eq!(c.applied[0].to_version, Some(1));
    assert_eq!(s.change("chg_1").await.unwrap().as_ref(), Some(&r1));

    // Creating it again: refused, nothing written.
    let head = s.head().await.unwrap();
    let again = commit(s, vec![put_change(&r1, 0)]).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(s.head().await.unwrap(), head);

    // An approval: version 2.
    let mut r2 = next(&r1, ChangeState::Pending);
    r2.approvals.push(ChangeApproval {
        principal: "user:bob".into(),
        actor: "user:bob (operator)".into(),
        at: r1.created_at,
        note: "ok".into(),
        content_hash: r1.content_hash.clone(),
    });
    commit(s, vec![put_change(&r2, 1)]).await.unwrap();
    assert_eq!(s.change("chg_1").await.unwrap().as_ref(), Some(&r2));

    // A second writer that read version 1 loses, and writes nothing.
    let stale = next(&r1, ChangeState::Rejected);
    let lost = commit(s, vec![put_change(&stale, 1)]).await;
    assert!(
        matches!(
            lost,
            Err(StoreError::ChangeConflict {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{lost:?}"
    );
    assert_eq!(s.change("chg_1").await.unwrap().as_ref(), Some(&r2));

    // A version that does not follow the expected one is refused.
    let mut skipping = next(&r2, ChangeState::Cancelled);
    skipping.version = 9;
    assert!(commit(s, vec![put_change(&skipping, 2)]).await.is_err());
    // Replacing one that does not exist is NotFound.
    let ghost = next(&record("chg_ghost", 0), ChangeState::Cancelled);
    let missing = commit(s, vec![put_change(&ghost, 1)]).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(s.change("chg_1").await.unwrap().as_ref(), Some(&r2));
}

/// Applying writes the entries and the `applied` state in one revision, or
/// neither: a moved entry fails the whole commit.
pub(super) async fn applying_a_change_is_atomic(s: Arc<dyn Store>) {
    let s = &*s;
    let g = Scope::global();
    let r1 = record("chg_a", 0);
    commit(s, vec![put_change(&r1, 0)]).await.unwrap();
    // Someone else writes the entry the request was based on (version 0).
    commit(s, vec![put(&g, "db/pool", json!({"max": 10}))])
        .await
        .unwrap();

    let applied = next(&r1, ChangeState::Applied);
    let head = s.head().await.unwrap();
    let failed = commit(
        s,
        vec![
            put_cas(&g, "db/pool", json!({"max": 80}), Some(0)),
            put_change(&applied, 1),
        ],
    )
    .await;
    assert!(
        matches!(failed, Err(StoreError::Conflict { .. })),
        "{failed:?}"
    );
    assert_eq!(s.head().await.unwrap(), head, "nothing written");
    assert_eq!(
        s.change("chg_a").await.unwrap().unwrap().state,
        ChangeState::Pending
    );

    // Against the current version it applies, and the record says where.
    let c = commit(
        s,
        vec![
            put_cas(&g, "db/pool", json!({"max": 80}), Some(1)),
            put_change(&applied, 1),
        ],
    )
    .await
    .unwrap();
    let stored = s.change("chg_a").await.unwrap().unwrap();
    assert_eq!(stored.state, ChangeState::Applied);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.applied_revision, Some(c.revision));
    let history = s.entry_history(&g, "db/pool").await.unwrap();
    let live = history.last().unwrap();
    assert_eq!(live.version, 2);
    assert_eq!(live.value, Some(json!({"max": 80})));
    assert_eq!(live.revision, c.revision);
}

pub(super) async fn change_requests_list_by_state_newest_first(s: Arc<dyn Store>) {
    let s = &*s;
    let old = record("chg_old", 30);
    let mid = record("chg_mid", 20);
    let new = record("chg_new", 10);
    for r in [&mid, &old, &new] {
        commit(s, vec![put_change(r, 0)]).await.unwrap();
    }
    let rejected = next(&mid, ChangeState::Rejected);
    commit(s, vec![put_change(&rejected, 1)]).await.unwrap();

    let ids = |v: Vec<ChangeRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = s.changes(&ChangeFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["chg_new", "chg_mid", "chg_old"]);
    let pending = ChangeFilter {
        states: vec![ChangeState::Pending],
        limit: None,
    };
    assert_eq!(
        ids(s.changes(&pending).await.unwrap()),
        ["chg_new", "chg_old"]
    );
    let open = ChangeFilter {
        states: vec![
            ChangeState::Pending,
            ChangeState::Scheduled,
            ChangeState::Rejected,
        ],
        limit: Some(2),
    };
    assert_eq!(ids(s.changes(&open).await.unwrap()), ["chg_new", "chg_mid"]);
    let none = ChangeFilter {
        states: vec![ChangeState::Expired],
        limit: None,
    };
    assert!(s.changes(&none).await.unwrap().is_empty());
    // Every field comes back as written.
    let back = s.change("chg_mid").await.unwrap().unwrap();
    assert_eq!(back, rejected);
}

pub(super) async fn change_transitions_are_audited(s: Arc<dyn Store>) {
    let s = &*s;
    let r1 = record("chg_t", 0);
    commit(s, vec![put_change(&r1, 0)]).await.unwrap();
    let mut r2 = next(&r1, ChangeState::Rejected);
    r2.reason = Some("not now".into());
    commit(s, vec![put_change(&r2, 1)]).await.unwrap();
    let records = s
        .audit(&AuditFilter {
            key: Some("chg_t".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = records.iter().map(|r| r.action()).collect();
    assert_eq!(
        actions,
        [
            Some(AuditAction::ChangeRequest),
            Some(AuditAction::ChangeReject)
        ]
    );
    let last = &records[1];
    assert_eq!(last.env.as_deref(), Some("prod"));
    assert_eq!((last.from_version, last.to_version), (Some(1), Some(2)));
    assert_eq!(last.detail["state"], "rejected");
    assert_eq!(last.detail["reason"], "not now");
    assert_eq!(last.detail["required_approvals"], 2);
    // The content (values) is not copied into the audit log.
    assert!(last.detail.get("content").is_none());
}

/// The approval that completes a request and its applied state in one
/// commit: two successive versions of one record, each compare-and-set on
/// the one before (the second sees the first), one audit record each; a
/// stale first step writes neither.
pub(super) async fn approval_and_apply_in_one_commit(s: Arc<dyn Store>) {
    let s = &*s;
    let g = Scope::global();
    let r1 = record("chg_f", 0);
    commit(s, vec![put_change(&r1, 0)]).await.unwrap();

    // Stale: based on version 2, which does not exist yet.
    let head = s.head().await.unwrap();
    let wrong = next(&next(&r1, ChangeState::Scheduled), ChangeState::Scheduled);
    let stale = commit(
        s,
        vec![
            put_change(&wrong, 2),
            put_change(&next(&wrong, ChangeState::Applied), 3),
        ],
    )
    .await;
    assert!(
        matches!(stale, Err(StoreError::ChangeConflict { actual: 1, .. })),
        "{stale:?}"
    );
    assert_eq!(s.head().await.unwrap(), head);
    assert_eq!(s.change("chg_f").await.unwrap().as_ref(), Some(&r1));

    let approved = next(&r1, ChangeState::Scheduled);
    let applied = next(&approved, ChangeState::Applied);
    let c = commit(
        s,
        vec![
            put_change(&approved, 1),
            put_cas(&g, "db/pool", json!({"max": 80}), Some(0)),
            put_change(&applied, 2),
        ],
    )
    .await
    .unwrap();
    let stored = s.change("chg_f").await.unwrap().expect("stored");
    assert_eq!(
        (stored.version, stored.state, stored.applied_revision),
        (3, ChangeState::Applied, Some(c.revision))
    );
    let audit = s
        .audit(&AuditFilter {
            key: Some("chg_f".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut steps: Vec<(Option<i64>, Option<i64>, Option<i64>)> = audit
        .iter()
        .map(|a| (a.revision, a.from_version, a.to_version))
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            (Some(c.revision - 1), Some(0), Some(1)),
            (Some(c.revision), Some(1), Some(2)),
            (Some(c.revision), Some(2), Some(3)),
        ]
    );
}
