// Row decoders shared by the SQLite and PostgreSQL backends. Each backend's
// `rows.rs` includes this file after defining its dialect: `DbRow`, `col`,
// `time_col`, `opt_time_col` (timestamps are text in SQLite, timestamptz in
// PostgreSQL) and `parse_json`.

pub(crate) fn entry(row: &DbRow) -> StoreResult<EntryVersion> {
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

pub(crate) fn schema(row: &DbRow) -> StoreResult<SchemaRecord> {
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

pub(crate) fn app(row: &DbRow) -> StoreResult<App> {
    Ok(App {
        name: col(row, "name")?,
        description: col(row, "description")?,
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
    })
}

pub(crate) fn environment(row: &DbRow) -> StoreResult<Environment> {
    Ok(Environment {
        name: col(row, "name")?,
        description: col(row, "description")?,
        protected: col(row, "protected")?,
        required_approvals: col(row, "required_approvals")?,
        auto_approve: col(row, "auto_approve")?,
        strict_flags: col(row, "strict_flags")?,
        created_at: time_col(row, "created_at")?,
        revision: col(row, "revision")?,
    })
}

pub(crate) fn token(row: &DbRow) -> StoreResult<TokenRecord> {
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

pub(crate) fn audit(row: &DbRow) -> StoreResult<AuditRecord> {
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

pub(crate) fn user(row: &DbRow) -> StoreResult<UserRecord> {
    let bindings: String = col(row, "bindings")?;
    Ok(UserRecord {
        name: col(row, "name")?,
        password_hash: col(row, "password_hash")?,
        bindings: serde_json::from_str(&bindings)
            .map_err(|e| StoreError::Backend(format!("bad bindings column: {e}")))?,
        created_at: time_col(row, "created_at")?,
        disabled: col(row, "disabled")?,
    })
}

/// A `secrets` row and whether it is deleted.
pub(crate) fn secret(row: &DbRow) -> StoreResult<(SecretRecord, bool)> {
    Ok((
        SecretRecord {
            scope: Scope::from_stored(&col::<String>(row, "app")?, &col::<String>(row, "env")?),
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

pub(crate) fn secret_version(row: &DbRow) -> StoreResult<SecretVersion> {
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
