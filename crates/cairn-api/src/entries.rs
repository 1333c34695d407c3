//! Writes of entries: `PUT /v1/entries/{key}`, `DELETE /v1/entries/{key}`,
//! `POST /v1/changes`, `POST /v1/rollback/{key}`, and what they answer.

use cairn_model::{EntryKind, MergeMode, Revision, Scope};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEntryBody {
    /// Any JSON value.
    pub value: Value,
    #[serde(default)]
    pub kind: EntryKind,
    #[serde(default)]
    pub merge: MergeMode,
    #[serde(default)]
    pub message: String,
    /// Compare-and-set: the current version must be this (0 = must not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    /// Apply at this time once approved, when the write needs approval (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEntryBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub key: String,
    /// The new value; absent with `delete: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default)]
    pub delete: bool,
    #[serde(default)]
    pub kind: EntryKind,
    #[serde(default)]
    pub merge: MergeMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSetBody {
    #[serde(default)]
    pub message: String,
    /// At most 64 entries, committed atomically as one revision.
    #[schema(min_items = 1, max_items = 64)]
    pub entries: Vec<ChangeEntryBody>,
    /// Apply at this time once approved, when the write needs approval (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The version whose value becomes current again (as a new version).
    pub version: i64,
    /// Why (required).
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    /// Apply at this time once approved, when the write needs approval (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_at: Option<DateTime<Utc>>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WriteResult {
    pub revision: Revision,
    pub changes: Vec<WrittenEntry>,
    /// Flag and segment rules written that can only ever yield null or an
    /// error (DESIGN.md §4); stored all the same unless the environment is strict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FlagWarning>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WrittenEntry {
    pub scope: Scope,
    pub key: String,
    pub version: i64,
    /// 0 when the entry did not exist.
    pub previous_version: i64,
}

/// A rule that can only ever yield null or an error, found in a flag or
/// segment being written (DESIGN.md §4): reported in the write's response and
/// by `cairn flag lint`, refused only where the environment is strict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlagWarning {
    /// `app/env:key` of the flag or segment.
    pub entry: String,
    pub scope: Scope,
    pub key: String,
    /// JSON pointer into the flag definition (or segment rule).
    pub pointer: String,
    /// `missing-ref`, `argument-count`, `unknown-operator`, `invalid-operand`,
    /// `zero-weights`, `negative-weight` …
    pub code: String,
    pub message: String,
}
