//! Random sequences of principals and operations (requests, approvals,
//! edits, rebases, direct writes, rejects, cancels, forces, time passing,
//! and requests to change prod's own policy, which only admins approve):
//! no request is ever applied without N distinct approvals of its current
//! content, none by its requester — or forced by an admin with a reason —
//! and what an applied request wrote equals the content approved. The
//! expectations come from this file's own log of what succeeded, not from
//! the records the code keeps.

use std::collections::BTreeSet;

use cairn_core::approvals::RequestOptions;
use cairn_core::Error;
use cairn_model::Scope;
use cairn_store::{ChangeFilter, ChangeState};
use chrono::Duration;
use proptest::prelude::*;
use serde_json::json;

use super::{set, world, World, O};

const REQUIRED: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    /// `target`: 0 = shop/prod, 1 = global, 2 = shop/dev + shop/prod.
    Request {
        who: usize,
        target: u8,
        key: u8,
        value: u8,
    },
    Approve {
        who: usize,
        req: usize,
    },
    Edit {
        who: usize,
        req: usize,
        value: u8,
    },
    Rebase {
        who: usize,
        req: usize,
    },
    /// An ungated write of the same keys (the routes are not gated yet).
    Direct {
        key: u8,
        value: u8,
    },
    Reject {
        who: usize,
        req: usize,
    },
    Cancel {
        who: usize,
        req: usize,
    },
    Force {
        who: usize,
        req: usize,
        reason: bool,
    },
    Tick {
        days: u8,
    },
    /// Change prod's `strict_flags` (its policy: a request, approved by
    /// admins only).
    EnvRequest {
        who: usize,
        strict: bool,
    },
}

/// Indexes into `people`: the viewer and the admins (three, so that a
/// change of prod's policy can gather two approvals besides its requester).
const VIEWER: usize = 3;
const ADMINS: [usize; 3] = [4, 5, 6];

fn op() -> impl Strategy<Value = Op> {
    let who = 0..7usize;
    // Mostly the latest requests, so that some gather their approvals.
    let req = 0..3usize;
    prop_oneof![
        3 => (who.clone(), 0..3u8, 0..2u8, any::<u8>())
            .prop_map(|(who, target, key, value)| Op::Request { who, target, key, value }),
        6 => (who.clone(), req.clone()).prop_map(|(who, req)| Op::Approve { who, req }),
        1 => (who.clone(), req.clone(), any::<u8>())
            .prop_map(|(who, req, value)| Op::Edit { who, req, value }),
        1 => (who.clone(), req.clone()).prop_map(|(who, req)| Op::Rebase { who, req }),
        1 => (0..2u8, any::<u8>()).prop_map(|(key, value)| Op::Direct { key, value }),
        1 => (who.clone(), req.clone()).prop_map(|(who, req)| Op::Reject { who, req }),
        1 => (who.clone(), req.clone()).prop_map(|(who, req)| Op::Cancel { who, req }),
        1 => (who.clone(), req.clone(), any::<bool>())
            .prop_map(|(who, req, reason)| Op::Force { who, req, reason }),
        1 => (0..10u8).prop_map(|days| Op::Tick { days }),
        2 => (who.clone(), any::<bool>()).prop_map(|(who, strict)| Op::EnvRequest { who, strict }),
    ]
}

fn items(target: u8, key: u8, value: u8) -> Vec<cairn_core::ChangeItem> {
    let key = format!("k{key}");
    let v = json!(value);
    match target {
        0 => vec![set(Some("shop"), Some("prod"), &key, v)],
        1 => vec![set(None, None, &key, v)],
        _ => vec![
            set(Some("shop"), Some("dev"), &key, v.clone()),
            set(Some("shop"), Some("prod"), &key, v),
        ],
    }
}

/// What the test saw succeed.
#[derive(Default)]
struct Log {
    ids: Vec<String>,
    /// (request, approver identity, content hash approved).
    approvals: Vec<(String, String, String)>,
    /// Requests an admin forced with a non-blank reason.
    forced: BTreeSet<String>,
}

async fn run(ops: Vec<Op>) {
    let w = world().await;
    let a = w.svc.approvals();
    let adm2 = super::user("adm2", cairn_store::Role::Admin);
    let adm3 = super::user("adm3", cairn_store::Role::Admin);
    let people = [&w.ann, &w.bob, &w.cid, &w.vic, &w.adm, &adm2, &adm3];
    let mut log = Log::default();
    for op in ops {
        // The i-th latest request.
        let pick = |i: usize| {
            let n = log.ids.len();
            (n > 0).then(|| log.ids[n - 1 - i % n].clone())
        };
        match op {
            Op::Request {
                who,
                target,
                key,
                value,
            } => {
                let r = a
                    .write_entries(
                        people[who],
                        &O,
                        "m",
                        items(target, key, value),
                        None,
                        RequestOptions::default(),
                    )
                    .await;
                match (who, r) {
                    // A viewer may not write at all.
                    (VIEWER, r) => assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}"),
                    (_, Ok(cairn_core::approvals::Outcome::Requested(r))) => log.ids.push(r.id),
                    (_, r) => panic!("every target reaches prod: {r:?}"),
                }
            }
            Op::Approve { who, req } => {
                let Some(id) = pick(req) else { continue };
                let before = a.get(&w.adm, &id).await.unwrap();
                let p = people[who];
                let r = a.approve(p, &O, &id, "").await;
                let env_change = !before.content["environment"].is_null();
                if p.actor == before.requester
                    || who == VIEWER
                    || (env_change && !ADMINS.contains(&who))
                {
                    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
                } else if before.state != ChangeState::Pending
                    || log
                        .approvals
                        .iter()
                        .any(|(i, q, h)| *i == id && *q == p.actor && *h == before.content_hash)
                {
                    // Closed, or approved by them already (this content).
                    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
                } else {
                    r.unwrap();
                    log.approvals
                        .push((id, p.actor.clone(), before.content_hash.clone()));
                }
            }
            Op::Edit { who, req, value } => {
                let Some(id) = pick(req) else { continue };
                let r = a
                    .edit(people[who], &O, &id, items(0, value % 2, value))
                    .await;
                if let Ok(r) = &r {
                    assert!(r.approvals.is_empty());
                    log.approvals.retain(|(i, _, _)| *i != id);
                }
            }
            Op::Rebase { who, req } => {
                let Some(id) = pick(req) else { continue };
                if a.rebase(people[who], &O, &id).await.is_ok() {
                    // Approvals reset, even when nothing moved.
                    log.approvals.retain(|(i, _, _)| *i != id);
                }
            }
            Op::Direct { key, value } => {
                w.svc
                    .config()
                    .write_entries(&w.adm, &O, "direct", items(0, key, value), None)
                    .await
                    .unwrap();
            }
            Op::Reject { who, req } => {
                let Some(id) = pick(req) else { continue };
                let _ = a.reject(people[who], &O, &id, "no").await;
            }
            Op::Cancel { who, req } => {
                let Some(id) = pick(req) else { continue };
                let _ = a.cancel(people[who], &O, &id).await;
            }
            Op::Force { who, req, reason } => {
                let Some(id) = pick(req) else { continue };
                let r = a
                    .force(people[who], &O, &id, if reason { "incident" } else { "" })
                    .await;
                match r {
                    Ok(r) => {
                        assert!(
                            ADMINS.contains(&who) && reason,
                            "forced by {who} reason {reason}"
                        );
                        if r.state == ChangeState::Applied {
                            log.forced.insert(id);
                        }
                    }
                    Err(Error::Forbidden(_)) => assert!(!ADMINS.contains(&who)),
                    Err(_) => {}
                }
            }
            Op::Tick { days } => {
                w.clock.advance(Duration::days(days.into()));
                a.tick(w.svc.now()).await.unwrap();
            }
            Op::EnvRequest { who, strict } => {
                let s = cairn_core::EnvSettings {
                    strict_flags: Some(strict),
                    ..cairn_core::EnvSettings::default()
                };
                let r = a
                    .update_env(people[who], &O, "prod", s, RequestOptions::default())
                    .await;
                match r {
                    Ok(cairn_core::approvals::Outcome::Requested(r)) => {
                        assert!(ADMINS.contains(&who));
                        log.ids.push(r.id);
                    }
                    Err(Error::Forbidden(_)) => assert!(!ADMINS.contains(&who)),
                    r => panic!("prod is gated: {r:?}"),
                }
            }
        }
        check(&w, &log).await;
    }
}

/// Every applied request: forced by an admin with a reason (as logged), or
/// approved by at least N distinct principals other than its requester for
/// exactly its current content (as logged); its entries at its revision
/// are its content.
async fn check(w: &World, log: &Log) {
    let all = w
        .svc
        .approvals()
        .list(&w.adm, &ChangeFilter::default())
        .await
        .unwrap();
    for r in all.iter().filter(|r| r.state == ChangeState::Applied) {
        assert_eq!(r.content_hash, cairn_model::checksum(&r.content));
        if r.forced {
            assert!(log.forced.contains(&r.id), "{} forced unseen", r.id);
            assert!(r.reason.as_deref().is_some_and(|s| !s.trim().is_empty()));
        } else {
            let approvers: BTreeSet<&str> = log
                .approvals
                .iter()
                .filter(|(i, q, h)| *i == r.id && *h == r.content_hash && *q != r.requester)
                .map(|(_, q, _)| q.as_str())
                .collect();
            assert!(
                approvers.len() >= REQUIRED,
                "{} applied with approvers {approvers:?}",
                r.id
            );
        }
        let rev = r.applied_revision.expect("applied revision");
        let env = &r.content["environment"];
        if !env.is_null() {
            // Applied on the settings it was based on; if nothing changed
            // prod since, prod reads what it set.
            assert!(env["base_revision"].as_i64().unwrap() < rev);
            let prod = w.svc.config().env(&w.adm, "prod").unwrap();
            if prod.revision == rev {
                assert_eq!(json!(prod.strict_flags), env["strict_flags"]);
            }
        }
        for e in r.content["entries"].as_array().unwrap() {
            let scope: Scope = serde_json::from_value(e["scope"].clone()).unwrap();
            let key = e["key"].as_str().unwrap();
            let h = w.svc.config().history(&w.adm, &scope, key).await.unwrap();
            let v = h
                .iter()
                .find(|v| v.revision == rev)
                .unwrap_or_else(|| panic!("{} did not write {key} at {rev}", r.id));
            assert_eq!(v.value.as_ref(), Some(&e["value"]));
            assert_eq!(v.version, e["base_version"].as_i64().unwrap() + 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn applied_only_with_distinct_approvals_of_its_content(ops in proptest::collection::vec(op(), 10..60)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}
