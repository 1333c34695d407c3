//! The audit-log read: every filter, including what a principal may see
//! (`AuditFilter::visible`), applied in the query itself, before `limit`.

use cairn_store::{AuditFilter, AuditRecord, AuditVisibility, StoreResult};

use crate::dialect::{Conn, Dialect};
use crate::query::{query, Query};
use crate::rows::{self, micros, AUDIT_COLS};

pub(crate) async fn read<D: Dialect>(
    conn: &mut Conn<D>,
    filter: &AuditFilter,
) -> StoreResult<Vec<AuditRecord>> {
    let mut q = query::<D>(format!("SELECT {AUDIT_COLS} FROM audit WHERE 1 = 1"));
    for (column, value) in [
        ("key", &filter.key),
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("app", &filter.app),
        ("env", &filter.env),
    ] {
        if let Some(v) = value {
            q.push(&format!(" AND {column} = ")).push_bind(v.as_str());
        }
    }
    if let Some(since) = &filter.since {
        q.push(" AND at >= ").push_bind(micros(since));
    }
    if let Some(until) = &filter.until {
        q.push(" AND at < ").push_bind(micros(until));
    }
    if let Some(after) = filter.after_seq {
        q.push(" AND seq > ").push_bind(after);
    }
    if let Some(v) = &filter.visible {
        push_visible(&mut q, v);
    }
    q.push(" ORDER BY seq");
    if let Some(limit) = filter.limit {
        q.push(" LIMIT ").push_bind(limit.max(0));
    }
    let found = q.fetch_all(conn).await.map_err(D::err("read audit"))?;
    rows::all(&found, rows::audit)
}

/// ` AND (an action prefix) AND (a covering scope)`; an empty list is false.
fn push_visible<'a, D: Dialect>(q: &mut Query<'a, D>, v: &'a AuditVisibility) {
    q.push(" AND (1 = 0");
    for prefix in &v.action_prefixes {
        // substr counts characters on both databases.
        q.push(&format!(
            " OR substr(action, 1, {}) = ",
            prefix.chars().count()
        ))
        .push_bind(prefix.as_str());
    }
    q.push(") AND (1 = 0");
    for g in &v.scopes {
        q.push(" OR (");
        push_covers(q, "app", &g.app);
        q.push(" AND ");
        push_covers(q, "env", &g.env);
        q.push(")");
    }
    q.push(")");
}

/// `column` is unset (global, every environment) or matches `pattern`.
fn push_covers<D: Dialect>(q: &mut Query<'_, D>, column: &str, pattern: &str) {
    if pattern == "*" {
        q.push("1 = 1");
        return;
    }
    q.push(&format!("({column} IS NULL OR {column} = '' OR "));
    D::push_name_glob(q, column, pattern);
    q.push(")");
}
