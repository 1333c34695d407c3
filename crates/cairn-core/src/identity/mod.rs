//! Users and passwords (Argon2id), login tokens, denied-request records,
//! audit reads and audit-chain verification.

pub(crate) mod access;
pub mod tokens;

pub mod auth;
pub mod jwt;
pub mod policy;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use cairn_store::{
    chain, AuditEvent, AuditFilter, AuditRecord, Binding, Committed, Mutation, Role, TokenRecord,
    UserRecord,
};
use chrono::Duration;
use serde::Serialize;
use serde_json::json;

use crate::crypto::keys::{Keyring, Purpose};
use crate::identity::access::require_admin;
use crate::identity::auth::{Origin, Principal};
use crate::identity::jwt::JwtVerifier;
use crate::identity::policy::{validate_pattern, Action};
use crate::identity::tokens::CreatedToken;
use crate::kernel::Kernel;
use crate::{Error, Result};
use cairn_store::AuditAction;
use cairn_store::{CreateToken, PutUser};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Lifetime of a login token unless asked otherwise; the most one may ask for.
pub const LOGIN_TTL: Duration = Duration::hours(12);
pub const MAX_LOGIN_TTL: Duration = Duration::days(7);

/// The result of walking the audit chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditVerification {
    pub ok: bool,
    /// Records verified (up to the first bad one).
    pub records: i64,
    /// The first record that was edited, inserted, deleted or reordered, or the truncated tail.
    pub first_bad: Option<chain::Tamper>,
}

/// One page of the audit log ([`Identity::audit`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// More records follow: ask again with `after_seq` = this (the last
    /// `seq` of the page). `None` when the page holds the last of them.
    pub next: Option<i64>,
}

fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A user name: 1-64 characters of a-z, 0-9, '_', '-', '.', '@'.
pub(crate) fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'@')
        })
}

fn validate_user_name(name: &str) -> Result<()> {
    if valid_user_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "1-64 characters of a-z, 0-9, '_', '-', '.', '@'",
        ))
    }
}

fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 1024 {
        return Err(Error::invalid(
            "password",
            format!("must be {MIN_PASSWORD_LEN} to 1024 characters"),
        ));
    }
    Ok(())
}

/// Check bindings given by an admin.
pub fn validate_bindings(bindings: &[Binding]) -> Result<()> {
    if bindings.is_empty() || bindings.len() > 32 {
        return Err(Error::invalid("bindings", "give 1 to 32 bindings"));
    }
    for b in bindings {
        validate_pattern("app", &b.app)?;
        validate_pattern("env", &b.env)?;
        if b.role == Role::Sdk {
            return Err(Error::invalid(
                "role",
                "users cannot hold the sdk role (use an sdk token)",
            ));
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("worker failed: {e}")))
}

/// The identity feature ([`crate::Service::identity`]): users, login,
/// tokens, authentication, denied-request records, audit reads and
/// verification. Holds the kernel, the OIDC verifier (if configured) and the
/// keyring (older audit records are sealed under previous master keys).
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    kernel: &'a Kernel,
    jwt: Option<&'a JwtVerifier>,
    keys: &'a Keyring,
}

impl<'a> Identity<'a> {
    pub(crate) fn new(kernel: &'a Kernel, jwt: Option<&'a JwtVerifier>, keys: &'a Keyring) -> Self {
        Identity { kernel, jwt, keys }
    }
}

impl Identity<'_> {
    pub fn users(&self, who: &Principal) -> Result<Vec<UserRecord>> {
        require_admin(who, None)?;
        let mut users: Vec<UserRecord> = self.kernel.read().users.values().cloned().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    pub async fn create_user(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        password: &str,
        bindings: Vec<Binding>,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        validate_user_name(name)?;
        validate_password(password)?;
        validate_bindings(&bindings)?;
        let pw = password.to_owned();
        let hash = blocking(move || hash_password(&pw)).await??;
        let m = Mutation::PutUser(PutUser {
            name: name.to_owned(),
            create: true,
            password_hash: Some(hash),
            bindings: Some(bindings),
            disabled: None,
        });
        self.kernel
            .commit(who, origin, &format!("create user {name}"), vec![(None, m)])
            .await
    }

    pub async fn update_user(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        password: Option<&str>,
        bindings: Option<Vec<Binding>>,
        disabled: Option<bool>,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        validate_user_name(name)?;
        if password.is_none() && bindings.is_none() && disabled.is_none() {
            return Err(Error::invalid("settings", "nothing to change"));
        }
        if let Some(b) = &bindings {
            validate_bindings(b)?;
        }
        let hash = match password {
            Some(p) => {
                validate_password(p)?;
                let pw = p.to_owned();
                Some(blocking(move || hash_password(&pw)).await??)
            }
            None => None,
        };
        let m = Mutation::PutUser(PutUser {
            name: name.to_owned(),
            create: false,
            password_hash: hash,
            bindings,
            disabled,
        });
        self.kernel
            .commit(who, origin, &format!("update user {name}"), vec![(None, m)])
            .await
    }

    /// Exchange a user's password for a short-lived token. Failures are
    /// audited and cost the same time whether or not the user exists.
    pub async fn login(
        &self,
        origin: &Origin,
        name: &str,
        password: &str,
        ttl: Option<Duration>,
    ) -> Result<CreatedToken> {
        let ttl = ttl.unwrap_or(LOGIN_TTL);
        if ttl <= Duration::zero() || ttl > MAX_LOGIN_TTL {
            return Err(Error::invalid("ttl", "must be between 1 second and 7 days"));
        }
        let user = self.kernel.read().users.get(name).cloned();
        // A fixed dummy hash keeps the time of "no such user" like a wrong password.
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$4x6xLnsFX4yUdt1RKt3x3Ts0nHRNE3Ggm0oFeN2BkQg";
        let hash = user
            .as_ref()
            .map_or(DUMMY.to_owned(), |u| u.password_hash.clone());
        let pw = password.to_owned();
        let ok = blocking(move || password_matches(&hash, &pw)).await?;
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            _ => {
                let p = Principal {
                    actor: format!("user:{name}"),
                    name: name.to_owned(),
                    bindings: vec![],
                };
                self.record_denied(
                    Some(&p),
                    origin,
                    AuditAction::AuthLoginFailed,
                    "POST",
                    "/v1/login",
                    "wrong user name or password",
                )
                .await;
                return Err(Error::Unauthorized("wrong user name or password".into()));
            }
        };
        let t = auth::generate_token();
        let first = user.bindings.first().cloned().unwrap_or(Binding {
            role: Role::Viewer,
            app: "*".into(),
            env: "*".into(),
        });
        let record = TokenRecord {
            id: t.id.clone(),
            name: format!("login:{name}"),
            hash: t.hash,
            role: first.role,
            app: first.app,
            env: first.env,
            created_at: self.kernel.now(),
            expires_at: Some(self.kernel.now() + ttl),
            revoked_at: None,
            user: Some(name.to_owned()),
        };
        let who = Principal {
            actor: format!("user:{name}"),
            name: name.to_owned(),
            bindings: user.bindings.clone(),
        };
        let m = Mutation::CreateToken(CreateToken {
            token: record,
            bootstrap: false,
        });
        let c = self
            .kernel
            .commit(
                &who,
                origin,
                "login",
                vec![(Some(AuditAction::AuthLogin), m)],
            )
            .await?;
        Ok(CreatedToken {
            token: t.secret,
            id: t.id,
            revision: c.revision,
        })
    }

    /// Authenticate a bearer credential (Cairn token or, when configured, a JWT).
    pub async fn authenticate_any(&self, credential: &str) -> Result<Principal> {
        if credential.starts_with("cairn_") {
            return self.authenticate(credential);
        }
        match self.jwt {
            Some(jwt) => jwt.verify(credential),
            None => Err(Error::Unauthorized("malformed token".into())),
        }
    }

    /// Record a refused request in the audit chain. Never fails the caller: a
    /// refusal is a refusal even if its record cannot be written (logged).
    pub async fn record_denied(
        &self,
        who: Option<&Principal>,
        origin: &Origin,
        action: AuditAction,
        method: &str,
        path: &str,
        reason: &str,
    ) {
        let actor = who.map_or_else(|| "anonymous".to_owned(), Principal::actor);
        let event = AuditEvent {
            action,
            app: None,
            env: None,
            key: None,
            detail: json!({"method": method, "path": path.chars().take(512).collect::<String>()}),
        };
        let message = reason.chars().take(512).collect();
        if let Err(e) = self
            .kernel
            .append_event(actor, origin, message, event)
            .await
        {
            tracing::error!(error = %e, %action, "could not record a denied request");
        }
    }

    /// Audit records `who` may read, oldest first: all of them for an admin
    /// on `*`/`*`; otherwise only entry and schema records of scopes `who`
    /// can read ([`policy::audit_visibility`]). The store applies that in its
    /// query, so `filter.limit` counts readable records and `next` pages
    /// through all of them.
    pub async fn audit(&self, who: &Principal, filter: &AuditFilter) -> Result<AuditPage> {
        if !who.can_somewhere(Action::Audit) {
            return Err(Error::Forbidden(
                "reading the audit log needs the viewer role or more".into(),
            ));
        }
        let admin = who.can(Action::Admin, None, None);
        let limit = filter.limit.map(|l| usize::try_from(l).unwrap_or(0));
        let query = AuditFilter {
            visible: (!admin).then(|| policy::audit_visibility(&who.bindings)),
            // One more than asked tells whether another page follows.
            limit: limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX).saturating_add(1)),
            ..filter.clone()
        };
        let mut records = self.kernel.store().audit(&query).await?;
        let next = match limit {
            Some(l) if records.len() > l => {
                records.truncate(l);
                records.last().map(|r| r.seq)
            }
            _ => None,
        };
        if !admin {
            // The same rule again in memory: a record the query let through
            // by mistake is dropped here, never shown.
            records.retain(|r| {
                policy::audit_visible(&who.bindings, &r.action, r.app.as_deref(), r.env.as_deref())
            });
        }
        Ok(AuditPage { records, next })
    }

    /// Walk the whole audit chain with the key derived from the master key.
    pub async fn verify_audit(&self, who: &Principal) -> Result<AuditVerification> {
        if !who.can(Action::Admin, None, None) {
            return Err(Error::Forbidden(
                "verifying the audit log needs the admin role".into(),
            ));
        }
        let head = self.kernel.store().audit_head().await?;
        let mut records: Vec<cairn_store::AuditRecord> = Vec::new();
        loop {
            let page = self
                .kernel
                .store()
                .audit(&AuditFilter {
                    after_seq: records.last().map(|r| r.seq),
                    limit: Some(5000),
                    ..AuditFilter::default()
                })
                .await?;
            let done = page.len() < 5000;
            records.extend(page);
            if done {
                break;
            }
        }
        // After a master-key change, older records were sealed with the
        // previous key's audit key: verify with every key we hold.
        let mut keys = vec![self.kernel.audit_key()];
        keys.extend(
            self.keys
                .previous()
                .iter()
                .map(|k| k.derive(Purpose::Audit)),
        );
        Ok(match chain::verify_with(&keys, &records, &head) {
            Ok(n) => AuditVerification {
                ok: true,
                records: n,
                first_bad: None,
            },
            Err(t) => AuditVerification {
                ok: false,
                records: t.seq - 1,
                first_bad: Some(t),
            },
        })
    }
}
