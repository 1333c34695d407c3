//! Webhooks: subscriptions, the dispatcher, and signed deliveries.
//!
//! **Source of events: the audit log.** Every mutation writes its audit
//! record in its own transaction, so an event can't be lost between a change
//! and its announcement. The dispatcher ([`Webhooks::dispatch_webhooks`]) reads
//! the audit records after a stored cursor, maps each to an event type
//! ([`event_of`]), matches the subscriptions live at that record's `seq` by
//! event type and scope ([`affects`]), and enqueues one delivery per match in
//! the transaction that advances the cursor (compare-and-set: two replicas
//! never enqueue the same record twice). Workers
//! ([`crate::Service::deliver_due_webhooks`]) claim due deliveries, sign and send
//! them through [`crate::outbound`], and log every attempt; failures are
//! retried with exponential backoff.
//!
//! **Signature**: `Cairn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`, computed at each attempt over the exact body bytes.
//!
//! **Payloads** name what changed (scope, key or secret name, versions,
//! actor, message) and never carry values: no secret value ever, no
//! configuration value either, nor a value's unkeyed hash (a `true` or a
//! small number is found again by hashing candidates); a receiver reads
//! the value with its own token, so a webhook does not widen who may read
//! configuration.
//!
//! The signing secret is sealed with the envelope encryption of secrets
//! (under the master key's KEK, identity `@webhook/<id>`) and never returned
//! after creation.

use std::time::Duration;

use cairn_model::{validate_app, validate_env};
use cairn_store::{AuditRecord, DeliveryRecord, Mutation, NewWebhook, SealedSecret, WebhookRecord};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::crypto::envelope::{self, Kek, Sealed, SecretId};
use crate::crypto::keys::Keyring;
use crate::identity::access::require_admin;
use crate::identity::auth::{Origin, Principal};
use crate::kernel::Kernel;
use crate::outbound::Outbound;
use crate::{Error, Result};
use cairn_store::AuditAction;
use cairn_store::{DeleteWebhook, RewrapWebhook};

mod delivery;
pub use delivery::WebhookSettings;
pub(crate) use delivery::PRUNE_EVERY;

/// The outbound HTTP guard's old path (it is shared with rotation hooks:
/// `crate::outbound`).
pub use crate::outbound;

/// Every event type a subscription may ask for (`*` asks for all).
pub const EVENT_TYPES: &[&str] = &[
    "config.changed",
    "flag.changed",
    "segment.changed",
    "schema.changed",
    "secret.created",
    "secret.rotated",
    "secret.deleted",
    "secret.rotation_failed",
    "app.created",
    "env.changed",
    "change.requested",
    "change.approved",
    "change.rejected",
    "change.applied",
    "change.conflicted",
    "change.expired",
];

/// Shortest signing secret accepted.
pub const MIN_SECRET_LEN: usize = 16;
const MAX_SECRET_LEN: usize = 1024;
const MAX_URL_LEN: usize = 2048;
/// The associated-data "app" of sealed signing secrets: not a valid app name,
/// so no secret's identity can collide with a webhook's.
const SEAL_SCOPE: &str = "@webhook";

/// The event type an audit record announces, if any.
pub fn event_of(r: &AuditRecord) -> Option<&'static str> {
    use AuditAction as A;
    match r.action()? {
        A::EntrySet | A::EntryDelete | A::EntryRollback => {
            match r.detail.get("kind").and_then(Value::as_str) {
                Some("config") => Some("config.changed"),
                Some("flag") => Some("flag.changed"),
                Some("segment") => Some("segment.changed"),
                _ => None,
            }
        }
        A::SecretCreate => Some("secret.created"),
        A::SecretRotate => Some("secret.rotated"),
        A::SecretDelete => Some("secret.deleted"),
        A::SecretRotationFailed => Some("secret.rotation_failed"),
        A::SchemaRegister | A::SchemaRegisterForced => Some("schema.changed"),
        A::AppCreate => Some("app.created"),
        A::EnvCreate | A::EnvUpdate => Some("env.changed"),
        A::TokenCreate
        | A::TokenRevoke
        | A::UserCreate
        | A::UserUpdate
        | A::AuthLogin
        | A::AuthLoginFailed
        | A::AuthFailed
        | A::AccessDenied
        | A::SecretRewrap
        | A::SecretRead
        | A::WebhookCreate
        | A::WebhookDelete
        | A::WebhookRewrap => None,
        A::ChangeRequest => Some("change.requested"),
        A::ChangeApprove => Some("change.approved"),
        A::ChangeReject => Some("change.rejected"),
        // A forced apply is an apply (its payload says `forced`).
        A::ChangeApply | A::ChangeForce => Some("change.applied"),
        A::ChangeConflict => Some("change.conflicted"),
        A::ChangeExpire => Some("change.expired"),
        // Not announced (DESIGN.md §7 names the six above).
        A::ChangeEdit | A::ChangeCancel => None,
    }
}

/// Does a record at (`app`, `env`) (`""`/`None`: global / every environment)
/// affect a subscription's scope? A subscription to app `billing`, env `prod`
/// hears every change to billing's resolved view in prod: at global,
/// global+prod, billing and billing+prod.
pub fn affects(
    sub_app: Option<&str>,
    sub_env: Option<&str>,
    app: Option<&str>,
    env: Option<&str>,
) -> bool {
    let app = app.filter(|a| !a.is_empty());
    let env = env.filter(|e| !e.is_empty());
    let app_ok = match (sub_app, app) {
        (Some(s), Some(a)) => s == a,
        _ => true,
    };
    let env_ok = match (sub_env, env) {
        (Some(s), Some(e)) => s == e,
        _ => true,
    };
    app_ok && env_ok
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Does `header` carry a valid `v1` signature of `body` under `secret`,
/// made at most `tolerance` away from `now`? What a receiver does.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now.abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    let expected = signature(secret, t, body);
    let expected = expected.rsplit_once("v1=").map(|p| p.1).unwrap_or_default();
    sigs.iter().any(|s| {
        use subtle::ConstantTimeEq;
        s.len() == expected.len() && bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
    })
}

/// What creating a subscription takes. (Its `Debug` hides the secret.)
#[derive(Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// `https://…` (or `http://…`); loopback and private targets are refused
    /// unless the server runs with `--allow-private-targets`.
    pub url: String,
    /// Event types (see the README), or `["*"]` for all.
    pub events: Vec<String>,
    /// Only events affecting this app (absent: every app).
    #[serde(default)]
    pub app: Option<String>,
    /// Only events affecting this environment (absent: every environment).
    #[serde(default)]
    pub env: Option<String>,
    /// The signing secret (at least 16 characters). Never returned.
    pub secret: String,
    #[serde(default)]
    pub description: String,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("app", &self.app)
            .field("env", &self.env)
            .field("secret", &"<redacted>")
            .field("description", &self.description)
            .finish()
    }
}

/// A subscription as shown (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub revision: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<&WebhookRecord> for WebhookInfo {
    fn from(w: &WebhookRecord) -> Self {
        WebhookInfo {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            app: w.app.clone(),
            env: w.env.clone(),
            description: w.description.clone(),
            created_at: w.created_at,
            revision: w.revision,
            deleted_at: w.deleted_at,
        }
    }
}

fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

fn seal_id(id: &str) -> SecretId<'_> {
    SecretId {
        name: id,
        app: SEAL_SCOPE,
        env: "",
        version: 1,
    }
}

fn to_sealed(w: &WebhookRecord) -> Sealed {
    Sealed {
        kek_id: w.sealed_secret.kek_id.clone(),
        wrapped_key: w.sealed_secret.wrapped_key.clone(),
        ciphertext: w.sealed_secret.ciphertext.clone(),
    }
}

fn subscribed(w: &WebhookRecord, event: &str) -> bool {
    w.events.iter().any(|e| e == "*" || e == event)
}

/// The JSON body announcing audit record `r` as `event`.
fn payload(r: &AuditRecord, event: &str, delivery: &str, webhook: &str) -> Value {
    let blank = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let mut p = json!({
        "id": delivery,
        "event": event,
        "webhook_id": webhook,
        "occurred_at": r.at,
        "audit_seq": r.seq,
        "revision": r.revision,
        "action": r.action,
        "actor": r.actor,
        "message": r.message,
        "app": blank(&r.app),
        "env": blank(&r.env),
        "key": r.key,
        "from_version": r.from_version,
        "to_version": r.to_version,
    });
    // Only these facts of the audit detail: never a value or a value's hash.
    let keep: &[&str] = match event {
        "config.changed" | "flag.changed" | "segment.changed" => &["kind"],
        "secret.rotation_failed" => &["version", "error", "attempts", "retry_at"],
        "env.changed" => &[
            "protected",
            "required_approvals",
            "auto_approve",
            "strict_flags",
        ],
        e if e.starts_with("change.") => &[
            "state",
            "environments",
            "approvals",
            "required_approvals",
            "forced",
            "reason",
            "applied_revision",
        ],
        _ => &[],
    };
    for k in keep {
        if let Some(v) = r.detail.get(*k) {
            p[*k] = v.clone();
        }
    }
    if r.action() == Some(AuditAction::EntryDelete) {
        p["deleted"] = json!(true);
    }
    p
}

/// The webhooks feature ([`crate::Service::webhooks`]): subscriptions, the
/// dispatcher, deliveries. Holds the kernel, the keyring (signing secrets
/// are sealed under the master key) and the outbound HTTP guard.
#[derive(Clone, Copy)]
pub struct Webhooks<'a> {
    kernel: &'a Kernel,
    keys: &'a Keyring,
    outbound: &'a Outbound,
}

impl<'a> Webhooks<'a> {
    pub(crate) fn new(kernel: &'a Kernel, keys: &'a Keyring, outbound: &'a Outbound) -> Self {
        Webhooks {
            kernel,
            keys,
            outbound,
        }
    }
}

impl Webhooks<'_> {
    fn webhook_kek(&self, id: &str) -> Result<Kek> {
        self.keys
            .kek_by_id(id)
            .ok_or_else(|| Error::Unavailable(format!("the key-encryption key {id} is not loaded")))
    }

    /// Validate a subscription request (every field, nothing written).
    async fn check_webhook_request(&self, req: &WebhookRequest) -> Result<()> {
        if req.url.len() > MAX_URL_LEN {
            return Err(Error::TooLarge {
                field: "url".into(),
                message: format!("at most {MAX_URL_LEN} bytes"),
            });
        }
        Outbound::parse_url(&req.url).map_err(|e| Error::invalid("url", e.to_string()))?;
        if req.events.is_empty() {
            return Err(Error::invalid("events", "name at least one event type"));
        }
        for e in &req.events {
            if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
                return Err(Error::invalid(
                    "events",
                    format!(
                        "unknown event type {e:?} (known: {})",
                        EVENT_TYPES.join(", ")
                    ),
                ));
            }
        }
        {
            let st = self.kernel.read();
            if let Some(app) = &req.app {
                validate_app(app)?;
                if !st.apps.contains_key(app) {
                    return Err(Error::invalid("app", format!("no app named {app:?}")));
                }
            }
            if let Some(env) = &req.env {
                validate_env(env)?;
                if !st.envs.contains_key(env) {
                    return Err(Error::invalid(
                        "env",
                        format!("no environment named {env:?}"),
                    ));
                }
            }
        }
        let n = req.secret.chars().count();
        if n < MIN_SECRET_LEN || req.secret.len() > MAX_SECRET_LEN {
            return Err(Error::invalid(
                "secret",
                format!(
                    "the signing secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters"
                ),
            ));
        }
        if req.description.len() > 1024 {
            return Err(Error::TooLarge {
                field: "description".into(),
                message: "at most 1024 bytes".into(),
            });
        }
        // The target as resolved now; each delivery checks again.
        self.outbound
            .check(&req.url)
            .await
            .map(|_| ())
            .map_err(|e| Error::invalid("url", e.to_string()))
    }

    /// Subscribe a webhook (admins). The secret is sealed and never shown again.
    pub async fn create_webhook(
        &self,
        who: &Principal,
        origin: &Origin,
        req: WebhookRequest,
    ) -> Result<WebhookInfo> {
        require_admin(who, None)?;
        self.check_webhook_request(&req).await?;
        let id = random_id("wh");
        let sealed = envelope::seal(&self.keys.kek(), &seal_id(&id), req.secret.as_bytes());
        let mut events = req.events.clone();
        events.sort();
        events.dedup();
        let m = Mutation::CreateWebhook(NewWebhook {
            id: id.clone(),
            url: req.url.clone(),
            events,
            app: req.app.clone(),
            env: req.env.clone(),
            description: req.description.clone(),
            sealed_secret: SealedSecret {
                kek_id: sealed.kek_id,
                wrapped_key: sealed.wrapped_key,
                ciphertext: sealed.ciphertext,
            },
        });
        self.commit_webhook(who, origin, &format!("create webhook {id}"), m)
            .await?;
        self.webhook(who, &id).await
    }

    /// Every live subscription (admins).
    pub async fn webhooks(&self, who: &Principal) -> Result<Vec<WebhookInfo>> {
        require_admin(who, None)?;
        Ok(self
            .kernel
            .store()
            .webhooks()
            .await?
            .iter()
            .filter(|w| w.deleted_at.is_none())
            .map(WebhookInfo::from)
            .collect())
    }

    /// One subscription, deleted ones included (admins).
    pub async fn webhook(&self, who: &Principal, id: &str) -> Result<WebhookInfo> {
        require_admin(who, None)?;
        match self.kernel.store().webhook(id).await? {
            Some(w) => Ok(WebhookInfo::from(&w)),
            None => Err(Error::not_found(format!("webhook {id}"))),
        }
    }

    /// Unsubscribe (admins); pending deliveries are cancelled, the log stays.
    pub async fn delete_webhook(&self, who: &Principal, origin: &Origin, id: &str) -> Result<()> {
        require_admin(who, None)?;
        let m = Mutation::DeleteWebhook(DeleteWebhook { id: id.to_owned() });
        self.commit_webhook(who, origin, &format!("delete webhook {id}"), m)
            .await
    }

    /// Commit one subscription change, audited as `who`.
    async fn commit_webhook(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        m: Mutation,
    ) -> Result<()> {
        self.kernel
            .commit(who, origin, message, vec![(None, m)])
            .await?;
        Ok(())
    }

    /// The delivery log of a subscription, newest first (admins).
    pub async fn webhook_deliveries(
        &self,
        who: &Principal,
        id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>> {
        self.webhook(who, id).await?;
        Ok(self
            .kernel
            .store()
            .webhook_deliveries(id, limit.clamp(1, 1000))
            .await?)
    }

    /// Re-wrap the signing secrets of live subscriptions under the current
    /// master key (part of `rekey`); `old` is the retiring master key unless
    /// the server has it among its previous keys. Returns (re-wrapped,
    /// already under the current key).
    pub async fn rekey_webhooks(
        &self,
        who: &Principal,
        origin: &Origin,
        old: Option<&crate::crypto::keys::MasterKey>,
        message: &str,
    ) -> Result<(usize, usize)> {
        require_admin(who, None)?;
        let new = self.keys.kek();
        let (mut rewrapped, mut unchanged) = (0, 0);
        for w in self.kernel.store().webhooks().await? {
            if w.deleted_at.is_some() {
                continue;
            }
            if w.sealed_secret.kek_id == new.id() {
                unchanged += 1;
                continue;
            }
            let old_kek = match old.map(Kek::from_master) {
                Some(k) if k.id() == w.sealed_secret.kek_id => k,
                _ => self.webhook_kek(&w.sealed_secret.kek_id)?,
            };
            let sealed = envelope::rewrap(&old_kek, &new, &seal_id(&w.id), &to_sealed(&w))
                .map_err(|e| Error::Internal(format!("re-wrapping webhook {}: {e}", w.id)))?;
            let m = Mutation::RewrapWebhook(RewrapWebhook {
                id: w.id.clone(),
                kek_id: sealed.kek_id,
                wrapped_key: sealed.wrapped_key,
            });
            self.commit_webhook(who, origin, message, m).await?;
            rewrapped += 1;
        }
        Ok((rewrapped, unchanged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: &str, app: &str, env: &str, detail: Value) -> AuditRecord {
        AuditRecord {
            seq: 7,
            revision: Some(3),
            at: Utc::now(),
            actor: "token:tok_x (admin)".into(),
            action: action.into(),
            app: Some(app.into()),
            env: Some(env.into()),
            key: Some("k".into()),
            from_version: Some(1),
            to_version: Some(2),
            message: "m".into(),
            client_ip: None,
            user_agent: None,
            replica: None,
            detail,
            mac: String::new(),
        }
    }

    #[test]
    fn actions_map_to_event_types() {
        let cases = [
            (
                "entry.set",
                json!({"kind": "config"}),
                Some("config.changed"),
            ),
            (
                "entry.delete",
                json!({"kind": "flag"}),
                Some("flag.changed"),
            ),
            (
                "entry.rollback",
                json!({"kind": "segment"}),
                Some("segment.changed"),
            ),
            ("secret.create", json!({}), Some("secret.created")),
            ("secret.rotate", json!({}), Some("secret.rotated")),
            ("secret.delete", json!({}), Some("secret.deleted")),
            (
                "secret.rotation_failed",
                json!({}),
                Some("secret.rotation_failed"),
            ),
            ("schema.register", json!({}), Some("schema.changed")),
            ("schema.register.forced", json!({}), Some("schema.changed")),
            ("app.create", json!({}), Some("app.created")),
            ("env.create", json!({}), Some("env.changed")),
            ("env.update", json!({}), Some("env.changed")),
            ("entry.set", json!({"kind": "schema"}), None),
            ("secret.read", json!({}), None),
            ("secret.rewrap", json!({}), None),
            ("change.request", json!({}), Some("change.requested")),
            ("change.approve", json!({}), Some("change.approved")),
            ("change.reject", json!({}), Some("change.rejected")),
            ("change.apply", json!({}), Some("change.applied")),
            ("change.force", json!({}), Some("change.applied")),
            ("change.conflict", json!({}), Some("change.conflicted")),
            ("change.expire", json!({}), Some("change.expired")),
            ("change.edit", json!({}), None),
            ("change.cancel", json!({}), None),
            // A name this version does not know (written by a later one).
            ("secret.rotate.scheduled", json!({}), None),
            ("token.create", json!({}), None),
            ("access.denied", json!({}), None),
            ("webhook.create", json!({}), None),
        ];
        let mut produced = std::collections::BTreeSet::new();
        for (action, detail, want) in cases {
            assert_eq!(event_of(&record(action, "", "", detail)), want, "{action}");
            produced.extend(want);
        }
        // Every event type is produced by some action, and nothing else is.
        let known: std::collections::BTreeSet<_> = EVENT_TYPES.iter().copied().collect();
        assert_eq!(produced, known);
    }

    #[test]
    fn scope_matching() {
        // (subscription app, env), (record app, env), heard?
        let cases = [
            ((None, None), ("billing", "prod"), true),
            ((Some("billing"), None), ("billing", "prod"), true),
            ((Some("billing"), None), ("", "prod"), true),
            ((Some("billing"), None), ("", ""), true),
            ((Some("billing"), None), ("shop", ""), false),
            ((Some("billing"), Some("prod")), ("billing", ""), true),
            ((Some("billing"), Some("prod")), ("", "prod"), true),
            ((Some("billing"), Some("prod")), ("billing", "dev"), false),
            ((Some("billing"), Some("prod")), ("shop", "prod"), false),
            ((None, Some("prod")), ("shop", "prod"), true),
            ((None, Some("prod")), ("shop", "dev"), false),
        ];
        for ((sa, se), (a, e), want) in cases {
            assert_eq!(
                affects(sa, se, Some(a), Some(e)),
                want,
                "{sa:?}/{se:?} vs {a}/{e}"
            );
        }
    }

    #[test]
    fn signatures_verify_with_the_secret_only() {
        let body = br#"{"event":"config.changed"}"#;
        let sig = signature(b"0123456789abcdef", 1_700_000_000, body);
        assert!(sig.starts_with("t=1700000000,v1="));
        let ok = |secret: &[u8], body: &[u8], now| {
            verify_signature(secret, &sig, body, now, Duration::from_secs(300))
        };
        assert!(ok(b"0123456789abcdef", body, 1_700_000_100));
        assert!(!ok(b"0123456789abcdeX", body, 1_700_000_100));
        assert!(!ok(b"0123456789abcdef", b"{}", 1_700_000_100));
        assert!(!ok(b"0123456789abcdef", body, 1_700_001_000), "too old");
        // Known answer: HMAC-SHA256("key", "1.body").
        assert_eq!(
            signature(b"key", 1, b"body"),
            format!("t=1,v1={}", {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"key").unwrap();
                m.update(b"1.body");
                hex::encode(m.finalize().into_bytes())
            })
        );
    }

    #[test]
    fn payloads_carry_no_values() {
        let r = record(
            "secret.rotate",
            "billing",
            "",
            json!({"value_hmac": "hmac-sha256:abc", "kek_id": "k"}),
        );
        let p = payload(&r, "secret.rotated", "dlv_1", "wh_1");
        let text = p.to_string();
        assert!(!text.contains("hmac-sha256"), "{text}");
        assert_eq!(p["app"], "billing");
        assert_eq!(p["env"], Value::Null);
        assert_eq!(p["to_version"], 2);
        let r = record(
            "entry.set",
            "",
            "prod",
            json!({"kind": "config", "checksum": "sha256:1"}),
        );
        let p = payload(&r, "config.changed", "dlv_1", "wh_1");
        assert_eq!(p["kind"], "config");
        assert!(
            p.get("checksum").is_none(),
            "a value's hash is not sent: {p}"
        );
        assert_eq!(p["app"], Value::Null);
        let r = record(
            "change.approve",
            "",
            "prod",
            json!({"state": "scheduled", "environments": ["prod"], "approvals": 2,
                   "required_approvals": 2, "content_hash": "sha256:c0ffee", "forced": false,
                   "reason": null, "applied_revision": null}),
        );
        let p = payload(&r, "change.approved", "dlv_1", "wh_1");
        assert_eq!(p["state"], "scheduled");
        assert_eq!(p["approvals"], 2);
        assert_eq!(p["environments"], json!(["prod"]));
        assert!(
            !p.to_string().contains("c0ffee"),
            "the content's hash is not sent: {p}"
        );
    }
}
