use cairn_model::{EntryKind, MergeMode, Revision, Scope};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AuditAction, Mutation};

/// Where the store is: the latest committed revision, and the latest revision
/// that changed the catalog (apps, environments, schemas, tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Head {
    pub revision: Revision,
    pub catalog_revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct App {
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Environment {
    pub name: String,
    pub description: String,
    /// Changes need approval (used by change requests).
    pub protected: bool,
    pub required_approvals: i32,
    pub auto_approve: bool,
    /// Flag-lint warnings refuse writes of flags that reach this environment.
    #[serde(default)]
    pub strict_flags: bool,
    /// Who may approve changes that need this environment's approval, each
    /// `role:admin|operator|viewer` (that role or a higher one, in this
    /// environment) or `user:NAME`; empty: whoever may write there.
    #[serde(default)]
    pub approvers: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Revision of the last change to this environment's settings.
    pub revision: Revision,
}

/// One immutable version of one entry. `value == None` is a tombstone (delete).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryVersion {
    pub scope: Scope,
    pub key: String,
    pub version: i64,
    pub kind: EntryKind,
    pub merge: MergeMode,
    pub value: Option<Value>,
    /// `sha256:…` of the canonical value; empty for a tombstone.
    pub checksum: String,
    pub revision: Revision,
    pub actor: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

impl EntryVersion {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// A JSON Schema registered against a key pattern, globally (`app == None`) or for one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaRecord {
    pub app: Option<String>,
    pub pattern: String,
    pub version: i64,
    pub schema: Value,
    pub revision: Revision,
    pub actor: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// Apps, environments and the active (latest) version of every schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub apps: Vec<App>,
    pub envs: Vec<Environment>,
    pub schemas: Vec<SchemaRecord>,
}

/// What [`crate::Store::load`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub head: Head,
    pub catalog: Catalog,
    /// Current version of every entry that is not deleted.
    pub entries: Vec<EntryVersion>,
}

/// A role granted to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    Sdk,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Sdk => "sdk",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            "sdk" => Some(Role::Sdk),
            _ => None,
        }
    }
}

/// A bearer token. Only the SHA-256 of the secret is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    /// Public id (`tok_…`), safe to show.
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret token string.
    #[serde(skip_serializing)]
    pub hash: String,
    pub role: Role,
    /// App pattern the role is granted on (`*` for all).
    pub app: String,
    /// Environment pattern the role is granted on (`*` for all).
    pub env: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// For a login token: the user it acts for (the user's bindings apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A role granted at a scope: app pattern × environment pattern (`*` = all).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Binding {
    pub role: Role,
    pub app: String,
    pub env: String,
}

/// A user who logs in with a password (stored as an Argon2id PHC string only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRecord {
    pub name: String,
    #[serde(skip_serializing, default)]
    pub password_hash: String,
    pub bindings: Vec<Binding>,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

/// Who made a change, from where, and why. Copied into every audit record of the commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditContext {
    /// Principal, e.g. `token:tok_ab12 (admin)`.
    pub actor: String,
    pub message: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Server replica that handled the request.
    pub replica: Option<String>,
}

/// A change set: mutations committed atomically as one revision, with one
/// audit record each.
#[derive(Debug, Clone)]
pub struct Commit {
    pub context: AuditContext,
    /// `(action override, mutation)`: `None` uses [`Mutation::default_action`]
    /// (e.g. `Some(AuditAction::EntryRollback)`).
    pub mutations: Vec<(Option<AuditAction>, Mutation)>,
    /// Key of the audit chain (see [`crate::chain`]); `None` writes unsealed records.
    pub seal: Option<crate::AuditKey>,
    /// Second audit destination, written before the commit (fail closed).
    pub sink: Option<std::sync::Arc<dyn crate::AuditSink>>,
    /// What the plan was validated against; `None` checks nothing beyond
    /// each mutation's own compare-and-set.
    pub guard: Option<crate::Guard>,
}

/// What one mutation became.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Applied {
    /// For entries and schemas: the version before (0 = none) and the version written.
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
}

/// The result of a successful commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Committed {
    pub revision: Revision,
    pub at: DateTime<Utc>,
    /// One per mutation, in order.
    pub applied: Vec<Applied>,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Position in the log: 1, 2, 3 … gapless.
    pub seq: i64,
    pub revision: Option<Revision>,
    pub at: DateTime<Utc>,
    pub actor: String,
    // The dotted name of an `AuditAction`, as recorded: the chain covers
    // these bytes, and a record written by a later version may name an
    // action this one does not know. `AuditRecord::action()` parses it.
    pub action: String,
    /// `""`/`None` app is global; `None` env is every environment.
    pub app: Option<String>,
    pub env: Option<String>,
    pub key: Option<String>,
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    pub message: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub replica: Option<String>,
    /// Extra structured facts (never secret plaintext).
    pub detail: Value,
    /// `HMAC-SHA256(audit_key, prev_mac || canonical(record))`, hex; empty if unsealed.
    #[serde(default)]
    pub mac: String,
}

impl AuditRecord {
    /// The recorded action, if this version knows it.
    pub fn action(&self) -> Option<AuditAction> {
        AuditAction::parse(&self.action)
    }
}

/// An audit record that is not a change (a denied request, a failed login).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub action: AuditAction,
    pub app: Option<String>,
    pub env: Option<String>,
    pub key: Option<String>,
    pub detail: Value,
}

/// The signed end of the audit chain: lets `verify` notice a truncated tail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditHead {
    pub seq: i64,
    pub mac: String,
    /// `HMAC-SHA256(audit_key, "cairn-audit-head" || seq || mac)`, hex.
    pub signature: String,
}

/// Filters for [`crate::Store::audit`]; every field narrows, `None` = any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub key: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Exact app (`Some("")` = global only).
    pub app: Option<String>,
    /// Exact env (`Some("")` = all-environments scope only).
    pub env: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only records with `seq > after_seq`.
    pub after_seq: Option<i64>,
    /// Only what a principal who may not read the whole log may see, applied
    /// in the query (before `limit`); `None` = every record.
    #[serde(default)]
    pub visible: Option<AuditVisibility>,
    /// At most this many (the oldest matching first); `None` = all.
    pub limit: Option<i64>,
}

/// The part of the audit log a principal may read ([`AuditFilter::visible`]):
/// records whose action starts with one of `action_prefixes` and whose scope
/// one of `scopes` covers. Either list empty = no record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVisibility {
    /// e.g. `entry.`: a plain prefix, no wildcards.
    pub action_prefixes: Vec<String>,
    pub scopes: Vec<ScopeGlob>,
}

/// An (app, env) pair of name globs, as in a binding: `*` matches any run of
/// characters, `?` one character, anything else itself. It covers a record
/// whose app is global (`None` or `""`) or matches `app`, and whose env is
/// every environment (`None` or `""`) or matches `env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeGlob {
    pub app: String,
    pub env: String,
}

/// Evaluations of one flag variant in one (app, env): a running total, or
/// (when flushing) the increment since the last flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagCount {
    pub app: String,
    pub env: String,
    pub key: String,
    /// `""`: no variant (the caller's default or an error).
    pub variant: String,
    pub count: i64,
    pub last_at: Option<DateTime<Utc>>,
}

/// The sealed form of one secret version: the data key wrapped under a KEK,
/// and the ciphertext (nonce included). Never plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub kek_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// How a secret is rotated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretPolicy {
    /// Rotate every this many days; `None`: never automatically.
    pub rotation_days: Option<i32>,
    /// Rotate every this many seconds (intervals shorter than a day);
    /// exclusive with `rotation_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_seconds: Option<i64>,
    /// How long the previous version stays readable after a rotation.
    pub grace_days: i32,
    /// How new values are made by rotations: `random:LEN:CHARSET`, or
    /// `hook:URL` (an HTTP hook performs the rotation and returns the new
    /// value); `None`: values are supplied by the caller.
    pub generator: Option<String>,
    /// With a `hook:` generator: the name of the secret whose value signs
    /// the hook's requests (`Cairn-Signature`, as webhooks). A name, never a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_secret: Option<String>,
}

impl SecretPolicy {
    /// The rotation interval, if the secret rotates automatically.
    pub fn rotation_interval(&self) -> Option<chrono::Duration> {
        match (self.rotation_seconds, self.rotation_days) {
            (Some(s), _) => chrono::Duration::try_seconds(s),
            (None, Some(d)) => chrono::Duration::try_days(i64::from(d)),
            (None, None) => None,
        }
    }

    /// The generator as audit records and non-admins see it: a hook's URL
    /// cut to its origin (`hook:https://host:port`), without user info,
    /// path or query, which may carry credentials.
    pub fn generator_redacted(&self) -> Option<String> {
        let g = self.generator.as_deref()?;
        let Some(url) = g.strip_prefix("hook:") else {
            return Some(g.to_owned());
        };
        // Stored URLs are in normal form (the service parses them first);
        // anything else is shown as a placeholder rather than guessed at.
        let parsed = url
            .split_once("://")
            .filter(|(scheme, _)| matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https"));
        let Some((scheme, rest)) = parsed else {
            return Some("hook:<redacted>".to_owned());
        };
        let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        Some(format!("hook:{scheme}://{host}"))
    }
}

/// A secret's metadata (no key material, no ciphertext).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretRecord {
    pub scope: Scope,
    pub name: String,
    pub current_version: i64,
    pub policy: SecretPolicy,
    pub created_at: DateTime<Utc>,
    /// When the current version was written.
    pub updated_at: DateTime<Utc>,
    pub revision: Revision,
}

/// One stored version of a secret, sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretVersion {
    pub scope: Scope,
    pub name: String,
    pub version: i64,
    pub sealed: SealedSecret,
    pub created_at: DateTime<Utc>,
    pub revision: Revision,
    pub actor: String,
}

#[cfg(test)]
mod redaction_tests {
    use super::SecretPolicy;

    fn shown(generator: &str) -> String {
        SecretPolicy {
            generator: Some(generator.to_owned()),
            ..SecretPolicy::default()
        }
        .generator_redacted()
        .unwrap()
    }

    #[test]
    fn hook_urls_are_cut_to_their_origin() {
        assert_eq!(shown("random:32:alnum"), "random:32:alnum");
        assert_eq!(
            shown("hook:https://rotator.example.com:8443/db?token=T0K3N#f"),
            "hook:https://rotator.example.com:8443"
        );
        assert_eq!(shown("hook:http://u:p@h/x"), "hook:http://h");
        assert_eq!(
            shown("hook:https://[2001:db8::1]:9/T0K3N"),
            "hook:https://[2001:db8::1]:9"
        );
        // Forms that are not in normal form are never guessed at.
        for odd in [
            "hook:https:rotator.example.com/T0K3N?next=https://x",
            "hook:rotator.example.com/T0K3N",
            "hook:ftp://h/T0K3N",
            "hook:",
        ] {
            assert!(!shown(odd).contains("T0K3N"), "{odd}: {}", shown(odd));
        }
        assert_eq!(shown("hook:https://host\\T0K3N"), "hook:https://host");
    }
}
