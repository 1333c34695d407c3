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
     rotation_seconds, grace_days, generator, created_at, updated_at, revision, hook_secret";
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

/// How a timestamp is stored: microseconds since the Unix epoch (finer
/// digits are cut off), so integer order is time order.
pub(crate) fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64, column: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Backend(format!("column {column}: timestamp out of range")))
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
    from_micros(col(row, name)?, name)
}

pub(crate) fn opt_time_col(row: &SqliteRow, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
    col::<Option<i64>>(row, name)?
        .map(|us| from_micros(us, name))
        .transpose()
}

type DbRow = SqliteRow;

include!("../../cairn-store/sql/rows_shared.rs");
