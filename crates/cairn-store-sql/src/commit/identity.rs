//! Tokens and users inside a commit.

use cairn_store::{
    Applied, CreateToken, PutUser, RevokeToken, StoreError, StoreResult, TokenRecord,
};
use serde_json::{json, Value};

use super::{no_versions, AuditFacts, Tx};
use crate::dialect::Dialect;
use crate::query::{query, query_scalar};
use crate::rows::{self, micros, opt_micros, TOKEN_COLS};

fn token_detail(t: &TokenRecord) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "role": t.role.as_str(),
        "app": t.app,
        "env": t.env,
    })
}

impl<D: Dialect> Tx<'_, D> {
    pub(super) async fn create_token(
        &mut self,
        m: &CreateToken,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let t = &m.token;
        if m.bootstrap {
            let any: Option<i32> = query_scalar::<D, _>("SELECT 1 FROM tokens LIMIT 1")
                .fetch_optional(self.conn)
                .await
                .map_err(D::err("read tokens"))?;
            if any.is_some() {
                return Err(StoreError::AlreadyExists {
                    what: "a token (bootstrap is only for the first one)".into(),
                });
            }
        }
        let clash: Option<String> =
            query_scalar::<D, _>("SELECT id FROM tokens WHERE id = $1 OR hash = $2 LIMIT 1")
                .bind(&t.id)
                .bind(&t.hash)
                .fetch_optional(self.conn)
                .await
                .map_err(D::err("read tokens"))?;
        if let Some(id) = clash {
            return Err(StoreError::AlreadyExists {
                what: format!("token {id}"),
            });
        }
        query::<D>(
            "INSERT INTO tokens (id, name, hash, role, app, env, created_at, expires_at, \
             revoked_at, revision, user_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.hash)
        .bind(t.role.as_str())
        .bind(&t.app)
        .bind(&t.env)
        .bind(micros(&t.created_at))
        .bind(opt_micros(t.expires_at.as_ref()))
        .bind(opt_micros(t.revoked_at.as_ref()))
        .bind(self.revision())
        .bind(&t.user)
        .execute(self.conn)
        .await
        .map_err(D::err("insert token"))?;
        Ok((
            no_versions(),
            AuditFacts {
                detail: token_detail(t),
                ..AuditFacts::default()
            },
        ))
    }

    pub(super) async fn revoke_token(
        &mut self,
        m: &RevokeToken,
    ) -> StoreResult<(Applied, AuditFacts)> {
        let id = &m.id;
        let row = query::<D>(format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn)
            .await
            .map_err(D::err("read token"))?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: format!("token {id}"),
            });
        };
        let token = rows::token(&row)?;
        // Revoking twice keeps the first revocation time.
        query::<D>("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id)
            .bind(micros(&self.at))
            .execute(self.conn)
            .await
            .map_err(D::err("revoke token"))?;
        Ok((
            no_versions(),
            AuditFacts {
                detail: token_detail(&token),
                ..AuditFacts::default()
            },
        ))
    }

    pub(super) async fn put_user(&mut self, u: &PutUser) -> StoreResult<(Applied, AuditFacts)> {
        let exists: Option<String> = query_scalar::<D, _>("SELECT name FROM users WHERE name = $1")
            .bind(&u.name)
            .fetch_optional(self.conn)
            .await
            .map_err(D::err("read user"))?;
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
            .as_ref()
            .map(|b| serde_json::to_string(b).map_err(|e| StoreError::Backend(e.to_string())))
            .transpose()?;
        if u.create {
            query::<D>(
                "INSERT INTO users (name, password_hash, bindings, created_at, disabled, \
                 revision) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&u.name)
            .bind(u.password_hash.as_deref().unwrap_or_default())
            .bind(bindings.clone().unwrap_or_else(|| "[]".into()))
            .bind(micros(&self.at))
            .bind(u.disabled.unwrap_or(false))
            .bind(self.revision())
            .execute(self.conn)
            .await
            .map_err(D::err("insert user"))?;
        } else {
            query::<D>(
                "UPDATE users SET password_hash = COALESCE($2, password_hash), \
                 bindings = COALESCE($3, bindings), disabled = COALESCE($4, disabled), \
                 revision = $5 WHERE name = $1",
            )
            .bind(&u.name)
            .bind(u.password_hash.as_deref())
            .bind(bindings.clone())
            .bind(u.disabled)
            .bind(self.revision())
            .execute(self.conn)
            .await
            .map_err(D::err("update user"))?;
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
}
