//! Typed calls of the webhook routes (admins). A subscription request and a
//! subscription as shown are `cairn_core` types
//! (`cairn_core::webhooks::{WebhookRequest, WebhookInfo}`): they travel as JSON.

use cairn_api::{DeliveriesQuery, DeliveryRecord, WebhookDeleted};
use reqwest::Method;
use serde_json::Value;

use super::segment;
use crate::{Client, ClientError};

impl Client {
    /// `GET /v1/webhooks`: every live subscription (as JSON).
    pub async fn webhooks(&self) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/v1/webhooks")).await
    }

    /// `POST /v1/webhooks` with a `WebhookRequest` (`url`, `events`, `app`,
    /// `env`, `secret`, `description`): the subscription, never its secret.
    pub async fn create_webhook(&self, body: &Value) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, "/v1/webhooks").json(body))
            .await
    }

    /// `GET /v1/webhooks/{id}` (deleted ones too, with `deleted_at`).
    pub async fn webhook(&self, id: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/webhooks/{}", segment(id));
        self.send(self.request(Method::GET, &path)).await
    }

    /// `DELETE /v1/webhooks/{id}`: pending deliveries are cancelled.
    pub async fn delete_webhook(&self, id: &str) -> Result<WebhookDeleted, ClientError> {
        let path = format!("/v1/webhooks/{}", segment(id));
        self.send(self.request(Method::DELETE, &path)).await
    }

    /// `GET /v1/webhooks/{id}/deliveries`: newest first, with every attempt.
    pub async fn deliveries(
        &self,
        id: &str,
        query: &DeliveriesQuery,
    ) -> Result<Vec<DeliveryRecord>, ClientError> {
        let path = format!("/v1/webhooks/{}/deliveries", segment(id));
        self.send(self.request(Method::GET, &path).query(query))
            .await
    }
}
