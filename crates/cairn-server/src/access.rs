//! The access matrix: every route's required action, declared once, enforced
//! by one middleware, and walked by a test. A method not declared for a route
//! answers 405 with `Allow`; a route without any row is refused (fail closed)
//! and fails the matrix test.
//!
//! The middleware authenticates (bearer token), rate-limits by route
//! [`Class`] (see [`crate::ratelimit`]), checks that the principal's roles
//! allow the route's action somewhere, and records every refusal (failed
//! authentication, forbidden, hidden) in the audit log. The per-object scope
//! checks happen in `cairn-core`, which knows the objects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::{Action, Error, Origin, Service};
use cairn_store::AuditAction;

use crate::extract::Caller;
use crate::problem::{ApiError, Denied};
use crate::ratelimit::{client_key, ClientKey, Limits};

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
    // Change requests: readers list and show (filtered to what they may
    // read); the transitions need a principal that may write somewhere, and
    // core decides who (approvers, the requester, admins) per request.
    ("GET", "/v1/changes", Access::Needs(Action::Read)),
    ("GET", "/v1/changes/{id}", Access::Needs(Action::Read)),
    ("PATCH", "/v1/changes/{id}", Access::Needs(Action::Write)),
    (
        "POST",
        "/v1/changes/{id}/approve",
        Access::Needs(Action::Write),
    ),
    (
        "POST",
        "/v1/changes/{id}/reject",
        Access::Needs(Action::Write),
    ),
    (
        "POST",
        "/v1/changes/{id}/cancel",
        Access::Needs(Action::Write),
    ),
    (
        "POST",
        "/v1/changes/{id}/rebase",
        Access::Needs(Action::Write),
    ),
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

/// The rule of a matched route. `HEAD` follows `GET` (axum serves both
/// with the `GET` handler).
pub fn rule(method: &str, path: &str) -> Option<Access> {
    let exact = |m: &str| {
        MATRIX
            .iter()
            .find(|(rm, p, _)| *rm == m && *p == path)
            .map(|(_, _, a)| *a)
    };
    exact(method).or_else(|| if method == "HEAD" { exact("GET") } else { None })
}

/// The methods declared for a route path (`HEAD` right after `GET`), in
/// matrix order: what a 405 lists in `Allow`. Empty for an unknown path.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (m, p, _) in MATRIX {
        if *p == path && !out.contains(m) {
            out.push(*m);
            if *m == "GET" {
                out.push("HEAD");
            }
        }
    }
    out
}

/// The route class of a request: which budget it spends (DESIGN §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No token, no budget (health, readiness, the OpenAPI document).
    Public,
    /// Password login: per-address and per-user attempt budgets, spent
    /// before the password is hashed.
    Auth,
    /// Changes nothing: `GET`/`HEAD`, and the `POST`s that only compute an
    /// answer from memory (OFREP evaluations, schema validation). A fleet
    /// reads far faster than any fixed figure: unlimited unless configured.
    Read,
    /// Everything else that needs a token, SDK reports included (they write
    /// to the database).
    Write,
}

/// `POST`s that need only a read action but write to the database.
const WRITING_READS: &[&str] = &["/v1/report"];

/// The class of a declared route (`None`: no rule for it).
pub fn class(method: &str, path: &str) -> Option<Class> {
    Some(match rule(method, path)? {
        Access::Public if path == "/v1/login" => Class::Auth,
        Access::Public => Class::Public,
        Access::Needs(_) if matches!(method, "GET" | "HEAD") => Class::Read,
        Access::Needs(Action::Read | Action::Resolve) if !WRITING_READS.contains(&path) => {
            Class::Read
        }
        Access::Needs(_) => Class::Write,
    })
}

/// Shared state of the access middleware.
#[derive(Clone)]
pub struct Guard {
    pub svc: Arc<Service>,
    pub limits: Arc<Limits>,
}

/// What the login handler needs to spend the login budgets before hashing
/// (inserted by the middleware for `POST /v1/login`).
#[derive(Clone)]
pub struct LoginGate {
    limits: Arc<Limits>,
    client: Option<ClientKey>,
}

impl LoginGate {
    /// Spend one attempt of this address's and this user's login budgets,
    /// or answer 429 with `Retry-After`. Called before the password is hashed,
    /// so guessing costs the server at most the budget's worth of Argon2.
    pub fn admit(&self, user: &str) -> Option<Response> {
        if let Some(client) = &self.client {
            if let Err(wait) = self.limits.login_per_ip.check(client) {
                return Some(too_many(wait));
            }
        }
        // The key is the name as given, bounded like any name.
        let user: String = user.chars().take(256).collect();
        self.limits.login_per_user.check(&user).err().map(too_many)
    }
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

/// 429 with `Retry-After` (whole seconds, at least 1).
pub(crate) fn too_many(retry_after: std::time::Duration) -> Response {
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

/// 405 with `Allow`, as problem details. A transport-level answer like the
/// router's 404, so it has no `ErrorCode`.
fn method_not_allowed(path: &str, allowed: &[&str]) -> Response {
    let allow = allowed.join(", ");
    let body = serde_json::json!({
        "type": "urn:cairn:problem:method_not_allowed",
        "title": "Method Not Allowed",
        "status": 405,
        "detail": format!("method not allowed on {path}; allowed: {allow}"),
        "code": "method_not_allowed",
    });
    let mut resp = (StatusCode::METHOD_NOT_ALLOWED, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(header::ALLOW, v);
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
    // Undeclared methods are one label: clients choose method names.
    let label = if rule(&method, &route).is_some() {
        method.as_str()
    } else {
        "OTHER"
    };
    svc.metrics().http_request(
        label,
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
    let (Some(access), Some(class)) = (rule(method, path), class(method, path)) else {
        let allowed = allowed_methods(path);
        if !allowed.is_empty() {
            return method_not_allowed(path, &allowed);
        }
        tracing::error!(%method, %path, "route has no access rule; refusing");
        return ApiError(Error::Internal(format!(
            "no access rule for {method} {path}"
        )))
        .into_response();
    };
    let client = client_ip(&req).map(client_key);
    let action = match (access, class) {
        (Access::Public, Class::Auth) => {
            req.extensions_mut().insert(LoginGate {
                limits: g.limits.clone(),
                client,
            });
            return next.run(req).await;
        }
        (Access::Public, _) => return next.run(req).await,
        (Access::Needs(action), _) => action,
    };
    let origin = origin_of(&req);
    if let Some(client) = &client {
        if let Err(wait) = g.limits.per_ip.check(client) {
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
        Some(t) => g.svc.identity().authenticate_any(&t).await,
    };
    let who = match who {
        Ok(who) => who,
        Err(e) => {
            // Only failures reach the failure budget: verifying a credential is
            // cheap, so a valid one is always served, whatever was tried
            // before from its address; further failures are slowed down.
            if let Some(client) = &client {
                if let Err(wait) = g.limits.auth_failures.check(client) {
                    return too_many(wait);
                }
            }
            g.svc
                .identity()
                .record_denied(
                    None,
                    &origin,
                    AuditAction::AuthFailed,
                    method,
                    &uri,
                    &e.to_string(),
                )
                .await;
            return ApiError(e).into_response();
        }
    };
    let per_principal = match class {
        Class::Read => &g.limits.reads,
        _ => &g.limits.writes,
    };
    if let Err(wait) = per_principal.check(&who.actor) {
        return too_many(wait);
    }
    if !who.can_somewhere(action) {
        let e = Error::Forbidden(format!(
            "{method} {path} needs a role that allows {action:?}"
        ));
        g.svc
            .identity()
            .record_denied(
                Some(&who),
                &origin,
                AuditAction::AccessDenied,
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
            .identity()
            .record_denied(
                Some(&who),
                &origin,
                AuditAction::AccessDenied,
                method,
                &uri,
                reason,
            )
            .await;
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_class_and_reads_are_the_side_effect_free_routes() {
        for (m, p, _) in MATRIX {
            assert!(class(m, p).is_some(), "{m} {p}");
            assert!(allowed_methods(p).contains(m), "{m} {p}");
        }
        for (m, p, c) in [
            ("GET", "/healthz", Class::Public),
            ("HEAD", "/healthz", Class::Public),
            ("POST", "/v1/login", Class::Auth),
            ("GET", "/v1/apps", Class::Read),
            ("HEAD", "/v1/apps/{app}/envs/{env}/config", Class::Read),
            ("GET", "/v1/watch", Class::Read),
            ("POST", "/ofrep/v1/evaluate/flags", Class::Read),
            ("POST", "/ofrep/v1/evaluate/flags/{*key}", Class::Read),
            (
                "POST",
                "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags/{*key}",
                Class::Read,
            ),
            ("POST", "/v1/schemas/validate", Class::Read),
            ("POST", "/v1/report", Class::Write),
            ("PUT", "/v1/entries/{*key}", Class::Write),
            ("POST", "/v1/apps", Class::Write),
            ("DELETE", "/v1/tokens/{id}", Class::Write),
        ] {
            assert_eq!(class(m, p), Some(c), "{m} {p}");
        }
        assert_eq!(class("TRACE", "/healthz"), None);
        assert_eq!(allowed_methods("/v1/apps"), ["GET", "HEAD", "POST"]);
        assert_eq!(allowed_methods("/ofrep/v1/evaluate/flags"), ["POST"]);
        assert!(allowed_methods("/nope").is_empty());
    }
}
