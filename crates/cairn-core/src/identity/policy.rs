//! Who may do what, where: roles × actions, and bindings at scopes.
//!
//! A principal holds bindings (role × app pattern × environment pattern).
//! An action on an object at a scope is allowed when some binding's role
//! allows the action and its patterns cover the object's scope. Objects set
//! for every app (global) or every environment are *visible* to anyone who can
//! see some app or environment (they are part of the views they can read), but
//! only changeable by a binding on `*`.

use cairn_model::glob_match;
use cairn_store::{AuditVisibility, Binding, Role, ScopeGlob};

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read a resolved view of (app, env) — the one thing SDK tokens may do.
    Resolve,
    /// Read entries, history, diffs, schemas, the catalog.
    Read,
    /// Read the audit log of what one can read.
    Audit,
    /// Write entries (set, delete, rollback, change sets).
    Write,
    /// Apps, environments, schemas, tokens, users; the whole audit log.
    Admin,
    /// Read a secret's plaintext (admins only; SDK tokens get the secrets
    /// their view references through resolution, not through this action).
    ReadSecret,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Resolve,
        Action::Read,
        Action::Audit,
        Action::Write,
        Action::Admin,
        Action::ReadSecret,
    ];

    fn needs_exact_scope(self) -> bool {
        matches!(self, Action::Write | Action::Admin | Action::ReadSecret)
    }
}

/// The role table (DESIGN.md §10).
pub fn role_allows(role: Role, action: Action) -> bool {
    match role {
        Role::Admin => true,
        Role::Operator => matches!(
            action,
            Action::Resolve | Action::Read | Action::Audit | Action::Write
        ),
        Role::Viewer => matches!(action, Action::Resolve | Action::Read | Action::Audit),
        Role::Sdk => matches!(action, Action::Resolve),
    }
}

/// Does a binding pattern cover a scope part? `None` is "every app/env".
fn covers(pattern: &str, name: Option<&str>, action: Action) -> bool {
    match name {
        Some(n) => pattern == "*" || glob_match(pattern, n),
        None => pattern == "*" || !action.needs_exact_scope(),
    }
}

/// Is `action` on an object at (app, env) allowed by any of `bindings`?
pub fn allowed(bindings: &[Binding], action: Action, app: Option<&str>, env: Option<&str>) -> bool {
    bindings.iter().any(|b| {
        role_allows(b.role, action) && covers(&b.app, app, action) && covers(&b.env, env, action)
    })
}

/// One item of an environment's `approvers` list.
///
/// - `role:admin`, `role:operator`, `role:viewer`: a principal holding that
///   role or a higher one (viewer < operator < admin) through a binding
///   whose environment pattern covers the environment (an SDK token never).
/// - `user:NAME`: that user, whichever token they act with (a login token
///   acts as `user:NAME`, [`crate::Principal::identity`]). The user need not
///   exist yet.
///
/// The list narrows who may approve; it never widens it: approving still
/// needs write access in every environment the change reaches (an
/// environment's own policy: the admin role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approver {
    Role(Role),
    User(String),
}

impl Approver {
    /// Parse one item; the error says what is accepted.
    pub fn parse(item: &str) -> Result<Approver, String> {
        let refuse = || {
            format!(
                "{item:?} is not an approver: use role:admin, role:operator, role:viewer or \
                 user:NAME"
            )
        };
        match item.split_once(':') {
            Some(("role", r)) => match Role::parse(r) {
                Some(Role::Sdk) | None => Err(refuse()),
                Some(role) => Ok(Approver::Role(role)),
            },
            Some(("user", name)) if super::valid_user_name(name) => {
                Ok(Approver::User(name.to_owned()))
            }
            _ => Err(refuse()),
        }
    }

    /// Does the principal `identity` with `bindings` match this item for
    /// environment `env`?
    pub fn matches(&self, identity: &str, bindings: &[Binding], env: &str) -> bool {
        match self {
            Approver::User(name) => identity.strip_prefix("user:") == Some(name.as_str()),
            Approver::Role(role) => bindings
                .iter()
                .any(|b| rank(b.role) >= rank(*role) && (b.env == "*" || glob_match(&b.env, env))),
        }
    }
}

/// viewer < operator < admin; an SDK token holds no role that approves.
fn rank(role: Role) -> u8 {
    match role {
        Role::Sdk => 0,
        Role::Viewer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    }
}

/// Is `action` allowed anywhere at all (the coarse, per-endpoint check)?
pub fn allowed_somewhere(bindings: &[Binding], action: Action) -> bool {
    bindings.iter().any(|b| role_allows(b.role, action))
}

/// Audit actions about what a reader can read: entries and schemas. The rest
/// of the log (catalog, tokens, users, refusals, secrets) is for admins.
pub const AUDIT_VISIBLE_ACTIONS: [&str; 2] = ["entry.", "schema."];

/// Can a principal with `bindings` read this audit record? The rule of
/// [`audit_visibility`], for one record in memory.
pub fn audit_visible(
    bindings: &[Binding],
    action: &str,
    app: Option<&str>,
    env: Option<&str>,
) -> bool {
    AUDIT_VISIBLE_ACTIONS.iter().any(|p| action.starts_with(p))
        && allowed(
            bindings,
            Action::Audit,
            app.filter(|a| !a.is_empty()),
            env.filter(|e| !e.is_empty()),
        )
}

/// The audit records `bindings` may read, as a filter the store applies in
/// its query ([`audit_visible`] for every record): the visible actions at the
/// scopes of the bindings whose role allows [`Action::Audit`]. Global and
/// every-environment records are covered by any binding, as in [`allowed`].
pub fn audit_visibility(bindings: &[Binding]) -> AuditVisibility {
    AuditVisibility {
        action_prefixes: AUDIT_VISIBLE_ACTIONS.map(str::to_owned).to_vec(),
        scopes: bindings
            .iter()
            .filter(|b| role_allows(b.role, Action::Audit))
            .map(|b| ScopeGlob {
                app: b.app.clone(),
                env: b.env.clone(),
            })
            .collect(),
    }
}

/// Check a binding pattern as given by a user: `*`, or a name glob.
pub fn validate_pattern(field: &str, pattern: &str) -> Result<(), cairn_model::ModelError> {
    let ok = !pattern.is_empty()
        && pattern.len() <= 64
        && pattern.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'?')
        });
    if ok {
        Ok(())
    } else {
        Err(cairn_model::ModelError::invalid(
            field,
            format!("{pattern:?} is not a pattern: use `*` or a name with optional `*`/`?`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(role: Role, app: &str, env: &str) -> Binding {
        Binding {
            role,
            app: app.into(),
            env: env.into(),
        }
    }

    #[test]
    fn roles() {
        use Action::*;
        for a in Action::ALL {
            assert!(role_allows(Role::Admin, a));
        }
        assert!(role_allows(Role::Operator, Write) && !role_allows(Role::Operator, Admin));
        assert!(role_allows(Role::Viewer, Read) && !role_allows(Role::Viewer, Write));
        assert!(role_allows(Role::Sdk, Resolve) && !role_allows(Role::Sdk, Read));
        // Secret plaintext: admins only.
        for r in [Role::Operator, Role::Viewer, Role::Sdk] {
            assert!(!role_allows(r, ReadSecret), "{r:?}");
        }
    }

    #[test]
    fn scopes() {
        use Action::*;
        let op = [b(Role::Operator, "billing", "staging")];
        assert!(allowed(&op, Write, Some("billing"), Some("staging")));
        assert!(!allowed(&op, Write, Some("billing"), Some("prod")));
        assert!(!allowed(&op, Read, Some("billing"), Some("prod")));
        assert!(!allowed(&op, Read, Some("payments"), None));
        // Global values are part of the views the operator reads, but not theirs to change.
        assert!(allowed(&op, Read, None, Some("staging")));
        assert!(allowed(&op, Read, Some("billing"), None));
        assert!(!allowed(&op, Write, Some("billing"), None));
        assert!(!allowed(&op, Write, None, None));
        let wide = [b(Role::Operator, "*", "*")];
        assert!(allowed(&wide, Write, None, None));
        let globbed = [b(Role::Viewer, "bill*", "*")];
        assert!(allowed(&globbed, Read, Some("billing"), Some("prod")));
        assert!(!allowed(&globbed, Read, Some("payments"), Some("prod")));
        let two = [
            b(Role::Viewer, "*", "prod"),
            b(Role::Operator, "billing", "staging"),
        ];
        assert!(allowed(&two, Read, Some("payments"), Some("prod")));
        assert!(allowed(&two, Write, Some("billing"), Some("staging")));
        assert!(!allowed(&two, Write, Some("payments"), Some("prod")));
        assert!(validate_pattern("app", "bill*").is_ok());
        assert!(validate_pattern("app", "Bad").is_err());
    }
}
