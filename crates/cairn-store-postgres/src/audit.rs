//! The audit-log read; the query is shared with the other backend
//! (`sql/audit_shared.rs`).

use cairn_store::{AuditFilter, AuditRecord, AuditVisibility, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{self, err, AUDIT_COLS};

type Db = Postgres;
type Pool = sqlx::PgPool;

fn ts_param(t: &DateTime<Utc>) -> i64 {
    crate::rows::micros(t)
}

/// `column LIKE pattern` (case-sensitive): `*` → `%`, `?` → `_`, and LIKE's
/// own `%`, `_` and escape character `\` escaped to mean themselves.
fn push_name_glob(q: &mut QueryBuilder<'_, Db>, column: &str, pattern: &str) {
    let mut like = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => like.push('%'),
            '?' => like.push('_'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(c);
            }
            c => like.push(c),
        }
    }
    q.push(format!("{column} LIKE ")).push_bind(like);
}

include!("../../cairn-store/sql/audit_shared.rs");
