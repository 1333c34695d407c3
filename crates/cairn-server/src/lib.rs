//! Cairn's HTTP API. The only crate that knows HTTP: routes, extractors,
//! problem details ([`problem`]), and the OpenAPI document.
//!
//! Handlers are thin: parse, call [`cairn_core::Service`], shape the answer.

pub mod access;
mod extract;
pub mod problem;
pub mod ratelimit;
mod routes;
pub mod tls;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use cairn_core::Service;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use problem::Problem;
pub use routes::entries::{ChangeEntryBody, ChangeSetBody, SetEntryBody, WriteResult};
pub use routes::system::Readiness;

/// Largest request body: a full change set of maximal values, plus slack.
pub fn body_limit(max_value_bytes: usize) -> usize {
    max_value_bytes * 2 + 1024 * 1024
}

/// The whole API as one router, without per-client rate limits (tests,
/// benchmarks, embedding); failed authentications and logins keep their
/// budgets ([`ratelimit::Limits::relaxed`]). The server uses [`router_with`].
pub fn router(svc: Arc<Service>) -> Router {
    router_with(svc, ratelimit::Limits::relaxed())
}

/// The whole API with these rate limits.
pub fn router_with(svc: Arc<Service>, limits: ratelimit::Limits) -> Router {
    use routes::{catalog as c, entries as e, flags as f, identity as i, system as s};
    let limit = body_limit(svc.options().max_value_bytes);
    let limits = Arc::new(limits);
    // Idle keys are forgotten off the request path, while the router lives.
    ratelimit::Limits::spawn_cleanup(&limits, ratelimit::RETAIN_EVERY);
    let guard = access::Guard {
        svc: svc.clone(),
        limits,
    };
    Router::new()
        .route("/healthz", get(s::healthz))
        .route("/readyz", get(s::readyz))
        .route("/openapi.json", get(s::openapi))
        .route("/metrics", get(s::metrics))
        .route("/v1/apps", get(c::list_apps).post(c::create_app))
        .route("/v1/apps/{app}", get(c::get_app))
        .route("/v1/apps/{app}/envs/{env}/config", get(e::resolved))
        .route("/v1/envs", get(c::list_envs).post(c::create_env))
        .route("/v1/envs/{env}", get(c::get_env).patch(c::update_env))
        .route("/v1/entries", get(e::list_entries))
        .route(
            "/v1/entries/{*key}",
            put(e::set_entry).get(e::get_entry).delete(e::delete_entry),
        )
        .route(
            "/v1/changes",
            post(e::change_set).get(routes::changes::list_changes),
        )
        .route(
            "/v1/changes/{id}",
            get(routes::changes::get_change).patch(routes::changes::edit_change),
        )
        .route(
            "/v1/changes/{id}/approve",
            post(routes::changes::approve_change),
        )
        .route(
            "/v1/changes/{id}/reject",
            post(routes::changes::reject_change),
        )
        .route(
            "/v1/changes/{id}/cancel",
            post(routes::changes::cancel_change),
        )
        .route(
            "/v1/changes/{id}/rebase",
            post(routes::changes::rebase_change),
        )
        .route("/v1/history/{*key}", get(e::history))
        .route("/v1/diff/{*key}", get(e::diff))
        .route("/v1/rollback/{*key}", post(e::rollback))
        .route("/v1/schemas", get(c::list_schemas).post(c::register_schema))
        .route("/v1/schemas/history", get(c::schema_history))
        .route("/v1/schemas/validate", post(c::validate))
        .route("/v1/audit", get(c::audit))
        .route("/v1/tokens", get(c::list_tokens).post(c::create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(c::revoke_token))
        .route("/v1/login", post(i::login))
        .route("/v1/users", get(i::list_users).post(i::create_user))
        .route("/v1/users/{name}", axum::routing::patch(i::update_user))
        .route("/v1/audit/verify", get(i::verify_audit))
        .route("/v1/apps/{app}/envs/{env}/flagd.json", get(f::flagd_json))
        .route("/ofrep/v1/evaluate/flags", post(f::ofrep_bulk))
        .route("/ofrep/v1/evaluate/flags/{*key}", post(f::ofrep_flag))
        .route(
            "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags",
            post(f::ofrep_bulk_in),
        )
        .route(
            "/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags/{*key}",
            post(f::ofrep_flag_in),
        )
        .route("/v1/flags", get(f::list_flags))
        .route("/v1/flags/stale", get(f::stale_flags))
        .route("/v1/flags/lint", get(f::lint_flags))
        .route("/v1/watch", get(routes::watch::watch))
        .route(
            "/v1/webhooks",
            get(routes::webhooks::list_webhooks).post(routes::webhooks::create_webhook),
        )
        .route(
            "/v1/webhooks/{id}",
            get(routes::webhooks::get_webhook).delete(routes::webhooks::delete_webhook),
        )
        .route(
            "/v1/webhooks/{id}/deliveries",
            get(routes::webhooks::webhook_deliveries),
        )
        .route(
            "/v1/secrets",
            get(routes::secrets::list_secrets).post(routes::secrets::create_secret),
        )
        .route(
            "/v1/secrets/{*name}",
            get(routes::secrets::get_secret).delete(routes::secrets::delete_secret),
        )
        .route(
            "/v1/secret-rotate/{*name}",
            post(routes::secrets::rotate_secret),
        )
        .route("/v1/report", post(routes::reports::report))
        .route("/v1/applied", get(routes::reports::applied))
        .route("/v1/admin/rekey", post(routes::secrets::rekey))
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            access::authorize,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            svc.clone(),
            routes::watch::mark_stale,
        ))
        .with_state(svc)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cairn", description = "Configuration, feature flags and secrets: versioned, validated, audited."),
    paths(
        routes::system::healthz, routes::system::readyz, routes::system::openapi, routes::system::metrics,
        routes::catalog::list_apps, routes::catalog::get_app, routes::catalog::create_app,
        routes::catalog::list_envs, routes::catalog::get_env, routes::catalog::create_env, routes::catalog::update_env,
        routes::entries::list_entries, routes::entries::get_entry, routes::entries::set_entry, routes::entries::delete_entry,
        routes::entries::change_set, routes::entries::history, routes::entries::diff, routes::entries::rollback,
        routes::entries::resolved,
        routes::changes::list_changes, routes::changes::get_change, routes::changes::approve_change,
        routes::changes::reject_change, routes::changes::cancel_change, routes::changes::rebase_change,
        routes::changes::edit_change,
        routes::catalog::list_schemas, routes::catalog::schema_history, routes::catalog::register_schema, routes::catalog::validate,
        routes::catalog::audit,
        routes::catalog::list_tokens, routes::catalog::create_token, routes::catalog::revoke_token,
        routes::identity::login, routes::identity::list_users, routes::identity::create_user,
        routes::identity::update_user, routes::identity::verify_audit,
        routes::flags::flagd_json, routes::flags::ofrep_flag, routes::flags::ofrep_bulk,
        routes::flags::ofrep_flag_in, routes::flags::ofrep_bulk_in,
        routes::flags::list_flags, routes::flags::stale_flags, routes::flags::lint_flags,
        routes::watch::watch,
        routes::webhooks::list_webhooks, routes::webhooks::create_webhook, routes::webhooks::get_webhook,
        routes::webhooks::delete_webhook, routes::webhooks::webhook_deliveries,
        routes::secrets::list_secrets, routes::secrets::create_secret, routes::secrets::get_secret,
        routes::secrets::delete_secret, routes::secrets::rotate_secret, routes::secrets::rekey,
        routes::reports::report, routes::reports::applied,
    ),
    modifiers(&BearerAuth, &Refusals),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers every operation can give besides its own, added from the
/// router's rules instead of by hand on each annotation, so the document stays
/// exact as routes are added:
///
/// - every route whose [`access::MATRIX`] row needs a token: 401 (with
///   `WWW-Authenticate`), 403 and 429 (with `Retry-After`) from
///   [`access::authorize`] — problem details, or no body on OFREP routes;
/// - every operation with parameters: 400, the query/path rejections of
///   [`extract`];
/// - every JSON request body: 400 (not JSON, wrong `Content-Type`, wrong
///   shape) and 413 (larger than [`body_limit`]; OFREP: plain text);
/// - problem details are `application/problem+json`, as served.
struct Refusals;

const PROBLEM_JSON: &str = "application/problem+json";

impl Modify for Refusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ofrep = path.contains("/ofrep/");
            for (method, op) in [
                ("GET", &mut item.get),
                ("PUT", &mut item.put),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
                ("PATCH", &mut item.patch),
            ] {
                let Some(op) = op.as_mut() else { continue };
                let access = access::MATRIX
                    .iter()
                    .find(|(m, p, _)| *m == method && p.replace("{*", "{") == *path)
                    .map(|(_, _, a)| *a);
                let responses = &mut op.responses.responses;
                // Problem details as served.
                for r in responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(r) = r {
                        let problem = r.content.get("application/json").is_some_and(|c| {
                            matches!(&c.schema, Some(utoipa::openapi::RefOr::Ref(s))
                                if s.ref_location.ends_with("/Problem"))
                        });
                        if problem {
                            if let Some(c) = r.content.shift_remove("application/json") {
                                r.content.insert(PROBLEM_JSON.to_owned(), c);
                            }
                        }
                    }
                }
                if let Some(utoipa::openapi::RefOr::T(r)) = responses.get_mut("429") {
                    if !r.headers.contains_key("Retry-After") {
                        *r = with_header(
                            r.clone(),
                            "Retry-After",
                            "Seconds to wait before retrying",
                        );
                    }
                }
                let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let json_body = op
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                if (has_params || json_body) && !ofrep {
                    add(
                        responses,
                        400,
                        problem("invalid request: query, path or body"),
                    );
                }
                if json_body && !ofrep {
                    add(
                        responses,
                        413,
                        problem("request body larger than the limit"),
                    );
                }
                if json_body && ofrep {
                    // OFREP reads the body as bytes: axum's own plain-text refusal.
                    let mut r = utoipa::openapi::ResponseBuilder::new()
                        .description("request body larger than the limit")
                        .build();
                    r.content.insert(
                        "text/plain".to_owned(),
                        utoipa::openapi::ContentBuilder::new().build(),
                    );
                    add(responses, 413, r);
                }
                if let Some(access::Access::Needs(_)) = access {
                    let (unauthorized, forbidden, limited) = if ofrep {
                        (
                            bare("missing or invalid bearer token"),
                            bare("not allowed"),
                            bare("rate limited"),
                        )
                    } else {
                        (
                            problem("missing or invalid bearer token"),
                            problem("the token's roles do not allow this"),
                            problem("rate limited"),
                        )
                    };
                    add(
                        responses,
                        401,
                        with_header(unauthorized, "WWW-Authenticate", "`Bearer`"),
                    );
                    add(responses, 403, forbidden);
                    add(
                        responses,
                        429,
                        with_header(limited, "Retry-After", "Seconds to wait before retrying"),
                    );
                }
            }
        }
    }
}

/// Add a response unless the annotation documents that status itself.
fn add(
    responses: &mut std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::Response>,
    >,
    status: u16,
    r: utoipa::openapi::Response,
) {
    responses
        .entry(status.to_string())
        .or_insert(utoipa::openapi::RefOr::T(r));
}

fn problem(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn bare(description: &str) -> utoipa::openapi::Response {
    utoipa::openapi::ResponseBuilder::new()
        .description(format!("{description} (no body, as OFREP wants)"))
        .build()
}

fn with_header(
    mut r: utoipa::openapi::Response,
    name: &str,
    description: &str,
) -> utoipa::openapi::Response {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let header = utoipa::openapi::HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build();
    r.headers.insert(name.to_owned(), header);
    r
}

/// The OpenAPI document, pretty-printed (what `/openapi.json` serves and
/// `docs/openapi.json` holds).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_default()
}

/// Serve the router over HTTPS until `shutdown` resolves.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = tls::TlsListener::new(listener, config)?.tap_io(|_| {});
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serve the router on a bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
