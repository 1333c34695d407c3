// The body of `Store::commit` shared by the SQLite and PostgreSQL backends:
// every mutation's checks and writes, the audit chain, users, secrets.
// Each backend's `commit.rs` includes this file after defining its dialect:
// `Conn` (its connection type), `ts_param` / `opt_ts_param` (how it binds a
// timestamp), and its own `commit` / `apply_all` (how it begins a transaction
// and allocates the revision). The conformance suite runs it on both.
async fn apply(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    position: i64,
    mutation: &Mutation,
) -> StoreResult<(Applied, AuditFacts)> {
    match mutation {
        Mutation::PutEntry {
            scope,
            key,
            kind,
            merge,
            value,
            checksum,
            expected_version,
        } => {
            let entry = NewEntry {
                scope,
                key,
                kind: *kind,
                merge: *merge,
                value: value.as_ref(),
                checksum,
                expected_version: *expected_version,
            };
            put_entry(conn, ctx, position, entry).await
        }
        Mutation::CreateApp { name, description } => create_app(conn, ctx, name, description).await,
        Mutation::CreateEnv {
            name,
            description,
            protected,
            required_approvals,
            auto_approve,
            strict_flags,
        } => {
            let settings = EnvSettings {
                description: description.clone(),
                protected: *protected,
                required_approvals: *required_approvals,
                auto_approve: *auto_approve,
                strict_flags: *strict_flags,
            };
            create_env(conn, ctx, name, settings).await
        }
        Mutation::UpdateEnv {
            name,
            description,
            protected,
            required_approvals,
            auto_approve,
            strict_flags,
        } => {
            let Some(mut settings) = env_settings(conn, name).await? else {
                return Err(StoreError::NotFound {
                    what: format!("environment {name}"),
                });
            };
            if let Some(d) = description {
                settings.description = d.clone();
            }
            if let Some(p) = protected {
                settings.protected = *p;
            }
            if let Some(r) = required_approvals {
                settings.required_approvals = *r;
            }
            if let Some(a) = auto_approve {
                settings.auto_approve = *a;
            }
            if let Some(s) = strict_flags {
                settings.strict_flags = *s;
            }
            update_env(conn, ctx, name, settings).await
        }
        Mutation::PutSchema {
            app,
            pattern,
            schema,
        } => put_schema(conn, ctx, app.as_deref().unwrap_or(""), pattern, schema).await,
        Mutation::CreateToken { token, bootstrap } => {
            create_token(conn, ctx, token, *bootstrap).await
        }
        Mutation::RevokeToken { id } => revoke_token(conn, ctx, id).await,
        Mutation::PutUser {
            name,
            create,
            password_hash,
            bindings,
            disabled,
        } => {
            let change = UserChange {
                name,
                create: *create,
                password_hash: password_hash.as_deref(),
                bindings: bindings.as_ref(),
                disabled: *disabled,
            };
            put_user(conn, ctx, change).await
        }
        Mutation::PutSecret {
            scope,
            name,
            version,
            sealed,
            policy,
            value_hash,
            expected_version,
        } => {
            let new = NewSecret {
                scope,
                name,
                version: *version,
                sealed,
                policy: policy.as_ref(),
                value_hash,
                expected_version: *expected_version,
            };
            put_secret(conn, ctx, new).await
        }
        Mutation::DeleteSecret { scope, name } => delete_secret(conn, ctx, scope, name).await,
        Mutation::RewrapSecret {
            scope,
            name,
            version,
            kek_id,
            wrapped_key,
        } => rewrap_secret(conn, scope, name, *version, kek_id, wrapped_key).await,
        Mutation::CreateWebhook { webhook } => create_webhook(conn, ctx, webhook).await,
        Mutation::DeleteWebhook { id } => delete_webhook(conn, ctx, id).await,
        Mutation::RewrapWebhook {
            id,
            kek_id,
            wrapped_key,
        } => rewrap_webhook(conn, id, kek_id, wrapped_key).await,
    }
}

struct NewSecret<'a> {
    scope: &'a Scope,
    name: &'a str,
    version: i64,
    sealed: &'a SealedSecret,
    policy: Option<&'a SecretPolicy>,
    value_hash: &'a str,
    expected_version: Option<i64>,
}

fn secret_facts(scope: &Scope, name: &str, from: i64, to: i64, detail: Value) -> AuditFacts {
    AuditFacts {
        app: Some(scope.app_str().to_owned()),
        env: Some(scope.env_str().to_owned()),
        key: Some(name.to_owned()),
        from_version: Some(from),
        to_version: Some(to),
        detail,
    }
}

async fn put_secret(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    s: NewSecret<'_>,
) -> StoreResult<(Applied, AuditFacts)> {
    let (app, env) = (s.scope.app_str(), s.scope.env_str());
    let current: Option<(cairn_store::SecretRecord, bool)> = sqlx::query(&format!(
        "SELECT {} FROM secrets WHERE app = $1 AND env = $2 AND name = $3",
        crate::rows::SECRET_COLS
    ))
    .bind(app)
    .bind(env)
    .bind(s.name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("read secret"))?
    .map(|row| crate::rows::secret(&row))
    .transpose()?;
    let latest: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM secret_versions \
         WHERE app = $1 AND env = $2 AND name = $3",
    )
    .bind(app)
    .bind(env)
    .bind(s.name)
    .fetch_one(&mut *conn)
    .await
    .map_err(err("read secret versions"))?;
    let live = match &current {
        Some((r, false)) => r.current_version,
        _ => 0,
    };
    let conflict = |expected: i64, actual: i64| StoreError::Conflict {
        scope: s.scope.clone(),
        key: s.name.to_owned(),
        expected,
        actual,
    };
    if let Some(expected) = s.expected_version {
        if expected != live {
            return Err(conflict(expected, live));
        }
    }
    if s.version != latest + 1 {
        return Err(conflict(s.version - 1, latest));
    }
    // A rotation passes no policy: the stored one stays.
    let policy = match (s.policy, current) {
        (Some(p), _) => p.clone(),
        (None, Some((r, _))) => r.policy,
        (None, None) => SecretPolicy::default(),
    };
    sqlx::query(
        "INSERT INTO secret_versions (app, env, name, version, kek_id, wrapped_key, ciphertext, \
         created_at, revision, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(app)
    .bind(env)
    .bind(s.name)
    .bind(s.version)
    .bind(&s.sealed.kek_id)
    .bind(&s.sealed.wrapped_key)
    .bind(&s.sealed.ciphertext)
    .bind(ts_param(&ctx.at))
    .bind(ctx.revision.unwrap_or(0))
    .bind(&ctx.context.actor)
    .execute(&mut *conn)
    .await
    .map_err(err("insert secret version"))?;
    // A re-created secret (after a delete) starts a new life: new created_at.
    sqlx::query(
        "INSERT INTO secrets (app, env, name, version, deleted, rotation_days, grace_days, \
         generator, created_at, updated_at, revision, rotation_seconds, hook_secret) \
         VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $8, $8, $9, $10, $11) \
         ON CONFLICT (app, env, name) DO UPDATE SET version = excluded.version, \
         deleted = FALSE, rotation_days = excluded.rotation_days, \
         rotation_seconds = excluded.rotation_seconds, hook_secret = excluded.hook_secret, \
         grace_days = excluded.grace_days, generator = excluded.generator, \
         created_at = CASE WHEN secrets.deleted THEN excluded.created_at ELSE secrets.created_at END, \
         updated_at = excluded.updated_at, revision = excluded.revision",
    )
    .bind(app)
    .bind(env)
    .bind(s.name)
    .bind(s.version)
    .bind(policy.rotation_days)
    .bind(policy.grace_days)
    .bind(&policy.generator)
    .bind(ts_param(&ctx.at))
    .bind(ctx.revision.unwrap_or(0))
    .bind(policy.rotation_seconds)
    .bind(&policy.hook_secret)
    .execute(&mut *conn)
    .await
    .map_err(err("update secret"))?;
    Ok((
        Applied {
            from_version: Some(live),
            to_version: Some(s.version),
        },
        secret_facts(
            s.scope,
            s.name,
            live,
            s.version,
            json!({
                "value_hmac": s.value_hash,
                "kek_id": s.sealed.kek_id,
                "rotation_days": policy.rotation_days,
                "rotation_seconds": policy.rotation_seconds,
                "hook_secret": policy.hook_secret,
                "grace_days": policy.grace_days,
                "generator": policy.generator_redacted(),
            }),
        ),
    ))
}

async fn delete_secret(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    scope: &Scope,
    name: &str,
) -> StoreResult<(Applied, AuditFacts)> {
    let live: Option<i64> = sqlx::query_scalar(
        "UPDATE secrets SET deleted = TRUE, revision = $4 \
         WHERE app = $1 AND env = $2 AND name = $3 AND NOT deleted RETURNING version",
    )
    .bind(scope.app_str())
    .bind(scope.env_str())
    .bind(name)
    .bind(ctx.revision.unwrap_or(0))
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("delete secret"))?;
    let Some(live) = live else {
        return Err(StoreError::NotFound {
            what: format!("secret {name} at {scope}"),
        });
    };
    Ok((
        Applied {
            from_version: Some(live),
            to_version: Some(live),
        },
        secret_facts(scope, name, live, live, json!({})),
    ))
}

async fn rewrap_secret(
    conn: &mut Conn,
    scope: &Scope,
    name: &str,
    version: i64,
    kek_id: &str,
    wrapped_key: &[u8],
) -> StoreResult<(Applied, AuditFacts)> {
    let old: Option<String> = sqlx::query_scalar(
        "SELECT kek_id FROM secret_versions \
         WHERE app = $1 AND env = $2 AND name = $3 AND version = $4",
    )
    .bind(scope.app_str())
    .bind(scope.env_str())
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("read secret version"))?;
    let Some(old) = old else {
        return Err(StoreError::NotFound {
            what: format!("secret {name} version {version} at {scope}"),
        });
    };
    sqlx::query(
        "UPDATE secret_versions SET kek_id = $5, wrapped_key = $6 \
         WHERE app = $1 AND env = $2 AND name = $3 AND version = $4",
    )
    .bind(scope.app_str())
    .bind(scope.env_str())
    .bind(name)
    .bind(version)
    .bind(kek_id)
    .bind(wrapped_key)
    .execute(&mut *conn)
    .await
    .map_err(err("rewrap secret version"))?;
    Ok((
        Applied {
            from_version: Some(version),
            to_version: Some(version),
        },
        secret_facts(
            scope,
            name,
            version,
            version,
            json!({ "from_kek_id": old, "kek_id": kek_id }),
        ),
    ))
}

struct NewEntry<'a> {
    scope: &'a Scope,
    key: &'a str,
    kind: EntryKind,
    merge: MergeMode,
    value: Option<&'a Value>,
    checksum: &'a str,
    expected_version: Option<i64>,
}

async fn put_entry(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    position: i64,
    e: NewEntry<'_>,
) -> StoreResult<(Applied, AuditFacts)> {
    let (app, env) = (e.scope.app_str(), e.scope.env_str());
    let current: Option<(i64, bool, String)> = sqlx::query_as(
        "SELECT e.version, e.deleted, v.kind FROM entries e JOIN entry_versions v \
         ON v.app = e.app AND v.env = e.env AND v.key = e.key AND v.version = e.version \
         WHERE e.app = $1 AND e.env = $2 AND e.key = $3",
    )
    .bind(app)
    .bind(env)
    .bind(e.key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("read entry"))?;
    // latest: the last version number ever written (tombstones too);
    // live: the current version, 0 when absent or deleted.
    let (latest, live) = match &current {
        None => (0, 0),
        Some((v, true, _)) => (*v, 0),
        Some((v, false, _)) => (*v, *v),
    };
    // One (scope, key) holds one kind at a time, checked against committed
    // state under the commit's lock: a delete takes the live entry's kind, a
    // write of another kind is refused.
    let live_kind = match &current {
        Some((_, false, k)) => EntryKind::parse(k),
        _ => None,
    };
    let kind = match (live_kind, e.value) {
        (Some(k), None) => k,
        (Some(k), Some(_)) if k != e.kind => {
            return Err(StoreError::KindConflict {
                scope: e.scope.clone(),
                key: e.key.to_owned(),
                current: k.as_str(),
                requested: e.kind.as_str(),
                version: live,
            });
        }
        _ => e.kind,
    };
    if let Some(expected) = e.expected_version {
        if expected != live {
            return Err(StoreError::Conflict {
                scope: e.scope.clone(),
                key: e.key.to_owned(),
                expected,
                actual: live,
            });
        }
    }
    if e.value.is_none() && live == 0 {
        return Err(StoreError::NotFound {
            what: format!("entry {} at {}", e.key, e.scope),
        });
    }
    let version = latest + 1;
    let value_text = e.value.map(to_json_text).transpose()?;
    let checksum = if e.value.is_some() { e.checksum } else { "" };
    sqlx::query(
        "INSERT INTO entry_versions (app, env, key, version, kind, merge, value, checksum, \
         revision, position, actor, message, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(app)
    .bind(env)
    .bind(e.key)
    .bind(version)
    .bind(kind.as_str())
    .bind(e.merge.as_str())
    .bind(value_text)
    .bind(checksum)
    .bind(ctx.revision.unwrap_or(0))
    .bind(position)
    .bind(&ctx.context.actor)
    .bind(&ctx.context.message)
    .bind(ts_param(&ctx.at))
    .execute(&mut *conn)
    .await
    .map_err(err("insert entry version"))?;
    sqlx::query(
        "INSERT INTO entries (app, env, key, version, deleted) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (app, env, key) DO UPDATE SET version = excluded.version, deleted = excluded.deleted",
    )
    .bind(app)
    .bind(env)
    .bind(e.key)
    .bind(version)
    .bind(e.value.is_none())
    .execute(&mut *conn)
    .await
    .map_err(err("update current entry"))?;
    Ok((
        Applied {
            from_version: Some(live),
            to_version: Some(version),
        },
        AuditFacts {
            app: Some(app.to_owned()),
            env: Some(env.to_owned()),
            key: Some(e.key.to_owned()),
            from_version: Some(live),
            to_version: Some(version),
            detail: json!({
                "kind": kind.as_str(),
                "merge": e.merge.as_str(),
                "checksum": checksum,
            }),
        },
    ))
}

async fn create_app(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    name: &str,
    description: &str,
) -> StoreResult<(Applied, AuditFacts)> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM apps WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("read app"))?;
    if exists.is_some() {
        return Err(StoreError::AlreadyExists {
            what: format!("app {name}"),
        });
    }
    sqlx::query(
        "INSERT INTO apps (name, description, created_at, revision) VALUES ($1, $2, $3, $4)",
    )
    .bind(name)
    .bind(description)
    .bind(ts_param(&ctx.at))
    .bind(ctx.revision.unwrap_or(0))
    .execute(&mut *conn)
    .await
    .map_err(err("insert app"))?;
    Ok((
        no_versions(),
        AuditFacts {
            app: Some(name.to_owned()),
            detail: json!({ "description": description }),
            ..AuditFacts::default()
        },
    ))
}

struct EnvSettings {
    description: String,
    protected: bool,
    required_approvals: i32,
    auto_approve: bool,
    strict_flags: bool,
}

impl EnvSettings {
    fn detail(&self) -> Value {
        json!({
            "description": self.description,
            "protected": self.protected,
            "required_approvals": self.required_approvals,
            "auto_approve": self.auto_approve,
            "strict_flags": self.strict_flags,
        })
    }
}

async fn env_settings(conn: &mut Conn, name: &str) -> StoreResult<Option<EnvSettings>> {
    let row: Option<(String, bool, i32, bool, bool)> = sqlx::query_as(
        "SELECT description, protected, required_approvals, auto_approve, strict_flags \
         FROM environments WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("read environment"))?;
    Ok(row.map(
        |(description, protected, required_approvals, auto_approve, strict_flags)| EnvSettings {
            description,
            protected,
            required_approvals,
            auto_approve,
            strict_flags,
        },
    ))
}

async fn create_env(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    name: &str,
    s: EnvSettings,
) -> StoreResult<(Applied, AuditFacts)> {
    if env_settings(conn, name).await?.is_some() {
        return Err(StoreError::AlreadyExists {
            what: format!("environment {name}"),
        });
    }
    sqlx::query(
        "INSERT INTO environments (name, description, protected, required_approvals, \
         auto_approve, strict_flags, created_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(name)
    .bind(&s.description)
    .bind(s.protected)
    .bind(s.required_approvals)
    .bind(s.auto_approve)
    .bind(s.strict_flags)
    .bind(ts_param(&ctx.at))
    .bind(ctx.revision.unwrap_or(0))
    .execute(&mut *conn)
    .await
    .map_err(err("insert environment"))?;
    Ok((no_versions(), env_facts(name, &s)))
}

async fn update_env(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    name: &str,
    s: EnvSettings,
) -> StoreResult<(Applied, AuditFacts)> {
    sqlx::query(
        "UPDATE environments SET description = $2, protected = $3, required_approvals = $4, \
         auto_approve = $5, strict_flags = $6, revision = $7 WHERE name = $1",
    )
    .bind(name)
    .bind(&s.description)
    .bind(s.protected)
    .bind(s.required_approvals)
    .bind(s.auto_approve)
    .bind(s.strict_flags)
    .bind(ctx.revision.unwrap_or(0))
    .execute(&mut *conn)
    .await
    .map_err(err("update environment"))?;
    Ok((no_versions(), env_facts(name, &s)))
}

fn env_facts(name: &str, s: &EnvSettings) -> AuditFacts {
    AuditFacts {
        env: Some(name.to_owned()),
        detail: s.detail(),
        ..AuditFacts::default()
    }
}

async fn put_schema(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    app: &str,
    pattern: &str,
    schema: &Value,
) -> StoreResult<(Applied, AuditFacts)> {
    let previous: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM schemas WHERE app = $1 AND pattern = $2",
    )
    .bind(app)
    .bind(pattern)
    .fetch_one(&mut *conn)
    .await
    .map_err(err("read schema version"))?;
    let version = previous + 1;
    sqlx::query(
        "INSERT INTO schemas (app, pattern, version, schema, revision, actor, message, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(app)
    .bind(pattern)
    .bind(version)
    .bind(to_json_text(schema)?)
    .bind(ctx.revision.unwrap_or(0))
    .bind(&ctx.context.actor)
    .bind(&ctx.context.message)
    .bind(ts_param(&ctx.at))
    .execute(&mut *conn)
    .await
    .map_err(err("insert schema"))?;
    Ok((
        Applied {
            from_version: Some(previous),
            to_version: Some(version),
        },
        AuditFacts {
            app: Some(app.to_owned()),
            key: Some(pattern.to_owned()),
            from_version: Some(previous),
            to_version: Some(version),
            detail: json!({}),
            ..AuditFacts::default()
        },
    ))
}

fn token_detail(t: &TokenRecord) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "role": t.role.as_str(),
        "app": t.app,
        "env": t.env,
    })
}

async fn create_token(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    t: &TokenRecord,
    bootstrap: bool,
) -> StoreResult<(Applied, AuditFacts)> {
    if bootstrap {
        let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tokens LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(err("read tokens"))?;
        if any.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "a token (bootstrap is only for the first one)".into(),
            });
        }
    }
    let clash: Option<String> =
        sqlx::query_scalar("SELECT id FROM tokens WHERE id = $1 OR hash = $2 LIMIT 1")
            .bind(&t.id)
            .bind(&t.hash)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err("read tokens"))?;
    if let Some(id) = clash {
        return Err(StoreError::AlreadyExists {
            what: format!("token {id}"),
        });
    }
    sqlx::query(
        "INSERT INTO tokens (id, name, hash, role, app, env, created_at, expires_at, revoked_at, \
         revision, user_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.hash)
    .bind(t.role.as_str())
    .bind(&t.app)
    .bind(&t.env)
    .bind(ts_param(&t.created_at))
    .bind(opt_ts_param(t.expires_at.as_ref()))
    .bind(opt_ts_param(t.revoked_at.as_ref()))
    .bind(ctx.revision.unwrap_or(0))
    .bind(&t.user)
    .execute(&mut *conn)
    .await
    .map_err(err("insert token"))?;
    Ok((
        no_versions(),
        AuditFacts {
            detail: token_detail(t),
            ..AuditFacts::default()
        },
    ))
}

async fn revoke_token(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    id: &str,
) -> StoreResult<(Applied, AuditFacts)> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM tokens WHERE id = $1",
        crate::rows::TOKEN_COLS
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("read token"))?;
    let Some(row) = row else {
        return Err(StoreError::NotFound {
            what: format!("token {id}"),
        });
    };
    let token = crate::rows::token(&row)?;
    // Revoking twice keeps the first revocation time.
    sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
        .bind(id)
        .bind(ts_param(&ctx.at))
        .execute(&mut *conn)
        .await
        .map_err(err("revoke token"))?;
    Ok((
        no_versions(),
        AuditFacts {
            detail: token_detail(&token),
            ..AuditFacts::default()
        },
    ))
}

fn no_versions() -> Applied {
    Applied {
        from_version: None,
        to_version: None,
    }
}

/// The audit chain as this transaction extends it.
struct Chain {
    seq: i64,
    mac: String,
    seal: Option<AuditKey>,
    /// The records this transaction appended, for the audit sink.
    written: Vec<AuditRecord>,
}

impl Chain {
    /// Read the chain's end (inside the transaction that holds the write lock).
    async fn read(conn: &mut Conn, seal: Option<AuditKey>) -> StoreResult<Chain> {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(err("read audit chain"))?;
        let (seq, mac) = last.unwrap_or((0, String::new()));
        Ok(Chain {
            seq,
            mac,
            seal,
            written: Vec::new(),
        })
    }

    /// Append one record, sealed to the previous one.
    async fn append(
        &mut self,
        conn: &mut Conn,
        ctx: &Ctx<'_>,
        action: &str,
        f: AuditFacts,
    ) -> StoreResult<()> {
        let c = ctx.context;
        let mut record = AuditRecord {
            seq: self.seq + 1,
            revision: ctx.revision,
            at: ctx.at,
            actor: c.actor.clone(),
            action: action.to_owned(),
            app: f.app,
            env: f.env,
            key: f.key,
            from_version: f.from_version,
            to_version: f.to_version,
            message: c.message.clone(),
            client_ip: c.client_ip.clone(),
            user_agent: c.user_agent.clone(),
            replica: c.replica.clone(),
            detail: f.detail,
            mac: String::new(),
        };
        if let Some(key) = &self.seal {
            record.mac = chain::record_mac(key, &self.mac, &record);
        }
        sqlx::query(
            "INSERT INTO audit (seq, revision, at, actor, action, app, env, key, from_version, \
             to_version, message, client_ip, user_agent, replica, detail, mac) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(record.seq)
        .bind(record.revision)
        .bind(ts_param(&ctx.at))
        .bind(&record.actor)
        .bind(&record.action)
        .bind(&record.app)
        .bind(&record.env)
        .bind(&record.key)
        .bind(record.from_version)
        .bind(record.to_version)
        .bind(&record.message)
        .bind(&record.client_ip)
        .bind(&record.user_agent)
        .bind(&record.replica)
        .bind(to_json_text(&record.detail)?)
        .bind(&record.mac)
        .execute(&mut *conn)
        .await
        .map_err(err("insert audit record"))?;
        self.seq = record.seq;
        self.mac = record.mac.clone();
        self.written.push(record);
        Ok(())
    }

    /// Record the signed head of the chain.
    async fn write_head(&self, conn: &mut Conn) -> StoreResult<()> {
        let sig = self
            .seal
            .as_ref()
            .map(|k| chain::head_signature(k, self.seq, &self.mac))
            .unwrap_or_default();
        sqlx::query("UPDATE meta SET audit_seq = $1, audit_mac = $2, audit_sig = $3 WHERE id = 1")
            .bind(self.seq)
            .bind(&self.mac)
            .bind(sig)
            .execute(&mut *conn)
            .await
            .map_err(err("write audit head"))?;
        Ok(())
    }
}

/// Append non-change audit events in their own transaction (holding the same
/// lock as commits, so the chain stays linear).
pub(crate) async fn append_events(
    conn: &mut Conn,
    context: &AuditContext,
    at: DateTime<Utc>,
    events: Vec<AuditEvent>,
    seal: Option<AuditKey>,
) -> StoreResult<Vec<AuditRecord>> {
    let ctx = Ctx {
        revision: None,
        at,
        context,
    };
    let mut chain = Chain::read(conn, seal).await?;
    for e in events {
        let facts = AuditFacts {
            app: e.app,
            env: e.env,
            key: e.key,
            from_version: None,
            to_version: None,
            detail: e.detail,
        };
        chain.append(conn, &ctx, &e.action, facts).await?;
    }
    chain.write_head(conn).await?;
    Ok(chain.written)
}

async fn put_user(
    conn: &mut Conn,
    ctx: &Ctx<'_>,
    u: UserChange<'_>,
) -> StoreResult<(Applied, AuditFacts)> {
    let exists: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE name = $1")
        .bind(u.name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("read user"))?;
    match (u.create, exists.is_some()) {
        (true, true) => {
            return Err(StoreError::AlreadyExists {
                what: format!("user {}", u.name),
            })
        }
        (false, false) => {
            return Err(StoreError::NotFound {
                what: format!("user {}", u.name),
            })
        }
        _ => {}
    }
    let bindings = u
        .bindings
        .map(|b| serde_json::to_string(b).map_err(|e| StoreError::Backend(e.to_string())))
        .transpose()?;
    if u.create {
        sqlx::query(
            "INSERT INTO users (name, password_hash, bindings, created_at, disabled, revision) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(u.name)
        .bind(u.password_hash.unwrap_or_default())
        .bind(bindings.clone().unwrap_or_else(|| "[]".into()))
        .bind(ts_param(&ctx.at))
        .bind(u.disabled.unwrap_or(false))
        .bind(ctx.revision.unwrap_or(0))
        .execute(&mut *conn)
        .await
        .map_err(err("insert user"))?;
    } else {
        sqlx::query(
            "UPDATE users SET password_hash = COALESCE($2, password_hash), \
             bindings = COALESCE($3, bindings), disabled = COALESCE($4, disabled), revision = $5 \
             WHERE name = $1",
        )
        .bind(u.name)
        .bind(u.password_hash)
        .bind(bindings.clone())
        .bind(u.disabled)
        .bind(ctx.revision.unwrap_or(0))
        .execute(&mut *conn)
        .await
        .map_err(err("update user"))?;
    }
    let detail = json!({
        "user": u.name,
        "bindings": u.bindings,
        "password_changed": u.password_hash.is_some(),
        "disabled": u.disabled,
    });
    Ok((
        no_versions(),
        AuditFacts {
            detail,
            ..AuditFacts::default()
        },
    ))
}

struct UserChange<'a> {
    name: &'a str,
    create: bool,
    password_hash: Option<&'a str>,
    bindings: Option<&'a Vec<Binding>>,
    disabled: Option<bool>,
}

/// Refuse the commit (`StoreError::Stale`) if a change committed after the
/// guard's basis touches what its plan read. Called under the lock that
/// allocates the revision, so every earlier commit is visible and no later
/// one can slip in before this one.
async fn check_guard(conn: &mut Conn, guard: &cairn_store::Guard) -> StoreResult<()> {
    let needs = guard.needs();
    let mut changes = cairn_store::Changes::default();
    if needs.entries {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT app, env, key, kind FROM entry_versions WHERE revision > $1",
        )
        .bind(guard.basis)
        .fetch_all(&mut *conn)
        .await
        .map_err(err("read changes since the basis"))?;
        changes.entries = rows
            .into_iter()
            .filter_map(|(app, env, key, kind)| {
                Some((Scope::from_stored(&app, &env), key, EntryKind::parse(&kind)?))
            })
            .collect();
    }
    if needs.schemas {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT app, pattern FROM schemas WHERE revision > $1")
                .bind(guard.basis)
                .fetch_all(&mut *conn)
                .await
                .map_err(err("read schema changes since the basis"))?;
        changes.schemas = rows
            .into_iter()
            .map(|(app, pattern)| ((!app.is_empty()).then_some(app), pattern))
            .collect();
    }
    if needs.secrets {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT app, env, name FROM secrets WHERE revision > $1")
                .bind(guard.basis)
                .fetch_all(&mut *conn)
                .await
                .map_err(err("read secret changes since the basis"))?;
        changes.secrets = rows
            .into_iter()
            .map(|(app, env, name)| (Scope::from_stored(&app, &env), name))
            .collect();
    }
    if needs.environments {
        changes.environments =
            sqlx::query_scalar("SELECT name FROM environments WHERE revision > $1")
                .bind(guard.basis)
                .fetch_all(&mut *conn)
                .await
                .map_err(err("read environment changes since the basis"))?;
    }
    match guard.conflict(&changes) {
        None => Ok(()),
        Some(what) => Err(StoreError::Stale { what }),
    }
}
