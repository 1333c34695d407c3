//! Bearer tokens: generation, hashing, and the authenticated principal.
//!
//! A token reads `cairn_<id>_<secret>`; only the SHA-256 of the whole string is
//! stored. Lookup goes by the public id, then the fixed-length hashes are
//! compared in constant time.

use base64::Engine;
use cairn_store::{Binding, Role, TokenRecord, UserRecord};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::identity::policy::{self, Action};
use crate::{Error, Result};

/// Who is acting, as established from a token, a login or a JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// How this principal is named in audit records and history:
    /// `token:tok_…`, `user:alice`, `jwt:<sub>`, `system`.
    pub actor: String,
    /// Display name (token name, user name, subject).
    pub name: String,
    pub bindings: Vec<Binding>,
}

impl Principal {
    /// The one (app, env) this principal is bound to — exactly one binding,
    /// with an exact app and env (an SDK token) — which the SDK endpoints
    /// (OFREP without a view in the path, reports) read and write.
    pub fn bound_view(&self) -> Option<(&str, &str)> {
        let exact = |s: &str| !s.is_empty() && !s.contains(['*', '?']);
        match self.bindings.as_slice() {
            [b] if exact(&b.app) && exact(&b.env) => Some((&b.app, &b.env)),
            _ => None,
        }
    }

    /// Who this principal is, for rules that compare principals (a
    /// requester never approves their own change request): the user for a
    /// user session (`user:<name>`, whichever login token it came with), the
    /// token id for any other token (`token:tok_…`), the subject for a JWT.
    pub fn identity(&self) -> &str {
        &self.actor
    }

    /// How this principal is named in audit records and version history.
    pub fn actor(&self) -> String {
        self.actor.clone()
    }

    /// The built-in principal the server itself acts as (bootstrap, defaults).
    pub fn system() -> Self {
        Principal {
            actor: "system".into(),
            name: "system".into(),
            bindings: vec![Binding {
                role: Role::Admin,
                app: "*".into(),
                env: "*".into(),
            }],
        }
    }

    /// May this principal do `action` on an object at (app, env)?
    pub fn can(&self, action: Action, app: Option<&str>, env: Option<&str>) -> bool {
        policy::allowed(&self.bindings, action, app, env)
    }

    /// May this principal do `action` anywhere?
    pub fn can_somewhere(&self, action: Action) -> bool {
        policy::allowed_somewhere(&self.bindings, action)
    }
}

pub use crate::kernel::Origin;

impl crate::kernel::Actor for Principal {
    fn actor(&self) -> String {
        Principal::actor(self)
    }
}

/// A freshly made token: the secret (shown once) and what is stored.
pub struct NewToken {
    pub secret: String,
    pub id: String,
    pub hash: String,
}

/// Make a new random 256-bit token.
pub fn generate_token() -> NewToken {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = format!(
        "cairn_{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = hash_token(&secret);
    NewToken {
        secret,
        id: format!("tok_{id}"),
        hash,
    }
}

/// Hex SHA-256 of a token string.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The public id inside a token string, if it is well formed.
pub fn token_id(secret: &str) -> Option<String> {
    let rest = secret.strip_prefix("cairn_")?;
    let (id, tail) = rest.split_once('_')?;
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && tail.len() >= 43)
        .then(|| format!("tok_{id}"))
}

/// Check a presented token against its stored record. A login token acts
/// with its user's current bindings (`user` must be given then).
pub fn verify(
    record: &TokenRecord,
    user: Option<&UserRecord>,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Principal> {
    let presented = hash_token(secret);
    // Both are 64 hex characters: the comparison takes the same time wherever they differ.
    let same: bool = presented.as_bytes().ct_eq(record.hash.as_bytes()).into();
    if !same {
        return Err(Error::Unauthorized("invalid token".into()));
    }
    if record.revoked_at.is_some() {
        return Err(Error::Unauthorized("token revoked".into()));
    }
    if record.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::Unauthorized("token expired".into()));
    }
    match (&record.user, user) {
        (None, _) => Ok(Principal {
            actor: format!("token:{}", record.id),
            name: record.name.clone(),
            bindings: vec![Binding {
                role: record.role,
                app: record.app.clone(),
                env: record.env.clone(),
            }],
        }),
        (Some(name), Some(u)) if *name == u.name && !u.disabled => Ok(Principal {
            actor: format!("user:{name}"),
            name: name.clone(),
            bindings: u.bindings.clone(),
        }),
        _ => Err(Error::Unauthorized(
            "the token's user is unknown or disabled".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(t: &NewToken) -> TokenRecord {
        TokenRecord {
            id: t.id.clone(),
            name: "t".into(),
            hash: t.hash.clone(),
            role: Role::Admin,
            app: "*".into(),
            env: "*".into(),
            created_at: Utc::now(),
            expires_at: None,
            revoked_at: None,
            user: None,
        }
    }

    /// The comparison never sees the presented string itself: whatever its
    /// length, it is hashed to 64 hex characters first, and the two fixed-length
    /// hashes are compared with `subtle::ConstantTimeEq` (no early exit).
    #[test]
    fn presented_tokens_are_compared_as_fixed_length_hashes() {
        let t = generate_token();
        let r = record(&t);
        assert_eq!(r.hash.len(), 64);
        for len in [0usize, 1, 43, 63, 64, 65, 200] {
            let presented: String = t.secret.chars().cycle().take(len).collect();
            assert_eq!(hash_token(&presented).len(), 64);
            assert!(
                verify(&r, None, &presented, Utc::now()).is_err(),
                "length {len}"
            );
        }
        // Differing in the first or the last character is refused alike.
        let mut first = t.secret.clone().into_bytes();
        first[0] ^= 1;
        let mut last = t.secret.clone().into_bytes();
        *last.last_mut().unwrap() ^= 1;
        for bad in [first, last] {
            let bad = String::from_utf8(bad).unwrap();
            assert!(
                matches!(verify(&r, None, &bad, Utc::now()), Err(Error::Unauthorized(m)) if m == "invalid token")
            );
        }
    }

    #[test]
    fn tokens_round_trip_and_fail_closed() {
        let t = generate_token();
        assert_eq!(token_id(&t.secret).as_deref(), Some(t.id.as_str()));
        let mut r = record(&t);
        assert_eq!(
            verify(&r, None, &t.secret, Utc::now()).unwrap().actor,
            format!("token:{}", t.id)
        );
        // Change the last character (to one it is not: 'A' 1 time in 64).
        let mut forged = t.secret.clone();
        let last = forged.pop();
        forged.push(if last == Some('A') { 'B' } else { 'A' });
        assert_ne!(forged, t.secret);
        assert!(verify(&r, None, &forged, Utc::now()).is_err());
        r.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        assert!(
            matches!(verify(&r, None, &t.secret, Utc::now()), Err(Error::Unauthorized(m)) if m.contains("expired"))
        );
        r.expires_at = None;
        r.revoked_at = Some(Utc::now());
        assert!(
            matches!(verify(&r, None, &t.secret, Utc::now()), Err(Error::Unauthorized(m)) if m.contains("revoked"))
        );
        assert_ne!(generate_token().secret, t.secret);
        assert_eq!(token_id("nope"), None);
        assert_eq!(token_id("cairn_zz_abc"), None);
    }
}
