//! Webhook subscriptions and their delivery log.
//!
//! Subscriptions are created and deleted through [`crate::Store::commit`]
//! (`Mutation::CreateWebhook` / `DeleteWebhook`, audited like every change).
//! Deliveries are operational state, like flag counts: the dispatcher turns
//! audit records after a stored cursor into delivery rows
//! ([`crate::Store::enqueue_webhook_deliveries`], compare-and-set on the
//! cursor so two replicas never enqueue the same record twice), and workers
//! claim due rows and record each attempt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SealedSecret;

/// What `Mutation::CreateWebhook` stores.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    /// `wh_…`
    pub id: String,
    pub url: String,
    /// Event types (`config.changed`, …), validated by the caller.
    pub events: Vec<String>,
    /// Only events that affect this app (`None`: every app).
    pub app: Option<String>,
    /// Only events that affect this environment (`None`: every environment).
    pub env: Option<String>,
    pub description: String,
    /// The signing secret, sealed (never stored in clear).
    pub sealed_secret: SealedSecret,
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub description: String,
    pub sealed_secret: SealedSecret,
    pub created_at: DateTime<Utc>,
    pub revision: i64,
    /// Audit `seq` of the creation record: only later records are delivered.
    pub created_seq: i64,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Audit `seq` of the deletion record: later records are not delivered.
    pub deleted_seq: Option<i64>,
}

impl WebhookRecord {
    /// Was the subscription live when the audit record `seq` was written?
    pub fn live_at(&self, seq: i64) -> bool {
        seq > self.created_seq && self.deleted_seq.is_none_or(|d| seq < d)
    }
}

/// State of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Gave up (attempts exhausted, or the target was refused).
    Failed,
    /// The subscription was deleted before it was delivered.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            "cancelled" => Some(DeliveryStatus::Cancelled),
            _ => None,
        }
    }
}

/// A delivery to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// `dlv_…` (also the `Cairn-Delivery` header).
    pub id: String,
    pub webhook_id: String,
    /// The audit record it announces.
    pub audit_seq: i64,
    pub event: String,
    /// The JSON body, fixed at enqueue so every attempt sends the same bytes.
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    pub at: DateTime<Utc>,
    /// HTTP status of the answer, if one came.
    pub status: Option<u16>,
    /// Why it failed (never the request body).
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at this time.
    Retry(DateTime<Utc>),
    /// Give up.
    Failed,
}

/// A delivery with its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    pub id: String,
    pub webhook_id: String,
    pub audit_seq: i64,
    pub event: String,
    #[serde(skip)]
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<DeliveryAttempt>,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}
