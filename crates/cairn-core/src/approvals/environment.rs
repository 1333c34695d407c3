//! Changes to an environment's own policy (DESIGN.md §7): on a gated
//! environment ([`gate::is_gated`]) a change of its `protected`,
//! `required_approvals`, `auto_approve`, `strict_flags` or `approvers` is a
//! change request gated by the policy it changes, so nobody unprotects an
//! environment to write to it unapproved. A description-only change, and any
//! change of an environment that is not gated, is written at once
//! (`Config::update_env`). Applying is one commit: `Mutation::UpdateEnv`
//! compare-and-set on the environment's revision when requested, plus the
//! record's `applied` state; if the settings moved meanwhile it becomes
//! `conflicted`.

use cairn_model::Revision;
use cairn_store::{
    AuditAction, ChangeRecord, ChangeState, Committed, Environment, Guard, Mutation, PutChange,
    Read, UpdateEnv,
};
use serde::{Deserialize, Serialize};

use super::{gate, new_record, random_id, Approvals, ChangeContent, Outcome, RequestOptions};
use crate::config::catalog::{validate_env_settings, EnvSettings};
use crate::identity::auth::{Origin, Principal};
use crate::kernel::Actor;
use crate::{Error, Result};

/// A requested change of an environment's settings: what it sets (absent
/// fields keep theirs) and the revision they were at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvChange {
    pub name: String,
    /// The environment's `revision` when requested (rebased): applying is
    /// compare-and-set on it.
    pub base_revision: Revision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_approvals: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_flags: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
}

impl EnvChange {
    fn new(name: &str, base_revision: Revision, s: &EnvSettings) -> Self {
        EnvChange {
            name: name.to_owned(),
            base_revision,
            description: s.description.clone(),
            protected: s.protected,
            required_approvals: s.required_approvals,
            auto_approve: s.auto_approve,
            strict_flags: s.strict_flags,
            approvers: s.approvers.clone(),
        }
    }

    pub fn settings(&self) -> EnvSettings {
        EnvSettings {
            description: self.description.clone(),
            protected: self.protected,
            required_approvals: self.required_approvals,
            auto_approve: self.auto_approve,
            strict_flags: self.strict_flags,
            approvers: self.approvers.clone(),
        }
    }

    /// `env` with this change applied (what it would read after).
    pub fn applied_to(&self, env: &Environment) -> Environment {
        let mut after = env.clone();
        if let Some(d) = &self.description {
            after.description = d.clone();
        }
        after.protected = self.protected.unwrap_or(env.protected);
        after.required_approvals = self.required_approvals.unwrap_or(env.required_approvals);
        after.auto_approve = self.auto_approve.unwrap_or(env.auto_approve);
        after.strict_flags = self.strict_flags.unwrap_or(env.strict_flags);
        if let Some(a) = &self.approvers {
            after.approvers = a.clone();
        }
        after
    }

    fn mutation(&self) -> Mutation {
        let s = self.settings();
        Mutation::UpdateEnv(UpdateEnv {
            name: self.name.clone(),
            description: s.description,
            protected: s.protected,
            required_approvals: s.required_approvals,
            auto_approve: s.auto_approve,
            strict_flags: s.strict_flags,
            approvers: s.approvers,
            expected_revision: Some(self.base_revision),
        })
    }
}

/// The gate of a change of `env`'s own policy: its approval, with at least one.
fn own_gate(env: &Environment) -> gate::Gate {
    gate::Gate {
        environments: vec![env.name.clone()],
        required: env.required_approvals.max(1),
    }
}

fn content_of(change: EnvChange) -> ChangeContent {
    ChangeContent {
        entries: Vec::new(),
        action: None,
        environment: Some(change),
    }
}

impl Approvals<'_> {
    /// Change an environment's settings (admins), or request the change
    /// when it is gated and the change touches its policy (anything but the
    /// description): the same checks as the direct write first (nothing is
    /// stored when they fail), then a pending request that needs the
    /// environment's own `required_approvals` (at least one), by its
    /// `approvers`.
    pub async fn update_env(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        s: EnvSettings,
        opts: RequestOptions,
    ) -> Result<Outcome<Committed>> {
        let s = s.with_protection_default();
        self.config.check_env_update(who, name, &s)?;
        let gated = self
            .kernel
            .read()
            .envs
            .get(name)
            .is_some_and(gate::is_gated);
        if !gated || !s.changes_policy() {
            return Ok(Outcome::Written(
                self.config.update_env(who, origin, name, s).await?,
            ));
        }
        let now = self.kernel.now();
        let id = random_id();
        let message = format!("update environment {name}");
        let (s, id, message, opts) = (&s, &id, &message, &opts);
        let record = self
            .kernel
            .retrying(move || async move {
                let (basis, env) = {
                    let st = self.kernel.read();
                    (st.head.revision, st.envs.get(name).cloned())
                };
                let env = env.ok_or_else(|| Error::not_found(format!("environment '{name}'")))?;
                let content = content_of(EnvChange::new(name, env.revision, s));
                let gate = own_gate(&env);
                let record = new_record(id, who, message, &content, gate, opts, now, self.expiry);
                self.commit_env_record(
                    who,
                    origin,
                    basis,
                    name,
                    record,
                    0,
                    AuditAction::ChangeRequest,
                )
                .await
            })
            .await?;
        Ok(Outcome::Requested(Box::new(record)))
    }

    /// Base a pending or conflicted environment change on the environment's
    /// current settings: pending, approvals reset.
    pub(super) async fn rebase_env(
        &self,
        who: &Principal,
        origin: &Origin,
        current: &ChangeRecord,
        change: EnvChange,
    ) -> Result<ChangeRecord> {
        let now = self.kernel.now();
        let change = &change;
        self.kernel
            .retrying(move || async move {
                let (basis, env) = {
                    let st = self.kernel.read();
                    (st.head.revision, st.envs.get(&change.name).cloned())
                };
                let env =
                    env.ok_or_else(|| Error::not_found(format!("environment '{}'", change.name)))?;
                let content = content_of(EnvChange {
                    base_revision: env.revision,
                    ..change.clone()
                });
                let mut next = current.clone();
                next.version = current.version + 1;
                next.state = ChangeState::Pending;
                next.content_hash = content.hash();
                next.content = content.to_value();
                // No longer gated: it keeps the gate it was requested under.
                if gate::is_gated(&env) {
                    let gate = own_gate(&env);
                    next.environments = gate.environments;
                    next.required_approvals = gate.required;
                }
                next.approvals.clear();
                next.conflict = None;
                next.updated_at = now;
                self.commit_env_record(
                    who,
                    origin,
                    basis,
                    &change.name,
                    next,
                    current.version,
                    AuditAction::ChangeEdit,
                )
                .await
            })
            .await
    }

    /// Commit `record` (compare-and-set on `expected_version`), guarded by
    /// environment `name`'s settings as of `basis`, so its base revision
    /// holds at the commit.
    #[allow(clippy::too_many_arguments)] // who, where from, what, against what, how recorded
    async fn commit_env_record(
        &self,
        who: &Principal,
        origin: &Origin,
        basis: Revision,
        name: &str,
        record: ChangeRecord,
        expected_version: i64,
        audit: AuditAction,
    ) -> Result<std::result::Result<ChangeRecord, crate::kernel::commit::Stale>> {
        let mut guard = Guard::new(basis);
        guard.read(Read::Environment {
            name: name.to_owned(),
        });
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
                Some(guard),
            )
            .await?;
        Ok(committed.map(|_| record))
    }

    /// Apply an approved (or forced) environment change: its settings,
    /// checked again, compare-and-set on its base revision, and the
    /// record's steps (the completing approval, if any, then `applied`, each
    /// compare-and-set on its version) in one commit. An error
    /// says why it does not apply (the caller tells a lost race on the
    /// record from a conflict of the environment).
    pub(super) async fn commit_env_change(
        &self,
        who: &dyn Actor,
        origin: &Origin,
        change: &EnvChange,
        message: &str,
        record_steps: Vec<(Option<AuditAction>, Mutation)>,
    ) -> Result<Committed> {
        validate_env_settings(&change.settings())?;
        let mut mutations = vec![(None, change.mutation())];
        mutations.extend(record_steps);
        self.kernel.commit(who, origin, message, mutations).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::ContentEntry;
    use cairn_model::{EntryKind, MergeMode, Scope};
    use serde_json::json;

    #[test]
    fn entry_content_reads_and_hashes_as_before() {
        // The canonical JSON of an entry request, written out by hand: a
        // content without an environment change has no `environment` member,
        // so requests stored before it existed keep their hash.
        let content = ChangeContent {
            entries: vec![ContentEntry {
                scope: Scope::new(None, Some("prod")),
                key: "a".into(),
                kind: EntryKind::Config,
                merge: MergeMode::Merge,
                value: Some(json!(1)),
                base_version: 0,
            }],
            action: None,
            environment: None,
        };
        let stored = json!({"entries": [{"scope": {"env": "prod"}, "key": "a",
            "kind": "config", "merge": "merge", "value": 1, "base_version": 0}]});
        assert_eq!(content.to_value(), stored);
        assert_eq!(content.hash(), cairn_model::checksum(&stored));
        let read: ChangeContent = serde_json::from_value(stored).unwrap();
        assert_eq!(read, content);
    }

    #[test]
    fn an_environment_change_sets_only_what_it_names() {
        let env = Environment {
            name: "prod".into(),
            description: "Production".into(),
            protected: true,
            required_approvals: 2,
            auto_approve: false,
            strict_flags: true,
            approvers: vec!["role:admin".into()],
            created_at: chrono::DateTime::UNIX_EPOCH,
            revision: 7,
        };
        let change = EnvChange {
            name: "prod".into(),
            base_revision: 7,
            description: None,
            protected: Some(false),
            required_approvals: None,
            auto_approve: None,
            strict_flags: None,
            approvers: Some(vec![]),
        };
        let after = change.applied_to(&env);
        assert!(!after.protected);
        assert!(after.approvers.is_empty());
        assert_eq!(
            (
                after.description.as_str(),
                after.required_approvals,
                after.strict_flags
            ),
            ("Production", 2, true)
        );
        assert_eq!(
            serde_json::to_value(&change).unwrap(),
            json!({"name": "prod", "base_revision": 7, "protected": false, "approvers": []})
        );
    }
}
