//! Apps, environments, schemas, tokens and the audit log.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::approvals::{Outcome, RequestOptions};
use cairn_core::{CreatedToken, EnvSettings, Error, SchemaRegistered, Service, Violation};
use cairn_model::Scope;
use cairn_store::{App, AuditFilter, AuditRecord, Environment, SchemaRecord, TokenRecord};
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::{Caller, Json, P, Q};
use crate::problem::{ApiResult, Problem};

pub use cairn_api::{
    AuditQuery, CreateAppBody, CreateTokenBody, EnvBody, RegisterSchemaBody, Revised, ValidateBody,
};

fn settings(b: EnvBody) -> EnvSettings {
    EnvSettings {
        description: b.description,
        protected: b.protected,
        required_approvals: b.required_approvals,
        auto_approve: b.auto_approve,
        strict_flags: b.strict_flags,
        approvers: b.approvers,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateResult {
    pub valid: bool,
    pub violations: Vec<Violation>,
}

#[utoipa::path(get, path = "/v1/apps", tag = "catalog", responses((status = 200, body = [App])), security(("bearer" = [])))]
pub async fn list_apps(State(svc): State<Arc<Service>>, c: Caller) -> Json<Vec<App>> {
    Json(svc.config().apps(&c.who))
}

#[utoipa::path(get, path = "/v1/apps/{app}", params(("app" = String, Path)), tag = "catalog",
    responses((status = 200, body = App), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_app(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(app): P<String>,
) -> ApiResult<Json<App>> {
    Ok(Json(svc.config().app(&c.who, &app)?))
}

#[utoipa::path(post, path = "/v1/apps", request_body = CreateAppBody, tag = "catalog",
    responses((status = 201, body = Revised), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn create_app(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<CreateAppBody>,
) -> ApiResult<(StatusCode, Json<Revised>)> {
    let committed = svc
        .config()
        .create_app(&c.who, &c.origin, &b.name, &b.description)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Revised {
            revision: committed.revision,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/envs", tag = "catalog", responses((status = 200, body = [Environment])), security(("bearer" = [])))]
pub async fn list_envs(State(svc): State<Arc<Service>>, c: Caller) -> Json<Vec<Environment>> {
    Json(svc.config().envs(&c.who))
}

#[utoipa::path(get, path = "/v1/envs/{env}", params(("env" = String, Path)), tag = "catalog",
    responses((status = 200, body = Environment), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_env(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(env): P<String>,
) -> ApiResult<Json<Environment>> {
    Ok(Json(svc.config().env(&c.who, &env)?))
}

#[utoipa::path(post, path = "/v1/envs", request_body = EnvBody, tag = "catalog",
    responses((status = 201, body = Revised), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn create_env(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(mut b): Json<EnvBody>,
) -> ApiResult<(StatusCode, Json<Revised>)> {
    let name = b
        .name
        .take()
        .ok_or_else(|| Error::invalid("name", "missing"))?;
    if b.apply_at.is_some() {
        return Err(Error::invalid(
            "apply_at",
            "a new environment is created at once; apply_at is for changing a gated one",
        )
        .into());
    }
    let committed = svc
        .config()
        .create_env(&c.who, &c.origin, &name, settings(b))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Revised {
            revision: committed.revision,
        }),
    ))
}

/// Change an environment's settings (admins). On a gated environment
/// (protected, not auto-approved) a change of its policy — `protected`,
/// `required_approvals`, `auto_approve`, `strict_flags`, `approvers` —
/// needs that environment's approval: it becomes a change request (`202`),
/// approved by admins its `approvers` name. A description alone is written
/// at once.
#[utoipa::path(patch, path = "/v1/envs/{env}", params(("env" = String, Path)), request_body = EnvBody, tag = "catalog",
    responses((status = 200, body = Revised),
        (status = 202, body = cairn_api::ChangeRequested, description = "a change of a gated environment's policy: a change request", headers(("Location" = String))),
        (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn update_env(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(env): P<String>,
    Json(b): Json<EnvBody>,
) -> ApiResult<Response> {
    if b.name.as_ref().is_some_and(|n| *n != env) {
        return Err(Error::invalid("name", "environments cannot be renamed").into());
    }
    let opts = RequestOptions {
        apply_at: b.apply_at,
    };
    let outcome = svc
        .approvals()
        .update_env(&c.who, &c.origin, &env, settings(b), opts)
        .await?;
    Ok(match outcome {
        Outcome::Written(committed) => Json(Revised {
            revision: committed.revision,
        })
        .into_response(),
        Outcome::Requested(record) => crate::routes::changes::requested(&record),
    })
}

#[utoipa::path(get, path = "/v1/schemas", tag = "schemas", responses((status = 200, body = [SchemaRecord])), security(("bearer" = [])))]
pub async fn list_schemas(State(svc): State<Arc<Service>>, c: Caller) -> Json<Vec<SchemaRecord>> {
    Json(svc.config().schemas(&c.who))
}

#[utoipa::path(get, path = "/v1/schemas/history", tag = "schemas", responses((status = 200, body = [SchemaRecord])), security(("bearer" = [])))]
pub async fn schema_history(
    State(svc): State<Arc<Service>>,
    c: Caller,
) -> ApiResult<Json<Vec<SchemaRecord>>> {
    Ok(Json(svc.config().schema_history(&c.who).await?))
}

/// Register the next version of a schema. Refused (409 `schema_drift`) when
/// stored values would violate it, unless `force`.
#[utoipa::path(post, path = "/v1/schemas", request_body = RegisterSchemaBody, tag = "schemas",
    responses((status = 201, body = SchemaRegistered), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn register_schema(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<RegisterSchemaBody>,
) -> ApiResult<(StatusCode, Json<SchemaRegistered>)> {
    let r = svc
        .config()
        .register_schema(
            &c.who,
            &c.origin,
            b.app.as_deref(),
            &b.pattern,
            b.schema,
            b.force,
            &b.message,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Check a value against the schemas that govern a key, writing nothing.
#[utoipa::path(post, path = "/v1/schemas/validate", request_body = ValidateBody, tag = "schemas",
    responses((status = 200, body = ValidateResult), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn validate(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<ValidateBody>,
) -> ApiResult<Json<ValidateResult>> {
    let scope = Scope::parse(b.app.as_deref(), b.env.as_deref()).map_err(Error::from)?;
    let violations = svc
        .config()
        .validate_value(&c.who, &scope, &b.key, &b.value)?;
    Ok(Json(ValidateResult {
        valid: violations.is_empty(),
        violations,
    }))
}

/// Audit records, oldest first, a page at a time.
///
/// An admin reads every record; anyone else the entry and schema records of
/// the scopes they can read, and `limit` counts those. When more follow, a
/// `Link: <…&after=SEQ>; rel="next"` header gives the next page's address:
/// the same query, `after` the last record of this page.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), tag = "audit",
    responses((status = 200, body = [AuditRecord], headers(("link" = String,
        description = "`<address>; rel=\"next\"` when more records follow"))),
        (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn audit(
    State(svc): State<Arc<Service>>,
    c: Caller,
    RawQuery(raw): RawQuery,
    Q(q): Q<AuditQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<AuditRecord>>)> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 10000").into());
    }
    let filter = AuditFilter {
        key: q.key,
        actor: q.actor,
        action: q.action,
        app: q.app.map(|a| {
            if a == cairn_model::GLOBAL_APP {
                String::new()
            } else {
                a
            }
        }),
        env: q.env.map(|e| if e == "all" { String::new() } else { e }),
        since: q.since,
        until: q.until,
        after_seq: q.after,
        limit: Some(limit),
        ..AuditFilter::default()
    };
    let page = svc.identity().audit(&c.who, &filter).await?;
    let mut headers = HeaderMap::new();
    if let Some(next) = page.next {
        headers.insert(header::LINK, next_link(raw.as_deref(), next)?);
    }
    Ok((headers, Json(page.records)))
}

/// `</v1/audit?QUERY&after=SEQ>; rel="next"`: the request's own query (as
/// sent, so already percent-encoded) with `after` replaced.
fn next_link(query: Option<&str>, after: i64) -> Result<HeaderValue, Error> {
    let mut parts: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && *p != "after" && !p.starts_with("after="))
        .collect();
    let after = format!("after={after}");
    parts.push(&after);
    HeaderValue::try_from(format!("</v1/audit?{}>; rel=\"next\"", parts.join("&")))
        .map_err(|e| Error::Internal(format!("audit next link: {e}")))
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", responses((status = 200, body = [TokenRecord])), security(("bearer" = [])))]
pub async fn list_tokens(
    State(svc): State<Arc<Service>>,
    c: Caller,
) -> ApiResult<Json<Vec<TokenRecord>>> {
    Ok(Json(svc.identity().tokens(&c.who)?))
}

/// Create a token; the secret is in the response and nowhere else.
#[utoipa::path(post, path = "/v1/tokens", request_body = CreateTokenBody, tag = "tokens",
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn create_token(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<CreateTokenBody>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let t = svc
        .identity()
        .create_token(
            &c.who,
            &c.origin,
            &b.name,
            b.role,
            b.app.as_deref().unwrap_or("*"),
            b.env.as_deref().unwrap_or("*"),
            b.expires_at,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", params(("id" = String, Path)), tag = "tokens",
    responses((status = 200, body = Revised), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revoke_token(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
) -> ApiResult<Json<Revised>> {
    let committed = svc.identity().revoke_token(&c.who, &c.origin, &id).await?;
    Ok(Json(Revised {
        revision: committed.revision,
    }))
}
