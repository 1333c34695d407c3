//! Webhook subscriptions and their delivery log (admins only).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use cairn_api::{DeliveriesQuery, WebhookDeleted};
use cairn_core::webhooks::{WebhookInfo, WebhookRequest};
use cairn_core::Service;
use cairn_store::DeliveryRecord;

use crate::extract::{Caller, Json, P, Q};
use crate::problem::{ApiResult, Problem};

/// Every live subscription.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = [WebhookInfo]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(svc): State<Arc<Service>>,
    c: Caller,
) -> ApiResult<Json<Vec<WebhookInfo>>> {
    Ok(Json(svc.webhooks().webhooks(&c.who).await?))
}

/// Subscribe a URL to event types, optionally for one app and/or environment.
/// The signing secret is stored sealed and never returned. Loopback and
/// private targets are refused (400) unless the server allows them.
#[utoipa::path(post, path = "/v1/webhooks", request_body = WebhookRequest, tag = "webhooks",
    responses((status = 201, body = WebhookInfo), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(svc): State<Arc<Service>>,
    c: Caller,
    Json(b): Json<WebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookInfo>)> {
    let created = svc.webhooks().create_webhook(&c.who, &c.origin, b).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One subscription (deleted ones too, with `deleted_at`).
#[utoipa::path(get, path = "/v1/webhooks/{id}", params(("id" = String, Path)), tag = "webhooks",
    responses((status = 200, body = WebhookInfo), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
) -> ApiResult<Json<WebhookInfo>> {
    Ok(Json(svc.webhooks().webhook(&c.who, &id).await?))
}

/// Unsubscribe: pending deliveries are cancelled; the delivery log stays.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", params(("id" = String, Path)), tag = "webhooks",
    responses((status = 200, body = WebhookDeleted), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
) -> ApiResult<Json<WebhookDeleted>> {
    svc.webhooks()
        .delete_webhook(&c.who, &c.origin, &id)
        .await?;
    Ok(Json(WebhookDeleted { id }))
}

/// The delivery log: every delivery with its attempts, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", params(("id" = String, Path), DeliveriesQuery),
    tag = "webhooks",
    responses((status = 200, body = [DeliveryRecord]), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn webhook_deliveries(
    State(svc): State<Arc<Service>>,
    c: Caller,
    P(id): P<String>,
    Q(q): Q<DeliveriesQuery>,
) -> ApiResult<Json<Vec<DeliveryRecord>>> {
    Ok(Json(
        svc.webhooks()
            .webhook_deliveries(&c.who, &id, q.limit.unwrap_or(100))
            .await?,
    ))
}
