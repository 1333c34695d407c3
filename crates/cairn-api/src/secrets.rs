//! Secrets: `GET|POST /v1/secrets`, `GET|DELETE /v1/secrets/{name}`,
//! `POST /v1/secret-rotate/{name}`, `POST /v1/admin/rekey`.
//!
//! A secret's metadata, a written version and a rekey's outcome are
//! `cairn_core`'s (`SecretInfo`, `SecretWritten`, `Rekeyed`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A new secret. Without `value`, the `generator` makes one.
/// (No `Debug`: the value must never reach a log.)
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretBody {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_days: Option<i32>,
    /// A rotation interval in seconds (instead of `rotation_days`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_seconds: Option<i64>,
    #[serde(default)]
    pub grace_days: i32,
    /// `random:LEN:CHARSET` (alnum, alpha, numeric, hex, base64url), or
    /// `hook:URL`: rotations POST to the URL, which returns the new value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// With a `hook:URL` generator (required): the name of another secret
    /// whose value signs the hook's requests (`Cairn-Signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_secret: Option<String>,
    #[serde(default)]
    pub message: String,
}

/// Rotate now: the given value, or one from the secret's generator.
// No `Debug`: the value must never reach a log.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default)]
    pub message: String,
}

/// Re-wrap every data key under the server's current master key.
/// (No `Debug`: carries key material.)
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RekeyBody {
    /// The master key being retired (base64 or hex), unless the server has it
    /// among its previous master keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_key: Option<String>,
    #[serde(default)]
    pub message: String,
}

/// A secret's plaintext, as returned to an admin.
// No `Debug`: the value must never reach a log.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RevealedSecret {
    pub name: String,
    pub app: Option<String>,
    pub env: Option<String>,
    pub version: i64,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretDeleted {
    pub revision: i64,
}

/// The query of `GET /v1/secrets/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SecretQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    /// With `reveal=true`: this version (default: the current one).
    pub version: Option<i64>,
    /// Return the plaintext (admins only; audited).
    #[serde(default)]
    pub reveal: bool,
}

/// The scope of a secret, in the query (`POST /v1/secret-rotate/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SecretScopeQuery {
    pub app: Option<String>,
    pub env: Option<String>,
}

/// The query of `DELETE /v1/secrets/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteSecretQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    /// Why (required).
    pub message: Option<String>,
    /// Delete even while configuration references it.
    #[serde(default)]
    pub force: bool,
}
