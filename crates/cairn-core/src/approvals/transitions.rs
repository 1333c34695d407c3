//! The transitions of a request, each one commit of its record under
//! compare-and-set on its version: approve (and apply after the N-th
//! distinct approval), reject, cancel, force, and the scheduler's tick
//! (apply what is due, expire what waited too long).

use chrono::{DateTime, Utc};

use cairn_store::{
    AuditAction, ChangeApproval, ChangeFilter, ChangeRecord, ChangeState, Committed, Mutation,
    PutChange,
};

use super::{
    allowed_everywhere, check_approvers, require_reason, require_state, Approvals, ChangeContent,
};
use crate::identity::auth::{Origin, Principal};
use crate::identity::policy::Action;
use crate::kernel::Actor;
use crate::{Error, ErrorCode, Result};

/// What one [`Approvals::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickRun {
    pub applied: Vec<String>,
    pub conflicted: Vec<String>,
    pub expired: Vec<String>,
}

/// The record's own mutations in the commit that applies it (an approval
/// first, when it completes the request, then the applied state), and the
/// version stored when it began (the record's compare-and-set).
struct RecordSteps {
    mutations: Vec<(Option<AuditAction>, Mutation)>,
    stored_version: i64,
}

/// `record` as the successor of the version before it.
fn put_change(record: &ChangeRecord, action: AuditAction) -> (Option<AuditAction>, Mutation) {
    (
        Some(action),
        Mutation::PutChange(PutChange {
            record: record.clone(),
            expected_version: record.version - 1,
        }),
    )
}

/// How applying a request's entries went.
enum Applying {
    Applied,
    /// Nothing written: an entry moved, or the content no longer validates.
    Failed(Error),
    /// The record moved under us (another replica, another approver).
    Lost,
}

impl Approvals<'_> {
    /// Approve a pending request. Never by its requester (403), nor by a
    /// principal who may not write in every environment it reaches (403),
    /// nor twice by one principal for the same content (409). After the
    /// N-th distinct approval it is applied, or `scheduled` until its
    /// `apply_at`.
    pub async fn approve(
        &self,
        who: &Principal,
        origin: &Origin,
        id: &str,
        note: &str,
    ) -> Result<ChangeRecord> {
        let current = self.get_record(who, id).await?;
        self.require_approver(who, &current)?;
        require_state(&current, &[ChangeState::Pending], "pending")?;
        if current
            .approvals
            .iter()
            .any(|a| a.principal == who.identity() && a.content_hash == current.content_hash)
        {
            return Err(Error::Conflict {
                message: format!("{} has already approved change {id}", who.actor()),
                current_version: Some(current.version),
            });
        }
        let now = self.kernel.now();
        let mut next = current.clone();
        next.approvals.push(ChangeApproval {
            principal: who.identity().to_owned(),
            actor: who.actor(),
            at: now,
            note: note.to_owned(),
            content_hash: current.content_hash.clone(),
        });
        let approved = next.valid_approvals() >= current.required_approvals.max(1) as usize;
        if approved {
            // Approved: waiting for its time, or applied at once if due.
            next.state = ChangeState::Scheduled;
        }
        if approved && next.apply_at.is_none_or(|t| t <= now) {
            // The approval and the apply in one commit (two audit records,
            // one revision).
            next.version = current.version + 1;
            next.updated_at = now;
            let (r, moved) = self.apply(who, origin, &current, Some(next), now).await?;
            if !moved {
                return Err(Error::Conflict {
                    message: format!(
                        "change {id} changed while it was being approved (now {}); look at it again",
                        r.state.as_str()
                    ),
                    current_version: Some(r.version),
                });
            }
            return Ok(r);
        }
        self.put(who, origin, &current, next, AuditAction::ChangeApprove, now)
            .await
    }

    /// Reject an open request, with a reason (principals who may approve it).
    pub async fn reject(
        &self,
        who: &Principal,
        origin: &Origin,
        id: &str,
        reason: &str,
    ) -> Result<ChangeRecord> {
        require_reason(reason)?;
        let current = self.get_record(who, id).await?;
        if who.identity() != current.requester {
            self.require_approver(who, &current)?;
        }
        require_state(
            &current,
            &[ChangeState::Pending, ChangeState::Scheduled],
            "pending or scheduled",
        )?;
        let now = self.kernel.now();
        let mut next = current.clone();
        next.state = ChangeState::Rejected;
        next.reason = Some(reason.to_owned());
        self.put(who, origin, &current, next, AuditAction::ChangeReject, now)
            .await
    }

    /// Withdraw an open (or conflicted) request: the requester or an admin.
    pub async fn cancel(&self, who: &Principal, origin: &Origin, id: &str) -> Result<ChangeRecord> {
        let current = self.get_record(who, id).await?;
        if who.identity() != current.requester && !who.can(Action::Admin, None, None) {
            return Err(Error::Forbidden(format!(
                "only the requester or an admin may cancel {id}"
            )));
        }
        require_state(
            &current,
            &[
                ChangeState::Pending,
                ChangeState::Scheduled,
                ChangeState::Conflicted,
            ],
            "pending, scheduled or conflicted",
        )?;
        let now = self.kernel.now();
        let mut next = current.clone();
        next.state = ChangeState::Cancelled;
        self.put(who, origin, &current, next, AuditAction::ChangeCancel, now)
            .await
    }

    /// Apply an open request now, past its approvals: admins only, with a
    /// reason; recorded `forced`.
    pub async fn force(
        &self,
        who: &Principal,
        origin: &Origin,
        id: &str,
        reason: &str,
    ) -> Result<ChangeRecord> {
        require_reason(reason)?;
        let current = self.get_record(who, id).await?;
        if !who.can(Action::Admin, None, None) {
            return Err(Error::Forbidden(
                "forcing a change past approval needs the admin role".into(),
            ));
        }
        require_state(
            &current,
            &[ChangeState::Pending, ChangeState::Scheduled],
            "pending or scheduled",
        )?;
        let mut forced = current.clone();
        forced.forced = true;
        forced.reason = Some(reason.to_owned());
        Ok(self
            .apply(who, origin, &forced, None, self.kernel.now())
            .await?
            .0)
    }

    /// Apply due scheduled requests and expire pending ones past their
    /// `expires_at`, as of `now`. Every step is a compare-and-set on the
    /// record, so two replicas ticking at once apply each request once: the
    /// one that loses the race skips it.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickRun> {
        let open = self
            .kernel
            .store()
            .changes(&ChangeFilter {
                states: vec![ChangeState::Pending, ChangeState::Scheduled],
                limit: None,
            })
            .await?;
        let system = Principal::system();
        let origin = Origin::default();
        let mut run = TickRun::default();
        for record in open {
            let done = match record.state {
                ChangeState::Scheduled if record.apply_at.is_none_or(|t| t <= now) => {
                    self.apply(&system, &origin, &record, None, now).await
                }
                ChangeState::Pending if record.expires_at <= now => {
                    let mut next = record.clone();
                    next.state = ChangeState::Expired;
                    self.put(
                        &system,
                        &origin,
                        &record,
                        next,
                        AuditAction::ChangeExpire,
                        now,
                    )
                    .await
                    .map(|r| (r, true))
                }
                _ => continue,
            };
            match done {
                Ok((r, true)) => match r.state {
                    ChangeState::Applied => run.applied.push(r.id),
                    ChangeState::Conflicted => run.conflicted.push(r.id),
                    ChangeState::Expired => run.expired.push(r.id),
                    _ => {}
                },
                // Someone else moved it first: not an error.
                Ok((_, false)) => {}
                Err(e) if is_lost_race(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(run)
    }

    /// Take (or renew) the scheduler's lease as `holder` and, if held, tick
    /// now. `None`: another replica holds the lease.
    pub async fn scheduler_tick(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<TickRun>> {
        if !self
            .kernel
            .store()
            .try_lease(super::LEASE, holder, ttl)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(self.tick(self.kernel.now()).await?))
    }

    /// Apply `record` (approved, or forced): its entries planned again against
    /// committed state (today's schemas, references, flags), compare-and-set
    /// on their base versions, and the record's `applied` state, in one
    /// commit. When an entry moved or the content no longer validates, the
    /// record alone becomes `conflicted` with the reason, nothing else is
    /// written. A record that moved meanwhile is returned as it now is,
    /// with `false` (this call did not move it).
    ///
    /// `approval`: the approval that completes `record` (its successor,
    /// not stored yet), committed in the same commit, before the applied
    /// state; when applying fails it is stored alone, then the conflict.
    pub(super) async fn apply(
        &self,
        who: &dyn Actor,
        origin: &Origin,
        record: &ChangeRecord,
        approval: Option<ChangeRecord>,
        now: DateTime<Utc>,
    ) -> Result<(ChangeRecord, bool)> {
        let content = ChangeContent::parse(record)?;
        let action = if record.forced {
            AuditAction::ChangeForce
        } else {
            AuditAction::ChangeApply
        };
        let base = approval.as_ref().unwrap_or(record);
        let mut applied = base.clone();
        applied.version = base.version + 1;
        applied.state = ChangeState::Applied;
        applied.updated_at = now;
        let mut steps = Vec::new();
        if let Some(a) = &approval {
            steps.push(put_change(a, AuditAction::ChangeApprove));
        }
        steps.push(put_change(&applied, action));
        let steps = RecordSteps {
            mutations: steps,
            stored_version: record.version,
        };
        match self
            .try_apply(who, origin, &content, &applied, steps)
            .await?
        {
            Applying::Applied => {
                let waited = (now - record.created_at).num_milliseconds() as f64 / 1000.0;
                self.kernel.metrics().change_applied(waited);
                Ok((self.reread(record).await?, true))
            }
            Applying::Lost => Ok((self.reread(record).await?, false)),
            Applying::Failed(e) => {
                let record = &match approval {
                    Some(a) => {
                        self.put(who, origin, record, a, AuditAction::ChangeApprove, now)
                            .await?
                    }
                    None => record.clone(),
                };
                let mut next = record.clone();
                next.state = ChangeState::Conflicted;
                next.forced = false;
                next.conflict = Some(super::problem(&e));
                self.put(who, origin, record, next, AuditAction::ChangeConflict, now)
                    .await
                    .map(|r| (r, true))
            }
        }
    }

    async fn try_apply(
        &self,
        who: &dyn Actor,
        origin: &Origin,
        content: &ChangeContent,
        applied: &ChangeRecord,
        steps: RecordSteps,
    ) -> Result<Applying> {
        let stored_version = steps.stored_version;
        if let Some(change) = &content.environment {
            let result = self
                .commit_env_change(who, origin, change, &applied.message, steps.mutations)
                .await;
            return self.applying(&applied.id, stored_version, result).await;
        }
        // Who may write was checked when the content was requested (edited,
        // rebased); applying re-checks the content itself, as the server.
        let system = &Principal::system();
        let prepared = match self
            .config
            .prepare(system, &applied.message, content.items())
        {
            Ok(p) => p,
            Err(e) if is_validation(&e) => return Ok(Applying::Failed(e)),
            Err(e) => return Err(e),
        };
        let (prepared, entry_action) = (&prepared, content.audit_action());
        let record_steps = &steps.mutations;
        let result = self
            .kernel
            .retrying(move || async move {
                let basis = self.kernel.revision();
                let plan = match self
                    .config
                    .plan_checked(system, basis, prepared, entry_action)
                    .await
                {
                    Ok(plan) => plan,
                    Err(e) if is_validation(&e) => return Ok(Ok(Err(e))),
                    Err(e) => return Err(e),
                };
                let mut mutations = plan.mutations;
                mutations.extend(record_steps.iter().cloned());
                let committed: std::result::Result<Committed, Error> = match self
                    .kernel
                    .commit_guarded(who, origin, &applied.message, mutations, Some(plan.guard))
                    .await
                {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(stale)) => return Ok(Err(stale)),
                    Err(e) => Err(e),
                };
                Ok(Ok(committed))
            })
            .await?;
        self.applying(&applied.id, stored_version, result).await
    }

    /// How an attempt to commit `applied` went: a conflict is the record's
    /// own compare-and-set (lost to another replica or approver) or the
    /// content's (it does not apply as it is).
    async fn applying(
        &self,
        id: &str,
        stored_version: i64,
        result: std::result::Result<Committed, Error>,
    ) -> Result<Applying> {
        match result {
            Ok(_) => Ok(Applying::Applied),
            Err(e) if e.code() == ErrorCode::Conflict => {
                // The record's own compare-and-set, or an entry's?
                let now = self.kernel.store().change(id).await?;
                if now.is_some_and(|r| r.version != stored_version) {
                    Ok(Applying::Lost)
                } else {
                    Ok(Applying::Failed(e))
                }
            }
            Err(e) if is_validation(&e) => Ok(Applying::Failed(e)),
            Err(e) => Err(e),
        }
    }

    /// Commit `next` as the successor of `current` (version + 1), recorded
    /// as `action`.
    pub(super) async fn put(
        &self,
        who: &dyn Actor,
        origin: &Origin,
        current: &ChangeRecord,
        mut next: ChangeRecord,
        action: AuditAction,
        now: DateTime<Utc>,
    ) -> Result<ChangeRecord> {
        next.version = current.version + 1;
        next.updated_at = now;
        let m = Mutation::PutChange(PutChange {
            record: next.clone(),
            expected_version: current.version,
        });
        self.kernel
            .commit(who, origin, &current.message, vec![(Some(action), m)])
            .await?;
        Ok(next)
    }

    async fn reread(&self, record: &ChangeRecord) -> Result<ChangeRecord> {
        self.kernel
            .store()
            .change(&record.id)
            .await?
            .ok_or_else(|| Error::not_found(format!("change {}", record.id)))
    }

    /// May `who` approve (or reject) `record`: not its requester, and
    /// allowed to write in every environment it reaches.
    fn require_approver(&self, who: &Principal, record: &ChangeRecord) -> Result<()> {
        if who.identity() == record.requester {
            return Err(Error::Forbidden(format!(
                "{} requested change {}; a requester cannot approve their own request",
                who.actor(),
                record.id
            )));
        }
        let content = ChangeContent::parse(record)?;
        let st = self.kernel.read();
        let envs: Vec<String> = st.envs.keys().cloned().collect();
        if !allowed_everywhere(who, Action::Write, &content, &envs) {
            return Err(Error::Forbidden(format!(
                "{} may not approve change {}: approving needs write access in every \
                 environment it reaches",
                who.actor(),
                record.id
            )));
        }
        if content.environment.is_some() && !who.can(Action::Admin, None, None) {
            return Err(Error::Forbidden(format!(
                "{} may not approve change {}: it changes an environment's policy, which needs \
                 the admin role",
                who.actor(),
                record.id
            )));
        }
        check_approvers(&st.envs, who, record)
    }
}

/// An error that says the content does not apply as it is (it becomes
/// `conflicted`), rather than that something failed.
fn is_validation(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Invalid
            | ErrorCode::TooLarge
            | ErrorCode::SchemaViolation
            | ErrorCode::UnknownReference
            | ErrorCode::NotFound
            | ErrorCode::Conflict
    )
}

/// A compare-and-set on a request's record lost to another replica.
fn is_lost_race(e: &Error) -> bool {
    e.code() == ErrorCode::Conflict
}
