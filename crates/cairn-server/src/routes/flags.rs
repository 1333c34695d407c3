//! Feature flags over HTTP: the flagd document of (app, env), the OpenFeature
//! Remote Evaluation Protocol (OFREP, single and bulk), and the flag list with
//! lifecycle data.
//!
//! OFREP answers in its own shapes, not problem details: success
//! `{key, value, reason, variant, metadata}`; 400 `{key, errorCode,
//! errorDetails}`; 404 `{key, errorCode: "FLAG_NOT_FOUND", errorDetails}`;
//! 401/403 without a body (see [`bare_ofrep_refusal`]). The (app, env) is the
//! path prefix `/v1/apps/{app}/envs/{env}` when given, else the caller's
//! single binding to one app and one environment (an SDK token).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::{
    FlagsQuery, OfrepBulk, OfrepFailure, OfrepItem, OfrepRequest, OfrepSuccess, StaleQuery,
};
use cairn_core::{Error, FlagInfo, FlagLint, FlagView, Service};
use cairn_eval::{EvalContext, Reason, Resolution, TARGETING_KEY};
use serde_json::Value;

use crate::extract::{Caller, IfNoneMatch, Json, P, Q};
use crate::problem::{ApiResult, Denied, Problem};

// ----------------------------------------------------------------------
// The flagd document
// ----------------------------------------------------------------------

/// The flags of (app, env) as a flagd document (`flags`, `$evaluators`, `metadata`), for
/// flagd's HTTP sync and flagd's in-process providers. Honours `If-None-Match` (304).
#[utoipa::path(get, path = "/v1/apps/{app}/envs/{env}/flagd.json", params(("app" = String, Path), ("env" = String, Path)), tag = "flags",
    responses((status = 200, description = "a flagd document", content_type = "application/json", headers(("ETag" = String))), (status = 304), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn flagd_json(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P((app, env)): P<(String, String)>,
    inm: IfNoneMatch,
) -> ApiResult<Response> {
    let view = svc.flags().flag_set(&c.who, &app, &env)?;
    let etag = header_value(&view.etag);
    if inm.matches(&view.etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
        ],
        view.document.clone(),
    )
        .into_response())
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("\"\""))
}

// ----------------------------------------------------------------------
// OFREP
// ----------------------------------------------------------------------

/// Shape one resolution as an OFREP item (borrowing from the flag set).
fn item<'a>(key: &'a str, r: &'a Resolution<'a>) -> OfrepItem<'a> {
    match r.error_code {
        None => OfrepItem::Success(OfrepSuccess {
            key: Cow::Borrowed(key),
            value: r.value.map(Cow::Borrowed),
            reason: Cow::Borrowed(r.reason.as_str()),
            // Always a variant (`""` when nothing matched and there is no
            // default variant), except for a disabled flag: no value, variant null.
            variant: match (r.variant, r.reason) {
                (None, Reason::Disabled) => None,
                (v, _) => Some(Cow::Borrowed(v.unwrap_or(""))),
            },
            metadata: Cow::Borrowed(r.metadata),
        }),
        Some(code) => OfrepItem::Failure(OfrepFailure {
            key: Some(Cow::Borrowed(key)),
            error_code: Cow::Borrowed(code.as_str()),
            error_details: Cow::Borrowed(r.error_message.as_deref().unwrap_or("")),
        }),
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn failure(status: StatusCode, key: Option<&str>, code: &str, details: &str) -> Response {
    let body = OfrepFailure {
        key: key.map(Cow::Borrowed),
        error_code: Cow::Borrowed(code),
        error_details: Cow::Borrowed(details),
    };
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// A refusal or missing view, as OFREP answers it.
fn view_error(e: Error, key: Option<&str>) -> Response {
    let empty = |status: StatusCode| {
        let mut r = status.into_response();
        if e.is_denial() {
            r.extensions_mut().insert(Denied(e.to_string()));
        }
        r
    };
    match &e {
        Error::Unauthorized(_) => {
            let mut r = empty(StatusCode::UNAUTHORIZED);
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        // A view the caller may not see: refused without saying whether it exists.
        Error::Hidden { .. } | Error::Forbidden(_) => empty(StatusCode::FORBIDDEN),
        Error::NotFound { .. } => match key {
            Some(k) => failure(
                StatusCode::NOT_FOUND,
                Some(k),
                "FLAG_NOT_FOUND",
                &e.to_string(),
            ),
            None => failure(StatusCode::BAD_REQUEST, None, "GENERAL", &e.to_string()),
        },
        Error::Invalid { .. } => failure(StatusCode::BAD_REQUEST, key, "GENERAL", &e.to_string()),
        _ => {
            tracing::error!(error = %e, "OFREP evaluation failed");
            let body = serde_json::json!({"errorDetails": "internal error; see the server log"});
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
    }
}

const UNBOUND: &str = "this token is not bound to one app and environment: \
use /v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags as the base";

/// Parse an OFREP body: `{"context": {...}}`, `{}` or nothing.
fn parse_context(body: &[u8]) -> Result<(Value, EvalContext), (&'static str, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Value::Null, EvalContext::new()));
    }
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| ("PARSE_ERROR", format!("the body is not JSON: {e}")))?;
    let Value::Object(req) = req else {
        return Err((
            "PARSE_ERROR",
            "the body must be a JSON object {\"context\": {...}}".into(),
        ));
    };
    let OfrepRequest { context } = serde_json::from_value(Value::Object(req)).map_err(|e| {
        (
            "PARSE_ERROR",
            format!("the body is not an OFREP request: {e}"),
        )
    })?;
    let context = context.unwrap_or(Value::Null);
    if let Some(tk) = context.get(TARGETING_KEY) {
        if !tk.is_string() {
            return Err((
                "INVALID_CONTEXT",
                format!("`{TARGETING_KEY}` must be a string"),
            ));
        }
    }
    let ctx =
        EvalContext::from_value(context.clone()).map_err(|e| ("INVALID_CONTEXT", e.to_string()))?;
    Ok((context, ctx))
}

/// `now`: the kernel clock's Unix seconds (what `$flagd.timestamp` reads).
fn evaluate_one(view: &FlagView, key: &str, body: &[u8], now: i64) -> Response {
    let (_, ctx) = match parse_context(body) {
        Ok(c) => c,
        Err((code, details)) => return failure(StatusCode::BAD_REQUEST, Some(key), code, &details),
    };
    let r = view.evaluate(key, &ctx, now);
    let status = match r.error_code {
        None => StatusCode::OK,
        Some(cairn_eval::ErrorCode::FlagNotFound) => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_REQUEST,
    };
    let mut resp = json_response(
        status,
        serde_json::to_vec(&item(key, &r)).unwrap_or_default(),
    );
    name_flag_set(&mut resp, view);
    resp
}

/// The flag set an answer comes from, `app/env`, in a header (never in the
/// flags' metadata: nothing is invented there).
pub const FLAG_SET_HEADER: &str = "cairn-flag-set";

fn name_flag_set(resp: &mut Response, view: &FlagView) {
    if let Ok(v) = HeaderValue::from_str(&format!("{}/{}", view.app, view.env)) {
        resp.headers_mut().insert(FLAG_SET_HEADER, v);
    }
}

fn evaluate_all(view: &FlagView, body: &[u8], inm: &IfNoneMatch, now: i64) -> Response {
    let (context, ctx) = match parse_context(body) {
        Ok(c) => c,
        Err((code, details)) => return failure(StatusCode::BAD_REQUEST, None, code, &details),
    };
    let resolutions: Vec<(&str, Resolution<'_>)> = view
        .keys()
        .map(|k| (k, view.evaluate(k, &ctx, now)))
        .collect();
    let bulk = OfrepBulk {
        flags: resolutions.iter().map(|(k, r)| item(k, r)).collect(),
    };
    let body = serde_json::to_vec(&bulk).unwrap_or_default();
    let etag = view.bulk_etag(&context, &body);
    if inm.matches(&etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, header_value(&etag))],
        )
            .into_response();
    }
    let mut r = json_response(StatusCode::OK, body);
    r.headers_mut().insert(header::ETAG, header_value(&etag));
    name_flag_set(&mut r, view);
    r
}

/// OFREP single-flag evaluation in the (app, env) the token is bound to.
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags/{key}", params(("key" = String, Path)), request_body = OfrepRequest, tag = "ofrep",
    responses((status = 200, body = OfrepSuccess), (status = 400, body = OfrepFailure), (status = 401), (status = 403),
        (status = 404, body = OfrepFailure), (status = 429, headers(("Retry-After" = String)))),
    security(("bearer" = [])))]
pub async fn ofrep_flag(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(key): P<String>,
    body: Bytes,
) -> Response {
    let Some((app, env)) = c.who.bound_view() else {
        return failure(StatusCode::BAD_REQUEST, Some(&key), "GENERAL", UNBOUND);
    };
    match svc.flags().flag_set(&c.who, app, env) {
        Ok(view) => evaluate_one(&view, &key, &body, svc.now().timestamp()),
        Err(e) => view_error(e, Some(&key)),
    }
}

/// OFREP single-flag evaluation in (app, env) given by the path.
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags/{key}",
    params(("app" = String, Path), ("env" = String, Path), ("key" = String, Path)), request_body = OfrepRequest, tag = "ofrep",
    responses((status = 200, body = OfrepSuccess), (status = 400, body = OfrepFailure), (status = 401), (status = 403),
        (status = 404, body = OfrepFailure), (status = 429, headers(("Retry-After" = String)))),
    security(("bearer" = [])))]
pub async fn ofrep_flag_in(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P((app, env, key)): P<(String, String, String)>,
    body: Bytes,
) -> Response {
    match svc.flags().flag_set(&c.who, &app, &env) {
        Ok(view) => evaluate_one(&view, &key, &body, svc.now().timestamp()),
        Err(e) => view_error(e, Some(&key)),
    }
}

/// OFREP bulk evaluation in the (app, env) the token is bound to. `ETag` / `If-None-Match` (304).
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", request_body = OfrepRequest, tag = "ofrep",
    params(("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = OfrepBulk, headers(("ETag" = String))), (status = 304), (status = 400, body = OfrepFailure),
        (status = 401), (status = 403), (status = 429, headers(("Retry-After" = String)))),
    security(("bearer" = [])))]
pub async fn ofrep_bulk(
    State(svc): State<Arc<Service>>,
    c: Caller,
    inm: IfNoneMatch,
    body: Bytes,
) -> Response {
    let Some((app, env)) = c.who.bound_view() else {
        return failure(StatusCode::BAD_REQUEST, None, "GENERAL", UNBOUND);
    };
    match svc.flags().flag_set(&c.who, app, env) {
        Ok(view) => evaluate_all(&view, &body, &inm, svc.now().timestamp()),
        Err(e) => view_error(e, None),
    }
}

/// OFREP bulk evaluation in (app, env) given by the path. `ETag` / `If-None-Match` (304).
#[utoipa::path(post, path = "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags", request_body = OfrepRequest, tag = "ofrep",
    params(("app" = String, Path), ("env" = String, Path), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = OfrepBulk, headers(("ETag" = String))), (status = 304), (status = 400, body = OfrepFailure),
        (status = 401), (status = 403), (status = 429, headers(("Retry-After" = String)))),
    security(("bearer" = [])))]
pub async fn ofrep_bulk_in(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P((app, env)): P<(String, String)>,
    inm: IfNoneMatch,
    body: Bytes,
) -> Response {
    match svc.flags().flag_set(&c.who, &app, &env) {
        Ok(view) => evaluate_all(&view, &body, &inm, svc.now().timestamp()),
        Err(e) => view_error(e, None),
    }
}

/// OFREP wants 401, 403 and 429 without a body: strip the problem details the
/// access middleware answers with (headers such as `Retry-After` stay).
pub fn bare_ofrep_refusal(resp: Response) -> Response {
    let status = resp.status();
    if !matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    ) {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::empty())
}

// ----------------------------------------------------------------------
// Flag list and stale flags
// ----------------------------------------------------------------------

/// Flags per (app, env): where each is defined, owner/description/tags from its metadata,
/// created, last evaluated, evaluation counts by variant.
#[utoipa::path(get, path = "/v1/flags", params(FlagsQuery), tag = "flags",
    responses((status = 200, body = [FlagInfo]), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn list_flags(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Q(q): Q<FlagsQuery>,
) -> ApiResult<Json<Vec<FlagInfo>>> {
    Ok(Json(
        svc.flags()
            .flags(&c.who, q.app.as_deref(), q.env.as_deref())
            .await?,
    ))
}

/// Lint the flags of (app, env) — or of every pair the caller can read: rules that can only
/// ever yield null or an error (warnings), and flags that do not compile in a view (errors).
#[utoipa::path(get, path = "/v1/flags/lint", params(FlagsQuery), tag = "flags",
    responses((status = 200, body = [FlagLint]), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn lint_flags(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Q(q): Q<FlagsQuery>,
) -> ApiResult<Json<Vec<FlagLint>>> {
    Ok(Json(svc.flags().lint_flags(
        &c.who,
        q.app.as_deref(),
        q.env.as_deref(),
    )?))
}

/// Flags not evaluated for `days` days (counted from creation, or from process start, when
/// never evaluated).
#[utoipa::path(get, path = "/v1/flags/stale", params(StaleQuery), tag = "flags",
    responses((status = 200, body = [FlagInfo]), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn stale_flags(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Q(q): Q<StaleQuery>,
) -> ApiResult<Json<Vec<FlagInfo>>> {
    Ok(Json(
        svc.flags()
            .stale_flags(
                &c.who,
                q.app.as_deref(),
                q.env.as_deref(),
                q.days.unwrap_or(30),
            )
            .await?,
    ))
}
