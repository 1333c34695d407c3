//! Gated writes: a change set that reaches a protected environment is
//! planned like a direct write (every validation, nothing stored when it
//! fails) and stored as a pending request with its base versions; edits and
//! rebases plan it again. Reads of requests, access-checked.

use cairn_model::Revision;
use cairn_store::{
    AuditAction, ChangeFilter, ChangeRecord, ChangeState, Mutation, PutChange, Read,
};

use super::{
    gate, new_record, random_id, require_state, Approvals, ChangeContent, ContentEntry, Outcome,
    RequestOptions,
};
use crate::config::entries::{ChangeItem, Written};
use crate::identity::auth::{Origin, Principal};
use crate::identity::policy::Action;
use crate::{Error, Result};

impl Approvals<'_> {
    /// Write a change set, or request it when it reaches a gated
    /// environment ([`gate::gate`]): validated first exactly like
    /// `Config::write_entries` (an invalid change set is refused with the
    /// same error and nothing is stored), then stored as a pending request.
    pub async fn write_entries(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        items: Vec<ChangeItem>,
        action: Option<AuditAction>,
        opts: RequestOptions,
    ) -> Result<Outcome> {
        let items = match self
            .write_ungated(who, origin, message, items, action)
            .await?
        {
            Ok(written) => return Ok(Outcome::Written(written)),
            Err(items) => items,
        };
        let now = self.kernel.now();
        let id = random_id();
        let build = move |content: ChangeContent, gate: Option<gate::Gate>| {
            // Reached a gated environment when checked above; should the
            // policy change meanwhile, the request still needs an approval.
            let gate = gate.unwrap_or(gate::Gate {
                environments: Vec::new(),
                required: 1,
            });
            new_record(&id, who, message, &content, gate, &opts, now, self.expiry)
        };
        let record = self
            .planned_as(
                who,
                origin,
                message,
                items,
                action,
                AuditAction::ChangeRequest,
                build,
            )
            .await?;
        Ok(Outcome::Requested(Box::new(record)))
    }

    /// Write `items` directly if they reach no gated environment, exactly
    /// like `Config::write_entries`, with the environments' settings among
    /// what the plan read: should one become gated before the commit, it is
    /// planned again, and then it is not written but handed back (`Err`)
    /// to become a request. Never a direct write to an environment that
    /// was protected when it committed.
    async fn write_ungated(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        items: Vec<ChangeItem>,
        action: Option<AuditAction>,
    ) -> Result<std::result::Result<Written, Vec<ChangeItem>>> {
        let gated = |items: &mut dyn Iterator<Item = &ChangeItem>| {
            gate::gate(&self.kernel.read().envs, items.map(|i| &i.scope)).is_some()
        };
        if gated(&mut items.iter()) {
            return Ok(Err(items));
        }
        let prepared = self.config.prepare(who, message, items)?;
        let written = {
            let prepared = &prepared;
            self.kernel
                .retrying(move || async move {
                    // Taken before the gate and the plan read anything.
                    let basis = self.kernel.revision();
                    if gated(&mut prepared.iter().map(|p| &p.item)) {
                        return Ok(Ok(None));
                    }
                    let mut plan = self
                        .config
                        .plan_checked(who, basis, prepared, action)
                        .await?;
                    // The settings of the environments it reaches (every
                    // one, new ones too, for a scope of all of them).
                    for p in prepared {
                        plan.guard.read(match &p.item.scope.env {
                            Some(name) => Read::Environment { name: name.clone() },
                            None => Read::Environments,
                        });
                    }
                    let committed = self
                        .kernel
                        .commit_guarded(who, origin, message, plan.mutations, Some(plan.guard))
                        .await?;
                    Ok(committed.map(|committed| {
                        Some(Written {
                            committed,
                            warnings: plan.warnings,
                        })
                    }))
                })
                .await?
        };
        Ok(written.ok_or_else(|| prepared.into_iter().map(|p| p.item).collect()))
    }

    /// Replace the entries of a pending request (the requester or an
    /// admin): planned again, new base versions, approvals reset.
    pub async fn edit(
        &self,
        who: &Principal,
        origin: &Origin,
        id: &str,
        items: Vec<ChangeItem>,
    ) -> Result<ChangeRecord> {
        let current = self.get_record(who, id).await?;
        self.require_requester_or_admin(who, &current)?;
        require_state(&current, &[ChangeState::Pending], "pending")?;
        let content = ChangeContent::parse(&current)?;
        if let Some(env) = &content.environment {
            return Err(Error::invalid(
                "entries",
                format!(
                    "change {id} changes environment {}'s settings, not entries: cancel it and \
                     request the change again",
                    env.name
                ),
            ));
        }
        let action = content.audit_action();
        self.replan(
            who,
            origin,
            &current,
            items,
            action,
            AuditAction::ChangeEdit,
        )
        .await
    }

    /// Base a conflicted (or pending) request on the current versions of its
    /// entries: planned again, pending, approvals reset. The requester or an
    /// admin.
    pub async fn rebase(&self, who: &Principal, origin: &Origin, id: &str) -> Result<ChangeRecord> {
        let current = self.get_record(who, id).await?;
        self.require_requester_or_admin(who, &current)?;
        require_state(
            &current,
            &[ChangeState::Pending, ChangeState::Conflicted],
            "pending or conflicted",
        )?;
        let content = ChangeContent::parse(&current)?;
        if let Some(env) = content.environment {
            return self.rebase_env(who, origin, &current, env).await;
        }
        let mut items = content.items();
        for i in &mut items {
            i.expected_version = None;
        }
        let action = content.audit_action();
        self.replan(
            who,
            origin,
            &current,
            items,
            action,
            AuditAction::ChangeEdit,
        )
        .await
    }

    /// A request, if `who` may read the environments it is gated by.
    pub async fn get(&self, who: &Principal, id: &str) -> Result<ChangeRecord> {
        self.get_record(who, id).await
    }

    /// Requests `who` may read, newest first.
    pub async fn list(&self, who: &Principal, filter: &ChangeFilter) -> Result<Vec<ChangeRecord>> {
        let all = self.kernel.store().changes(filter).await?;
        Ok(all.into_iter().filter(|r| self.can_read(who, r)).collect())
    }

    pub(super) async fn get_record(&self, who: &Principal, id: &str) -> Result<ChangeRecord> {
        let hidden = || Error::Hidden {
            what: format!("change {id}"),
        };
        let record = self.kernel.store().change(id).await?.ok_or_else(hidden)?;
        if self.can_read(who, &record) {
            Ok(record)
        } else {
            Err(hidden())
        }
    }

    /// Reading a request needs reading each entry in every environment it
    /// is gated by (the views it is about); an environment change, reading
    /// in that environment.
    fn can_read(&self, who: &Principal, record: &ChangeRecord) -> bool {
        ChangeContent::parse(record).is_ok_and(|c| {
            c.environment
                .as_ref()
                .is_none_or(|env| who.can(Action::Read, None, Some(&env.name)))
                && c.entries.iter().all(|e| {
                    let app = e.scope.app.as_deref();
                    record
                        .environments
                        .iter()
                        .filter(|env| e.scope.env.as_ref().is_none_or(|own| own == *env))
                        .all(|env| who.can(Action::Read, app, Some(env)))
                })
        })
    }

    fn require_requester_or_admin(&self, who: &Principal, record: &ChangeRecord) -> Result<()> {
        if who.identity() == record.requester || who.can(Action::Admin, None, None) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "only the requester or an admin may change {}",
                record.id
            )))
        }
    }

    /// Plan `items` again for `current` (edit, rebase) and store the result:
    /// pending, new content and base versions, no approvals.
    async fn replan(
        &self,
        who: &Principal,
        origin: &Origin,
        current: &ChangeRecord,
        items: Vec<ChangeItem>,
        action: Option<AuditAction>,
        audit: AuditAction,
    ) -> Result<ChangeRecord> {
        let now = self.kernel.now();
        let message = current.message.clone();
        self.planned_as(
            who,
            origin,
            &message,
            items,
            action,
            audit,
            |content, gate| {
                let mut next = current.clone();
                next.version = current.version + 1;
                next.state = ChangeState::Pending;
                next.content_hash = content.hash();
                next.content = content.to_value();
                // An edit that no longer reaches a gated environment keeps the
                // gate it was requested under.
                if let Some(gate) = gate {
                    next.environments = gate.environments;
                    next.required_approvals = gate.required;
                }
                next.approvals.clear();
                next.conflict = None;
                next.updated_at = now;
                next
            },
        )
        .await
    }

    /// Plan `items` as `who` would write them directly, build the record
    /// from the content (with its base versions) and the gate, and commit
    /// it (`audit`: a new request, an edit, a rebase).
    #[allow(clippy::too_many_arguments)] // who, where from, what, why, how recorded: each is needed
    async fn planned_as(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        items: Vec<ChangeItem>,
        action: Option<AuditAction>,
        audit: AuditAction,
        build: impl Fn(ChangeContent, Option<gate::Gate>) -> ChangeRecord,
    ) -> Result<ChangeRecord> {
        let prepared = &self.config.prepare(who, message, items)?;
        let build = &build;
        let record = self
            .kernel
            .retrying(move || async move {
                let basis: Revision = self.kernel.revision();
                let mut plan = self
                    .config
                    .plan_checked(who, basis, prepared, action)
                    .await?;
                let mut entries = Vec::with_capacity(prepared.len());
                for (p, base) in prepared.iter().zip(&plan.bases) {
                    let item = &p.item;
                    // What a direct write's compare-and-set would refuse.
                    if let Some(expected) = item.expected_version {
                        if expected != *base {
                            return Err(Error::Conflict {
                                message: format!(
                                    "{} at {}: expected version {expected}, current version {base}",
                                    item.key, item.scope
                                ),
                                current_version: Some(*base),
                            });
                        }
                    }
                    // The base versions hold at the commit, or it is planned again.
                    plan.guard.read(Read::Entry {
                        scope: item.scope.clone(),
                        key: item.key.clone(),
                    });
                    entries.push(ContentEntry {
                        scope: item.scope.clone(),
                        key: item.key.clone(),
                        kind: item.kind,
                        merge: item.merge,
                        value: item.value.clone(),
                        base_version: *base,
                    });
                }
                let content = ChangeContent {
                    entries,
                    action: action.map(|a| a.as_str().to_owned()),
                    environment: None,
                };
                let gate = {
                    let st = self.kernel.read();
                    gate::gate(&st.envs, content.entries.iter().map(|e| &e.scope))
                };
                let record = build(content, gate);
                let expected_version = record.version - 1;
                let m = Mutation::PutChange(PutChange {
                    record: record.clone(),
                    expected_version,
                });
                let committed = self
                    .kernel
                    .commit_guarded(
                        who,
                        origin,
                        &record.message,
                        vec![(Some(audit), m)],
                        Some(plan.guard),
                    )
                    .await?;
                Ok(committed.map(|_| record))
            })
            .await?;
        Ok(record)
    }
}
