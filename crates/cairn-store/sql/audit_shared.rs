// The audit-log read, written once for both backends: `include!`d by each
// backend's `audit.rs`, which defines `Db`, `Pool`, `ts_param` (how a
// timestamp binds) and `push_name_glob` (how a column is matched against a
// name glob: GLOB on SQLite, LIKE on PostgreSQL).

pub(crate) async fn read(reader: &Pool, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
    let mut q = QueryBuilder::<Db>::new(format!("SELECT {AUDIT_COLS} FROM audit WHERE 1 = 1"));
    for (column, value) in [
        ("key", &filter.key),
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("app", &filter.app),
        ("env", &filter.env),
    ] {
        if let Some(v) = value {
            q.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    if let Some(since) = &filter.since {
        q.push(" AND at >= ").push_bind(ts_param(since));
    }
    if let Some(until) = &filter.until {
        q.push(" AND at < ").push_bind(ts_param(until));
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
    q.build()
        .fetch_all(reader)
        .await
        .map_err(err("read audit"))?
        .iter()
        .map(rows::audit)
        .collect()
}

/// ` AND (an action prefix) AND (a covering scope)`; an empty list is false.
fn push_visible(q: &mut QueryBuilder<'_, Db>, v: &AuditVisibility) {
    q.push(" AND (1 = 0");
    for prefix in &v.action_prefixes {
        // substr counts characters on both databases.
        q.push(format!(" OR substr(action, 1, {}) = ", prefix.chars().count()))
            .push_bind(prefix.clone());
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
fn push_covers(q: &mut QueryBuilder<'_, Db>, column: &str, pattern: &str) {
    if pattern == "*" {
        q.push("1 = 1");
        return;
    }
    q.push(format!("({column} IS NULL OR {column} = '' OR "));
    push_name_glob(q, column, pattern);
    q.push(")");
}
