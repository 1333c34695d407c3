//! Webhook subscriptions inside a commit (the delivery queue is
//! [`crate::webhooks`]).

use cairn_store::{
    Applied, DeleteWebhook, NewWebhook, RewrapWebhook, SecretPolicy, StoreError, StoreResult,
};
use serde_json::json;

use super::{no_versions, AuditFacts, Tx};
use crate::dialect::Dialect;
use crate::query::{query, query_as, query_scalar};
use crate::rows::micros;

/// `scheme://host[:port]` of a URL: what audit records say about a target
/// (a webhook URL's path or query often carries a token). The same strict
/// cut as a rotation hook's URL ([`SecretPolicy::generator_redacted`]): a
/// form it does not recognise is shown as `<redacted>`, never guessed at.
fn url_origin(url: &str) -> String {
    let hook = SecretPolicy {
        generator: Some(format!("hook:{url}")),
        ..SecretPolicy::default()
    };
    let shown = hook.generator_redacted().unwrap_or_default();
    shown.strip_prefix("hook:").unwrap_or(&shown).to_owned()
}

impl<D: Dialect> Tx<'_, D> {
    /// The `seq` the audit record of the mutation being applied will get: the
    /// commit holds the write lock, and the records of earlier mutations of this
    /// commit are already written.
    async fn next_audit_seq(&mut self) -> StoreResult<i64> {
        query_scalar::<D, _>("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit")
            .fetch_one(self.conn)
            .await
            .map_err(D::err("read audit seq"))
    }

    pub(super) async fn create_webhook(
        &mut self,
        w: &NewWebhook,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let exists: Option<String> = query_scalar::<D, _>("SELECT id FROM webhooks WHERE id = $1")
            .bind(&w.id)
            .fetch_optional(self.conn)
            .await
            .map_err(D::err("read webhook"))?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists {
                what: format!("webhook {}", w.id),
            });
        }
        let seq = self.next_audit_seq().await?;
        let events = serde_json::to_string(&w.events)
            .map_err(|e| StoreError::Backend(format!("serialize events: {e}")))?;
        query::<D>(
            "INSERT INTO webhooks (id, url, events, app, env, description, kek_id, wrapped_key, \
             ciphertext, created_at, created_seq, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&w.id)
        .bind(&w.url)
        .bind(&events)
        .bind(&w.app)
        .bind(&w.env)
        .bind(&w.description)
        .bind(&w.sealed_secret.kek_id)
        .bind(&w.sealed_secret.wrapped_key)
        .bind(&w.sealed_secret.ciphertext)
        .bind(micros(&self.at))
        .bind(seq)
        .bind(self.revision())
        .execute(self.conn)
        .await
        .map_err(D::err("insert webhook"))?;
        Ok((
            no_versions(),
            AuditFacts {
                app: w.app.clone(),
                env: w.env.clone(),
                key: Some(w.id.clone()),
                detail: json!({
                    "target": url_origin(&w.url),
                    "events": w.events,
                    "kek_id": w.sealed_secret.kek_id,
                }),
                ..AuditFacts::default()
            },
        ))
    }

    pub(super) async fn delete_webhook(
        &mut self,
        m: &DeleteWebhook,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let id = m.id.as_str();
        type Live = (String, Option<String>, Option<String>);
        let live: Option<Live> = query_as::<D, _>(
            "SELECT url, app, env FROM webhooks WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(self.conn)
        .await
        .map_err(D::err("read webhook"))?;
        let Some((url, app, env)) = live else {
            return Err(StoreError::NotFound {
                what: format!("webhook {id}"),
            });
        };
        let seq = self.next_audit_seq().await?;
        query::<D>("UPDATE webhooks SET deleted_at = $2, deleted_seq = $3 WHERE id = $1")
            .bind(id)
            .bind(micros(&self.at))
            .bind(seq)
            .execute(self.conn)
            .await
            .map_err(D::err("delete webhook"))?;
        let cancelled = query::<D>(
            "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL \
             WHERE webhook_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(self.conn)
        .await
        .map_err(D::err("cancel webhook deliveries"))?;
        Ok((
            no_versions(),
            AuditFacts {
                app,
                env,
                key: Some(id.to_owned()),
                detail: json!({
                    "target": url_origin(&url),
                    "cancelled_deliveries": cancelled,
                }),
                ..AuditFacts::default()
            },
        ))
    }

    pub(super) async fn rewrap_webhook(
        &mut self,
        m: &RewrapWebhook,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let (id, kek_id, wrapped_key) =
            (m.id.as_str(), m.kek_id.as_str(), m.wrapped_key.as_slice());
        let old: Option<String> = query_scalar::<D, _>("SELECT kek_id FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(self.conn)
            .await
            .map_err(D::err("read webhook"))?;
        let Some(old) = old else {
            return Err(StoreError::NotFound {
                what: format!("webhook {id}"),
            });
        };
        query::<D>("UPDATE webhooks SET kek_id = $2, wrapped_key = $3 WHERE id = $1")
            .bind(id)
            .bind(kek_id)
            .bind(wrapped_key)
            .execute(self.conn)
            .await
            .map_err(D::err("rewrap webhook"))?;
        Ok((
            no_versions(),
            AuditFacts {
                key: Some(id.to_owned()),
                detail: json!({ "from_kek_id": old, "kek_id": kek_id }),
                ..AuditFacts::default()
            },
        ))
    }
}
