//! Row decoding, the column lists the decoders read, and how times and JSON
//! are stored: a timestamp is an integer, microseconds since the Unix epoch
//! (so integer order is time order, on every backend); a JSON value is text,
//! exactly as serialized, so it round-trips unchanged.

use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::{
    App, AppliedState, AuditRecord, DeliveryRecord, DeliveryStatus, EntryVersion, Environment,
    FlagCount, Role, SchemaRecord, SealedSecret, SecretPolicy, SecretRecord, SecretVersion,
    StoreError, StoreResult, TokenRecord, UserRecord, WebhookRecord,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::query::{Column, SqlRow};

/// Columns of `entry_versions` (aliased `ev`) in the order [`entry`] reads them.
pub(crate) const ENTRY_COLS: &str = "ev.app, ev.env, ev.key, ev.version, ev.kind, ev.merge, \
     ev.value, ev.checksum, ev.revision, ev.actor, ev.message, ev.created_at";
pub(crate) const SCHEMA_COLS: &str =
    "s.app, s.pattern, s.version, s.schema, s.revision, s.actor, s.message, s.created_at";
pub(crate) const AUDIT_COLS: &str = "seq, revision, at, actor, action, app, env, key, \
     from_version, to_version, message, client_ip, user_agent, replica, detail, mac";
pub(crate) const TOKEN_COLS: &str =
    "id, name, hash, role, app, env, created_at, expires_at, revoked_at, user_name";
pub(crate) const SECRET_COLS: &str = "app, env, name, version, deleted, rotation_days, \
     rotation_seconds, grace_days, generator, created_at, updated_at, revision, hook_secret";
pub(crate) const SECRET_VERSION_COLS: &str =
    "app, env, name, version, kek_id, wrapped_key, ciphertext, created_at, revision, actor";
pub(crate) const USER_COLS: &str = "name, password_hash, bindings, created_at, disabled";
pub(crate) const FLAG_COUNT_COLS: &str = "app, env, key, variant, count, last_at";
pub(crate) const APPLIED_COLS: &str = "app, env, instance, revision, checksum, reported_at";
pub(crate) const WEBHOOK_COLS: &str = "id, url, events, app, env, description, kek_id, \
     wrapped_key, ciphertext, created_at, revision, created_seq, deleted_at, deleted_seq";
pub(crate) const DELIVERY_COLS: &str = "id, webhook_id, audit_seq, event, payload, status, \
     attempts, attempt_log, next_attempt_at, created_at, last_attempt_at, delivered_at";

/// How a timestamp is stored: microseconds since the Unix epoch (finer
/// digits are cut off).
pub fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// [`micros`] of an optional time.
pub(crate) fn opt_micros(t: Option<&DateTime<Utc>>) -> Option<i64> {
    t.map(micros)
}

fn from_micros(us: i64, column: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Backend(format!("column {column}: timestamp out of range")))
}

/// A JSON value as stored.
pub(crate) fn to_json_text(value: &Value) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("serialize JSON: {e}")))
}

fn parse_json(s: &str, column: &str) -> StoreResult<Value> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Backend(format!("column {column}: bad JSON: {e}")))
}

/// The column `name` of `row` as a `T`.
pub(crate) fn col<T: Column>(row: &impl SqlRow, name: &str) -> StoreResult<T> {
    row.get(name)
        .map_err(|e| StoreError::Backend(format!("column {name}: {e}")))
}

fn time_col(row: &impl SqlRow, name: &str) -> StoreResult<DateTime<Utc>> {
    from_micros(col(row, name)?, name)
}

fn opt_time_col(row: &impl SqlRow, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
    col::<Option<i64>>(row, name)?
        .map(|us| from_micros(us, name))
        .transpose()
}

fn json_col<T: serde::de::DeserializeOwned>(row: &impl SqlRow, name: &str) -> StoreResult<T> {
    serde_json::from_str(&col::<String>(row, name)?)
        .map_err(|e| StoreError::Backend(format!("column {name}: {e}")))
}

fn scope_cols(row: &impl SqlRow) -> StoreResult<Scope> {
    Ok(Scope::from_stored(
        &col::<String>(row, "app")?,
        &col::<String>(row, "env")?,
    ))
}

pub(crate) fn entry(row: &impl SqlRow) -> StoreResult<EntryVersion> {
    let kind: String = col(row, "kind")?;
    let merge: String = col(row, "merge")?;
    Ok(EntryVersion {
        scope: scope_cols(row)?,
        key: col(row, "key")?,
        version: col(row, "version")?,
        kind: EntryKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown entry kind {kind:?}")))?,
        merge: MergeMode::parse(&merge)
            .ok_or_else(|| StoreError::Backend(format!("unknown merge mode {merge:?}")))?,
        value: col::<Option<String>>(row, "value")?
            .map(|s| parse_json(&s, "value"))
            .transpose()?,
        checksum: col(row, "checksum")?,
        revision: col(row, "revision")?,
        actor: col(row, "actor")?,
        message: col(row, "message")?,
        created_at: time_col(row, "created_at")?,
    })
}

pub(crate) fn schema(row: &impl SqlRow) -> StoreResult<SchemaRecord> {
    let app: String = col(row, "app")?;
    Ok(SchemaRecord {
        app: (!app.is_empty()).then_some(app),
        pattern: col(row, "pattern")?,
        version: col(row, "version")?,
        schema: parse_json(&col::<String>(row, "schema")?, "schema")?,
        revision: col(row, "revision")?,
        actor: col(row, "actor")?,
        message: col(row, "message")?,
        created_at: time_col(row, "created_at")?,
    })
}

pub(crate) fn app(row: &impl SqlRow) -> StoreResult<App> {
    Ok(App {
        name: col(row, "name")?,
        description: col(row, "description")?,
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
    })
}

pub(crate) fn environment(row: &impl SqlRow) -> StoreResult<Environment> {
    Ok(Environment {
        name: col(row, "name")?,
        description: col(row, "description")?,
        protected: col(row, "protected")?,
        required_approvals: col(row, "required_approvals")?,
        auto_approve: col(row, "auto_approve")?,
        strict_flags: col(row, "strict_flags")?,
        approvers: json_col(row, "approvers")?,
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
    })
}

pub(crate) fn token(row: &impl SqlRow) -> StoreResult<TokenRecord> {
    let role: String = col(row, "role")?;
    Ok(TokenRecord {
        id: col(row, "id")?,
        name: col(row, "name")?,
        hash: col(row, "hash")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Backend(format!("unknown role {role:?}")))?,
        app: col(row, "app")?,
        env: col(row, "env")?,
        created_at: time_col(row, "created_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
        user: col(row, "user_name")?,
    })
}

pub(crate) fn audit(row: &impl SqlRow) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: col(row, "seq")?,
        revision: col(row, "revision")?,
        at: time_col(row, "at")?,
        actor: col(row, "actor")?,
        action: col(row, "action")?,
        app: col(row, "app")?,
        env: col(row, "env")?,
        key: col(row, "key")?,
        from_version: col(row, "from_version")?,
        to_version: col(row, "to_version")?,
        message: col(row, "message")?,
        client_ip: col(row, "client_ip")?,
        user_agent: col(row, "user_agent")?,
        replica: col(row, "replica")?,
        detail: parse_json(&col::<String>(row, "detail")?, "detail")?,
        mac: col(row, "mac")?,
    })
}

pub(crate) fn user(row: &impl SqlRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        name: col(row, "name")?,
        password_hash: col(row, "password_hash")?,
        bindings: json_col(row, "bindings")?,
        created_at: time_col(row, "created_at")?,
        disabled: col(row, "disabled")?,
    })
}

/// A `secrets` row and whether it is deleted.
pub(crate) fn secret(row: &impl SqlRow) -> StoreResult<(SecretRecord, bool)> {
    Ok((
        SecretRecord {
            scope: scope_cols(row)?,
            name: col(row, "name")?,
            current_version: col(row, "version")?,
            policy: SecretPolicy {
                rotation_days: col(row, "rotation_days")?,
                rotation_seconds: col(row, "rotation_seconds")?,
                hook_secret: col(row, "hook_secret")?,
                grace_days: col(row, "grace_days")?,
                generator: col(row, "generator")?,
            },
            created_at: time_col(row, "created_at")?,
            updated_at: time_col(row, "updated_at")?,
            revision: col(row, "revision")?,
        },
        col(row, "deleted")?,
    ))
}

pub(crate) fn secret_version(row: &impl SqlRow) -> StoreResult<SecretVersion> {
    Ok(SecretVersion {
        scope: scope_cols(row)?,
        name: col(row, "name")?,
        version: col(row, "version")?,
        sealed: SealedSecret {
            kek_id: col(row, "kek_id")?,
            wrapped_key: col(row, "wrapped_key")?,
            ciphertext: col(row, "ciphertext")?,
        },
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
        actor: col(row, "actor")?,
    })
}

pub(crate) fn flag_count(row: &impl SqlRow) -> StoreResult<FlagCount> {
    Ok(FlagCount {
        app: col(row, "app")?,
        env: col(row, "env")?,
        key: col(row, "key")?,
        variant: col(row, "variant")?,
        count: col(row, "count")?,
        last_at: opt_time_col(row, "last_at")?,
    })
}

pub(crate) fn applied(row: &impl SqlRow) -> StoreResult<AppliedState> {
    Ok(AppliedState {
        app: col(row, "app")?,
        env: col(row, "env")?,
        instance: col(row, "instance")?,
        revision: col(row, "revision")?,
        checksum: col(row, "checksum")?,
        reported_at: time_col(row, "reported_at")?,
    })
}

pub(crate) fn webhook(row: &impl SqlRow) -> StoreResult<WebhookRecord> {
    Ok(WebhookRecord {
        id: col(row, "id")?,
        url: col(row, "url")?,
        events: json_col(row, "events")?,
        app: col(row, "app")?,
        env: col(row, "env")?,
        description: col(row, "description")?,
        sealed_secret: SealedSecret {
            kek_id: col(row, "kek_id")?,
            wrapped_key: col(row, "wrapped_key")?,
            ciphertext: col(row, "ciphertext")?,
        },
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
        created_seq: col(row, "created_seq")?,
        deleted_at: opt_time_col(row, "deleted_at")?,
        deleted_seq: col(row, "deleted_seq")?,
    })
}

pub(crate) fn delivery(row: &impl SqlRow) -> StoreResult<DeliveryRecord> {
    let status: String = col(row, "status")?;
    Ok(DeliveryRecord {
        id: col(row, "id")?,
        webhook_id: col(row, "webhook_id")?,
        audit_seq: col(row, "audit_seq")?,
        event: col(row, "event")?,
        payload: col(row, "payload")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Backend(format!("unknown delivery status {status:?}")))?,
        attempts: col(row, "attempts")?,
        attempt_log: json_col(row, "attempt_log")?,
        next_attempt_at: opt_time_col(row, "next_attempt_at")?,
        created_at: time_col(row, "created_at")?,
        last_attempt_at: opt_time_col(row, "last_attempt_at")?,
        delivered_at: opt_time_col(row, "delivered_at")?,
    })
}

/// Decodes every row with `decode`.
pub(crate) fn all<R: SqlRow, T>(
    rows: &[R],
    decode: impl Fn(&R) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    rows.iter().map(decode).collect()
}
