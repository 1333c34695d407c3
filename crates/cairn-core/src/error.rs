//! The one error table. Every failure a caller can see has a stable
//! [`ErrorCode`]; `cairn-server` maps codes to HTTP statuses and the CLI maps
//! them to exit codes. Nothing else decides what a failure means.

use cairn_model::ModelError;
use cairn_store::StoreError;
use serde::Serialize;

/// Stable machine-readable codes (the `type` of a problem-details body ends in one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed or invalid input; names the field.
    Invalid,
    /// A value or request is too large; names the field.
    TooLarge,
    /// A value breaks a registered JSON Schema; lists every violation.
    SchemaViolation,
    /// A value references a secret that does not exist where the value is visible.
    UnknownReference,
    /// The thing does not exist (or the caller may not know it does).
    NotFound,
    /// A compare-and-set failed, or the thing exists already.
    Conflict,
    /// A schema would reject values already stored (use `force`).
    SchemaDrift,
    /// A revision older than retained history was asked for.
    Gone,
    /// No valid credentials.
    Unauthorized,
    /// Valid credentials, not allowed.
    Forbidden,
    /// Too many requests; retry after the time the response names.
    RateLimited,
    /// The database cannot be reached; reads may still work.
    Unavailable,
    /// A bug or an unexpected backend failure (details are logged, not returned).
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::SchemaViolation => "schema_violation",
            ErrorCode::UnknownReference => "unknown_reference",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::SchemaDrift => "schema_drift",
            ErrorCode::Gone => "gone",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// One JSON Schema violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Violation {
    /// Entry the violation is about (scope and key), when it is about a stored value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// JSON pointer into the value.
    pub pointer: String,
    pub message: String,
    /// The schema that was violated: `app/pattern@version`.
    pub schema: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{field} too large: {message}")]
    TooLarge { field: String, message: String },
    #[error("value of {key} violates {} schema rule(s)", violations.len())]
    SchemaViolation {
        key: String,
        violations: Vec<Violation>,
    },
    #[error("{message}")]
    UnknownReference { field: String, message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// Exists, perhaps, but the caller may not know: answered exactly like
    /// `NotFound`, and recorded as a denied request.
    #[error("{what} not found")]
    Hidden { what: String },
    #[error("{message}")]
    Conflict {
        message: String,
        current_version: Option<i64>,
    },
    #[error("schema would reject {} stored value(s); register with force to activate anyway", violations.len())]
    SchemaDrift { violations: Vec<Violation> },
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid { .. } => ErrorCode::Invalid,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::SchemaViolation { .. } => ErrorCode::SchemaViolation,
            Error::UnknownReference { .. } => ErrorCode::UnknownReference,
            Error::NotFound { .. } | Error::Hidden { .. } => ErrorCode::NotFound,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::SchemaDrift { .. } => ErrorCode::SchemaDrift,
            Error::Gone(_) => ErrorCode::Gone,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::RateLimited(_) => ErrorCode::RateLimited,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Was this a refusal of access (to be recorded as a denied request)?
    pub fn is_denial(&self) -> bool {
        matches!(
            self,
            Error::Hidden { .. } | Error::Forbidden(_) | Error::Unauthorized(_)
        )
    }

    /// The field the error names, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. }
            | Error::TooLarge { field, .. }
            | Error::UnknownReference { field, .. } => Some(field),
            Error::SchemaViolation { .. } => Some("value"),
            _ => None,
        }
    }

    /// Schema violations carried by the error.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Error::SchemaViolation { violations, .. } | Error::SchemaDrift { violations } => {
                violations
            }
            _ => &[],
        }
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        let ModelError::Invalid { field, message } = e;
        Error::Invalid { field, message }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { actual, .. } => Error::Conflict {
                message: e.to_string(),
                current_version: Some(actual),
            },
            StoreError::KindConflict { version, .. } => Error::Conflict {
                message: e.to_string(),
                current_version: Some(version),
            },
            StoreError::EnvConflict { actual, .. } => Error::Conflict {
                message: e.to_string(),
                current_version: Some(actual),
            },
            StoreError::ChangeConflict { actual, .. } => Error::Conflict {
                message: e.to_string(),
                current_version: Some(actual),
            },
            StoreError::Stale { .. } => Error::Conflict {
                message: e.to_string(),
                current_version: None,
            },
            StoreError::NotFound { what } => Error::NotFound { what },
            StoreError::AlreadyExists { what } => Error::Conflict {
                message: format!("{what} already exists"),
                current_version: None,
            },
            StoreError::Compacted { .. } => Error::Gone(e.to_string()),
            StoreError::Unavailable(m) => Error::Unavailable(m),
            StoreError::Backend(m) => Error::Internal(m),
        }
    }
}
