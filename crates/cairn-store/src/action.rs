//! The audit actions: what an audit record says happened.

use std::fmt;

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What an audit record says happened. Written as its dotted name
        /// (`entry.set`), which the audit chain covers; see
        /// [`crate::AuditRecord::action`] for reading it back.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            /// Every action, in declaration order.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The dotted name stored in the audit log.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)*
                }
            }

            /// The action with this dotted name; `None` for a name this
            /// version does not know (a record written by a later version).
            pub fn parse(name: &str) -> Option<AuditAction> {
                match name {
                    $($name => Some(AuditAction::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    /// A new version of a configuration, flag or segment entry.
    EntrySet => "entry.set",
    /// A tombstone.
    EntryDelete => "entry.delete",
    /// A new version that copies an earlier one.
    EntryRollback => "entry.rollback",
    AppCreate => "app.create",
    EnvCreate => "env.create",
    EnvUpdate => "env.update",
    SchemaRegister => "schema.register",
    /// A schema registered although stored values violate it (`--force`).
    SchemaRegisterForced => "schema.register.forced",
    TokenCreate => "token.create",
    TokenRevoke => "token.revoke",
    UserCreate => "user.create",
    UserUpdate => "user.update",
    /// A password login (it also creates the session token).
    AuthLogin => "auth.login",
    AuthLoginFailed => "auth.login_failed",
    /// A request with a credential that does not authenticate.
    AuthFailed => "auth.failed",
    /// An authenticated request the policy refuses.
    AccessDenied => "access.denied",
    SecretCreate => "secret.create",
    SecretRotate => "secret.rotate",
    SecretDelete => "secret.delete",
    /// A data key re-wrapped under a new master key (rekey).
    SecretRewrap => "secret.rewrap",
    /// A plaintext read.
    SecretRead => "secret.read",
    /// A scheduled rotation that failed (it is retried with back-off).
    SecretRotationFailed => "secret.rotation_failed",
    WebhookCreate => "webhook.create",
    WebhookDelete => "webhook.delete",
    WebhookRewrap => "webhook.rewrap",
    /// A gated write became a change request.
    ChangeRequest => "change.request",
    /// A pending request's content changed (edit, rebase): approvals reset.
    ChangeEdit => "change.edit",
    ChangeApprove => "change.approve",
    ChangeReject => "change.reject",
    ChangeCancel => "change.cancel",
    /// Its entries were written (in the same revision).
    ChangeApply => "change.apply",
    /// Applied past approval by an admin, with a reason.
    ChangeForce => "change.force",
    /// Applying found a moved entry or a value that no longer validates.
    ChangeConflict => "change.conflict",
    ChangeExpire => "change.expire",
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    /// The names the audit log has always held (hand-written: records
    /// written by earlier versions must keep parsing to the same action).
    const NAMES: &[(&str, AuditAction)] = &[
        ("entry.set", AuditAction::EntrySet),
        ("entry.delete", AuditAction::EntryDelete),
        ("entry.rollback", AuditAction::EntryRollback),
        ("app.create", AuditAction::AppCreate),
        ("env.create", AuditAction::EnvCreate),
        ("env.update", AuditAction::EnvUpdate),
        ("schema.register", AuditAction::SchemaRegister),
        ("schema.register.forced", AuditAction::SchemaRegisterForced),
        ("token.create", AuditAction::TokenCreate),
        ("token.revoke", AuditAction::TokenRevoke),
        ("user.create", AuditAction::UserCreate),
        ("user.update", AuditAction::UserUpdate),
        ("auth.login", AuditAction::AuthLogin),
        ("auth.login_failed", AuditAction::AuthLoginFailed),
        ("auth.failed", AuditAction::AuthFailed),
        ("access.denied", AuditAction::AccessDenied),
        ("secret.create", AuditAction::SecretCreate),
        ("secret.rotate", AuditAction::SecretRotate),
        ("secret.delete", AuditAction::SecretDelete),
        ("secret.rewrap", AuditAction::SecretRewrap),
        ("secret.read", AuditAction::SecretRead),
        ("secret.rotation_failed", AuditAction::SecretRotationFailed),
        ("webhook.create", AuditAction::WebhookCreate),
        ("webhook.delete", AuditAction::WebhookDelete),
        ("webhook.rewrap", AuditAction::WebhookRewrap),
        ("change.request", AuditAction::ChangeRequest),
        ("change.edit", AuditAction::ChangeEdit),
        ("change.approve", AuditAction::ChangeApprove),
        ("change.reject", AuditAction::ChangeReject),
        ("change.cancel", AuditAction::ChangeCancel),
        ("change.apply", AuditAction::ChangeApply),
        ("change.force", AuditAction::ChangeForce),
        ("change.conflict", AuditAction::ChangeConflict),
        ("change.expire", AuditAction::ChangeExpire),
    ];

    #[test]
    fn names_round_trip_and_cover_every_action() {
        for (name, action) in NAMES {
            assert_eq!(action.as_str(), *name);
            assert_eq!(AuditAction::parse(name), Some(*action));
        }
        assert_eq!(NAMES.len(), AuditAction::ALL.len());
    }

    #[test]
    fn unknown_names_parse_to_none() {
        for name in [
            "",
            "entry",
            "entry.",
            "Entry.set",
            "entry.set ",
            "approval.grant",
        ] {
            assert_eq!(AuditAction::parse(name), None, "{name:?}");
        }
    }
}
