//! The audit-log read; the query is shared with the other backend
//! (`sql/audit_shared.rs`).

use cairn_store::{AuditFilter, AuditRecord, AuditVisibility, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use crate::rows::{self, err, AUDIT_COLS};

type Db = Sqlite;
type Pool = sqlx::SqlitePool;

fn ts_param(t: &DateTime<Utc>) -> i64 {
    crate::rows::micros(t)
}

/// `column GLOB pattern`: case-sensitive, `*` and `?` as in a name glob;
/// `[` opens a class in GLOB, so it is written as the class `[[]`.
fn push_name_glob(q: &mut QueryBuilder<'_, Db>, column: &str, pattern: &str) {
    q.push(format!("{column} GLOB "))
        .push_bind(pattern.replace('[', "[[]"));
}

include!("../../cairn-store/sql/audit_shared.rs");
