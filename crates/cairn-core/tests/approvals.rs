//! Change requests for protected environments through the service, on a
//! real SQLite store (DESIGN.md §7, issue #13): the gate, approvals,
//! conflicts and rebases, force, reject, cancel, expiry and scheduled
//! apply, and a property test over random sequences of operations.

use std::sync::Arc;

use cairn_core::approvals::{Outcome, RequestOptions};
use cairn_core::clock::ManualClock;
use cairn_core::{ChangeItem, EnvSettings, Error, Options, Origin, Principal, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::{Binding, ChangeFilter, ChangeRecord, ChangeState, Role, Store};
use cairn_store_sqlite::SqliteStore;
use chrono::Duration;
use serde_json::{json, Value};

#[path = "approvals/property.rs"]
mod property;

fn user(name: &str, role: Role) -> Principal {
    Principal {
        actor: format!("user:{name}"),
        name: name.into(),
        bindings: vec![Binding {
            role,
            app: "*".into(),
            env: "*".into(),
        }],
    }
}

struct World {
    svc: Arc<Service>,
    clock: Arc<ManualClock>,
    ann: Principal,
    bob: Principal,
    cid: Principal,
    vic: Principal,
    adm: Principal,
    _dir: tempfile::TempDir,
}

const O: Origin = Origin {
    client_ip: None,
    user_agent: None,
};

/// A service with app `shop` and `prod` protected with 2 required approvals
/// (dev and staging open).
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("c.db")).await.unwrap());
    let clock = ManualClock::new("2026-03-01T00:00:00Z".parse().unwrap());
    let opts = Options {
        clock: clock.clone(),
        ..Options::default()
    };
    let svc = Service::open(store, opts).await.unwrap().0;
    let adm = user("adm", Role::Admin);
    svc.config().create_app(&adm, &O, "shop", "").await.unwrap();
    svc.config()
        .update_env(
            &adm,
            &O,
            "prod",
            EnvSettings {
                protected: Some(true),
                required_approvals: Some(2),
                auto_approve: Some(false),
                ..EnvSettings::default()
            },
        )
        .await
        .unwrap();
    World {
        svc,
        clock,
        ann: user("ann", Role::Operator),
        bob: user("bob", Role::Operator),
        cid: user("cid", Role::Operator),
        vic: user("vic", Role::Viewer),
        adm,
        _dir: dir,
    }
}

fn set(app: Option<&str>, env: Option<&str>, key: &str, value: Value) -> ChangeItem {
    ChangeItem {
        scope: Scope::new(app, env),
        key: key.into(),
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        value: Some(value),
        expected_version: None,
    }
}

impl World {
    async fn request(&self, who: &Principal, items: Vec<ChangeItem>) -> ChangeRecord {
        self.request_with(who, items, RequestOptions::default())
            .await
    }

    async fn request_with(
        &self,
        who: &Principal,
        items: Vec<ChangeItem>,
        opts: RequestOptions,
    ) -> ChangeRecord {
        match self
            .svc
            .approvals()
            .write_entries(who, &O, "peak", items, None, opts)
            .await
            .unwrap()
        {
            Outcome::Requested(r) => *r,
            Outcome::Written(w) => panic!("expected a request, written at {:?}", w.committed),
        }
    }

    /// The value applications of (app, env) read at `key`.
    fn view(&self, app: &str, env: &str, key: &str) -> Option<Value> {
        let v = self.svc.config().resolve(&self.adm, app, env).unwrap();
        v.values.get(key).cloned()
    }

    async fn state(&self, id: &str) -> ChangeState {
        self.svc.approvals().get(&self.adm, id).await.unwrap().state
    }
}

fn is_forbidden(r: Result<ChangeRecord, Error>) -> bool {
    matches!(r, Err(Error::Forbidden(_)))
}

fn is_conflict(r: Result<ChangeRecord, Error>) -> bool {
    matches!(r, Err(Error::Conflict { .. }))
}

#[tokio::test]
async fn request_two_approvals_applied_as_one_revision() {
    let w = world().await;
    let a = w.svc.approvals();
    let items = vec![
        set(
            Some("shop"),
            Some("prod"),
            "database/pool",
            json!({"max": 80}),
        ),
        set(Some("shop"), Some("prod"), "database/timeout", json!(5)),
    ];
    let r = w.request(&w.ann, items).await;
    assert_eq!(r.state, ChangeState::Pending);
    assert_eq!(r.required_approvals, 2);
    assert_eq!(r.environments, vec!["prod".to_string()]);
    assert_eq!(r.requester, "user:ann");
    assert!(r.id.starts_with("chg_"), "{}", r.id);
    assert_eq!(r.content_hash, cairn_model::checksum(&r.content));
    assert_eq!(
        r.expires_at,
        "2026-03-15T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(w.view("shop", "prod", "database/pool"), None);

    // Refused: the requester, a viewer; the same approver twice.
    assert!(is_forbidden(a.approve(&w.ann, &O, &r.id, "").await));
    assert!(is_forbidden(a.approve(&w.vic, &O, &r.id, "").await));
    let one = a.approve(&w.bob, &O, &r.id, "ok").await.unwrap();
    assert_eq!(one.state, ChangeState::Pending);
    assert_eq!(one.approvals.len(), 1);
    assert!(is_conflict(a.approve(&w.bob, &O, &r.id, "again").await));
    assert_eq!(w.view("shop", "prod", "database/pool"), None);

    let before = w.svc.revision();
    let done = a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
    let rev = done.applied_revision.expect("applied revision");
    assert!(rev > before);
    assert_eq!(
        w.view("shop", "prod", "database/pool"),
        Some(json!({"max": 80}))
    );
    // Both entries in the one revision that applied it.
    for key in ["database/pool", "database/timeout"] {
        let e = w
            .svc
            .config()
            .get(&w.adm, &Scope::new(Some("shop"), Some("prod")), key)
            .unwrap();
        assert_eq!((e.revision, e.version), (rev, 1), "{key}");
    }
    // The last approval and the apply are one commit: two audit records
    // of the request at the revision that applied it.
    let page = w
        .svc
        .identity()
        .audit(
            &w.adm,
            &cairn_store::AuditFilter {
                key: Some(r.id.clone()),
                ..cairn_store::AuditFilter::default()
            },
        )
        .await
        .unwrap();
    let mut trail: Vec<(String, Option<i64>)> = page
        .records
        .iter()
        .map(|a| (a.action.clone(), a.revision))
        .collect();
    trail.sort_by_key(|t| t.1);
    let first = trail[0].1;
    assert_eq!(
        trail,
        [
            ("change.request".to_owned(), first),
            ("change.approve".to_owned(), trail[1].1),
            ("change.approve".to_owned(), Some(rev)),
            ("change.apply".to_owned(), Some(rev)),
        ]
    );
    assert!(trail[1].1 < Some(rev) && first < trail[1].1, "{trail:?}");
    // Closed: nothing more to approve.
    assert!(is_conflict(a.approve(&w.adm, &O, &r.id, "").await));
}

#[tokio::test]
async fn what_is_gated_and_what_is_written() {
    let w = world().await;
    let a = w.svc.approvals();
    // dev is open: written at once.
    let out = a
        .write_entries(
            &w.ann,
            &O,
            "",
            vec![set(Some("shop"), Some("dev"), "k", json!(1))],
            None,
            RequestOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Written(_)));
    assert_eq!(w.view("shop", "dev", "k"), Some(json!(1)));
    // Broader scopes reach prod: gated.
    for (app, env) in [(None, None), (Some("shop"), None)] {
        let r = w
            .request(&w.adm, vec![set(app, env, "wide", json!(2))])
            .await;
        assert_eq!(r.environments, vec!["prod".to_string()], "{app:?}/{env:?}");
        assert_eq!(w.view("shop", "dev", "wide"), None);
    }
    // A mixed change set is one request; nothing of it is written meanwhile.
    let r = w
        .request(
            &w.ann,
            vec![
                set(Some("shop"), Some("dev"), "mixed", json!("d")),
                set(Some("shop"), Some("prod"), "mixed", json!("p")),
            ],
        )
        .await;
    assert_eq!(w.view("shop", "dev", "mixed"), None);
    a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    assert_eq!(w.view("shop", "dev", "mixed"), Some(json!("d")));
    assert_eq!(w.view("shop", "prod", "mixed"), Some(json!("p")));
    // The preview of a global write covers every view it reaches.
    let g = w
        .request(&w.ann, vec![set(None, None, "g", json!(true))])
        .await;
    let (_, p) = a.show(&w.adm, &g.id).await.unwrap();
    let views: Vec<(&str, &str)> = p
        .views
        .iter()
        .map(|v| (v.app.as_str(), v.env.as_str()))
        .collect();
    assert_eq!(
        views,
        vec![("shop", "dev"), ("shop", "prod"), ("shop", "staging")]
    );
    for v in &p.views {
        assert_eq!(v.before.get("g"), None);
        assert_eq!(v.after.get("g"), Some(&json!(true)));
    }
    assert_eq!(p.entries[0].before, None);
    assert_eq!(p.entries[0].after, Some(json!(true)));
}

#[tokio::test]
async fn invalid_requests_store_nothing_and_apply_revalidates() {
    let w = world().await;
    let a = w.svc.approvals();
    w.svc
        .config()
        .register_schema(
            &w.adm,
            &O,
            Some("shop"),
            "limits/*",
            json!({"type": "object"}),
            false,
            "",
        )
        .await
        .unwrap();
    let bad = a
        .write_entries(
            &w.ann,
            &O,
            "",
            vec![set(Some("shop"), Some("prod"), "limits/a", json!(5))],
            None,
            RequestOptions::default(),
        )
        .await;
    assert!(matches!(bad, Err(Error::SchemaViolation { .. })), "{bad:?}");
    assert!(a
        .list(&w.adm, &ChangeFilter::default())
        .await
        .unwrap()
        .is_empty());

    // Valid when requested; a stricter schema arrives before approval.
    let r = w
        .request(
            &w.ann,
            vec![set(Some("shop"), Some("prod"), "other/a", json!(5))],
        )
        .await;
    let (_, p) = a.show(&w.bob, &r.id).await.unwrap();
    let check = p.check.expect("an open request is checked");
    assert!(check.applies && check.problem.is_none(), "{check:?}");
    w.svc
        .config()
        .register_schema(
            &w.adm,
            &O,
            Some("shop"),
            "other/*",
            json!({"type": "string"}),
            false,
            "",
        )
        .await
        .unwrap();
    // The reviewer sees it would not apply, and why, before approving.
    let before = w.svc.revision();
    let (_, p) = a.show(&w.bob, &r.id).await.unwrap();
    let check = p.check.expect("checked");
    assert!(!check.applies, "{check:?}");
    let problem = check.problem.expect("why");
    assert_eq!(problem["code"], json!("schema_violation"), "{problem}");
    assert_eq!(problem["violations"][0]["pointer"], json!(""), "{problem}");
    assert_eq!(w.svc.revision(), before, "checking writes nothing");
    a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    let done = a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    assert_eq!(done.state, ChangeState::Conflicted);
    let conflict = done.conflict.expect("reason");
    assert_eq!(conflict["code"], json!("schema_violation"), "{conflict}");
    assert_eq!(w.view("shop", "prod", "other/a"), None);
    // Conflicted: still checked (for a rebase); applied or rejected: not.
    let (_, p) = a.show(&w.adm, &r.id).await.unwrap();
    assert_eq!(p.check.map(|c| c.applies), Some(false));
}

#[tokio::test]
async fn edit_resets_approvals() {
    let w = world().await;
    let a = w.svc.approvals();
    let r = w
        .request(&w.ann, vec![set(Some("shop"), Some("prod"), "k", json!(1))])
        .await;
    a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    // Only the requester or an admin edits.
    assert!(is_forbidden(
        a.edit(
            &w.cid,
            &O,
            &r.id,
            vec![set(Some("shop"), Some("prod"), "k", json!(3))]
        )
        .await
    ));
    let e = a
        .edit(
            &w.ann,
            &O,
            &r.id,
            vec![set(Some("shop"), Some("prod"), "k", json!(2))],
        )
        .await
        .unwrap();
    assert_eq!(e.state, ChangeState::Pending);
    assert!(e.approvals.is_empty());
    assert_ne!(e.content_hash, r.content_hash);
    // bob's approval was of the old content: he may approve again, and it
    // takes two approvals of the new content.
    let one = a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    assert_eq!(one.state, ChangeState::Pending);
    let done = a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
    assert_eq!(w.view("shop", "prod", "k"), Some(json!(2)));
}

#[tokio::test]
async fn a_moved_entry_conflicts_then_rebase_and_apply() {
    let w = world().await;
    let a = w.svc.approvals();
    let r = w
        .request(
            &w.ann,
            vec![set(Some("shop"), Some("prod"), "k", json!("req"))],
        )
        .await;
    // A direct write (the routes are not gated yet) moves the entry.
    w.svc
        .config()
        .write_entries(
            &w.adm,
            &O,
            "hotfix",
            vec![set(Some("shop"), Some("prod"), "k", json!("direct"))],
            None,
        )
        .await
        .unwrap();
    let rev = w.svc.revision();
    let (_, p) = a.show(&w.bob, &r.id).await.unwrap();
    let problem = p.check.and_then(|c| c.problem).expect("would not apply");
    assert_eq!(problem["code"], json!("conflict"), "{problem}");
    a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    let c = a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    assert_eq!(c.state, ChangeState::Conflicted);
    assert!(c.conflict.is_some());
    assert_eq!(w.view("shop", "prod", "k"), Some(json!("direct")));
    // Only the record moved (two approvals, then conflicted): three
    // revisions, no entry.
    assert_eq!(w.svc.revision(), rev + 3);
    let e = w
        .svc
        .config()
        .get(&w.adm, &Scope::new(Some("shop"), Some("prod")), "k")
        .unwrap();
    assert_eq!(e.version, 1);

    let rb = a.rebase(&w.ann, &O, &r.id).await.unwrap();
    assert_eq!(rb.state, ChangeState::Pending);
    assert!(rb.approvals.is_empty());
    assert_eq!(rb.content["entries"][0]["base_version"], json!(1));
    a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    let done = a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
    assert_eq!(w.view("shop", "prod", "k"), Some(json!("req")));
}

#[tokio::test]
async fn force_reject_cancel() {
    let w = world().await;
    let a = w.svc.approvals();
    let item = || vec![set(Some("shop"), Some("prod"), "k", json!(1))];

    let r = w.request(&w.ann, item()).await;
    assert!(matches!(
        a.force(&w.adm, &O, &r.id, " ").await,
        Err(Error::Invalid { .. })
    ));
    assert!(is_forbidden(a.force(&w.bob, &O, &r.id, "incident").await));
    let f = a.force(&w.adm, &O, &r.id, "incident 4711").await.unwrap();
    assert_eq!(f.state, ChangeState::Applied);
    assert!(f.forced);
    assert_eq!(f.reason.as_deref(), Some("incident 4711"));
    assert_eq!(w.view("shop", "prod", "k"), Some(json!(1)));

    let r = w.request(&w.ann, item()).await;
    assert!(matches!(
        a.reject(&w.bob, &O, &r.id, "").await,
        Err(Error::Invalid { .. })
    ));
    assert!(is_forbidden(a.reject(&w.vic, &O, &r.id, "no").await));
    let rj = a.reject(&w.bob, &O, &r.id, "not now").await.unwrap();
    assert_eq!(rj.state, ChangeState::Rejected);
    assert!(is_conflict(a.approve(&w.cid, &O, &r.id, "").await));

    let r = w.request(&w.ann, item()).await;
    assert!(is_forbidden(a.cancel(&w.bob, &O, &r.id).await));
    let c = a.cancel(&w.ann, &O, &r.id).await.unwrap();
    assert_eq!(c.state, ChangeState::Cancelled);
    let r = w.request(&w.ann, item()).await;
    assert_eq!(
        a.cancel(&w.adm, &O, &r.id).await.unwrap().state,
        ChangeState::Cancelled
    );
    // The viewer reads requests; an app-bound token of another app does not.
    assert!(a.get(&w.vic, &r.id).await.is_ok());
    let other = Principal {
        actor: "token:tok_other".into(),
        name: "other".into(),
        bindings: vec![Binding {
            role: Role::Operator,
            app: "billing".into(),
            env: "*".into(),
        }],
    };
    assert!(matches!(
        a.get(&other, &r.id).await,
        Err(Error::Hidden { .. })
    ));
}

#[tokio::test]
async fn expiry_and_scheduled_apply_through_tick() {
    let w = world().await;
    let a = w.svc.approvals();
    let t0 = w.svc.now();
    let stale = w
        .request(&w.ann, vec![set(Some("shop"), Some("prod"), "a", json!(1))])
        .await;
    let sched = w
        .request_with(
            &w.ann,
            vec![set(Some("shop"), Some("prod"), "b", json!(2))],
            RequestOptions {
                apply_at: Some(t0 + Duration::days(1)),
            },
        )
        .await;
    a.approve(&w.bob, &O, &sched.id, "").await.unwrap();
    let s = a.approve(&w.cid, &O, &sched.id, "").await.unwrap();
    assert_eq!(s.state, ChangeState::Scheduled);
    assert_eq!(w.view("shop", "prod", "b"), None);

    // Not yet due, not yet expired.
    let run = a.tick(w.svc.now()).await.unwrap();
    assert_eq!(run, Default::default());

    w.clock.advance(Duration::days(1));
    let run = a.tick(w.svc.now()).await.unwrap();
    assert_eq!(run.applied, vec![sched.id.clone()]);
    assert_eq!(w.view("shop", "prod", "b"), Some(json!(2)));
    assert_eq!(w.state(&stale.id).await, ChangeState::Pending);

    w.clock.advance(Duration::days(13));
    let run = a.tick(w.svc.now()).await.unwrap();
    assert_eq!(run.expired, vec![stale.id.clone()]);
    assert_eq!(w.state(&stale.id).await, ChangeState::Expired);
    // Exactly once: a second tick finds nothing.
    assert_eq!(a.tick(w.svc.now()).await.unwrap(), Default::default());
    assert!(is_conflict(a.approve(&w.bob, &O, &stale.id, "").await));
}

#[tokio::test]
async fn two_replicas_ticking_apply_once() {
    let w = world().await;
    let a = w.svc.approvals();
    let t0 = w.svc.now();
    let r = w
        .request_with(
            &w.ann,
            vec![set(Some("shop"), Some("prod"), "once", json!(1))],
            RequestOptions {
                apply_at: Some(t0 + Duration::hours(1)),
            },
        )
        .await;
    a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    let later = t0 + Duration::hours(2);
    let (x, y) = tokio::join!(a.tick(later), a.tick(later));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.applied.len() + y.applied.len(), 1, "{x:?} {y:?}");
    let history = w
        .svc
        .config()
        .history(&w.adm, &Scope::new(Some("shop"), Some("prod")), "once")
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
}

/// A metric line's value (`None`: the line is absent).
fn metric(text: &str, line: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_open_requests_per_environment_and_approval_latency() {
    let w = world().await;
    let open =
        |env: &str, state: &str| format!(r#"cairn_changes_open{{env="{env}",state="{state}"}}"#);
    let text = w.svc.render_metrics().await;
    assert_eq!(metric(&text, &open("prod", "pending")), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "cairn_change_approval_seconds_count"),
        Some(0.0)
    );

    // A global write reaches prod (and dev, staging: not gated), so it
    // waits for prod only.
    let r = w
        .request(&w.ann, vec![set(None, None, "a", json!(1))])
        .await;
    let s = w
        .request(&w.ann, vec![set(Some("shop"), Some("prod"), "b", json!(2))])
        .await;
    let text = w.svc.render_metrics().await;
    assert_eq!(metric(&text, &open("prod", "pending")), Some(2.0), "{text}");
    assert_eq!(metric(&text, &open("dev", "pending")), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, &open("prod", "scheduled")),
        Some(0.0),
        "{text}"
    );

    // Approved 90 s after it was requested: one observation, in the
    // (64 s, 256 s] bucket.
    w.clock.advance(Duration::seconds(90));
    let a = w.svc.approvals();
    a.approve(&w.bob, &O, &r.id, "").await.unwrap();
    let done = a.approve(&w.cid, &O, &r.id, "").await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
    a.reject(&w.bob, &O, &s.id, "not now").await.unwrap();
    let text = w.svc.render_metrics().await;
    assert_eq!(metric(&text, &open("prod", "pending")), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "cairn_change_approval_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "cairn_change_approval_seconds_sum"),
        Some(90.0)
    );
    let bucket = |le: &str| format!(r#"cairn_change_approval_seconds_bucket{{le="{le}"}}"#);
    assert_eq!(metric(&text, &bucket("64.0")), Some(0.0), "{text}");
    assert_eq!(metric(&text, &bucket("256.0")), Some(1.0), "{text}");
}
