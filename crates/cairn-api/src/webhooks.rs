//! Webhooks: what `DELETE /v1/webhooks/{id}` answers and the query of
//! `GET /v1/webhooks/{id}/deliveries`.
//!
//! A subscription request and a subscription as shown are `cairn_core`'s
//! (`WebhookRequest`, `WebhookInfo`); a delivery is a `cairn_store` record.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeleted {
    pub id: String,
}

/// The query of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}
