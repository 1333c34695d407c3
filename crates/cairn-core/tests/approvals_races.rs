//! Change requests under concurrency, on SQLite (one service, concurrent
//! callers) and PostgreSQL (two services on one database: two replicas):
//! the approvals that complete a request race and it is applied once; two
//! approved requests for one key race and exactly one is applied, the other
//! conflicted, and the entry holds the applied one's value.

use std::sync::Arc;

use cairn_core::approvals::{Outcome, RequestOptions};
use cairn_core::{ChangeItem, EnvSettings, Error, Options, Origin, Principal, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::testing::pg::TestPg;
use cairn_store::{AuditFilter, Binding, ChangeRecord, ChangeState, Role, Store};
use serde_json::{json, Value};

const O: Origin = Origin {
    client_ip: None,
    user_agent: None,
};
const ROUNDS: usize = 8;
/// Rounds of the write-vs-protection race (each is cheap).
const RACE_ROUNDS: usize = 40;

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

fn set(key: &str, value: Value) -> ChangeItem {
    ChangeItem {
        scope: Scope::new(Some("shop"), Some("prod")),
        key: key.into(),
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        value: Some(value),
        expected_version: None,
    }
}

/// Two services (replicas) over `stores`, which share one database; app
/// `shop`, `prod` protected with 2 required approvals.
async fn replicas(stores: [Arc<dyn Store>; 2]) -> [Arc<Service>; 2] {
    let [a, b] = stores;
    let first = Service::open(a, Options::default()).await.unwrap().0;
    let adm = user("adm", Role::Admin);
    first
        .config()
        .create_app(&adm, &O, "shop", "")
        .await
        .unwrap();
    let settings = EnvSettings {
        protected: Some(true),
        required_approvals: Some(2),
        auto_approve: Some(false),
        ..EnvSettings::default()
    };
    first
        .config()
        .update_env(&adm, &O, "prod", settings)
        .await
        .unwrap();
    let second = Service::open(b, Options::default()).await.unwrap().0;
    [first, second]
}

async fn request(svc: &Service, who: &Principal, key: &str, value: Value) -> ChangeRecord {
    match svc
        .approvals()
        .write_entries(
            who,
            &O,
            "race",
            vec![set(key, value)],
            None,
            RequestOptions::default(),
        )
        .await
        .unwrap()
    {
        Outcome::Requested(r) => *r,
        Outcome::Written(_) => panic!("prod is protected: expected a request"),
    }
}

/// Approve, once more if a concurrent transition moved the record first
/// (what a user told "409, try again" does).
async fn approve(svc: &Service, who: &Principal, id: &str) -> Result<ChangeRecord, Error> {
    match svc.approvals().approve(who, &O, id, "").await {
        Err(Error::Conflict { .. }) => {
            svc.sync().await.unwrap();
            svc.approvals().approve(who, &O, id, "").await
        }
        other => other,
    }
}

async fn final_state(svc: &Service, id: &str) -> ChangeRecord {
    svc.sync().await.unwrap();
    svc.approvals()
        .get(&user("adm", Role::Admin), id)
        .await
        .unwrap()
}

async fn history_len(svc: &Service, key: &str) -> usize {
    svc.sync().await.unwrap();
    svc.config()
        .history(
            &user("adm", Role::Admin),
            &Scope::new(Some("shop"), Some("prod")),
            key,
        )
        .await
        .unwrap()
        .len()
}

async fn audit_count(store: &dyn Store, id: &str, action: &str) -> usize {
    store
        .audit(&AuditFilter {
            key: Some(id.into()),
            action: Some(action.into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .len()
}

/// The two approvals a request needs arrive at once (one per replica): it is
/// applied exactly once — one `change.apply` record, one entry version.
async fn completing_approvals_race(svcs: [Arc<Service>; 2], store: Arc<dyn Store>) {
    let (ann, bob, cid) = (
        user("ann", Role::Operator),
        user("bob", Role::Operator),
        user("cid", Role::Operator),
    );
    for round in 0..ROUNDS {
        let key = format!("pool/{round}");
        let r = request(&svcs[0], &ann, &key, json!({"max": round})).await;
        let (x, y) = tokio::join!(
            approve(&svcs[0], &bob, &r.id),
            approve(&svcs[1], &cid, &r.id)
        );
        // Each approval either counted or found the request already applied.
        for got in [&x, &y] {
            match got {
                Ok(_) | Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        let done = final_state(&svcs[1], &r.id).await;
        assert_eq!(done.state, ChangeState::Applied, "round {round}: {done:?}");
        assert_eq!(history_len(&svcs[0], &key).await, 1, "round {round}");
        assert_eq!(
            audit_count(&*store, &r.id, "change.apply").await,
            1,
            "round {round}"
        );
        let approvers: std::collections::BTreeSet<_> =
            done.approvals.iter().map(|a| a.principal.clone()).collect();
        assert_eq!(
            approvers.into_iter().collect::<Vec<_>>(),
            ["user:bob", "user:cid"],
            "round {round}: applied with both approvals"
        );
    }
}

/// Two requests for the same key, each one approval short, get their last
/// approval at once: one is applied, the other conflicted (its base version
/// moved), and the entry holds the applied request's value.
async fn competing_requests_race(svcs: [Arc<Service>; 2]) {
    let (ann, dan) = (user("ann", Role::Operator), user("dan", Role::Operator));
    let (bob, cid) = (user("bob", Role::Operator), user("cid", Role::Operator));
    for round in 0..ROUNDS {
        let key = format!("limit/{round}");
        let r1 = request(&svcs[0], &ann, &key, json!(1)).await;
        let r2 = request(&svcs[1], &dan, &key, json!(2)).await;
        approve(&svcs[0], &bob, &r1.id).await.unwrap();
        approve(&svcs[1], &bob, &r2.id).await.unwrap();
        let (x, y) = tokio::join!(
            approve(&svcs[0], &cid, &r1.id),
            approve(&svcs[1], &cid, &r2.id)
        );
        x.unwrap();
        y.unwrap();
        let s1 = final_state(&svcs[0], &r1.id).await.state;
        let s2 = final_state(&svcs[0], &r2.id).await.state;
        let winner = match (s1, s2) {
            (ChangeState::Applied, ChangeState::Conflicted) => json!(1),
            (ChangeState::Conflicted, ChangeState::Applied) => json!(2),
            other => {
                panic!("round {round}: expected one applied and one conflicted, got {other:?}")
            }
        };
        assert_eq!(history_len(&svcs[0], &key).await, 1, "round {round}");
        let view = svcs[1]
            .config()
            .resolve(&user("adm", Role::Admin), "shop", "prod")
            .unwrap();
        assert_eq!(view.values.get(&key), Some(&winner), "round {round}");
    }
}

mod sqlite {
    use super::*;
    use cairn_store_sqlite::SqliteStore;

    async fn one() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("c.db")).await.unwrap());
        (store, dir)
    }

    /// SQLite is one process's: both "replicas" are the same service.
    async fn services() -> ([Arc<Service>; 2], Arc<dyn Store>, tempfile::TempDir) {
        let (store, dir) = one().await;
        let [svc, _] = replicas([store.clone(), store.clone()]).await;
        ([svc.clone(), svc], store, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn completing_approvals_apply_once() {
        let (svcs, store, _dir) = services().await;
        completing_approvals_race(svcs, store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn competing_requests_one_applies() {
        let (svcs, _, _dir) = services().await;
        competing_requests_race(svcs).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_write_racing_protection() {
        let (svcs, _, _dir) = services().await;
        a_write_racing_protection_is_never_direct_after_it(svcs).await;
    }
}

/// A write at prod races prod becoming protected (one per replica): a write
/// answered as written committed before the protection; one that commits
/// after it is a request instead. Never a direct write to a protected prod.
async fn a_write_racing_protection_is_never_direct_after_it(svcs: [Arc<Service>; 2]) {
    let (ann, adm) = (user("ann", Role::Operator), user("adm", Role::Admin));
    let (mut written, mut requested) = (0, 0);
    for round in 0..RACE_ROUNDS {
        // Open again, directly (the ungated write path).
        let open = EnvSettings {
            protected: Some(false),
            ..EnvSettings::default()
        };
        svcs[1]
            .config()
            .update_env(&adm, &O, "prod", open)
            .await
            .unwrap();
        for s in &svcs {
            s.sync().await.unwrap();
        }
        let protect = EnvSettings {
            protected: Some(true),
            required_approvals: Some(2),
            ..EnvSettings::default()
        };
        let (a0, a1) = (svcs[0].approvals(), svcs[1].approvals());
        let (write, protected) = tokio::join!(
            a0.write_entries(
                &ann,
                &O,
                "race",
                vec![set("k", json!(round))],
                None,
                RequestOptions::default(),
            ),
            a1.update_env(&adm, &O, "prod", protect, RequestOptions::default()),
        );
        assert!(
            matches!(protected.unwrap(), Outcome::Written(_)),
            "round {round}"
        );
        svcs[0].sync().await.unwrap();
        let prod = svcs[0].config().env(&adm, "prod").unwrap();
        assert!(
            prod.protected && !prod.auto_approve,
            "round {round}: {prod:?}"
        );
        match write.unwrap() {
            Outcome::Written(w) => {
                assert!(
                    w.committed.revision < prod.revision,
                    "round {round}: written directly at revision {} after prod was \
                     protected at revision {}",
                    w.committed.revision,
                    prod.revision
                );
                written += 1;
            }
            Outcome::Requested(r) => {
                assert_eq!(r.environments, ["prod"], "round {round}");
                requested += 1;
            }
        }
    }
    assert_eq!(written + requested, RACE_ROUNDS);
}

mod postgres {
    use super::*;
    use cairn_store_postgres::PostgresStore;

    async fn services() -> Option<([Arc<Service>; 2], Arc<dyn Store>)> {
        let pg = TestPg::shared()?;
        let url = pg.create_database();
        let a: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
        Some((replicas([a.clone(), b]).await, a))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn completing_approvals_on_two_replicas_apply_once() {
        let Some((svcs, store)) = services().await else {
            return;
        };
        completing_approvals_race(svcs, store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn competing_requests_on_two_replicas_one_applies() {
        let Some((svcs, _)) = services().await else {
            return;
        };
        competing_requests_race(svcs).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_write_on_one_replica_racing_protection_on_the_other() {
        let Some((svcs, _)) = services().await else {
            return;
        };
        a_write_racing_protection_is_never_direct_after_it(svcs).await;
    }
}
