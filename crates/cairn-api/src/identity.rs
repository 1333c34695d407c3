//! Identity: `POST /v1/login`, `POST /v1/users`, `PATCH /v1/users/{name}`,
//! `POST /v1/tokens`, and the query of `GET /v1/audit`.
//!
//! What these routes answer is defined where it is made: users, tokens and
//! audit records are `cairn_store` records (re-exported from this crate's
//! root); a created token and an audit verification are `cairn_core`'s.

use cairn_store::{Binding, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

// No `Debug`: carries a password.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub name: String,
    pub password: String,
    /// Token lifetime in seconds (default 12 h, at most 7 days).
    #[schema(minimum = 1, maximum = 604800)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

// No `Debug`: carries a password.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub name: String,
    pub password: String,
    pub bindings: Vec<Binding>,
}

// No `Debug`: may carry a password.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Replaces every binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Vec<Binding>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    pub name: String,
    pub role: Role,
    /// App pattern (default `*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Environment pattern (default `*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The query of `GET /v1/audit` (absent members are left out of the URL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub key: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// `global` for the global scope.
    pub app: Option<String>,
    /// `all` for the every-environment scope.
    pub env: Option<String>,
    /// RFC 3339.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339.
    pub until: Option<DateTime<Utc>>,
    /// Only records after this sequence number (the next page: the `after`
    /// of the `Link` header's `rel="next"` address).
    pub after: Option<i64>,
    /// At most this many records the caller may read (default 1000, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}
