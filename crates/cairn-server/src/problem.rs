//! RFC 9457 problem details: the one mapping from [`ErrorCode`] to HTTP.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::{Error, ErrorCode, Violation};
use serde::Serialize;

/// The HTTP status of every error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Invalid => StatusCode::BAD_REQUEST,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::SchemaViolation | ErrorCode::UnknownReference => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict | ErrorCode::SchemaDrift => StatusCode::CONFLICT,
        ErrorCode::Gone => StatusCode::GONE,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A problem-details body.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:cairn:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable error code.
    pub code: ErrorCode,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Schema violations, each with a JSON pointer.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<Violation>,
    /// For version conflicts: the current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

/// Marks a response that refused access (recorded by the access middleware).
#[derive(Debug, Clone)]
pub struct Denied(pub String);

/// An error on its way out as problem details.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status = status_of(code);
        let detail = if code == ErrorCode::Internal {
            // Internals are logged, never returned.
            tracing::error!(error = %self.0, "internal error");
            "internal error; see the server log".to_owned()
        } else {
            self.0.to_string()
        };
        let problem = Problem {
            kind: format!("urn:cairn:problem:{}", code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code,
            field: self.0.field().map(str::to_owned),
            errors: self.0.violations().to_vec(),
            current_version: match &self.0 {
                Error::Conflict {
                    current_version, ..
                } => *current_version,
                _ => None,
            },
        };
        let denied = self.0.is_denial().then(|| Denied(self.0.to_string()));
        let mut resp = (status, axum::Json(problem)).into_response();
        if let Some(d) = denied {
            resp.extensions_mut().insert(d);
        }
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError(Error::TooLarge {
                field: "body".into(),
                message: "request body exceeds the limit".into(),
            });
        }
        ApiError(Error::invalid("body", r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(Error::invalid("query", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError(Error::invalid("path", r.body_text()))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
