//! OIDC / JWT bearer tokens from an identity provider, verified against its
//! JWKS: the algorithm must fit the key (no `none`, no HMAC, no RSA/HMAC
//! confusion), and `iss`, `aud`, `exp` and `nbf` are checked.
//!
//! Roles come from one claim (default `cairn_roles`): a list of strings
//! `role` (on every app and environment) or `role:app:env` (patterns).

use cairn_store::{Binding, Role};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::identity::auth::Principal;
use crate::identity::policy::validate_pattern;
use crate::{Error, Result};

/// How JWTs are verified.
#[derive(Clone)]
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    roles_claim: String,
    keys: Vec<(Option<String>, DecodingKey, &'static [Algorithm])>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys.len())
            .finish()
    }
}

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC_ALGS: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const OKP_ALGS: &[Algorithm] = &[Algorithm::EdDSA];

impl JwtVerifier {
    /// From a JWKS document (the provider's `jwks_uri` content).
    pub fn new(issuer: &str, audience: &str, roles_claim: &str, jwks: &str) -> Result<Self> {
        let set: JwkSet = serde_json::from_str(jwks)
            .map_err(|e| Error::invalid("jwks", format!("not a JWKS document: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let algs = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => RSA_ALGS,
                AlgorithmParameters::EllipticCurve(_) => EC_ALGS,
                AlgorithmParameters::OctetKeyPair(_) => OKP_ALGS,
                // Shared secrets are never accepted from a JWKS.
                AlgorithmParameters::OctetKey(_) => continue,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| Error::invalid("jwks", format!("bad key: {e}")))?;
            keys.push((jwk.common.key_id.clone(), key, algs));
        }
        if keys.is_empty() {
            return Err(Error::invalid("jwks", "no usable public key"));
        }
        if issuer.is_empty() || audience.is_empty() {
            return Err(Error::invalid("oidc", "issuer and audience are required"));
        }
        Ok(JwtVerifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            roles_claim: roles_claim.to_owned(),
            keys,
        })
    }

    /// Verify a compact JWT and map its roles claim to bindings.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let bad = |m: &str| Error::Unauthorized(format!("invalid token: {m}"));
        let header = decode_header(token).map_err(|e| bad(&e.to_string()))?;
        let candidates: Vec<_> = self
            .keys
            .iter()
            .filter(|(kid, _, _)| header.kid.is_none() || *kid == header.kid)
            .collect();
        let (_, key, algs) = candidates.first().ok_or_else(|| bad("unknown key id"))?;
        if !algs.contains(&header.alg) {
            return Err(bad(&format!(
                "algorithm {:?} does not fit the key",
                header.alg
            )));
        }
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.leeway = 30;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Value>(token, key, &v).map_err(|e| bad(&e.to_string()))?;
        let sub = data
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bindings = self.bindings(&data.claims)?;
        Ok(Principal {
            actor: format!("jwt:{sub}"),
            name: sub.to_owned(),
            bindings,
        })
    }

    fn bindings(&self, claims: &Value) -> Result<Vec<Binding>> {
        let roles = match claims.get(&self.roles_claim) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for r in roles {
            let mut parts = r.splitn(3, ':');
            let role = parts
                .next()
                .and_then(Role::parse)
                .filter(|r| *r != Role::Sdk);
            let app = parts.next().unwrap_or("*");
            let env = parts.next().unwrap_or("*");
            if let (Some(role), true, true) = (
                role,
                validate_pattern("app", app).is_ok(),
                validate_pattern("env", env).is_ok(),
            ) {
                out.push(Binding {
                    role,
                    app: app.to_owned(),
                    env: env.to_owned(),
                });
            }
        }
        if out.is_empty() {
            return Err(Error::Forbidden(format!(
                "the token's {} claim grants no role",
                self.roles_claim
            )));
        }
        Ok(out)
    }
}
