//! The access matrix: every route's required action, declared once, enforced
//! by one middleware, and walked by a test. A route without a row is refused
//! (fail closed) and fails the matrix test.
//!
//! The middleware authenticates (bearer token), rate-limits, checks that the
//! principal's roles allow the route's action somewhere, and records every
//! refusal (failed authentication, forbidden, hidden) in the audit log. The
//! per-object scope checks happen in `cairn-core`, which knows the objects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::{Action, Error, Origin, Service};

use crate::extract::Caller;
use crate::problem::{ApiError, Denied};
use crate::ratelimit::Limits;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// A principal whose roles allow this action somewhere (scope checks follow in core).
    Needs(Action),
}

/// (method, route path, access): one row per route.
pub const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/openapi.json", Access::Public),
    ("GET", "/metrics", Access::Needs(Action::Read)),
    ("POST", "/v1/login", Access::Public),
    ("GET", "/v1/apps", Access::Needs(Action::Read)),
    ("POST", "/v1/apps", Access::Needs(Action::Admin)),
    ("GET", "/v1/apps/{app}", Access::Needs(Action::Read)),
    (
        "GET",
        "/v1/apps/{app}/envs/{env}/config",
        Access::Needs(Action::Resolve),
    ),
    ("GET", "/v1/envs", Access::Needs(Action::Read)),
    ("POST", "/v1/envs", Access::Needs(Action::Admin)),
    ("GET", "/v1/envs/{env}", Access::Needs(Action::Read)),
    ("PATCH", "/v1/envs/{env}", Access::Needs(Action::Admin)),
    ("GET", "/v1/entries", Access::Needs(Action::Read)),
    ("GET", "/v1/entries/{*key}", Access::Needs(Action::Read)),
    ("PUT", "/v1/entries/{*key}", Access::Needs(Action::Write)),
    ("DELETE", "/v1/entries/{*key}", Access::Needs(Action::Write)),
    ("POST", "/v1/changes", Access::Needs(Action::Write)),
    ("GET", "/v1/history/{*key}", Access::Needs(Action::Read)),
    ("GET", "/v1/diff/{*key}", Access::Needs(Action::Read)),
    ("POST", "/v1/rollback/{*key}", Access::Needs(Action::Write)),
    ("GET", "/v1/schemas", Access::Needs(Action::Read)),
    ("POST", "/v1/schemas", Access::Needs(Action::Admin)),
    ("GET", "/v1/schemas/history", Access::Needs(Action::Read)),
    ("POST", "/v1/schemas/validate", Access::Needs(Action::Read)),
    ("GET", "/v1/audit", Access::Needs(Action::Audit)),
    ("GET", "/v1/audit/verify", Access::Needs(Action::Admin)),
    ("GET", "/v1/tokens", Access::Needs(Action::Admin)),
    ("POST", "/v1/tokens", Access::Needs(Action::Admin)),
    ("DELETE", "/v1/tokens/{id}", Access::Needs(Action::Admin)),
    ("GET", "/v1/users", Access::Needs(Action::Admin)),
    ("POST", "/v1/users", Access::Needs(Action::Admin)),
    ("PATCH", "/v1/users/{name}", Access::Needs(Action::Admin)),
    (
        "GET",
        "/v1/apps/{app}/envs/{env}/flagd.json",
        Access::Needs(Action::Resolve),
    ),
    (
        "POST",
        "/ofrep/v1/evaluate/flags",
        Access::Needs(Action::Resolve),
    ),
    (
        "POST",
        "/ofrep/v1/evaluate/flags/{*key}",
        Access::Needs(Action::Resolve),
    ),
    (
        "POST",
        "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags",
        Access::Needs(Action::Resolve),
    ),
    (
        "POST",
        "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags/{*key}",
        Access::Needs(Action::Resolve),
    ),
    ("GET", "/v1/flags", Access::Needs(Action::Read)),
    ("GET", "/v1/flags/stale", Access::Needs(Action::Read)),
    ("GET", "/v1/flags/lint", Access::Needs(Action::Read)),
    ("GET", "/v1/watch", Access::Needs(Action::Resolve)),
    ("GET", "/v1/webhooks", Access::Needs(Action::Admin)),
    ("POST", "/v1/webhooks", Access::Needs(Action::Admin)),
    ("GET", "/v1/webhooks/{id}", Access::Needs(Action::Admin)),
    ("DELETE", "/v1/webhooks/{id}", Access::Needs(Action::Admin)),
    (
        "GET",
        "/v1/webhooks/{id}/deliveries",
        Access::Needs(Action::Admin),
    ),
    ("GET", "/v1/secrets", Access::Needs(Action::Read)),
    ("POST", "/v1/secrets", Access::Needs(Action::Write)),
    // Metadata for readers; `reveal=true` is checked in core (admins only).
    ("GET", "/v1/secrets/{*name}", Access::Needs(Action::Read)),
    (
        "DELETE",
        "/v1/secrets/{*name}",
        Access::Needs(Action::Write),
    ),
    (
        "POST",
        "/v1/secret-rotate/{*name}",
        Access::Needs(Action::Write),
    ),
    // SDK reports: whoever may resolve the view reports on it; readers list them.
    ("POST", "/v1/report", Access::Needs(Action::Resolve)),
    ("GET", "/v1/applied", Access::Needs(Action::Read)),
    ("POST", "/v1/admin/rekey", Access::Needs(Action::Admin)),
];

/// The rule of a matched route.
pub fn rule(method: &str, path: &str) -> Option<Access> {
    MATRIX
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// Shared state of the access middleware.
#[derive(Clone)]
pub struct Guard {
    pub svc: Arc<Service>,
    pub limits: Arc<Limits>,
}

fn origin_of(req: &Request) -> Origin {
    Origin {
        client_ip: client_ip(req).map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn too_many(retry_after: std::time::Duration) -> Response {
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = ApiError(Error::RateLimited(format!(
        "too many requests; retry in {secs}s"
    )))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The access middleware (see the module docs). OFREP routes answer its
/// refusals (401, 403, 429) without a body, as the protocol wants.
pub async fn authorize(state: State<Guard>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let svc = state.svc.clone();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let ofrep = req.uri().path().contains("/ofrep/");
    let resp = check(state, &method, &route, req, next).await;
    let resp = if ofrep {
        crate::routes::flags::bare_ofrep_refusal(resp)
    } else {
        resp
    };
    svc.metrics().http_request(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// `method` and `path` (the matched route) are read once by [`authorize`].
async fn check(
    State(g): State<Guard>,
    method: &str,
    path: &str,
    mut req: Request,
    next: Next,
) -> Response {
    let uri = req.uri().path().to_owned();
    let Some(access) = rule(method, path) else {
        tracing::error!(%method, %path, "route has no access rule; refusing");
        return ApiError(Error::Internal(format!(
            "no access rule for {method} {path}"
        )))
        .into_response();
    };
    let ip = client_ip(&req);
    let Access::Needs(action) = access else {
        if path != "/v1/login" {
            return next.run(req).await;
        }
        let key = ip.map(|i| i.to_string()).unwrap_or_default();
        if let Err(wait) = g.limits.login_failures.peek(&key) {
            return too_many(wait);
        }
        let resp = next.run(req).await;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let _ = g.limits.login_failures.check(&key);
        }
        return resp;
    };
    let origin = origin_of(&req);
    if let Some(ip) = ip {
        if let Err(wait) = g.limits.per_ip.check(&ip.to_string()) {
            return too_many(wait);
        }
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    let who = match token {
        None => Err(Error::Unauthorized("missing bearer token".into())),
        Some(t) => g.svc.authenticate_any(&t).await,
    };
    let who = match who {
        Ok(who) => who,
        Err(e) => {
            if let Some(ip) = ip {
                // Failed attempts spend a per-address budget: brute force slows
                // down, while other clients (and valid tokens) are unaffected.
                if let Err(wait) = g.limits.auth_failures.check(&ip.to_string()) {
                    return too_many(wait);
                }
            }
            g.svc
                .record_denied(None, &origin, "auth.failed", method, &uri, &e.to_string())
                .await;
            return ApiError(e).into_response();
        }
    };
    if let Err(wait) = g.limits.per_principal.check(&who.actor) {
        return too_many(wait);
    }
    if !who.can_somewhere(action) {
        let e = Error::Forbidden(format!(
            "{method} {path} needs a role that allows {action:?}"
        ));
        g.svc
            .record_denied(
                Some(&who),
                &origin,
                "access.denied",
                method,
                &uri,
                &e.to_string(),
            )
            .await;
        return ApiError(e).into_response();
    }
    req.extensions_mut().insert(Caller {
        who: who.clone(),
        origin: origin.clone(),
    });
    let resp = next.run(req).await;
    if let Some(Denied(reason)) = resp.extensions().get::<Denied>() {
        g.svc
            .record_denied(Some(&who), &origin, "access.denied", method, &uri, reason)
            .await;
    }
    resp
}
