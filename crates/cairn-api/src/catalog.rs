//! The catalog: `POST /v1/apps`, `POST /v1/envs`, `PATCH /v1/envs/{env}`,
//! `POST /v1/schemas`, `POST /v1/schemas/validate`.

use cairn_model::Revision;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The revision a catalog change committed as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Revised {
    pub revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvBody {
    /// Required when creating; ignored when updating (the path names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_approvals: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve: Option<bool>,
    /// Flag-lint warnings (rules that can only yield null or an error) refuse
    /// flag writes that reach this environment (422), instead of being reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_flags: Option<bool>,
    /// Who may approve changes that need this environment's approval:
    /// `role:admin`, `role:operator`, `role:viewer` (that role or a higher
    /// one in this environment) or `user:NAME`. Empty: whoever may write
    /// there (operators and admins). It narrows, never widens: approving
    /// still needs write access in every environment a change reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64)]
    pub approvers: Option<Vec<String>>,
    /// Updating only: when the change becomes a change request (a gated
    /// environment's policy), apply it at this time once approved (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterSchemaBody {
    /// Global when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Key glob, e.g. `database/*` or `**`.
    pub pattern: String,
    /// A JSON Schema (draft 2020-12 or draft 7, by `$schema`): an object or a boolean.
    #[schema(schema_with = json_schema_doc)]
    pub schema: Value,
    /// Activate even if stored values violate it.
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub message: String,
}

/// A JSON Schema is an object or a boolean (`true` accepts everything).
fn json_schema_doc() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Object))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .build()
        .into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub key: String,
    pub value: Value,
}
