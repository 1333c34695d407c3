//! Health, readiness and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use cairn_core::Service;
use cairn_model::Revision;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::Json;

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready`; `stale` when the last sync with the database failed (reads
    /// are served from memory); `unavailable` when the database cannot be reached.
    pub status: String,
    pub backend: String,
    /// The revision this replica serves.
    pub revision: Revision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Database reachable and state loaded.
#[utoipa::path(get, path = "/readyz", tag = "system", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(svc): State<Arc<Service>>) -> (StatusCode, Json<Readiness>) {
    let backend = svc.backend().to_owned();
    let revision = svc.revision();
    if svc.is_stale() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "stale".into(),
                backend,
                revision,
                error: Some("the last sync with the database failed; serving from memory".into()),
            }),
        );
    }
    match svc.ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready".into(),
                backend,
                revision,
                error: None,
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "unavailable".into(),
                backend,
                revision,
                error: Some(e.to_string()),
            }),
        ),
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "system", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi_json(),
    )
}

/// Prometheus metrics (text exposition format): requests by route and
/// status, latency, the applied revision, secret rotations and their failures.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus / OpenMetrics text", content_type = "application/openmetrics-text")), security(("bearer" = [])))]
pub async fn metrics(
    axum::extract::State(svc): axum::extract::State<std::sync::Arc<cairn_core::Service>>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        svc.render_metrics().await,
    )
}
