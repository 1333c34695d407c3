// Webhook subscriptions inside `Store::commit`, shared by the SQLite and
// PostgreSQL backends: each backend's `commit.rs` includes this file after
// `commit_shared.rs` (same dialect: `Conn`, `ts_param`, `Ctx`, `AuditFacts`).

/// The `seq` the audit record of the mutation being applied will get: the
/// commit holds the write lock, and the records of earlier mutations of this
/// commit are already written.
async fn next_audit_seq(conn: &mut Conn) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit")
        .fetch_one(&mut *conn)
        .await
        .map_err(err("read audit seq"))
}

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

async fn create_webhook(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    w: &NewWebhook,
) -> StoreResult<(Applied, AuditFacts)> {
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1")
        .bind(&w.id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("read webhook"))?;
    if exists.is_some() {
        return Err(StoreError::AlreadyExists {
            what: format!("webhook {}", w.id),
        });
    }
    let seq = next_audit_seq(conn).await?;
    let events = serde_json::to_string(&w.events)
        .map_err(|e| StoreError::Backend(format!("serialize events: {e}")))?;
    sqlx::query(
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
    .bind(ts_param(&ctx.at))
    .bind(seq)
    .bind(ctx.revision.unwrap_or(0))
    .execute(&mut *conn)
    .await
    .map_err(err("insert webhook"))?;
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

async fn delete_webhook(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    id: &str,
) -> StoreResult<(Applied, AuditFacts)> {
    type Live = (String, Option<String>, Option<String>);
    let live: Option<Live> =
        sqlx::query_as("SELECT url, app, env FROM webhooks WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err("read webhook"))?;
    let Some((url, app, env)) = live else {
        return Err(StoreError::NotFound {
            what: format!("webhook {id}"),
        });
    };
    let seq = next_audit_seq(conn).await?;
    sqlx::query("UPDATE webhooks SET deleted_at = $2, deleted_seq = $3 WHERE id = $1")
        .bind(id)
        .bind(ts_param(&ctx.at))
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map_err(err("delete webhook"))?;
    let cancelled = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL \
         WHERE webhook_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(err("cancel webhook deliveries"))?
    .rows_affected();
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

async fn rewrap_webhook(
    conn: &mut Conn,
    id: &str,
    kek_id: &str,
    wrapped_key: &[u8],
) -> StoreResult<(Applied, AuditFacts)> {
    let old: Option<String> = sqlx::query_scalar("SELECT kek_id FROM webhooks WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("read webhook"))?;
    let Some(old) = old else {
        return Err(StoreError::NotFound {
            what: format!("webhook {id}"),
        });
    };
    sqlx::query("UPDATE webhooks SET kek_id = $2, wrapped_key = $3 WHERE id = $1")
        .bind(id)
        .bind(kek_id)
        .bind(wrapped_key)
        .execute(&mut *conn)
        .await
        .map_err(err("rewrap webhook"))?;
    Ok((
        no_versions(),
        AuditFacts {
            key: Some(id.to_owned()),
            detail: json!({ "from_kek_id": old, "kek_id": kek_id }),
            ..AuditFacts::default()
        },
    ))
}
