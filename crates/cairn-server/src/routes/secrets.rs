//! Secrets: metadata for readers, plaintext for admins only (`reveal=true`),
//! create and rotate for operators, rekey for admins.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::{
    CreateSecretBody, DeleteSecretQuery, RekeyBody, RevealedSecret, RotateSecretBody,
    SecretDeleted, SecretQuery, SecretScopeQuery,
};
use cairn_core::keys::MasterKey;
use cairn_core::secrets::{NewValue, Plaintext, Rekeyed, SecretInfo, SecretWritten};
use cairn_core::{Error, Service};
use cairn_model::Scope;
use cairn_store::SecretPolicy;

use crate::extract::{Caller, Json, P, Q};
use crate::problem::{ApiResult, Problem};

fn scope(app: Option<&str>, env: Option<&str>) -> Result<Scope, Error> {
    Ok(Scope::parse(app, env)?)
}

/// Metadata of every secret the caller can see (never values).
#[utoipa::path(get, path = "/v1/secrets", tag = "secrets",
    responses((status = 200, body = [SecretInfo])), security(("bearer" = [])))]
pub async fn list_secrets(
    State(svc): State<Arc<Service>>,
    c: Caller,
) -> ApiResult<Json<Vec<SecretInfo>>> {
    Ok(Json(svc.secrets().secrets(&c.who).await?))
}

/// Create a secret (operator or admin at its scope).
#[utoipa::path(post, path = "/v1/secrets", request_body = CreateSecretBody, tag = "secrets",
    responses((status = 201, body = SecretWritten), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_secret(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<CreateSecretBody>,
) -> ApiResult<(StatusCode, Json<SecretWritten>)> {
    let scope = scope(b.app.as_deref(), b.env.as_deref())?;
    let value = match b.value {
        Some(v) => NewValue::Given(Plaintext::new(v)),
        None => NewValue::Generate,
    };
    let policy = SecretPolicy {
        rotation_days: b.rotation_days,
        rotation_seconds: b.rotation_seconds,
        grace_days: b.grace_days,
        generator: b.generator,
        hook_secret: b.hook_secret,
    };
    let written = svc
        .secrets()
        .create_secret(
            &c.who, &c.origin, &scope, &b.name, value, policy, &b.message,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// A secret's metadata and versions; with `reveal=true` its plaintext
/// instead (admins only, audited as `secret.read`).
#[utoipa::path(get, path = "/v1/secrets/{name}", params(("name" = String, Path), SecretQuery), tag = "secrets",
    responses((status = 200, body = SecretInfo), (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_secret(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(name): P<String>,
    Q(q): Q<SecretQuery>,
) -> ApiResult<Response> {
    let scope = scope(q.app.as_deref(), q.env.as_deref())?;
    if !q.reveal {
        if q.version.is_some() {
            return Err(Error::invalid("version", "only with reveal=true").into());
        }
        return Ok(Json(svc.secrets().secret_info(&c.who, &scope, &name).await?).into_response());
    }
    let (version, value) = svc
        .secrets()
        .get_secret(&c.who, &c.origin, &scope, &name, q.version)
        .await?;
    let body = RevealedSecret {
        name,
        app: scope.app.clone(),
        env: scope.env.clone(),
        version,
        value: value.as_str()?.to_owned(),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Delete a secret; refused (409) while configuration references it, unless `force`.
#[utoipa::path(delete, path = "/v1/secrets/{name}", params(("name" = String, Path), DeleteSecretQuery), tag = "secrets",
    responses((status = 200, body = SecretDeleted), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_secret(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(name): P<String>,
    Q(q): Q<DeleteSecretQuery>,
) -> ApiResult<Json<SecretDeleted>> {
    let scope = scope(q.app.as_deref(), q.env.as_deref())?;
    let message = q.message.unwrap_or_default();
    let revision = svc
        .secrets()
        .delete_secret(&c.who, &c.origin, &scope, &name, q.force, &message)
        .await?;
    Ok(Json(SecretDeleted { revision }))
}

/// Rotate a secret now: a new current version; the previous one stays
/// readable for the grace period.
#[utoipa::path(post, path = "/v1/secret-rotate/{name}", params(("name" = String, Path), SecretScopeQuery), request_body = RotateSecretBody, tag = "secrets",
    responses((status = 200, body = SecretWritten), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(name): P<String>,
    Q(q): Q<SecretScopeQuery>,
    Json(b): Json<RotateSecretBody>,
) -> ApiResult<Json<SecretWritten>> {
    let scope = scope(q.app.as_deref(), q.env.as_deref())?;
    let value = match b.value {
        Some(v) => NewValue::Given(Plaintext::new(v)),
        None => NewValue::Generate,
    };
    Ok(Json(
        svc.secrets()
            .rotate_secret(&c.who, &c.origin, &scope, &name, value, &b.message)
            .await?,
    ))
}

/// Re-wrap every secret's data key under the current master key (admin).
#[utoipa::path(post, path = "/v1/admin/rekey", request_body = RekeyBody, tag = "secrets",
    responses((status = 200, body = Rekeyed), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn rekey(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<RekeyBody>,
) -> ApiResult<Json<Rekeyed>> {
    let old = b
        .old_key
        .as_deref()
        .map(|k| {
            MasterKey::parse(k).map_err(|_| {
                Error::invalid("old_key", "not a master key (32 bytes, base64 or hex)")
            })
        })
        .transpose()?;
    Ok(Json(
        svc.secrets()
            .rekey(&c.who, &c.origin, old.as_ref(), &b.message)
            .await?,
    ))
}
