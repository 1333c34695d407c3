//! Cairn's HTTP wire types, one definition each: `cairn-server` reads the
//! request bodies and queries and writes the results declared here,
//! `cairn-client` writes and reads the same types, and `docs/openapi.json`
//! documents them (utoipa). No HTTP stack, no IO.
//!
//! Records the server answers with as the store holds them (users, audit
//! records, entry versions, webhook deliveries) are `cairn_store`'s, and are
//! re-exported here so that both sides name them from one place.

mod catalog;
mod changes;
mod entries;
mod flags;
mod identity;
mod secrets;
mod webhooks;

pub use catalog::{CreateAppBody, EnvBody, RegisterSchemaBody, Revised, ValidateBody};

pub use changes::{
    ApplyCheck, ApproveBody, ChangePreview, ChangeRequested, ChangeShown, ChangesQuery,
    EditChangeBody, EntryChangePreview, EnvChangePreview, EnvPolicy, RejectBody, ViewChangePreview,
};

pub use entries::{
    ChangeEntryBody, ChangeSetBody, FlagWarning, RollbackBody, SetEntryBody, WriteResult,
    WrittenEntry,
};

pub use flags::{
    FlagsQuery, OfrepBulk, OfrepFailure, OfrepItem, OfrepRequest, OfrepSuccess, StaleQuery,
};

pub use identity::{AuditQuery, CreateTokenBody, CreateUserBody, LoginBody, UpdateUserBody};

pub use secrets::{
    CreateSecretBody, DeleteSecretQuery, RekeyBody, RevealedSecret, RotateSecretBody,
    SecretDeleted, SecretQuery, SecretScopeQuery,
};

pub use webhooks::{DeliveriesQuery, WebhookDeleted};

/// The store's records, as the server serializes them.
pub use cairn_store::{
    AuditRecord, Binding, ChangeApproval, ChangeRecord, ChangeState, DeliveryAttempt,
    DeliveryRecord, DeliveryStatus, EntryVersion, Role, UserRecord,
};
