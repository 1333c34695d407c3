//! Request extractors whose rejections are problem details, and the
//! authenticated caller.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query};
use axum::http::header;
use axum::http::request::Parts;
use cairn_core::{Error, Origin, Principal};

use crate::problem::ApiError;

/// `Json` with problem-details rejections.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` with problem-details rejections.
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct Q<T>(pub T);

/// `Path` with problem-details rejections.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct P<T>(pub T);

/// The authenticated caller and where the request came from, as established
/// by the access middleware ([`crate::access::authorize`]).
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Principal,
    pub origin: Origin,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError(Error::Unauthorized("missing bearer token".into())))
    }
}

/// Where an unauthenticated request came from (login).
pub struct From(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for From {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(From(Origin {
            client_ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        }))
    }
}

/// The `If-None-Match` header alone (instead of cloning every header).
#[derive(Debug, Clone, Default)]
pub struct IfNoneMatch(Vec<axum::http::HeaderValue>);

impl IfNoneMatch {
    /// Does the header name `etag` (or `*`)? Weak tags compare by their value.
    pub fn matches(&self, etag: &str) -> bool {
        self.0
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
        ))
    }
}
