//! The object-level access checks every feature applies (the coarse one
//! is the server's): an unreadable scope is hidden, answered like 404.

use cairn_model::Scope;

use crate::identity::auth::Principal;
use crate::identity::policy::Action;
use crate::{Error, Result};

pub(crate) fn hidden(what: String) -> Error {
    Error::Hidden { what }
}

/// Reading at a scope one cannot see answers "not found".
pub(crate) fn check_read(who: &Principal, scope: &Scope) -> Result<()> {
    if who.can(Action::Read, scope.app.as_deref(), scope.env.as_deref()) {
        Ok(())
    } else {
        Err(hidden(format!("scope {scope}")))
    }
}

/// Writing where one can read but not write is forbidden; where one cannot
/// even read, the scope does not exist for the caller.
pub(crate) fn check_write(who: &Principal, scope: &Scope) -> Result<()> {
    let (app, env) = (scope.app.as_deref(), scope.env.as_deref());
    if who.can(Action::Write, app, env) {
        Ok(())
    } else if who.can(Action::Read, app, env) {
        Err(Error::Forbidden(format!("not allowed to write at {scope}")))
    } else {
        Err(hidden(format!("scope {scope}")))
    }
}

pub(crate) fn check_resolve(who: &Principal, app: &str, env: &str) -> Result<()> {
    if who.can(Action::Resolve, Some(app), Some(env)) {
        Ok(())
    } else {
        Err(hidden(format!("view {app}/{env}")))
    }
}

/// Administration: of everything (`app == None`) or of one app.
pub(crate) fn require_admin(who: &Principal, app: Option<&str>) -> Result<()> {
    if who.can(Action::Admin, app, None) {
        Ok(())
    } else {
        Err(Error::Forbidden("this needs the admin role".into()))
    }
}
