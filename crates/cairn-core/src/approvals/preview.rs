//! What a request would change (DESIGN.md §7, `change show`): per entry the
//! value before (live now) and after, and the resolved view of every
//! (app, env) it reaches before and after — what applications would read;
//! for a change of an environment's policy, its settings before and after.
//! Pure over the in-memory state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cairn_model::{Revision, Scope};
use cairn_store::{ChangeRecord, ChangeState, EntryVersion, Environment};
use serde::Serialize;
use serde_json::Value;

use super::{gate, problem, Approvals, ChangeContent, EnvChange};
use crate::config::catalog::validate_env_settings;
use crate::identity::auth::Principal;
use crate::kernel::state::{ResolvedView, ScopeEntries, State};
use crate::{Error, ErrorCode, Result};

/// One entry of a request, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryPreview {
    pub scope: Scope,
    pub key: String,
    pub base_version: i64,
    /// The live version now (0: absent): differs from `base_version` when
    /// the entry moved since the request (applying would conflict).
    pub current_version: i64,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// One resolved view the request reaches, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewPreview {
    pub app: String,
    pub env: String,
    pub before: BTreeMap<String, Value>,
    pub after: BTreeMap<String, Value>,
}

/// An environment's settings, now and with the change applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvPreview {
    pub name: String,
    pub base_revision: Revision,
    /// The revision its settings are at now (`None`: it no longer exists);
    /// differs from `base_revision` when they moved (applying would conflict).
    pub current_revision: Option<Revision>,
    pub before: Option<Environment>,
    pub after: Option<Environment>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    pub entries: Vec<EntryPreview>,
    pub views: Vec<ViewPreview>,
    /// A change of an environment's policy.
    pub environment: Option<EnvPreview>,
    /// Would it apply now (open and conflicted requests only; `None`
    /// otherwise)?
    pub check: Option<Check>,
}

/// Whether a request would apply if approved now: planned against the
/// committed state of today (schemas, references, flags, base versions)
/// without writing anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub applies: bool,
    /// Why not: `{code, message, violations}`, as a conflicted request's
    /// `conflict`.
    pub problem: Option<Value>,
}

fn env_preview(st: &State, change: &EnvChange) -> EnvPreview {
    let before = st.envs.get(&change.name).cloned();
    EnvPreview {
        name: change.name.clone(),
        base_revision: change.base_revision,
        current_revision: before.as_ref().map(|e| e.revision),
        after: before.as_ref().map(|e| change.applied_to(e)),
        before,
    }
}

/// The preview of `content` against `st`.
pub fn preview(st: &State, content: &ChangeContent) -> Preview {
    let entries = content
        .entries
        .iter()
        .map(|e| {
            let live = st.entry(&e.scope, &e.key);
            EntryPreview {
                scope: e.scope.clone(),
                key: e.key.clone(),
                base_version: e.base_version,
                current_version: live.map_or(0, |v| v.version),
                before: live.and_then(|v| v.value.clone()),
                after: e.value.clone(),
            }
        })
        .collect();
    let mut pairs = BTreeSet::new();
    for e in &content.entries {
        let apps: Vec<&String> = match &e.scope.app {
            Some(a) => st
                .apps
                .get_key_value(a)
                .map(|(k, _)| k)
                .into_iter()
                .collect(),
            None => st.apps.keys().collect(),
        };
        for app in apps {
            for env in gate::reached_envs(&st.envs, &e.scope) {
                pairs.insert((app.clone(), env.name.clone()));
            }
        }
    }
    let views = pairs
        .into_iter()
        .map(|(app, env)| {
            let before = st
                .view(&app, &env)
                .map(|v| v.values.clone())
                .unwrap_or_default();
            let after = view_after(st, content, &app, &env);
            ViewPreview {
                app,
                env,
                before,
                after,
            }
        })
        .collect();
    Preview {
        entries,
        views,
        environment: content.environment.as_ref().map(|c| env_preview(st, c)),
        check: None,
    }
}

/// The values of (app, env) with `content`'s entries written.
fn view_after(
    st: &State,
    content: &ChangeContent,
    app: &str,
    env: &str,
) -> BTreeMap<String, Value> {
    let layers = Scope::layers(app, env).map(|scope| {
        let mut entries: ScopeEntries = st.scopes.get(&scope).cloned().unwrap_or_default();
        for e in content.entries.iter().filter(|e| e.scope == scope) {
            match &e.value {
                None => {
                    entries.entries.remove(&e.key);
                }
                Some(value) => {
                    entries.entries.insert(
                        e.key.clone(),
                        Arc::new(EntryVersion {
                            scope: scope.clone(),
                            key: e.key.clone(),
                            version: e.base_version + 1,
                            kind: e.kind,
                            merge: e.merge,
                            value: Some(value.clone()),
                            checksum: String::new(),
                            revision: 0,
                            actor: String::new(),
                            message: String::new(),
                            created_at: chrono::DateTime::UNIX_EPOCH,
                        }),
                    );
                }
            }
        }
        entries
    });
    let [a, b, c, d] = &layers;
    ResolvedView::build(app, env, [Some(a), Some(b), Some(c), Some(d)]).values
}

impl Approvals<'_> {
    /// A request with its preview against the current state (`change
    /// show`), and for an open or conflicted one whether it would apply now.
    pub async fn show(&self, who: &Principal, id: &str) -> Result<(ChangeRecord, Preview)> {
        let record = self.get_record(who, id).await?;
        let content = ChangeContent::parse(&record)?;
        let mut preview = preview(&self.kernel.read(), &content);
        if record.state.is_open() || record.state == ChangeState::Conflicted {
            preview.check = Some(self.check(&record, &content, &preview.entries).await?);
        }
        Ok((record, preview))
    }

    /// Plan `content` as applying would (compare-and-set on its base
    /// versions, every validation against committed state), commit nothing.
    async fn check(
        &self,
        record: &ChangeRecord,
        content: &ChangeContent,
        entries: &[EntryPreview],
    ) -> Result<Check> {
        let moved = entries.iter().find(|e| e.base_version != e.current_version);
        let result = match (&content.environment, moved) {
            (_, Some(e)) => Err(Error::Conflict {
                message: format!(
                    "{} at {} moved since the request (version {} → {}): rebase it",
                    e.key, e.scope, e.base_version, e.current_version
                ),
                current_version: Some(e.current_version),
            }),
            (Some(change), None) => validate_env_settings(&change.settings()).and_then(|()| {
                match self.kernel.read().envs.get(&change.name) {
                    Some(env) if env.revision == change.base_revision => Ok(()),
                    Some(env) => Err(Error::Conflict {
                        message: format!(
                            "environment '{}' changed since the request (revision {} → {}): \
                             rebase it",
                            change.name, change.base_revision, env.revision
                        ),
                        current_version: None,
                    }),
                    None => Err(Error::not_found(format!("environment '{}'", change.name))),
                }
            }),
            (None, None) => {
                let system = Principal::system();
                match self
                    .config
                    .prepare(&system, &record.message, content.items())
                {
                    Ok(prepared) => self
                        .config
                        .plan_checked(
                            &system,
                            self.kernel.revision(),
                            &prepared,
                            content.audit_action(),
                        )
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => Ok(Check {
                applies: true,
                problem: None,
            }),
            Err(e) if e.code() != ErrorCode::Internal && e.code() != ErrorCode::Unavailable => {
                Ok(Check {
                    applies: false,
                    problem: Some(problem(&e)),
                })
            }
            Err(e) => Err(e),
        }
    }
}
