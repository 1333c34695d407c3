//! Bearer tokens: create (the secret is shown once), revoke, authenticate, list.

use cairn_model::{validate_app, validate_env, Revision};
use cairn_store::{Committed, Mutation, Role, TokenRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::identity::access::require_admin;
use crate::identity::auth::{self, Origin, Principal};
use crate::identity::Identity;
use crate::{Error, Result};
use cairn_store::{CreateToken, RevokeToken};

/// A token just created: the secret is shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub id: String,
    pub revision: Revision,
}

impl Identity<'_> {
    /// Create a token; its secret is returned once and never stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        role: Role,
        app: &str,
        env: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedToken> {
        require_admin(who, None)?;
        if name.trim().is_empty() || name.len() > 128 {
            return Err(Error::invalid("name", "must be 1-128 characters"));
        }
        if role == Role::Sdk {
            // An SDK token is bound to exactly one existing (app, env).
            validate_app(app)?;
            validate_env(env)?;
            self.kernel.read().check_view(app, env)?;
        } else {
            crate::identity::policy::validate_pattern("app", app)?;
            crate::identity::policy::validate_pattern("env", env)?;
        }
        let t = auth::generate_token();
        let record = TokenRecord {
            id: t.id.clone(),
            name: name.to_owned(),
            hash: t.hash,
            role,
            app: app.to_owned(),
            env: env.to_owned(),
            created_at: self.kernel.now(),
            expires_at,
            revoked_at: None,
            user: None,
        };
        let m = Mutation::CreateToken(CreateToken {
            token: record,
            bootstrap: false,
        });
        let c = self
            .kernel
            .commit(
                who,
                origin,
                &format!("create token {name}"),
                vec![(None, m)],
            )
            .await?;
        Ok(CreatedToken {
            token: t.secret,
            id: t.id,
            revision: c.revision,
        })
    }

    pub async fn revoke_token(
        &self,
        who: &Principal,
        origin: &Origin,
        id: &str,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        let m = Mutation::RevokeToken(RevokeToken { id: id.to_owned() });
        self.kernel
            .commit(who, origin, &format!("revoke token {id}"), vec![(None, m)])
            .await
    }

    /// Who holds this bearer token? In memory, constant-time hash comparison.
    pub fn authenticate(&self, secret: &str) -> Result<Principal> {
        let id =
            auth::token_id(secret).ok_or_else(|| Error::Unauthorized("malformed token".into()))?;
        let st = self.kernel.read();
        let record = st
            .tokens
            .get(&id)
            .ok_or_else(|| Error::Unauthorized("invalid token".into()))?;
        let user = record.user.as_ref().and_then(|u| st.users.get(u));
        auth::verify(record, user, secret, self.kernel.now())
    }

    pub fn tokens(&self, who: &Principal) -> Result<Vec<TokenRecord>> {
        require_admin(who, None)?;
        let mut t: Vec<TokenRecord> = self.kernel.read().tokens.values().cloned().collect();
        t.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(t)
    }
}
