//! Secrets inside a commit: new versions (sealed), deletes, rewraps.

use cairn_model::Scope;
use cairn_store::{
    Applied, DeleteSecret, PutSecret, RewrapSecret, SecretPolicy, SecretRecord, StoreError,
    StoreResult,
};
use serde_json::{json, Value};

use super::{AuditFacts, Tx};
use crate::dialect::Dialect;
use crate::query::{query, query_scalar};
use crate::rows::{self, micros, SECRET_COLS};

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

impl<D: Dialect> Tx<'_, D> {
    pub(super) async fn put_secret(&mut self, s: &PutSecret) -> StoreResult<(Applied, AuditFacts)> {
        let (app, env) = (s.scope.app_str(), s.scope.env_str());
        let current: Option<(SecretRecord, bool)> = query::<D>(format!(
            "SELECT {SECRET_COLS} FROM secrets WHERE app = $1 AND env = $2 AND name = $3"
        ))
        .bind(app)
        .bind(env)
        .bind(&s.name)
        .fetch_optional(self.conn)
        .await
        .map_err(D::err("read secret"))?
        .map(|row| rows::secret(&row))
        .transpose()?;
        let latest: i64 = query_scalar::<D, _>(
            "SELECT COALESCE(MAX(version), 0) FROM secret_versions \
             WHERE app = $1 AND env = $2 AND name = $3",
        )
        .bind(app)
        .bind(env)
        .bind(&s.name)
        .fetch_one(self.conn)
        .await
        .map_err(D::err("read secret versions"))?;
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
        let policy = match (s.policy.as_ref(), current) {
            (Some(p), _) => p.clone(),
            (None, Some((r, _))) => r.policy,
            (None, None) => SecretPolicy::default(),
        };
        query::<D>(
            "INSERT INTO secret_versions (app, env, name, version, kek_id, wrapped_key, \
             ciphertext, created_at, revision, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(app)
        .bind(env)
        .bind(&s.name)
        .bind(s.version)
        .bind(&s.sealed.kek_id)
        .bind(&s.sealed.wrapped_key)
        .bind(&s.sealed.ciphertext)
        .bind(micros(&self.at))
        .bind(self.revision())
        .bind(&self.context.actor)
        .execute(self.conn)
        .await
        .map_err(D::err("insert secret version"))?;
        // A re-created secret (after a delete) starts a new life: new created_at.
        query::<D>(
            "INSERT INTO secrets (app, env, name, version, deleted, rotation_days, grace_days, \
             generator, created_at, updated_at, revision, rotation_seconds, hook_secret) \
             VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $8, $8, $9, $10, $11) \
             ON CONFLICT (app, env, name) DO UPDATE SET version = excluded.version, \
             deleted = FALSE, rotation_days = excluded.rotation_days, \
             rotation_seconds = excluded.rotation_seconds, hook_secret = excluded.hook_secret, \
             grace_days = excluded.grace_days, generator = excluded.generator, \
             created_at = CASE WHEN secrets.deleted THEN excluded.created_at \
             ELSE secrets.created_at END, \
             updated_at = excluded.updated_at, revision = excluded.revision",
        )
        .bind(app)
        .bind(env)
        .bind(&s.name)
        .bind(s.version)
        .bind(policy.rotation_days)
        .bind(policy.grace_days)
        .bind(&policy.generator)
        .bind(micros(&self.at))
        .bind(self.revision())
        .bind(policy.rotation_seconds)
        .bind(&policy.hook_secret)
        .execute(self.conn)
        .await
        .map_err(D::err("update secret"))?;
        Ok((
            Applied {
                from_version: Some(live),
                to_version: Some(s.version),
            },
            secret_facts(
                &s.scope,
                &s.name,
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

    pub(super) async fn delete_secret(
        &mut self,
        m: &DeleteSecret,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let (scope, name) = (&m.scope, m.name.as_str());
        let live: Option<i64> = query_scalar::<D, _>(
            "UPDATE secrets SET deleted = TRUE, revision = $4 \
             WHERE app = $1 AND env = $2 AND name = $3 AND NOT deleted RETURNING version",
        )
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .bind(self.revision())
        .fetch_optional(self.conn)
        .await
        .map_err(D::err("delete secret"))?;
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

    pub(super) async fn rewrap_secret(
        &mut self,
        m: &RewrapSecret,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let (scope, name, version) = (&m.scope, m.name.as_str(), m.version);
        let (kek_id, wrapped_key) = (m.kek_id.as_str(), m.wrapped_key.as_slice());
        let old: Option<String> = query_scalar::<D, _>(
            "SELECT kek_id FROM secret_versions \
             WHERE app = $1 AND env = $2 AND name = $3 AND version = $4",
        )
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .bind(version)
        .fetch_optional(self.conn)
        .await
        .map_err(D::err("read secret version"))?;
        let Some(old) = old else {
            return Err(StoreError::NotFound {
                what: format!("secret {name} version {version} at {scope}"),
            });
        };
        query::<D>(
            "UPDATE secret_versions SET kek_id = $5, wrapped_key = $6 \
             WHERE app = $1 AND env = $2 AND name = $3 AND version = $4",
        )
        .bind(scope.app_str())
        .bind(scope.env_str())
        .bind(name)
        .bind(version)
        .bind(kek_id)
        .bind(wrapped_key)
        .execute(self.conn)
        .await
        .map_err(D::err("rewrap secret version"))?;
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
}
