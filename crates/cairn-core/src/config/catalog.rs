//! The catalog: apps, environments, and JSON Schemas (with the drift check).

use cairn_model::{validate_app, validate_env, validate_glob, Revision, Scope};
use cairn_store::{App, Committed, Environment, Mutation, Read, SchemaRecord};
use serde::Serialize;
use serde_json::Value;

use crate::config::schema::CompiledSchema;
use crate::config::Config;
use crate::identity::access::{hidden, require_admin};
use crate::identity::auth::{Origin, Principal};
use crate::identity::policy::Action;
use crate::{Error, Result, Violation};
use cairn_store::AuditAction;
use cairn_store::{CreateApp, CreateEnv, PutSchema, UpdateEnv};

/// Settings of a new or changed environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSettings {
    pub description: Option<String>,
    pub protected: Option<bool>,
    pub required_approvals: Option<i32>,
    pub auto_approve: Option<bool>,
    /// Flag-lint warnings refuse flag writes that reach the environment.
    pub strict_flags: Option<bool>,
    /// Who may approve changes that need its approval
    /// ([`crate::identity::policy::Approver`]); empty: whoever may write there.
    pub approvers: Option<Vec<String>>,
}

impl EnvSettings {
    /// `protected: true` without `auto_approve` means gated, on an update as
    /// on a create: `env set prod --protected true` turns approvals on even
    /// for an environment created open (whose `auto_approve` is true).
    pub fn with_protection_default(mut self) -> Self {
        if self.protected == Some(true) && self.auto_approve.is_none() {
            self.auto_approve = Some(false);
        }
        self
    }

    /// Does it change the environment's policy (anything but its
    /// description)? On a gated environment that needs its approval.
    pub fn changes_policy(&self) -> bool {
        self.protected.is_some()
            || self.required_approvals.is_some()
            || self.auto_approve.is_some()
            || self.strict_flags.is_some()
            || self.approvers.is_some()
    }
}

/// The outcome of registering a schema.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaRegistered {
    pub revision: Revision,
    pub version: i64,
    /// Stored values the schema rejects (only non-empty when forced).
    pub drift: Vec<Violation>,
}

impl Config<'_> {
    pub async fn create_app(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        description: &str,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        validate_app(name)?;
        let m = Mutation::CreateApp(CreateApp {
            name: name.to_owned(),
            description: description.to_owned(),
        });
        self.kernel
            .commit(who, origin, &format!("create app {name}"), vec![(None, m)])
            .await
    }

    pub async fn create_env(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        s: EnvSettings,
    ) -> Result<Committed> {
        require_admin(who, None)?;
        validate_env(name)?;
        validate_env_settings(&s)?;
        let m = Mutation::CreateEnv(CreateEnv {
            name: name.to_owned(),
            description: s.description.unwrap_or_default(),
            protected: s.protected.unwrap_or(false),
            required_approvals: s
                .required_approvals
                .unwrap_or(if s.protected == Some(true) { 1 } else { 0 }),
            auto_approve: s.auto_approve.unwrap_or(s.protected != Some(true)),
            strict_flags: s.strict_flags.unwrap_or(false),
            approvers: s.approvers.unwrap_or_default(),
        });
        self.kernel
            .commit(
                who,
                origin,
                &format!("create environment {name}"),
                vec![(None, m)],
            )
            .await
    }

    pub async fn update_env(
        &self,
        who: &Principal,
        origin: &Origin,
        name: &str,
        s: EnvSettings,
    ) -> Result<Committed> {
        let s = s.with_protection_default();
        self.check_env_update(who, name, &s)?;
        let m = Mutation::UpdateEnv(UpdateEnv {
            name: name.to_owned(),
            description: s.description,
            protected: s.protected,
            required_approvals: s.required_approvals,
            auto_approve: s.auto_approve,
            strict_flags: s.strict_flags,
            approvers: s.approvers,
            expected_revision: None,
        });
        self.kernel
            .commit(
                who,
                origin,
                &format!("update environment {name}"),
                vec![(None, m)],
            )
            .await
    }

    /// What a change of an environment's settings needs, however it is
    /// written (at once, or requested when the environment is gated): the
    /// admin role, a valid name and settings, something to change.
    pub(crate) fn check_env_update(
        &self,
        who: &Principal,
        name: &str,
        s: &EnvSettings,
    ) -> Result<()> {
        require_admin(who, None)?;
        validate_env(name)?;
        validate_env_settings(s)?;
        if *s == EnvSettings::default() {
            return Err(Error::invalid("settings", "nothing to change"));
        }
        Ok(())
    }

    /// Register the next version of the schema at (app, pattern). Stored
    /// values it would reject are reported; unless `force`, that refuses.
    #[allow(clippy::too_many_arguments)] // who, where from, what, why: each is needed
    pub async fn register_schema(
        &self,
        who: &Principal,
        origin: &Origin,
        app: Option<&str>,
        pattern: &str,
        schema: Value,
        force: bool,
        message: &str,
    ) -> Result<SchemaRegistered> {
        validate_glob(pattern)?;
        let app = match app {
            None | Some("") | Some(cairn_model::GLOBAL_APP) => None,
            Some(a) => Some(a.to_owned()),
        };
        require_admin(who, app.as_deref())?;
        let msg = if message.is_empty() {
            format!("register schema {pattern}")
        } else {
            message.to_owned()
        };
        let (app, schema, msg) = (&app, &schema, &msg);
        self.kernel
            .retrying(move || async move {
                let (guard, compiled, drift) =
                    self.plan_schema(who, app.as_ref(), pattern, schema, message)?;
                if !drift.is_empty() && !force {
                    return Err(Error::SchemaDrift { violations: drift });
                }
                let action = force
                    .then_some(AuditAction::SchemaRegisterForced)
                    .filter(|_| !drift.is_empty());
                let m = Mutation::PutSchema(PutSchema {
                    app: app.clone(),
                    pattern: pattern.to_owned(),
                    schema: schema.clone(),
                });
                let committed = self
                    .kernel
                    .commit_guarded(who, origin, msg, vec![(action, m)], Some(guard))
                    .await?;
                Ok(committed.map(|committed| SchemaRegistered {
                    revision: committed.revision,
                    version: committed
                        .applied
                        .first()
                        .and_then(|a| a.to_version)
                        .unwrap_or(compiled.record.version),
                    drift,
                }))
            })
            .await
    }

    /// Compile the schema's next version and check it against every stored
    /// value it applies to (the drift), in memory; the guard names those values.
    pub(crate) fn plan_schema(
        &self,
        who: &Principal,
        app: Option<&String>,
        pattern: &str,
        schema: &Value,
        message: &str,
    ) -> Result<(cairn_store::Guard, CompiledSchema, Vec<Violation>)> {
        let app = app.cloned();
        let st = self.kernel.read();
        if let Some(a) = &app {
            st.check_scope(&Scope::new(Some(a), None))?;
        }
        let version = st
            .schemas
            .iter()
            .find(|s| s.record.app == app && s.record.pattern == pattern)
            .map_or(1, |s| s.record.version + 1);
        let mut guard = cairn_store::Guard::new(st.head.revision);
        guard.read(Read::Matching {
            app: app.clone(),
            pattern: pattern.to_owned(),
        });
        let compiled = CompiledSchema::compile(SchemaRecord {
            app: app.clone(),
            pattern: pattern.to_owned(),
            version,
            schema: schema.clone(),
            revision: 0,
            actor: who.actor(),
            message: message.to_owned(),
            created_at: self.kernel.now(),
        })?;
        let mut drift = Vec::new();
        for (scope, entries) in &st.scopes {
            for (key, e) in &entries.entries {
                if let (true, Some(v)) = (compiled.applies_to(scope, key, e.kind), &e.value) {
                    drift.extend(compiled.violations(v, Some(&format!("{scope}:{key}"))));
                }
            }
        }
        Ok((guard, compiled, drift))
    }

    /// The apps `who` can see.
    pub fn apps(&self, who: &Principal) -> Vec<App> {
        self.kernel
            .read()
            .apps
            .values()
            .filter(|a| who.can(Action::Read, Some(&a.name), None))
            .cloned()
            .collect()
    }

    pub fn app(&self, who: &Principal, name: &str) -> Result<App> {
        if !who.can(Action::Read, Some(name), None) {
            return Err(hidden(format!("app '{name}'")));
        }
        self.kernel
            .read()
            .apps
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("app '{name}'")))
    }

    /// Environments (their names are not secret to anyone who can read).
    pub fn envs(&self, _who: &Principal) -> Vec<Environment> {
        self.kernel.read().envs.values().cloned().collect()
    }

    pub fn env(&self, _who: &Principal, name: &str) -> Result<Environment> {
        self.kernel
            .read()
            .envs
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("environment '{name}'")))
    }

    pub(crate) fn schema_visible(who: &Principal, r: &SchemaRecord) -> bool {
        who.can(Action::Read, r.app.as_deref(), None)
    }

    /// Active schemas `who` can see.
    pub fn schemas(&self, who: &Principal) -> Vec<SchemaRecord> {
        self.kernel
            .read()
            .schemas
            .iter()
            .map(|s| &s.record)
            .filter(|r| Self::schema_visible(who, r))
            .cloned()
            .collect()
    }

    /// Every version of every schema `who` can see.
    pub async fn schema_history(&self, who: &Principal) -> Result<Vec<SchemaRecord>> {
        let all = self.kernel.store().schema_history().await?;
        Ok(all
            .into_iter()
            .filter(|r| Self::schema_visible(who, r))
            .collect())
    }
}

pub(crate) fn validate_env_settings(s: &EnvSettings) -> Result<()> {
    if let Some(n) = s.required_approvals {
        if !(0..=10).contains(&n) {
            return Err(Error::invalid(
                "required_approvals",
                "must be between 0 and 10",
            ));
        }
    }
    if s.description.as_ref().is_some_and(|d| d.len() > 1024) {
        return Err(Error::TooLarge {
            field: "description".into(),
            message: "at most 1024 bytes".into(),
        });
    }
    if let Some(approvers) = &s.approvers {
        if approvers.len() > MAX_APPROVERS {
            return Err(Error::TooLarge {
                field: "approvers".into(),
                message: format!("at most {MAX_APPROVERS} approvers"),
            });
        }
        for (i, a) in approvers.iter().enumerate() {
            crate::identity::policy::Approver::parse(a)
                .map_err(|message| Error::invalid(format!("approvers[{i}]"), message))?;
        }
    }
    Ok(())
}

/// The longest `approvers` list of an environment.
pub const MAX_APPROVERS: usize = 64;
