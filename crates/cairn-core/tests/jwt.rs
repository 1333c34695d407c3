//! Forged and valid JWTs against a JWKS (test-only keys in tests/fixtures).

use cairn_core::jwt::JwtVerifier;
use cairn_core::{Action, Error};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const JWKS: &str = include_str!("fixtures/jwks.json");
const KEY: &[u8] = include_bytes!("fixtures/jwt-rsa.pem");
const OTHER_KEY: &[u8] = include_bytes!("fixtures/jwt-other-rsa.pem");
const PUBLIC_PEM: &[u8] = include_bytes!("fixtures/jwt-rsa.pub.pem");

fn verifier() -> JwtVerifier {
    JwtVerifier::new("https://idp.example", "cairn", "cairn_roles", JWKS).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims() -> Value {
    json!({
        "iss": "https://idp.example", "aud": "cairn", "sub": "alice",
        "exp": now() + 300, "nbf": now() - 10,
        "cairn_roles": ["operator:billing:staging", "viewer"]
    })
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some("test-key-1".into());
    encode(&h, claims, key).unwrap()
}

fn rsa(key: &[u8]) -> EncodingKey {
    EncodingKey::from_rsa_pem(key).unwrap()
}

#[test]
fn a_valid_token_maps_its_roles() {
    let p = verifier()
        .verify(&sign(Algorithm::RS256, &rsa(KEY), &claims()))
        .unwrap();
    assert_eq!(p.actor, "jwt:alice");
    assert!(p.can(Action::Write, Some("billing"), Some("staging")));
    assert!(!p.can(Action::Write, Some("billing"), Some("prod")));
    assert!(p.can(Action::Read, Some("payments"), Some("prod")));
    assert!(!p.can(Action::Admin, None, None));
}

fn refused(token: &str, why: &str) {
    match verifier().verify(token) {
        Err(Error::Unauthorized(_)) | Err(Error::Forbidden(_)) => {}
        other => panic!("{why}: accepted or wrong error: {other:?}"),
    }
}

#[test]
fn forged_tokens_are_refused() {
    let c = claims();
    // alg: none (unsigned)
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    refused(
        &format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&c)
        ),
        "alg none",
    );
    // Signed by another key.
    refused(&sign(Algorithm::RS256, &rsa(OTHER_KEY), &c), "wrong key");
    // HS256 "signed" with the RSA public key as the HMAC secret (key confusion).
    refused(
        &sign(Algorithm::HS256, &EncodingKey::from_secret(PUBLIC_PEM), &c),
        "HS256 with the public key",
    );
    let mut wrong_aud = c.clone();
    wrong_aud["aud"] = json!("someone-else");
    refused(&sign(Algorithm::RS256, &rsa(KEY), &wrong_aud), "wrong aud");
    let mut wrong_iss = c.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    refused(&sign(Algorithm::RS256, &rsa(KEY), &wrong_iss), "wrong iss");
    let mut expired = c.clone();
    expired["exp"] = json!(now() - 3600);
    refused(&sign(Algorithm::RS256, &rsa(KEY), &expired), "expired");
    let mut early = c.clone();
    early["nbf"] = json!(now() + 3600);
    refused(&sign(Algorithm::RS256, &rsa(KEY), &early), "not yet valid");
    let mut no_roles = c.clone();
    no_roles["cairn_roles"] = json!(["superuser", "sdk"]);
    refused(
        &sign(Algorithm::RS256, &rsa(KEY), &no_roles),
        "no usable role",
    );
    let mut no_exp = c.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&sign(Algorithm::RS256, &rsa(KEY), &no_exp), "no exp");
    // Tampered payload with the original signature.
    let good = sign(Algorithm::RS256, &rsa(KEY), &c);
    let parts: Vec<&str> = good.split('.').collect();
    let mut admin = c.clone();
    admin["cairn_roles"] = json!(["admin"]);
    refused(
        &format!("{}.{}.{}", parts[0], b64(&admin), parts[2]),
        "tampered payload",
    );
    refused("not-a-jwt", "garbage");
}
