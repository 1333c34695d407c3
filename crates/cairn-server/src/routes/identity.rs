//! Login, users, and audit verification.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cairn_api::{CreateUserBody, LoginBody, Revised, UpdateUserBody};
use cairn_core::identity::AuditVerification;
use cairn_core::{CreatedToken, Service};
use cairn_store::UserRecord;

use crate::access::LoginGate;
use crate::extract::{Caller, From, Json, P};
use crate::problem::{ApiError, ApiResult, Problem};

/// Exchange a user name and password for a short-lived token.
#[utoipa::path(post, path = "/v1/login", request_body = LoginBody, tag = "identity",
    responses((status = 200, body = CreatedToken), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(svc): State<Arc<Service>>,
    Extension(gate): Extension<LoginGate>,
    From(origin): From,
    Json(b): Json<LoginBody>,
) -> Response {
    // Before Argon2: a guess costs its budget, never more hashing.
    if let Some(refused) = gate.admit(&b.name) {
        return refused;
    }
    // Beyond a duration's range is beyond 7 days too: refused by `login`, not a panic.
    let ttl = b
        .ttl_seconds
        .map(|s| chrono::Duration::try_seconds(s).unwrap_or(chrono::Duration::MAX));
    match svc
        .identity()
        .login(&origin, &b.name, &b.password, ttl)
        .await
    {
        Ok(created) => Json(created).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

#[utoipa::path(get, path = "/v1/users", tag = "identity", responses((status = 200, body = [UserRecord])), security(("bearer" = [])))]
pub async fn list_users(
    State(svc): State<Arc<Service>>,
    c: Caller,
) -> ApiResult<Json<Vec<UserRecord>>> {
    Ok(Json(svc.identity().users(&c.who)?))
}

#[utoipa::path(post, path = "/v1/users", request_body = CreateUserBody, tag = "identity",
    responses((status = 201, body = Revised), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn create_user(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<Revised>)> {
    let committed = svc
        .identity()
        .create_user(&c.who, &c.origin, &b.name, &b.password, b.bindings)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Revised {
            revision: committed.revision,
        }),
    ))
}

#[utoipa::path(patch, path = "/v1/users/{name}", params(("name" = String, Path)), request_body = UpdateUserBody, tag = "identity",
    responses((status = 200, body = Revised), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn update_user(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(name): P<String>,
    Json(b): Json<UpdateUserBody>,
) -> ApiResult<Json<Revised>> {
    let committed = svc
        .identity()
        .update_user(
            &c.who,
            &c.origin,
            &name,
            b.password.as_deref(),
            b.bindings,
            b.disabled,
        )
        .await?;
    Ok(Json(Revised {
        revision: committed.revision,
    }))
}

/// Walk the tamper-evident audit chain; names the first bad record.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerification), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn verify_audit(
    State(svc): State<Arc<Service>>,
    c: Caller,
) -> ApiResult<Json<AuditVerification>> {
    Ok(Json(svc.identity().verify_audit(&c.who).await?))
}
