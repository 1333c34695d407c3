//! The conformance suite every [`Store`] backend passes (feature `testing`),
//! and a PostgreSQL test harness ([`pg`]).
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn conformance() {
//!     cairn_store::testing::run_conformance(|| async { Arc::new(make()) as Arc<dyn Store> }).await;
//! }
//! ```
//!
//! Every case gets a fresh, empty store from the factory. All cases run; the
//! suite then panics naming every case that failed and why.

mod applied;
mod audit;
mod audit_visibility;
mod catalog;
mod changes;
mod concurrency;
mod entries;
mod guards;
mod kinds;
pub mod pg;
mod secrets;
mod times;
mod values;
mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cairn_model::{checksum, EntryKind, MergeMode, Scope};
use serde_json::Value;

use crate::PutEntry;
use crate::{AuditContext, Commit, Committed, Mutation, Store, StoreResult, TokenRecord};

pub use concurrency::{concurrent_cas, concurrent_writers};

/// A boxed case future.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
/// One conformance case: gets a fresh empty store, panics on failure.
pub type CaseFn = fn(Arc<dyn Store>) -> CaseFuture;

macro_rules! cases {
    ($($module:ident :: $case:ident),* $(,)?) => {
        &[$((stringify!($case), |s| Box::pin($module::$case(s)) as CaseFuture)),*]
    };
}

/// Every case, by name.
pub const CASES: &[(&str, CaseFn)] = cases![
    entries::empty_store,
    entries::set_get_and_history,
    entries::delete_is_a_tombstone_and_recreate_continues_numbering,
    entries::compare_and_set,
    entries::failed_commit_writes_nothing,
    entries::revisions_are_gapless,
    entries::entries_at_reads_the_past,
    entries::entry_changes_since_in_commit_order,
    entries::load_has_live_entries_only,
    entries::scope_revisions_include_deletes,
    kinds::one_kind_per_key,
    guards::a_stale_plan_is_refused,
    catalog::apps_and_environments,
    catalog::environment_approvers_and_compare_and_set,
    catalog::schemas_are_versioned,
    catalog::tokens,
    catalog::users,
    catalog::flag_counts,
    audit::one_audit_record_per_mutation,
    audit::audit_filters,
    audit::audit_chain_is_sealed,
    audit_visibility::audit_visibility_is_filtered_in_the_query,
    values::values_round_trip_exactly,
    times::times_are_truncated_to_microseconds,
    times::times_before_1970_sort_and_filter,
    secrets::secrets_versions_delete_and_rewrap,
    secrets::secret_policy_round_trips,
    secrets::leases_elect_one_holder,
    secrets::leases_with_huge_ttls_are_held,
    applied::applied_state_per_instance,
    webhooks::webhooks_subscriptions_and_delivery_queue,
    changes::change_requests_are_compare_and_set,
    changes::applying_a_change_is_atomic,
    changes::change_requests_list_by_state_newest_first,
    changes::change_transitions_are_audited,
    changes::approval_and_apply_in_one_commit,
    concurrency::concurrent_commits_are_serialized,
];

/// Runs every case of [`CASES`], each against a fresh store from
/// `make_store`, and panics listing the failed cases. Run it on a
/// multi-threaded runtime so the concurrency case is concurrent.
pub async fn run_conformance<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    run_cases(&names, make_store).await;
}

/// Runs the named cases only (panics on an unknown name).
pub async fn run_cases<F, Fut>(names: &[&str], make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let mut failures = Vec::new();
    for name in names {
        let Some((_, case)) = CASES.iter().find(|c| c.0 == *name) else {
            panic!("no conformance case named {name}");
        };
        let store = make_store().await;
        // A spawned task turns the case's panic into an error we can name.
        if let Err(e) = tokio::spawn(case(store)).await {
            let why = if e.is_panic() {
                panic_message(e.into_panic())
            } else {
                e.to_string()
            };
            failures.push(format!("  {name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "store conformance: {} of {} cases failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_owned()
    }
}

// ---- helpers shared by the cases (public so backend tests can use them) ----

/// An audit context with only an actor and message.
pub fn ctx(actor: &str, message: &str) -> AuditContext {
    AuditContext {
        actor: actor.to_owned(),
        message: message.to_owned(),
        ..AuditContext::default()
    }
}

/// A config entry write (merge mode), no compare-and-set.
pub fn put(scope: &Scope, key: &str, value: Value) -> Mutation {
    put_cas(scope, key, value, None)
}

/// A config entry write with `expected_version`.
pub fn put_cas(scope: &Scope, key: &str, value: Value, expected: Option<i64>) -> Mutation {
    Mutation::PutEntry(PutEntry {
        scope: scope.clone(),
        key: key.to_owned(),
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        checksum: checksum(&value),
        value: Some(value),
        expected_version: expected,
    })
}

/// A delete (tombstone) with `expected_version`.
pub fn delete(scope: &Scope, key: &str, expected: Option<i64>) -> Mutation {
    Mutation::PutEntry(PutEntry {
        scope: scope.clone(),
        key: key.to_owned(),
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        value: None,
        checksum: String::new(),
        expected_version: expected,
    })
}

/// A token record as a caller would build it (times at microsecond precision).
pub fn token(id: &str, hash: &str) -> TokenRecord {
    use chrono::SubsecRound;
    TokenRecord {
        id: id.to_owned(),
        name: format!("{id} name"),
        hash: hash.to_owned(),
        role: crate::Role::Admin,
        app: "*".to_owned(),
        env: "*".to_owned(),
        created_at: chrono::Utc::now().trunc_subsecs(6),
        expires_at: None,
        revoked_at: None,
        user: None,
    }
}

/// The audit-chain key the conformance suite seals with.
pub const TEST_AUDIT_KEY: crate::AuditKey = [7u8; 32];

/// Commits `mutations` with default actions under `context`.
pub async fn commit_with(
    store: &dyn Store,
    context: AuditContext,
    mutations: Vec<Mutation>,
) -> StoreResult<Committed> {
    store
        .commit(Commit {
            context,
            mutations: mutations.into_iter().map(|m| (None, m)).collect(),
            seal: Some(TEST_AUDIT_KEY),
            sink: None,
            guard: None,
        })
        .await
}

/// Commits `mutations` as actor `test`.
pub async fn commit(store: &dyn Store, mutations: Vec<Mutation>) -> StoreResult<Committed> {
    commit_with(store, ctx("test", "test change"), mutations).await
}
