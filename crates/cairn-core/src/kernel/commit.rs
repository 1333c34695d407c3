//! The one commit function (the only caller of `Store::commit`), its guard,
//! planning again after a stale refusal, and appending the audit records
//! that are not changes.

use cairn_store::{AuditContext, AuditEvent, Commit, Committed, Mutation, StoreError};

use super::Kernel;
use crate::{Error, Result};
use cairn_store::AuditAction;

/// Who makes a change, as audit records name it (a principal, a scheduler).
pub trait Actor: Sync {
    fn actor(&self) -> String;
}

/// The request's origin, recorded with every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// How many times a write is planned before concurrent changes that keep
/// invalidating its plan make it give up (409).
pub const PLAN_ATTEMPTS: usize = 5;

/// A commit refused because a change committed after its plan's basis
/// touched what the plan read (what, for the message).
#[derive(Debug)]
pub(crate) struct Stale(pub(crate) String);

impl From<Stale> for Error {
    /// A stale plan that is not made again: 409, nothing written.
    fn from(Stale(what): Stale) -> Self {
        StoreError::Stale { what }.into()
    }
}

impl Kernel {
    /// Commit mutations whose validation read nothing the store must
    /// re-check (each carries its own compare-and-set, if any).
    pub(crate) async fn commit(
        &self,
        who: &dyn Actor,
        origin: &Origin,
        message: &str,
        mutations: Vec<(Option<AuditAction>, Mutation)>,
    ) -> Result<Committed> {
        Ok(self
            .commit_guarded(who, origin, message, mutations, None)
            .await??)
    }

    /// Run `attempt` — plan against memory, then [`Kernel::commit_guarded`]
    /// — until its plan still holds when it commits: after a [`Stale`]
    /// refusal this replica catches up and the plan is made (and validated)
    /// again, at most [`PLAN_ATTEMPTS`] times, then 409.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<std::result::Result<T, Stale>>>,
    {
        let mut last = String::new();
        for _ in 0..PLAN_ATTEMPTS {
            match attempt().await? {
                Ok(done) => return Ok(done),
                Err(Stale(what)) => {
                    self.metrics.plan_retried();
                    last = what;
                    self.sync().await?;
                }
            }
        }
        Err(Error::Conflict {
            message: format!(
                "concurrent changes kept invalidating this change ({PLAN_ATTEMPTS} attempts; \
                 last: {last}); nothing was written, try again"
            ),
            current_version: None,
        })
    }

    /// The one place that commits: every mutation goes to the store with its
    /// audit context in one transaction, then this replica catches up.
    /// With a `guard` (what the plan was validated against, at which
    /// revision), a change committed since that touches it refuses the commit:
    /// `Ok(Err(Stale))`, nothing written (see `cairn_store::guard`).
    pub(crate) async fn commit_guarded(
        &self,
        who: &dyn Actor,
        origin: &Origin,
        message: &str,
        mutations: Vec<(Option<AuditAction>, Mutation)>,
        guard: Option<cairn_store::Guard>,
    ) -> Result<std::result::Result<Committed, Stale>> {
        let commit = Commit {
            context: AuditContext {
                actor: who.actor(),
                message: message.to_owned(),
                client_ip: origin.client_ip.clone(),
                user_agent: origin.user_agent.clone(),
                replica: Some(self.replica.clone()),
            },
            mutations,
            seal: Some(self.audit_key),
            sink: self.audit_sink.clone(),
            guard,
        };
        let committed = match self.store.commit(commit).await {
            Ok(c) => c,
            Err(StoreError::Stale { what }) => return Ok(Err(Stale(what))),
            Err(e) => return Err(e.into()),
        };
        // The commit is durable; if catching up fails the sync loop retries.
        if let Err(e) = self.sync_past(committed.revision).await {
            tracing::warn!(error = %e, revision = committed.revision, "committed but could not refresh memory");
        }
        Ok(Ok(committed))
    }
}

impl Kernel {
    /// Append one audit record that is not a change (a refusal, a secret
    /// read, a failed rotation) to the sealed chain, as `actor` from `origin`.
    pub(crate) async fn append_event(
        &self,
        actor: String,
        origin: &Origin,
        message: String,
        event: AuditEvent,
    ) -> Result<()> {
        let context = AuditContext {
            actor,
            message,
            client_ip: origin.client_ip.clone(),
            user_agent: origin.user_agent.clone(),
            replica: Some(self.replica.clone()),
        };
        self.store
            .append_audit(
                &context,
                vec![event],
                Some(self.audit_key),
                self.audit_sink.as_ref(),
            )
            .await?;
        Ok(())
    }
}

/// `message`, or `default` when it is blank (the audit record's "why").
pub(crate) fn message_or(message: &str, default: &str) -> String {
    if message.trim().is_empty() {
        default.to_owned()
    } else {
        message.to_owned()
    }
}
