//! Change requests (DESIGN.md §7) as the store keeps them: one record per
//! request, replaced whole by each transition under compare-and-set on its
//! version, in the same commit as what the transition writes (applying a
//! request writes its entries and its `applied` state as one revision).
//! The store checks versions and keeps the record; what a request contains
//! and which transitions are allowed is the service's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a change request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Waiting for approvals.
    Pending,
    /// Approved, waiting for its `apply_at`.
    Scheduled,
    Applied,
    Rejected,
    Cancelled,
    /// Applying found an entry moved or a value that no longer validates;
    /// nothing was written (a rebase makes it pending again).
    Conflicted,
    /// Pending for longer than the expiry.
    Expired,
}

impl ChangeState {
    pub const ALL: [ChangeState; 7] = [
        ChangeState::Pending,
        ChangeState::Scheduled,
        ChangeState::Applied,
        ChangeState::Rejected,
        ChangeState::Cancelled,
        ChangeState::Conflicted,
        ChangeState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Pending => "pending",
            ChangeState::Scheduled => "scheduled",
            ChangeState::Applied => "applied",
            ChangeState::Rejected => "rejected",
            ChangeState::Cancelled => "cancelled",
            ChangeState::Conflicted => "conflicted",
            ChangeState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeState> {
        ChangeState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Still waiting for something (approvals or its time).
    pub fn is_open(self) -> bool {
        matches!(self, ChangeState::Pending | ChangeState::Scheduled)
    }
}

/// One approval, bound to the content it approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeApproval {
    /// Who approved (the service's principal identity, e.g. `user:ann`).
    pub principal: String,
    /// How the audit log names them.
    pub actor: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub note: String,
    /// The request's content hash when approved: an edit makes it stale.
    pub content_hash: String,
}

/// A change request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeRecord {
    /// `chg_…`
    pub id: String,
    /// 1 when requested, one more at every transition or edit.
    pub version: i64,
    pub state: ChangeState,
    /// The requester's principal identity (never an approver of their own request).
    pub requester: String,
    /// How the audit log names the requester.
    pub requester_actor: String,
    /// The change's message (the commit message once applied).
    pub message: String,
    /// What the request changes, as the service defines it (entries with their
    /// base versions, environment policies).
    pub content: Value,
    /// `sha256:` of the canonical `content`.
    pub content_hash: String,
    /// The protected environments whose approval it needs.
    pub environments: Vec<String>,
    /// Distinct approvals it needs (the strictest affected policy).
    pub required_approvals: i32,
    pub approvals: Vec<ChangeApproval>,
    /// Why it was rejected, cancelled or forced.
    #[serde(default)]
    pub reason: Option<String>,
    /// Applied past approval by an admin (with `reason`).
    #[serde(default)]
    pub forced: bool,
    #[serde(default)]
    pub apply_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The revision that applied it.
    #[serde(default)]
    pub applied_revision: Option<i64>,
    /// Why applying it failed (violations, moved entries).
    #[serde(default)]
    pub conflict: Option<Value>,
}

impl ChangeRecord {
    /// The approvals that count: of the current content, not by the
    /// requester, one per principal. The one definition server, service and
    /// clients count with.
    pub fn valid_approvals(&self) -> usize {
        let mut who: Vec<&str> = self
            .approvals
            .iter()
            .filter(|a| a.content_hash == self.content_hash && a.principal != self.requester)
            .map(|a| a.principal.as_str())
            .collect();
        who.sort_unstable();
        who.dedup();
        who.len()
    }
}

/// Which change requests to list ([`crate::Store::changes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only these states (empty: any).
    pub states: Vec<ChangeState>,
    /// At most this many, newest first (`None`: all).
    pub limit: Option<i64>,
}
