//! What a commit changes: one [`Mutation`] per change, each variant carrying
//! its own struct, which is the contract between the service (which builds
//! it) and every backend (which applies it).

use cairn_model::{EntryKind, MergeMode, Scope};
use serde_json::Value;

use crate::{
    AuditAction, Binding, ChangeRecord, ChangeState, NewWebhook, SealedSecret, SecretPolicy,
    TokenRecord,
};

/// One change inside a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    PutEntry(PutEntry),
    CreateApp(CreateApp),
    CreateEnv(CreateEnv),
    UpdateEnv(UpdateEnv),
    PutSchema(PutSchema),
    CreateToken(CreateToken),
    RevokeToken(RevokeToken),
    PutUser(PutUser),
    PutSecret(PutSecret),
    DeleteSecret(DeleteSecret),
    RewrapSecret(RewrapSecret),
    /// Subscribe a webhook; `AlreadyExists` if the id is taken.
    CreateWebhook(NewWebhook),
    DeleteWebhook(DeleteWebhook),
    RewrapWebhook(RewrapWebhook),
    PutChange(PutChange),
}

/// Write a new version of an entry; `value: None` writes a tombstone
/// (delete), which fails with `NotFound` if the entry is absent or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct PutEntry {
    pub scope: Scope,
    pub key: String,
    pub kind: EntryKind,
    pub merge: MergeMode,
    pub value: Option<Value>,
    /// Checksum of the canonical value (`""` for a tombstone).
    pub checksum: String,
    /// `Some(0)` = must not exist (or be deleted), `Some(n)` = current
    /// version must be `n`, else `Conflict`; `None` = no check.
    pub expected_version: Option<i64>,
}

/// Create an app; `AlreadyExists` if present.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateApp {
    pub name: String,
    pub description: String,
}

/// Create an environment; `AlreadyExists` if present.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateEnv {
    pub name: String,
    pub description: String,
    pub protected: bool,
    pub required_approvals: i32,
    pub auto_approve: bool,
    pub strict_flags: bool,
    /// Stored as given (the service validates them).
    pub approvers: Vec<String>,
}

/// Change an environment's settings (`None` keeps one); `NotFound` if absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateEnv {
    pub name: String,
    pub description: Option<String>,
    pub protected: Option<bool>,
    pub required_approvals: Option<i32>,
    pub auto_approve: Option<bool>,
    pub strict_flags: Option<bool>,
    pub approvers: Option<Vec<String>>,
    /// `Some(r)`: the environment's `revision` (its last settings change)
    /// must still be `r`, else [`crate::StoreError::EnvConflict`] (an
    /// approved change of its policy applies only to what was approved).
    pub expected_revision: Option<cairn_model::Revision>,
}

/// Register the next version of the schema at (app, pattern).
#[derive(Debug, Clone, PartialEq)]
pub struct PutSchema {
    pub app: Option<String>,
    pub pattern: String,
    pub schema: Value,
}

/// Store a token (its hash). With `bootstrap`, fails with `AlreadyExists`
/// unless no token exists at all (first start, safe across replicas).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateToken {
    pub token: TokenRecord,
    pub bootstrap: bool,
}

/// Revoke a token; `NotFound` if no such token id.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokeToken {
    pub id: String,
}

/// Create (`create: true`, `AlreadyExists` if present) or change (`NotFound`
/// if absent) a user. `password_hash: None` keeps the password; `bindings:
/// None` keeps the bindings; `disabled: None` keeps the state.
#[derive(Debug, Clone, PartialEq)]
pub struct PutUser {
    pub name: String,
    pub create: bool,
    pub password_hash: Option<String>,
    pub bindings: Option<Vec<Binding>>,
    pub disabled: Option<bool>,
}

/// Write the next version of a secret (sealed bytes only; never plaintext).
#[derive(Debug, Clone, PartialEq)]
pub struct PutSecret {
    pub scope: Scope,
    pub name: String,
    /// The number the ciphertext is bound to: it must be the last version
    /// ever written + 1, else `Conflict`.
    pub version: i64,
    pub sealed: SealedSecret,
    /// `None` keeps the current policy (a new secret gets the default).
    pub policy: Option<SecretPolicy>,
    /// A keyed hash of the plaintext, for the audit record.
    pub value_hash: String,
    /// As for entries (`Some(0)`: must not exist or be deleted).
    pub expected_version: Option<i64>,
}

/// Mark a secret deleted (its versions stay for the audit trail);
/// `NotFound` if absent or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteSecret {
    pub scope: Scope,
    pub name: String,
}

/// Replace the wrapped data key of one secret version in place (rekey);
/// `NotFound` if no such version.
#[derive(Debug, Clone, PartialEq)]
pub struct RewrapSecret {
    pub scope: Scope,
    pub name: String,
    pub version: i64,
    pub kek_id: String,
    pub wrapped_key: Vec<u8>,
}

/// Delete a webhook (kept for its delivery log) and cancel its pending
/// deliveries; `NotFound` if absent or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteWebhook {
    pub id: String,
}

/// Replace the wrapped data key of a webhook's signing secret (rekey);
/// `NotFound` if no such webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct RewrapWebhook {
    pub id: String,
    pub kek_id: String,
    pub wrapped_key: Vec<u8>,
}

/// Write a change request: create it (`expected_version: 0`, `AlreadyExists`
/// if the id is taken) or replace it (its stored version must be
/// `expected_version`, else `Conflict`). `record.version` must be
/// `expected_version + 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct PutChange {
    pub record: ChangeRecord,
    pub expected_version: i64,
}

impl Mutation {
    /// The audit action this mutation is recorded as.
    pub fn default_action(&self) -> AuditAction {
        match self {
            Mutation::PutEntry(PutEntry { value: None, .. }) => AuditAction::EntryDelete,
            Mutation::PutEntry(_) => AuditAction::EntrySet,
            Mutation::CreateApp(_) => AuditAction::AppCreate,
            Mutation::CreateEnv(_) => AuditAction::EnvCreate,
            Mutation::UpdateEnv(_) => AuditAction::EnvUpdate,
            Mutation::PutSchema(_) => AuditAction::SchemaRegister,
            Mutation::CreateToken(_) => AuditAction::TokenCreate,
            Mutation::RevokeToken(_) => AuditAction::TokenRevoke,
            Mutation::PutUser(PutUser { create: true, .. }) => AuditAction::UserCreate,
            Mutation::PutUser(_) => AuditAction::UserUpdate,
            Mutation::PutSecret(PutSecret {
                expected_version: Some(0),
                ..
            }) => AuditAction::SecretCreate,
            Mutation::PutSecret(_) => AuditAction::SecretRotate,
            Mutation::DeleteSecret(_) => AuditAction::SecretDelete,
            Mutation::RewrapSecret(_) => AuditAction::SecretRewrap,
            Mutation::CreateWebhook(_) => AuditAction::WebhookCreate,
            Mutation::DeleteWebhook(_) => AuditAction::WebhookDelete,
            Mutation::RewrapWebhook(_) => AuditAction::WebhookRewrap,
            Mutation::PutChange(PutChange {
                expected_version: 0,
                ..
            }) => AuditAction::ChangeRequest,
            Mutation::PutChange(PutChange { record, .. }) => match record.state {
                ChangeState::Pending => AuditAction::ChangeEdit,
                ChangeState::Scheduled => AuditAction::ChangeApprove,
                ChangeState::Applied => AuditAction::ChangeApply,
                ChangeState::Rejected => AuditAction::ChangeReject,
                ChangeState::Cancelled => AuditAction::ChangeCancel,
                ChangeState::Conflicted => AuditAction::ChangeConflict,
                ChangeState::Expired => AuditAction::ChangeExpire,
            },
        }
    }

    /// Does this mutation change the catalog (anything but entries, secrets
    /// and webhooks)?
    pub fn is_catalog(&self) -> bool {
        !matches!(
            self,
            Mutation::PutEntry(_)
                | Mutation::PutSecret(_)
                | Mutation::DeleteSecret(_)
                | Mutation::RewrapSecret(_)
                | Mutation::CreateWebhook(_)
                | Mutation::DeleteWebhook(_)
                | Mutation::RewrapWebhook(_)
                | Mutation::PutChange(_)
        )
    }
}
