//! Change requests (DESIGN.md §7): the answer of a gated write and the
//! bodies and queries of `/v1/changes` (list, show, approve, reject, cancel,
//! rebase, edit). The record itself is `cairn_store::ChangeRecord`.

use std::collections::BTreeMap;

use cairn_model::{EntryKind, Scope};
use cairn_store::{ChangeRecord, ChangeState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::ChangeEntryBody;

/// `202 Accepted`: the write needs approval and became a change request
/// (`Location: /v1/changes/{change_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeRequested {
    /// `chg_…`
    pub change_id: String,
    pub state: ChangeState,
    /// Valid approvals so far (of the current content).
    pub approvals: i32,
    /// Distinct approvals it needs.
    pub required: i32,
    /// The protected environments whose approval it needs.
    pub environments: Vec<String>,
}

/// `GET /v1/changes`: every filter narrows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ChangeState>,
    /// Requests that need this environment's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Requests that change an entry of this app (or a scope that reaches it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// `POST /v1/changes/{id}/approve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    pub note: String,
    /// Admins only: apply past the approvals still missing (needs `reason`).
    #[serde(default)]
    pub force: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/changes/{id}/reject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub reason: String,
}

/// `PATCH /v1/changes/{id}`: new content for a pending request (its
/// approvals are reset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditChangeBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[schema(min_items = 1, max_items = 64)]
    pub entries: Vec<ChangeEntryBody>,
}

/// `GET /v1/changes/{id}`: the request and what it would change, against
/// the current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeShown {
    pub change: ChangeRecord,
    pub preview: ChangePreview,
}

/// Every entry of a request before and after, and every resolved view it
/// reaches before and after (what applications would read); for a change of
/// an environment's policy (no entries, no views), its settings before and
/// after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangePreview {
    pub entries: Vec<EntryChangePreview>,
    pub views: Vec<ViewChangePreview>,
    /// Present when the request changes an environment's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvChangePreview>,
    /// Would it apply if approved now (planned against today's committed
    /// state: schemas, references, flags, base versions; nothing written)?
    /// Present for pending, scheduled and conflicted requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ApplyCheck>,
}

/// Whether a request would apply now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyCheck {
    pub applies: bool,
    /// Why not: `{code, message, violations[]}` (the same shape as a
    /// conflicted request's `conflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub problem: Option<Value>,
}

/// A requested change of an environment's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvChangePreview {
    pub name: String,
    /// The revision its settings were at when requested (rebased).
    pub base_revision: i64,
    /// The revision they are at now (absent: the environment is gone):
    /// differs from `base_revision` when they moved (applying would conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<i64>,
    /// Its settings now (absent: the environment is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<EnvPolicy>,
    /// Its settings once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<EnvPolicy>,
    /// The settings that differ between `before` and `after`.
    pub changed: Vec<String>,
}

/// An environment's settings (those of `cairn_store::Environment` a change
/// can set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvPolicy {
    pub description: String,
    pub protected: bool,
    pub required_approvals: i32,
    pub auto_approve: bool,
    pub strict_flags: bool,
    pub approvers: Vec<String>,
}

impl EnvPolicy {
    pub fn of(env: &cairn_store::Environment) -> Self {
        EnvPolicy {
            description: env.description.clone(),
            protected: env.protected,
            required_approvals: env.required_approvals,
            auto_approve: env.auto_approve,
            strict_flags: env.strict_flags,
            approvers: env.approvers.clone(),
        }
    }

    /// The names of the settings that differ from `other`.
    pub fn changed(&self, other: &EnvPolicy) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff = |name: &str, differs: bool| {
            if differs {
                out.push(name.to_owned());
            }
        };
        diff("description", self.description != other.description);
        diff("protected", self.protected != other.protected);
        diff(
            "required_approvals",
            self.required_approvals != other.required_approvals,
        );
        diff("auto_approve", self.auto_approve != other.auto_approve);
        diff("strict_flags", self.strict_flags != other.strict_flags);
        diff("approvers", self.approvers != other.approvers);
        out
    }
}

/// One entry of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntryChangePreview {
    pub scope: Scope,
    pub key: String,
    pub kind: EntryKind,
    /// The version the request is based on (0: absent).
    pub base_version: i64,
    /// The live version now: differs from `base_version` when the entry
    /// moved since (applying would conflict).
    pub current_version: i64,
    /// The live value now (absent: no entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value it writes (absent: a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// Unified text diff of before → after (`null` stands for an absent side).
    pub diff: String,
}

/// One resolved (app, env) view a request reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ViewChangePreview {
    pub app: String,
    pub env: String,
    #[schema(value_type = Object)]
    pub before: BTreeMap<String, Value>,
    #[schema(value_type = Object)]
    pub after: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_read_what_the_docs_show() {
        let q: ChangesQuery =
            serde_json::from_value(json!({"state": "pending", "env": "prod"})).unwrap();
        assert_eq!(q.state, Some(ChangeState::Pending));
        assert_eq!(q.env.as_deref(), Some("prod"));
        let a: ApproveBody = serde_json::from_value(json!({})).unwrap();
        assert_eq!(a, ApproveBody::default());
        // Unknown fields and unknown states are refused, not ignored.
        assert!(serde_json::from_value::<ApproveBody>(json!({"forced": true})).is_err());
        assert!(serde_json::from_value::<ChangesQuery>(json!({"state": "approved"})).is_err());
        assert!(serde_json::from_value::<RejectBody>(json!({})).is_err());
    }

    #[test]
    fn a_preview_without_an_environment_reads_as_before() {
        // What servers answered before environment changes existed.
        let old = json!({"entries": [], "views": []});
        let p: ChangePreview = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(p.environment, None);
        assert_eq!(serde_json::to_value(&p).unwrap(), old);
    }

    #[test]
    fn the_settings_a_change_moves_by_name() {
        let before = EnvPolicy {
            description: "Production".into(),
            protected: true,
            required_approvals: 2,
            auto_approve: false,
            strict_flags: false,
            approvers: vec!["role:admin".into()],
        };
        let after = EnvPolicy {
            protected: false,
            approvers: vec![],
            ..before.clone()
        };
        assert_eq!(before.changed(&after), ["protected", "approvers"]);
        assert!(before.changed(&before).is_empty());
    }

    #[test]
    fn the_202_body_names_its_fields() {
        let r = ChangeRequested {
            change_id: "chg_1".into(),
            state: ChangeState::Pending,
            approvals: 0,
            required: 2,
            environments: vec!["prod".into()],
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"change_id": "chg_1", "state": "pending", "approvals": 0, "required": 2,
                   "environments": ["prod"]})
        );
    }
}
