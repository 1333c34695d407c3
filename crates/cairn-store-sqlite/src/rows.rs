//! Row decoding, time and JSON text helpers, and error mapping.

use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::{
    App, AuditRecord, EntryVersion, Environment, Role, SchemaRecord, SealedSecret, SecretPolicy,
    SecretRecord, SecretVersion, StoreError, StoreResult, TokenRecord, UserRecord,
};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};

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
     grace_days, generator, created_at, updated_at, revision";
pub(crate) const SECRET_VERSION_COLS: &str =
    "app, env, name, version, kek_id, wrapped_key, ciphertext, created_at, revision, actor";
pub(crate) const USER_COLS: &str = "name, password_hash, bindings, created_at, disabled";

/// Maps a sqlx error to a [`StoreError`]: connection trouble (and a locked
/// database file) is `Unavailable`, the rest `Backend`. Messages name what
/// was being done, never a bound value.
pub(crate) fn map_err(context: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("{context}: {e}")),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // Primary result code: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_CANTOPEN (14).
            let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
            if matches!(primary, 5 | 6 | 14) {
                StoreError::Unavailable(format!("{context}: {}", db.message()))
            } else {
                StoreError::Backend(format!("{context}: {} (sqlite code {code})", db.message()))
            }
        }
        _ => StoreError::Backend(format!("{context}: {e}")),
    }
}

/// `map_err` as a closure for `.map_err(err("…"))`.
pub(crate) fn err(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| map_err(context, e)
}

/// Now, at the precision the store keeps (microseconds).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Fixed-width UTC text: text order is time order.
pub(crate) fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(s: &str, column: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("column {column}: bad timestamp: {e}")))
}

pub(crate) fn to_json_text(value: &Value) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("serialize JSON: {e}")))
}

fn parse_json(s: &str, column: &str) -> StoreResult<Value> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Backend(format!("column {column}: bad JSON: {e}")))
}

pub(crate) fn col<'r, T>(row: &'r SqliteRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Backend(format!("column {name}: {e}")))
}

fn time_col(row: &SqliteRow, name: &str) -> StoreResult<DateTime<Utc>> {
    parse_ts(&col::<String>(row, name)?, name)
}

pub(crate) fn opt_time_col(row: &SqliteRow, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
    col::<Option<String>>(row, name)?
        .map(|s| parse_ts(&s, name))
        .transpose()
}

pub(crate) fn entry(row: &SqliteRow) -> StoreResult<EntryVersion> {
    let kind: String = col(row, "kind")?;
    let merge: String = col(row, "merge")?;
    Ok(EntryVersion {
        scope: Scope::from_stored(&col::<String>(row, "app")?, &col::<String>(row, "env")?),
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

pub(crate) fn schema(row: &SqliteRow) -> StoreResult<SchemaRecord> {
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

pub(crate) fn app(row: &SqliteRow) -> StoreResult<App> {
    Ok(App {
        name: col(row, "name")?,
        description: col(row, "description")?,
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
    })
}

pub(crate) fn environment(row: &SqliteRow) -> StoreResult<Environment> {
    Ok(Environment {
        name: col(row, "name")?,
        description: col(row, "description")?,
        protected: col(row, "protected")?,
        required_approvals: col(row, "required_approvals")?,
        auto_approve: col(row, "auto_approve")?,
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
    })
}

pub(crate) fn token(row: &SqliteRow) -> StoreResult<TokenRecord> {
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

pub(crate) fn audit(row: &SqliteRow) -> StoreResult<AuditRecord> {
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

pub(crate) fn user(row: &SqliteRow) -> StoreResult<UserRecord> {
    let bindings: String = col(row, "bindings")?;
    Ok(UserRecord {
        name: col(row, "name")?,
        password_hash: col(row, "password_hash")?,
        bindings: serde_json::from_str(&bindings)
            .map_err(|e| StoreError::Backend(format!("bad bindings column: {e}")))?,
        created_at: time_col(row, "created_at")?,
        disabled: col::<i64>(row, "disabled")? != 0,
    })
}

/// A `secrets` row and whether it is deleted.
pub(crate) fn secret(row: &SqliteRow) -> StoreResult<(SecretRecord, bool)> {
    Ok((
        SecretRecord {
            scope: Scope::from_stored(&col::<String>(row, "app")?, &col::<String>(row, "env")?),
            name: col(row, "name")?,
            current_version: col(row, "version")?,
            policy: SecretPolicy {
                rotation_days: col(row, "rotation_days")?,
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

pub(crate) fn secret_version(row: &SqliteRow) -> StoreResult<SecretVersion> {
    Ok(SecretVersion {
        scope: Scope::from_stored(&col::<String>(row, "app")?, &col::<String>(row, "env")?),
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
