//! Audit visibility: the query itself keeps only the records a principal may
//! see, so `limit` counts visible records and paging by `seq` walks them all.

use std::sync::Arc;

use cairn_model::glob_match;
use serde_json::json;

use super::{ctx, TEST_AUDIT_KEY};
use crate::{AuditAction, AuditEvent, AuditFilter, AuditRecord, AuditVisibility, ScopeGlob, Store};

/// Apps of the records: `None` and `""` are global. `bill_ops` and `50%`
/// hold LIKE wildcards, `a[b]` a GLOB class: each must match only itself.
const APPS: [Option<&str>; 9] = [
    Some("billing"),
    Some("search"),
    None,
    Some("bill_ops"),
    Some("billxops"),
    Some(""),
    Some("50%"),
    Some("500"),
    Some("a[b]"),
];
const ENVS: [Option<&str>; 4] = [Some("prod"), Some("dev"), None, Some("")];
const ACTIONS: [AuditAction; 5] = [
    AuditAction::EntrySet,
    AuditAction::SchemaRegister,
    AuditAction::AppCreate,
    AuditAction::EntryDelete,
    AuditAction::EnvCreate,
];

/// Appends one record per (app, env, action), in an order that spreads the
/// visible ones of any filter across the log.
async fn fill(s: &dyn Store) -> Vec<AuditRecord> {
    let mut events = Vec::new();
    for (i, action) in ACTIONS.iter().enumerate() {
        for env in ENVS {
            for (j, app) in APPS.iter().enumerate() {
                events.push(AuditEvent {
                    action: *action,
                    app: app.map(str::to_owned),
                    env: env.map(str::to_owned),
                    key: Some(format!("k{i}{j}")),
                    detail: json!({}),
                });
            }
        }
    }
    s.append_audit(&ctx("test", "fill"), events, Some(TEST_AUDIT_KEY), None)
        .await
        .unwrap();
    let all = s.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), ACTIONS.len() * ENVS.len() * APPS.len());
    all
}

fn glob(app: &str, env: &str) -> ScopeGlob {
    ScopeGlob {
        app: app.to_owned(),
        env: env.to_owned(),
    }
}

fn visibility(scopes: Vec<ScopeGlob>) -> AuditVisibility {
    AuditVisibility {
        action_prefixes: vec!["entry.".to_owned(), "schema.".to_owned()],
        scopes,
    }
}

/// The rule of [`AuditVisibility`], written out over the records in memory
/// (names matched by the model's glob, as policy matches bindings).
fn visible(v: &AuditVisibility, r: &AuditRecord) -> bool {
    let covers = |pattern: &str, name: &Option<String>| match name.as_deref() {
        None | Some("") => true,
        Some(n) => glob_match(pattern, n),
    };
    v.action_prefixes.iter().any(|p| r.action.starts_with(p))
        && v.scopes
            .iter()
            .any(|g| covers(&g.app, &r.app) && covers(&g.env, &r.env))
}

async fn seqs(s: &dyn Store, filter: AuditFilter) -> Vec<i64> {
    s.audit(&filter)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

pub(super) async fn audit_visibility_is_filtered_in_the_query(s: Arc<dyn Store>) {
    let all = fill(&*s).await;
    let s = &*s;
    let only = |v: AuditVisibility| AuditFilter {
        visible: Some(v),
        ..AuditFilter::default()
    };

    // Hand-counted: 3 visible actions (entry.set, schema.register,
    // entry.delete; not app.create, nor env.create which shares a first letter).
    // billing/prod: apps billing + the 2 global forms, envs prod + the 2
    // every-env forms: 3 actions × 3 envs × 3 apps.
    let billing_prod = visibility(vec![glob("billing", "prod")]);
    let got = seqs(s, only(billing_prod.clone())).await;
    assert_eq!(got.len(), 27, "billing/prod: {got:?}");
    // `_`, `%` and `[` are literal: bill_ops, 50% and a[b] see themselves
    // and the global records only: 3 × 4 envs × (1 + 2).
    for app in ["bill_ops", "50%", "a[b]"] {
        let got = seqs(s, only(visibility(vec![glob(app, "*")]))).await;
        assert_eq!(got.len(), 36, "{app}/*: {got:?}");
    }
    // No scope, or no action: nothing.
    assert_eq!(seqs(s, only(visibility(vec![]))).await, Vec::<i64>::new());
    let no_action = AuditVisibility {
        action_prefixes: vec![],
        scopes: vec![glob("*", "*")],
    };
    assert_eq!(seqs(s, only(no_action)).await, Vec::<i64>::new());
    // `*`/`*` sees every visible action anywhere: 3 × 4 × 9.
    assert_eq!(
        seqs(s, only(visibility(vec![glob("*", "*")]))).await.len(),
        108
    );

    // Every shape of pattern, against the rule written out in memory.
    let cases = [
        vec![glob("billing", "prod")],
        vec![glob("bill*", "*")],
        vec![glob("bill?ops", "prod")],
        vec![glob("bill_ops", "d?v")],
        vec![glob("5*", "*")],
        vec![glob("50%", "prod"), glob("search", "dev")],
        vec![glob("a[b]", "*"), glob("*", "pr*")],
        vec![glob("*ing", "*")],
        vec![glob("nothing", "prod")],
    ];
    for scopes in cases {
        let v = visibility(scopes);
        let want: Vec<i64> = all
            .iter()
            .filter(|r| visible(&v, r))
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs(s, only(v.clone())).await, want, "{v:?}");

        // `limit` counts visible records; walking by `after_seq` gives every
        // visible record once, in order, in full pages.
        let mut walked: Vec<i64> = Vec::new();
        let mut after = None;
        loop {
            let page = seqs(
                s,
                AuditFilter {
                    visible: Some(v.clone()),
                    after_seq: after,
                    limit: Some(7),
                    ..AuditFilter::default()
                },
            )
            .await;
            let full = page.len() == 7;
            walked.extend(&page);
            match page.last() {
                Some(last) if full => after = Some(*last),
                _ => break,
            }
        }
        assert_eq!(walked, want, "paging {v:?}");
    }

    // Visibility narrows the other filters, not the reverse.
    let got = seqs(
        s,
        AuditFilter {
            action: Some("entry.set".into()),
            visible: Some(billing_prod),
            limit: Some(4),
            ..AuditFilter::default()
        },
    )
    .await;
    let want: Vec<i64> = all
        .iter()
        .filter(|r| r.action == "entry.set")
        .filter(|r| matches!(r.app.as_deref(), None | Some("") | Some("billing")))
        .filter(|r| matches!(r.env.as_deref(), None | Some("") | Some("prod")))
        .map(|r| r.seq)
        .take(4)
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 4);
}
