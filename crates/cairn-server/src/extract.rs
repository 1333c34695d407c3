//! Request extractors whose rejections are problem details, and the
//! authenticated caller.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query};
use axum::http::header;
use axum::http::request::Parts;
use cairn_core::{Error, Origin, Principal, Service};

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

/// The authenticated caller and where the request came from.
pub struct Caller {
    pub who: Principal,
    pub origin: Origin,
}

impl FromRequestParts<Arc<Service>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        svc: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError(Error::Unauthorized("missing bearer token".into())))?;
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                ApiError(Error::Unauthorized(
                    "expected 'Authorization: Bearer <token>'".into(),
                ))
            })?;
        let who = svc.authenticate(token.trim())?;
        let origin = Origin {
            client_ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        };
        Ok(Caller { who, origin })
    }
}
