//! Change requests and approvals for protected environments (DESIGN.md §7,
//! issue #13): the gate (`gate`), gated writes and edits (`request`), the
//! transitions — approve, reject, cancel, rebase, force, apply, and the
//! scheduler's tick (`transitions`) — the before/after preview
//! (`preview`), and changes to an environment's own policy, gated by that
//! policy (`environment`).
//!
//! One write path: a request is planned by the configuration write path
//! (`Config::prepare` + `Config::plan_checked`), stored as a
//! `Mutation::PutChange` through the kernel's commit, and applied by planning
//! its stored entries again against committed state and committing them with
//! `expected_version` = their base versions and the record's `applied` state
//! in one commit. Every transition is a compare-and-set on the record's
//! version, so two replicas never apply one request twice.

mod environment;
pub mod gate;
pub mod preview;
mod request;
mod transitions;

use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::{AuditAction, ChangeRecord, ChangeState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::entries::{ChangeItem, Written};
use crate::config::Config;
use crate::identity::auth::Principal;
use crate::identity::policy::Action;
use crate::kernel::Kernel;
use crate::{Error, Result};

pub use environment::EnvChange;
pub use gate::Gate;
pub use preview::{Check, EntryPreview, EnvPreview, Preview, ViewPreview};
pub use transitions::TickRun;

/// How long a pending request waits for approvals by default.
pub const DEFAULT_EXPIRY: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// The lease the replica that applies scheduled requests holds.
pub const LEASE: &str = "change-scheduler";

/// The change-request feature ([`crate::Service::approvals`]): the kernel,
/// the configuration handle whose planning it reuses (approvals → config,
/// never the reverse), and how long requests wait.
#[derive(Clone, Copy)]
pub struct Approvals<'a> {
    kernel: &'a Kernel,
    config: Config<'a>,
    expiry: chrono::Duration,
}

impl<'a> Approvals<'a> {
    pub(crate) fn new(kernel: &'a Kernel, config: Config<'a>, expiry: std::time::Duration) -> Self {
        Approvals {
            kernel,
            config,
            expiry: chrono::Duration::from_std(expiry).unwrap_or(chrono::Duration::days(14)),
        }
    }
}

/// What a gated write did: `W` is what the direct write answers
/// (`Written` for entries, `Committed` for an environment's settings).
#[derive(Debug, Clone)]
pub enum Outcome<W = Written> {
    /// Not gated: written at once, exactly like the direct write
    /// (`Config::write_entries`, `Config::update_env`).
    Written(W),
    /// Gated: stored as a pending change request.
    Requested(Box<ChangeRecord>),
}

/// Options of a gated write.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Apply at this time once approved (`scheduled` until then).
    pub apply_at: Option<DateTime<Utc>>,
}

/// What a request stores as its `content` (the approvals are bound to the
/// hash of its canonical JSON): entries, or a change of an environment's
/// settings (`entries` empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeContent {
    pub entries: Vec<ContentEntry>,
    /// The audit action the entries are written with (`entry.rollback`), if
    /// not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A change of an environment's own policy. Absent from entry requests,
    /// whose content (and hash) reads as it did before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvChange>,
}

/// One entry of a request: what to write, and the version it was based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentEntry {
    pub scope: Scope,
    pub key: String,
    pub kind: EntryKind,
    pub merge: MergeMode,
    /// Absent deletes (present and `null` writes JSON `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub value: Option<Value>,
    /// The live version when requested (rebased): 0 = absent or deleted.
    /// Applying is compare-and-set on it.
    pub base_version: i64,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl ChangeContent {
    pub fn parse(record: &ChangeRecord) -> Result<ChangeContent> {
        serde_json::from_value(record.content.clone()).map_err(|e| {
            Error::Internal(format!("change {} has unreadable content: {e}", record.id))
        })
    }

    pub fn to_value(&self) -> Value {
        // A struct of strings, numbers and JSON values always serializes.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// `sha256:` of the canonical JSON of the content.
    pub fn hash(&self) -> String {
        cairn_model::checksum(&self.to_value())
    }

    /// The items to plan: compare-and-set on the base versions.
    pub fn items(&self) -> Vec<ChangeItem> {
        self.entries
            .iter()
            .map(|e| ChangeItem {
                scope: e.scope.clone(),
                key: e.key.clone(),
                kind: e.kind,
                merge: e.merge,
                value: e.value.clone(),
                expected_version: Some(e.base_version),
            })
            .collect()
    }

    pub fn audit_action(&self) -> Option<AuditAction> {
        self.action.as_deref().and_then(AuditAction::parse)
    }
}

/// May `who` do `action` in every environment each entry reaches (the
/// environments of its scope, `environments` if given)?
fn allowed_everywhere(
    who: &Principal,
    action: Action,
    content: &ChangeContent,
    envs: &[String],
) -> bool {
    content.entries.iter().all(|e| {
        let app = e.scope.app.as_deref();
        match &e.scope.env {
            Some(env) => who.can(action, app, Some(env)),
            None => envs.iter().all(|env| who.can(action, app, Some(env))),
        }
    })
}

/// May `who` approve for every environment `record` is gated by, as far as
/// their `approvers` lists go ([`gate::approver_allowed`], at approval time)?
/// The strictest: every list must name them.
fn check_approvers(
    envs: &std::collections::BTreeMap<String, cairn_store::Environment>,
    who: &Principal,
    record: &ChangeRecord,
) -> Result<()> {
    for env in record.environments.iter().filter_map(|e| envs.get(e)) {
        if !gate::approver_allowed(env, who.identity(), &who.bindings) {
            return Err(Error::Forbidden(format!(
                "{} may not approve change {}: environment {} is approved only by {}",
                who.actor(),
                record.id,
                env.name,
                env.approvers.join(", ")
            )));
        }
    }
    Ok(())
}

/// A new pending request: version 1, no approvals yet.
#[allow(clippy::too_many_arguments)] // each is a field of the new record
fn new_record(
    id: &str,
    who: &Principal,
    message: &str,
    content: &ChangeContent,
    gate: gate::Gate,
    opts: &RequestOptions,
    now: DateTime<Utc>,
    expiry: chrono::Duration,
) -> ChangeRecord {
    ChangeRecord {
        id: id.to_owned(),
        version: 1,
        state: ChangeState::Pending,
        requester: who.identity().to_owned(),
        requester_actor: who.actor(),
        message: message.to_owned(),
        content_hash: content.hash(),
        content: content.to_value(),
        environments: gate.environments,
        required_approvals: gate.required,
        approvals: Vec::new(),
        reason: None,
        forced: false,
        apply_at: opts.apply_at,
        expires_at: now + expiry,
        created_at: now,
        updated_at: now,
        applied_revision: None,
        conflict: None,
    }
}

/// Why a request does not apply: `{code, message, violations}` (a
/// conflicted request's `conflict`, and `change show`'s check).
fn problem(e: &Error) -> Value {
    serde_json::json!({
        "code": e.code(),
        "message": e.to_string(),
        "violations": e.violations(),
    })
}

fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("chg_{}", hex::encode(b))
}

fn state_error(record: &ChangeRecord, wanted: &str) -> Error {
    Error::Conflict {
        message: format!(
            "change {} is {}; this needs it {wanted}",
            record.id,
            record.state.as_str()
        ),
        current_version: Some(record.version),
    }
}

fn require_state(record: &ChangeRecord, states: &[ChangeState], wanted: &str) -> Result<()> {
    if states.contains(&record.state) {
        Ok(())
    } else {
        Err(state_error(record, wanted))
    }
}

fn require_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "a reason is required"));
    }
    if reason.len() > 4096 {
        return Err(Error::TooLarge {
            field: "reason".into(),
            message: "at most 4096 bytes".into(),
        });
    }
    Ok(())
}
