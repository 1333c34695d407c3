//! An environment's own policy is gated by that policy, and its approvers
//! list decides who may approve (DESIGN.md §7, issue #13), through the
//! service on a real SQLite store: unprotecting prod is a request that
//! changes nothing until N distinct admins other than the requester approve;
//! `approvers` narrows who may approve, strictest over every affected
//! environment; an environment that moved since the request conflicts; a bad
//! approver is refused and nothing changes.

use std::sync::Arc;

use cairn_core::approvals::{Outcome, RequestOptions};
use cairn_core::{ChangeItem, EnvSettings, Error, Options, Origin, Principal, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::Store;
use cairn_store::{Binding, ChangeFilter, ChangeRecord, ChangeState, Committed, Environment, Role};
use cairn_store_sqlite::SqliteStore;
use serde_json::{json, Value};

const O: Origin = Origin {
    client_ip: None,
    user_agent: None,
};

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
    adm: Principal,
    _dir: tempfile::TempDir,
}

fn policy(protected: bool, required: i32, approvers: &[&str]) -> EnvSettings {
    EnvSettings {
        protected: Some(protected),
        required_approvals: Some(required),
        auto_approve: Some(false),
        approvers: Some(approvers.iter().map(|s| s.to_string()).collect()),
        ..EnvSettings::default()
    }
}

/// App `shop`; `prod` protected with 2 approvals and `approvers`, set while
/// it was still open (so directly).
async fn world(approvers: &[&str]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("c.db")).await.unwrap());
    let svc = Service::open(store, Options::default()).await.unwrap().0;
    let adm = user("adm", Role::Admin);
    svc.config().create_app(&adm, &O, "shop", "").await.unwrap();
    let w = World {
        svc,
        adm,
        _dir: dir,
    };
    let out = w
        .update_env(&w.adm, "prod", policy(true, 2, approvers))
        .await;
    assert!(matches!(out, Ok(Outcome::Written(_))), "{out:?}");
    w
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
    async fn update_env(
        &self,
        who: &Principal,
        name: &str,
        s: EnvSettings,
    ) -> Result<Outcome<Committed>, Error> {
        self.svc
            .approvals()
            .update_env(who, &O, name, s, RequestOptions::default())
            .await
    }

    async fn requested(&self, who: &Principal, name: &str, s: EnvSettings) -> ChangeRecord {
        match self.update_env(who, name, s).await.unwrap() {
            Outcome::Requested(r) => *r,
            Outcome::Written(c) => panic!("expected a request, written at {}", c.revision),
        }
    }

    fn env(&self, name: &str) -> Environment {
        self.svc.config().env(&self.adm, name).unwrap()
    }

    async fn write(&self, who: &Principal, item: ChangeItem) -> Outcome {
        self.svc
            .approvals()
            .write_entries(who, &O, "w", vec![item], None, RequestOptions::default())
            .await
            .unwrap()
    }

    async fn approve(&self, who: &Principal, id: &str) -> Result<ChangeRecord, Error> {
        self.svc.approvals().approve(who, &O, id, "").await
    }
}

fn forbidden_saying(r: Result<ChangeRecord, Error>, words: &[&str]) {
    match r {
        Err(Error::Forbidden(m)) => {
            for w in words {
                assert!(m.contains(w), "{m:?} should say {w:?}");
            }
        }
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test]
async fn unprotecting_prod_is_a_request_applied_after_n_distinct_admins() {
    let w = world(&[]).await;
    let (adm2, adm3) = (user("adm2", Role::Admin), user("adm3", Role::Admin));
    let ann = user("ann", Role::Operator);
    let before = w.env("prod");
    let head = w.svc.revision();

    let r = w.requested(&w.adm, "prod", policy(false, 0, &[])).await;
    assert_eq!(r.state, ChangeState::Pending);
    assert_eq!(r.environments, vec!["prod".to_string()]);
    assert_eq!(r.required_approvals, 2);
    assert_eq!(r.requester, "user:adm");
    assert_eq!(r.content_hash, cairn_model::checksum(&r.content));
    assert_eq!(r.content["environment"]["name"], "prod");
    assert_eq!(r.content["environment"]["protected"], false);
    assert_eq!(r.content["environment"]["base_revision"], before.revision);
    assert_eq!(r.content["entries"], json!([]));
    // Nothing changed: prod is as it was, one revision (the request's).
    assert_eq!(w.env("prod"), before);
    assert_eq!(w.svc.revision(), head + 1);
    // And prod still gates writes.
    assert!(matches!(
        w.write(&ann, set(Some("shop"), Some("prod"), "k", json!(1)))
            .await,
        Outcome::Requested(_)
    ));

    // The preview shows the settings before and after.
    let (_, p) = w.svc.approvals().show(&w.adm, &r.id).await.unwrap();
    let e = p.environment.expect("an environment preview");
    assert_eq!(
        (e.name.as_str(), e.base_revision),
        ("prod", before.revision)
    );
    assert_eq!(e.current_revision, Some(before.revision));
    assert!(e.before.as_ref().unwrap().protected);
    let after = e.after.unwrap();
    assert!(!after.protected);
    assert_eq!(after.required_approvals, 0);
    assert!(p.entries.is_empty() && p.views.is_empty());

    // Refused: the requester; an operator (a policy change needs an admin);
    // one admin twice. Editing it as entries is refused too.
    forbidden_saying(w.approve(&w.adm, &r.id).await, &["own request"]);
    forbidden_saying(w.approve(&ann, &r.id).await, &["admin role"]);
    let one = w.approve(&adm2, &r.id).await.unwrap();
    assert_eq!(one.state, ChangeState::Pending);
    assert!(matches!(
        w.approve(&adm2, &r.id).await,
        Err(Error::Conflict { .. })
    ));
    assert!(
        w.env("prod").protected,
        "one approval of two changes nothing"
    );
    let edit = w
        .svc
        .approvals()
        .edit(
            &w.adm,
            &O,
            &r.id,
            vec![set(None, Some("prod"), "k", json!(2))],
        )
        .await;
    assert!(matches!(edit, Err(Error::Invalid { .. })), "{edit:?}");

    let done = w.approve(&adm3, &r.id).await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
    let rev = done.applied_revision.expect("applied revision");
    let prod = w.env("prod");
    assert!(!prod.protected);
    assert_eq!(prod.required_approvals, 0);
    assert_eq!(
        prod.revision, rev,
        "applied in the revision that applied the request"
    );
    // prod is open now: written at once.
    assert!(matches!(
        w.write(&ann, set(Some("shop"), Some("prod"), "k", json!(3)))
            .await,
        Outcome::Written(_)
    ));
}

#[tokio::test]
async fn what_of_a_gated_environment_is_direct() {
    let w = world(&[]).await;
    // A description changes no policy: written at once.
    let out = w
        .update_env(
            &w.adm,
            "prod",
            EnvSettings {
                description: Some("Production".into()),
                ..EnvSettings::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Written(_)));
    assert_eq!(w.env("prod").description, "Production");
    // Every policy field is gated, each on its own.
    let fields = [
        EnvSettings {
            protected: Some(false),
            ..EnvSettings::default()
        },
        EnvSettings {
            required_approvals: Some(1),
            ..EnvSettings::default()
        },
        EnvSettings {
            auto_approve: Some(true),
            ..EnvSettings::default()
        },
        EnvSettings {
            strict_flags: Some(true),
            ..EnvSettings::default()
        },
        EnvSettings {
            approvers: Some(vec!["user:adm".into()]),
            ..EnvSettings::default()
        },
    ];
    let before = w.env("prod");
    for s in fields {
        w.requested(&w.adm, "prod", s.clone()).await;
        assert_eq!(w.env("prod"), before, "{s:?}");
    }
    // Only admins change environments, gated or not.
    let ann = user("ann", Role::Operator);
    let r = w.update_env(&ann, "prod", policy(false, 0, &[])).await;
    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
    // Open environments (and protecting them) are written at once.
    let out = w
        .update_env(&w.adm, "staging", policy(true, 1, &[]))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Written(_)));
    assert!(w.env("staging").protected);
    // Now gated: even turning on auto_approve needs staging's approval.
    let auto = EnvSettings {
        auto_approve: Some(true),
        ..EnvSettings::default()
    };
    w.requested(&w.adm, "staging", auto.clone()).await;
    assert!(!w.env("staging").auto_approve);
    // An auto-approved protected environment is not gated.
    w.update_env(&w.adm, "dev", policy(true, 1, &[]))
        .await
        .unwrap();
    w.svc
        .config()
        .update_env(&w.adm, &O, "dev", auto)
        .await
        .unwrap();
    let out = w
        .update_env(&w.adm, "dev", policy(false, 0, &[]))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Written(_)));
    assert!(!w.env("dev").protected);
}

#[tokio::test]
async fn the_approvers_list_decides_who_may_approve() {
    let w = world(&["user:ann", "user:cid"]).await;
    let ann = user("ann", Role::Operator);
    let bob = user("bob", Role::Operator);
    let cid = user("cid", Role::Operator);
    let dan = user("dan", Role::Operator);
    let adm2 = user("adm2", Role::Admin);
    assert_eq!(w.env("prod").approvers, vec!["user:ann", "user:cid"]);

    let Outcome::Requested(r) = w
        .write(&bob, set(Some("shop"), Some("prod"), "pool", json!(80)))
        .await
    else {
        panic!("prod is gated")
    };
    // Operators and admins not on the list: 403, saying who may.
    forbidden_saying(
        w.approve(&dan, &r.id).await,
        &["user:dan", &r.id, "prod", "user:ann, user:cid"],
    );
    forbidden_saying(w.approve(&adm2, &r.id).await, &["user:adm2", "prod"]);
    let one = w.approve(&ann, &r.id).await.unwrap();
    assert_eq!(one.state, ChangeState::Pending);
    let done = w.approve(&cid, &r.id).await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
    let v = w.svc.config().resolve(&w.adm, "shop", "prod").unwrap();
    assert_eq!(v.values.get("pool"), Some(&json!(80)));
    // Rejecting is for those who may approve.
    let Outcome::Requested(r2) = w
        .write(&bob, set(Some("shop"), Some("prod"), "pool", json!(90)))
        .await
    else {
        panic!("prod is gated")
    };
    let no = w.svc.approvals().reject(&dan, &O, &r2.id, "no").await;
    assert!(matches!(no, Err(Error::Forbidden(_))), "{no:?}");
}

#[tokio::test]
async fn the_strictest_list_of_every_affected_environment() {
    // prod: ann only; qa: operators (and higher).
    let w = world(&["user:ann"]).await;
    w.svc
        .config()
        .create_env(&w.adm, &O, "qa", policy(true, 1, &["role:operator"]))
        .await
        .unwrap();
    let ann = user("ann", Role::Operator);
    let cid = user("cid", Role::Operator);
    let vic = user("vic", Role::Viewer);
    let adm2 = user("adm2", Role::Admin);
    // A global write reaches prod and qa: approvers must be on both lists.
    let Outcome::Requested(r) = w.write(&w.adm, set(None, None, "wide", json!(1))).await else {
        panic!("global reaches prod")
    };
    assert_eq!(r.environments, vec!["prod".to_string(), "qa".to_string()]);
    forbidden_saying(w.approve(&cid, &r.id).await, &["prod"]);
    forbidden_saying(w.approve(&adm2, &r.id).await, &["prod"]);
    assert!(matches!(
        w.approve(&vic, &r.id).await,
        Err(Error::Forbidden(_))
    ));
    let one = w.approve(&ann, &r.id).await.unwrap();
    assert_eq!((one.state, one.approvals.len()), (ChangeState::Pending, 1));
    // A write reaching qa only: operators (and admins) on qa's list.
    let Outcome::Requested(q) = w.write(&ann, set(None, Some("qa"), "q", json!(1))).await else {
        panic!("qa is gated")
    };
    let done = w.approve(&cid, &q.id).await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
}

#[tokio::test]
async fn an_environment_that_moved_conflicts_and_rebases() {
    let w = world(&[]).await;
    let (adm2, adm3) = (user("adm2", Role::Admin), user("adm3", Role::Admin));
    let r = w.requested(&w.adm, "prod", policy(false, 0, &[])).await;
    // Meanwhile another change of prod's settings (a description is direct).
    w.update_env(
        &adm2,
        "prod",
        EnvSettings {
            description: Some("moved".into()),
            ..EnvSettings::default()
        },
    )
    .await
    .unwrap();
    let moved = w.env("prod");
    let (_, p) = w.svc.approvals().show(&w.adm, &r.id).await.unwrap();
    let e = p.environment.unwrap();
    assert_ne!(e.current_revision, Some(e.base_revision));

    w.approve(&adm2, &r.id).await.unwrap();
    let done = w.approve(&adm3, &r.id).await.unwrap();
    assert_eq!(done.state, ChangeState::Conflicted);
    let conflict = done.conflict.expect("a reason");
    assert_eq!(conflict["code"], "conflict");
    assert!(
        conflict["message"].as_str().unwrap().contains("prod"),
        "{conflict}"
    );
    assert_eq!(w.env("prod"), moved, "nothing written");

    // Rebased on the current settings: pending, approvals reset, then applied.
    let rebased = w.svc.approvals().rebase(&w.adm, &O, &r.id).await.unwrap();
    assert_eq!(rebased.state, ChangeState::Pending);
    assert!(rebased.approvals.is_empty());
    assert_eq!(
        rebased.content["environment"]["base_revision"],
        moved.revision
    );
    assert_ne!(rebased.content_hash, r.content_hash);
    w.approve(&adm2, &r.id).await.unwrap();
    let done = w.approve(&adm3, &r.id).await.unwrap();
    assert_eq!(done.state, ChangeState::Applied);
    let prod = w.env("prod");
    assert!(!prod.protected);
    assert_eq!(prod.description, "moved");
}

#[tokio::test]
async fn a_bad_approver_is_refused_and_nothing_changes() {
    let w = world(&[]).await;
    let invalid_at = |r: Result<Outcome<Committed>, Error>, field: &str, item: &str| match r {
        Err(Error::Invalid { field: f, message }) => {
            assert_eq!(f, field);
            assert!(message.contains(item), "{message:?} names {item:?}");
        }
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    let head = w.svc.revision();
    let dev = w.env("dev");
    // An open environment (direct), a gated one (would be a request).
    invalid_at(
        w.update_env(&w.adm, "dev", policy(true, 1, &["role:admin", "group:ops"]))
            .await,
        "approvers[1]",
        "group:ops",
    );
    invalid_at(
        w.update_env(&w.adm, "prod", policy(false, 0, &["user:Ann"]))
            .await,
        "approvers[0]",
        "user:Ann",
    );
    invalid_at(
        w.update_env(&w.adm, "prod", policy(true, 2, &["role:sdk"]))
            .await,
        "approvers[0]",
        "role:sdk",
    );
    let created = w
        .svc
        .config()
        .create_env(&w.adm, &O, "qa", policy(true, 1, &["admin"]))
        .await;
    assert!(
        matches!(&created, Err(Error::Invalid { field, .. }) if field == "approvers[0]"),
        "{created:?}"
    );
    assert_eq!(w.svc.revision(), head, "nothing committed");
    assert_eq!(w.env("dev"), dev);
    assert!(w.svc.config().env(&w.adm, "qa").is_err());
    let open = w
        .svc
        .approvals()
        .list(&w.adm, &ChangeFilter::default())
        .await
        .unwrap();
    assert!(open.is_empty(), "no request stored: {open:?}");
}

/// `env set prod --protected true` on an environment created open (the
/// built-in ones auto-approve) turns approvals on: the next write waits.
#[tokio::test]
async fn protecting_an_open_environment_turns_auto_approval_off() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("c.db")).await.unwrap());
    let svc = Service::open(store, Options::default()).await.unwrap().0;
    let adm = user("adm", Role::Admin);
    let before = svc.config().env(&adm, "prod").unwrap();
    assert!(!before.protected && before.auto_approve, "{before:?}");
    let protect = EnvSettings {
        protected: Some(true),
        required_approvals: Some(2),
        ..EnvSettings::default()
    };
    let out = svc
        .approvals()
        .update_env(&adm, &O, "prod", protect, RequestOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Written(_)),
        "an open env is changed at once"
    );
    let prod = svc.config().env(&adm, "prod").unwrap();
    assert!(prod.protected && !prod.auto_approve, "{prod:?}");
    assert_eq!(prod.required_approvals, 2);
    let write = svc
        .approvals()
        .write_entries(
            &adm,
            &O,
            "m",
            vec![ChangeItem {
                scope: Scope::new(None, Some("prod")),
                key: "a".into(),
                kind: EntryKind::Config,
                merge: MergeMode::Merge,
                value: Some(serde_json::json!(1)),
                expected_version: None,
            }],
            None,
            RequestOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        matches!(write, Outcome::Requested(_)),
        "prod now gates writes"
    );
}
