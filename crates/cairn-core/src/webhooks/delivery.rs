//! The dispatcher (audit log → deliveries) and the delivery workers
//! (claim, sign, send through `crate::outbound`, log, retry with backoff).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::{AuditFilter, DeliveryAttempt, DeliveryOutcome, DeliveryRecord, NewDelivery};
use chrono::{DateTime, Utc};
use rand::Rng;

use super::{affects, event_of, payload, random_id, seal_id, signature, subscribed, to_sealed};
use crate::crypto::envelope;
use crate::outbound::OutboundError;
use crate::webhooks::Webhooks;
use crate::Result;

/// Timing of the dispatcher and the delivery workers.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How often the audit log is tailed and due deliveries are claimed.
    pub poll: Duration,
    /// Delay before the first retry; doubles with every failed attempt.
    pub retry_base: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
    /// Attempts before a delivery is failed for good.
    pub max_attempts: i32,
    /// Time for one attempt (connect, send, read the answer).
    pub timeout: Duration,
    /// Deliveries in flight at once (per process).
    pub concurrency: usize,
    /// Finished deliveries are deleted from the log after this long
    /// (checked hourly).
    pub retention: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            poll: Duration::from_millis(500),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(3600),
            max_attempts: 12,
            timeout: Duration::from_secs(10),
            concurrency: 16,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl WebhookSettings {
    /// Delay after the `attempt`-th failed attempt (1-based): `retry_base *
    /// 2^(attempt-1)`, at most `retry_max`, plus up to 10% jitter.
    pub fn backoff(&self, attempt: i32) -> Duration {
        let exp = attempt.clamp(1, 31) as u32 - 1;
        let delay = self
            .retry_base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.retry_max);
        let jitter = rand::thread_rng().gen_range(0.0..=0.1);
        delay + delay.mul_f64(jitter)
    }
}

/// How often finished deliveries older than the retention are deleted.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Webhooks<'_> {
    /// Delete finished deliveries older than `retention`; returns how many.
    pub async fn prune_webhook_deliveries(&self, retention: Duration) -> Result<u64> {
        let age = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
        Ok(self
            .kernel
            .store()
            .prune_webhook_deliveries(self.kernel.now() - age)
            .await?)
    }

    /// Turn the audit records after the cursor into deliveries, batch by
    /// batch. Returns how many deliveries this process enqueued.
    pub async fn dispatch_webhooks(&self) -> Result<usize> {
        const BATCH: i64 = 500;
        let mut enqueued = 0;
        loop {
            let cursor = self.kernel.store().webhook_cursor().await?;
            let records = self
                .kernel
                .store()
                .audit(&AuditFilter {
                    after_seq: Some(cursor),
                    limit: Some(BATCH),
                    ..AuditFilter::default()
                })
                .await?;
            let Some(last) = records.last().map(|r| r.seq) else {
                return Ok(enqueued);
            };
            // Read after the records: every subscription created by one of
            // them is visible.
            let hooks = self.kernel.store().webhooks().await?;
            let now = self.kernel.now();
            let mut deliveries = Vec::new();
            for r in &records {
                let Some(event) = event_of(r) else { continue };
                for w in hooks.iter().filter(|w| {
                    w.live_at(r.seq)
                        && subscribed(w, event)
                        && affects(
                            w.app.as_deref(),
                            w.env.as_deref(),
                            r.app.as_deref(),
                            r.env.as_deref(),
                        )
                }) {
                    let id = random_id("dlv");
                    let body = payload(r, event, &id, &w.id);
                    deliveries.push(NewDelivery {
                        id,
                        webhook_id: w.id.clone(),
                        audit_seq: r.seq,
                        event: event.to_owned(),
                        payload: body.to_string(),
                        created_at: now,
                    });
                }
            }
            if self
                .kernel
                .store()
                .enqueue_webhook_deliveries(cursor, last, &deliveries)
                .await?
            {
                enqueued += deliveries.len();
            }
            if (records.len() as i64) < BATCH {
                return Ok(enqueued);
            }
        }
    }

    /// Claim up to `limit` due deliveries, each with its subscription
    /// (read, and its signing secret opened, once per subscription).
    pub(crate) async fn claim_due(
        &self,
        settings: &WebhookSettings,
        limit: usize,
    ) -> Result<Vec<(DeliveryRecord, Target)>> {
        let claimed = self.claim_deliveries(settings, limit).await?;
        let targets = self.delivery_targets(&claimed).await;
        Ok(claimed
            .into_iter()
            .map(|d| {
                let target = targets[&d.webhook_id].clone();
                (d, target)
            })
            .collect())
    }

    async fn claim_deliveries(
        &self,
        settings: &WebhookSettings,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = self.kernel.now();
        // Held while the attempt runs; a worker that dies leaves it due then.
        let lease = chrono::Duration::from_std(settings.timeout * 3)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        Ok(self
            .kernel
            .store()
            .claim_webhook_deliveries(now, now + lease, limit as i64)
            .await?)
    }

    /// The subscription of every delivery in a claimed batch, each read and
    /// its signing secret opened once however many deliveries it has.
    async fn delivery_targets(&self, batch: &[DeliveryRecord]) -> HashMap<String, Target> {
        let mut targets = HashMap::new();
        for d in batch {
            if !targets.contains_key(&d.webhook_id) {
                let t = self.delivery_target(&d.webhook_id).await.map(Arc::new);
                targets.insert(d.webhook_id.clone(), t);
            }
        }
        targets
    }

    async fn delivery_target(&self, id: &str) -> std::result::Result<Subscription, SendError> {
        let w = match self.kernel.store().webhook(id).await {
            Ok(Some(w)) if w.deleted_at.is_none() => w,
            Ok(_) => return Err(SendError::Permanent("the subscription was deleted".into())),
            Err(e) => return Err(SendError::Transient(format!("store: {e}"))),
        };
        let sealed = to_sealed(&w);
        let kek = self
            .webhook_kek(&sealed.kek_id)
            .map_err(|e| SendError::Transient(e.to_string()))?;
        let secret = envelope::open(&kek, &seal_id(&w.id), &sealed)
            .map_err(|e| SendError::Permanent(format!("cannot open the signing secret: {e}")))?;
        Ok(Subscription { url: w.url, secret })
    }

    /// One attempt: sign, send, log, and decide what next.
    pub(crate) async fn attempt_delivery(
        &self,
        d: DeliveryRecord,
        target: Target,
        settings: &WebhookSettings,
    ) {
        let at = self.kernel.now();
        let started = Instant::now();
        let sent = match target {
            Ok(sub) => self.send_delivery(&d, &sub, settings, at).await,
            Err(e) => Err(e),
        };
        let (status, error, outcome) = match sent {
            Ok(code @ 200..=299) => (Some(code), None, DeliveryOutcome::Delivered),
            Ok(code) => {
                let why = if (300..400).contains(&code) {
                    format!("HTTP {code} (redirects are not followed)")
                } else {
                    format!("HTTP {code}")
                };
                (Some(code), Some(why), self.retry_or_fail(&d, settings))
            }
            Err(SendError::Permanent(why)) => (None, Some(why), DeliveryOutcome::Failed),
            Err(SendError::Transient(why)) => (None, Some(why), self.retry_or_fail(&d, settings)),
        };
        let attempt = DeliveryAttempt {
            at,
            status,
            error: error.clone(),
            duration_ms: started.elapsed().as_millis() as i64,
        };
        self.kernel.metrics().webhook_attempt(match &outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry(_) => "retry",
            DeliveryOutcome::Failed => "failed",
        });
        match &outcome {
            DeliveryOutcome::Delivered => {
                tracing::debug!(delivery = %d.id, webhook = %d.webhook_id, "webhook delivered")
            }
            _ => tracing::warn!(
                delivery = %d.id,
                webhook = %d.webhook_id,
                attempt = d.attempts + 1,
                error = error.as_deref().unwrap_or(""),
                "webhook delivery failed"
            ),
        }
        if let Err(e) = self
            .kernel
            .store()
            .record_webhook_attempt(&d.id, &attempt, &outcome)
            .await
        {
            tracing::warn!(error = %e, delivery = %d.id, "could not record a webhook attempt");
        }
    }

    fn retry_or_fail(&self, d: &DeliveryRecord, settings: &WebhookSettings) -> DeliveryOutcome {
        let attempt = d.attempts + 1;
        if attempt >= settings.max_attempts {
            return DeliveryOutcome::Failed;
        }
        let delay = chrono::Duration::from_std(settings.backoff(attempt))
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        DeliveryOutcome::Retry(self.kernel.now() + delay)
    }

    /// The HTTP status of the receiver's answer.
    async fn send_delivery(
        &self,
        d: &DeliveryRecord,
        w: &Subscription,
        settings: &WebhookSettings,
        at: DateTime<Utc>,
    ) -> std::result::Result<u16, SendError> {
        let body = d.payload.as_bytes();
        let sig = signature(&w.secret, at.timestamp(), body);
        let headers = [
            ("Cairn-Event", d.event.as_str()),
            ("Cairn-Delivery", d.id.as_str()),
            ("Cairn-Signature", sig.as_str()),
        ];
        match self
            .outbound
            .clone()
            .with_timeout(settings.timeout)
            .post_json(&w.url, &headers, body)
            .await
        {
            Ok(r) => Ok(r.status),
            Err(e @ (OutboundError::Refused { .. } | OutboundError::InvalidUrl(_))) => {
                Err(SendError::Permanent(e.to_string()))
            }
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

/// What a delivery needs of its subscription.
pub(crate) struct Subscription {
    url: String,
    secret: Vec<u8>,
}

/// A claimed delivery's subscription, or why it cannot be sent.
pub(crate) type Target = std::result::Result<Arc<Subscription>, SendError>;

#[derive(Clone)]
pub(crate) enum SendError {
    /// Retrying cannot help (refused target, deleted subscription).
    Permanent(String),
    Transient(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let s = WebhookSettings {
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            ..WebhookSettings::default()
        };
        let within = |d: Duration, base: u64| {
            d >= Duration::from_secs(base) && d <= Duration::from_secs(base).mul_f64(1.1)
        };
        assert!(within(s.backoff(1), 2));
        assert!(within(s.backoff(2), 4));
        assert!(within(s.backoff(3), 8));
        assert!(within(s.backoff(10), 60));
        assert!(within(s.backoff(1000), 60));
    }
}
