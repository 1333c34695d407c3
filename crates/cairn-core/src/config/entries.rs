//! Configuration entries: the write path (prepare, plan against memory,
//! commit with the plan's guard), deletes, rollbacks, and every read.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use cairn_model::{
    canonical_json, diff_values, glob_match, validate_any_key, validate_entry_key, validate_glob,
    validate_key, EntryKind, MergeMode, Revision, Scope, ValueDiff, MAX_CHANGESET_ENTRIES,
};
use cairn_store::{Committed, EntryVersion, Mutation, Read, StoreError};
use serde_json::Value;

use crate::config::schema::CompiledSchema;
use crate::config::Config;
use crate::identity::access::{check_read, check_resolve, check_write};
use crate::identity::auth::{Origin, Principal};
use crate::identity::policy::Action;
use crate::kernel::state::{ResolvedView, ScopeEntries};
use crate::{Error, Result, Violation};
use cairn_store::AuditAction;
use cairn_store::PutEntry;

/// What a write of entries did: the commit, and the flag warnings of what it
/// wrote (rules that can only yield null or an error; DESIGN.md §4).
#[derive(Debug, Clone)]
pub struct Written {
    pub committed: Committed,
    pub warnings: Vec<crate::flags::FlagWarning>,
}

/// A change item whose stateless checks passed, with its value's checksum.
pub(crate) struct Prepared {
    pub(crate) item: ChangeItem,
    checksum: String,
}

/// A change set planned against memory: what to commit, the warnings to
/// answer with, and what the plan read.
pub(crate) struct EntryPlan {
    pub(crate) mutations: Vec<(Option<AuditAction>, Mutation)>,
    pub(crate) warnings: Vec<crate::flags::FlagWarning>,
    pub(crate) guard: cairn_store::Guard,
    /// Each item's live version in the state the plan read (0: absent or
    /// deleted), in the items' order: a change request's base versions.
    pub(crate) bases: Vec<i64>,
}

/// One entry change inside a change set.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeItem {
    pub scope: Scope,
    pub key: String,
    pub kind: EntryKind,
    pub merge: MergeMode,
    /// `None` deletes.
    pub value: Option<Value>,
    /// Compare-and-set: `Some(0)` = must not exist.
    pub expected_version: Option<i64>,
}

impl Config<'_> {
    /// Validate and commit a change set of entries as one revision.
    ///
    /// The change set is planned and validated against memory at some
    /// revision; the commit carries that revision and what the validation
    /// read (`EntryPlan::guard`), so the store refuses it if a concurrent
    /// change touched any of it, and then it is planned again.
    pub async fn write_entries(
        &self,
        who: &Principal,
        origin: &Origin,
        message: &str,
        items: Vec<ChangeItem>,
        action: Option<AuditAction>,
    ) -> Result<Written> {
        // The values are checked and canonicalised once; only the checks
        // that read the state are made again on a retry.
        let items = &self.prepare(who, message, items)?;
        self.kernel
            .retrying(move || async move {
                // Taken before anything is read, so every read below sees at
                // least this revision and the guard covers whatever came after.
                let basis = self.kernel.revision();
                let plan = self.plan_checked(who, basis, items, action).await?;
                let committed = self
                    .kernel
                    .commit_guarded(who, origin, message, plan.mutations, Some(plan.guard))
                    .await?;
                Ok(committed.map(|committed| Written {
                    committed,
                    warnings: plan.warnings,
                }))
            })
            .await
    }

    /// Every check of a change set that reads no state: the message, its
    /// size, then each item ([`Config::prepare_items`]).
    pub(crate) fn prepare(
        &self,
        who: &Principal,
        message: &str,
        items: Vec<ChangeItem>,
    ) -> Result<Vec<Prepared>> {
        validate_message(message)?;
        if items.is_empty() {
            return Err(Error::invalid(
                "entries",
                "a change set needs at least one entry",
            ));
        }
        if items.len() > MAX_CHANGESET_ENTRIES {
            return Err(Error::TooLarge {
                field: "entries".into(),
                message: format!(
                    "{} entries; at most {MAX_CHANGESET_ENTRIES} per change set",
                    items.len()
                ),
            });
        }
        self.prepare_items(who, items)
    }

    /// Plan a prepared change set at `basis` with every check that reads
    /// the state: secret references (through the store), then
    /// [`Config::plan_entries`]. The one planning of the write path, shared
    /// by direct writes and change requests (requested, then applied).
    pub(crate) async fn plan_checked(
        &self,
        who: &Principal,
        basis: Revision,
        items: &[Prepared],
        action: Option<AuditAction>,
    ) -> Result<EntryPlan> {
        // Secret references must name secrets that exist (422 otherwise);
        // checked only where the caller may write, so that nobody else
        // learns which secrets exist (the plan refuses them).
        for Prepared { item, .. } in items {
            let (app, env) = (item.scope.app.as_deref(), item.scope.env.as_deref());
            if let (Some(value), true) = (&item.value, who.can(Action::Write, app, env)) {
                crate::secrets::check_references(self.kernel, &item.scope, value).await?;
            }
        }
        self.plan_entries(who, basis, items, action)
    }

    /// The checks of a change set that read no state: keys, duplicates,
    /// value sizes; each value is canonicalised here, once.
    fn prepare_items(&self, who: &Principal, items: Vec<ChangeItem>) -> Result<Vec<Prepared>> {
        let many = items.len() > 1;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let field = |f: &str| {
                if many {
                    format!("entries[{i}].{f}")
                } else {
                    f.to_owned()
                }
            };
            validate_entry_key(item.kind, &item.key)
                .map_err(|e| rename_field(e.into(), field("key")))?;
            check_write(who, &item.scope)?;
            if !seen.insert((item.scope.clone(), item.key.clone())) {
                return Err(Error::invalid(
                    field("key"),
                    format!("{} appears twice in one change set", item.key),
                ));
            }
            let checksum = match &item.value {
                Some(value) => {
                    let canon = canonical_json(value);
                    if canon.len() > self.max_value_bytes {
                        return Err(Error::TooLarge {
                            field: field("value"),
                            message: format!(
                                "{} bytes; at most {} bytes",
                                canon.len(),
                                self.max_value_bytes
                            ),
                        });
                    }
                    cairn_model::checksum_bytes(canon.as_bytes())
                }
                None => String::new(),
            };
            out.push(Prepared { item, checksum });
        }
        Ok(out)
    }

    /// Plan a prepared change set against memory: every check that reads
    /// the state (scopes, schemas, flags and segments, strict environments),
    /// the mutations, and the guard naming what those checks read.
    /// `basis` is a revision memory had reached before the plan's first read.
    fn plan_entries(
        &self,
        who: &Principal,
        basis: Revision,
        items: &[Prepared],
        action: Option<AuditAction>,
    ) -> Result<EntryPlan> {
        let st = self.kernel.read();
        let mut guard = cairn_store::Guard::new(basis);
        let mut mutations = Vec::with_capacity(items.len());
        let mut bases = Vec::with_capacity(items.len());
        for Prepared { item, checksum } in items {
            st.check_scope(&item.scope)?;
            bases.push(st.entry(&item.scope, &item.key).map_or(0, |e| e.version));
            // Nothing here depends on the entry's own current version: a
            // concurrent write of the same key is the compare-and-set's
            // business (`expected_version`), and its kind the store's.
            if let Some(value) = &item.value {
                if item.kind == EntryKind::Config {
                    guard.read(Read::SchemasFor {
                        app: item.scope.app.clone(),
                        key: item.key.clone(),
                    });
                }
                let violations =
                    schema_violations(&st.schemas, &item.scope, &item.key, item.kind, value);
                if !violations.is_empty() {
                    return Err(Error::SchemaViolation {
                        key: item.key.clone(),
                        violations,
                    });
                }
                let (app, env) = (item.scope.app.as_deref(), item.scope.env.as_deref());
                if who.can(Action::Write, app, env) {
                    for name in crate::secrets::references(value) {
                        guard.read(Read::Secret {
                            name,
                            from: item.scope.clone(),
                        });
                    }
                }
            }
            mutations.push((
                action,
                Mutation::PutEntry(PutEntry {
                    scope: item.scope.clone(),
                    key: item.key.clone(),
                    // One kind per (scope, key) is the store's check, inside
                    // the commit (`StoreError::KindConflict`); a delete
                    // takes the live entry's kind there.
                    kind: item.kind,
                    merge: item.merge,
                    value: item.value.clone(),
                    checksum: checksum.clone(),
                    expected_version: item.expected_version,
                }),
            ));
        }
        let warnings = crate::flags::validate_change_set(&st, &mutations, &mut guard)?;
        crate::flags::enforce_strict(&st, &warnings)?;
        if !warnings.is_empty() {
            guard.read(Read::Environments);
        }
        Ok(EntryPlan {
            mutations,
            warnings,
            guard,
            bases,
        })
    }

    /// Delete (scope, key): a tombstone version of the live entry's kind. A
    /// delete needs a message saying why.
    pub async fn delete_entry(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        key: &str,
        message: &str,
        expected_version: Option<i64>,
    ) -> Result<Written> {
        if message.trim().is_empty() {
            return Err(Error::invalid(
                "message",
                "a delete needs a message saying why",
            ));
        }
        let current = self.get(who, scope, key)?;
        let item = ChangeItem {
            scope: scope.clone(),
            key: key.to_owned(),
            kind: current.kind,
            merge: current.merge,
            value: None,
            expected_version,
        };
        self.write_entries(who, origin, message, vec![item], None)
            .await
    }

    /// Write a new version equal to version `version` of (scope, key).
    #[allow(clippy::too_many_arguments)] // who, where from, what, why: each is needed
    pub async fn rollback(
        &self,
        who: &Principal,
        origin: &Origin,
        scope: &Scope,
        key: &str,
        version: i64,
        message: &str,
        expected_version: Option<i64>,
    ) -> Result<Written> {
        if message.trim().is_empty() {
            return Err(Error::invalid(
                "message",
                "a rollback needs a message saying why",
            ));
        }
        let target = self.entry_version(who, scope, key, version).await?;
        let Some(value) = target.value else {
            return Err(Error::invalid(
                "version",
                format!("version {version} of {key} is a delete"),
            ));
        };
        let item = ChangeItem {
            scope: scope.clone(),
            key: key.to_owned(),
            kind: target.kind,
            merge: target.merge,
            value: Some(value),
            expected_version,
        };
        self.write_entries(
            who,
            origin,
            message,
            vec![item],
            Some(AuditAction::EntryRollback),
        )
        .await
    }

    /// Check a value against the schemas that govern (scope, key), without writing.
    pub fn validate_value(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        value: &Value,
    ) -> Result<Vec<Violation>> {
        validate_key(key)?;
        check_read(who, scope)?;
        let st = self.kernel.read();
        st.check_scope(scope)?;
        Ok(schema_violations(
            &st.schemas,
            scope,
            key,
            EntryKind::Config,
            value,
        ))
    }

    /// The current resolved view of (app, env).
    pub fn resolve(&self, who: &Principal, app: &str, env: &str) -> Result<Arc<ResolvedView>> {
        check_resolve(who, app, env)?;
        self.kernel.read().view(app, env)
    }

    /// The resolved view of (app, env) as of `revision`, read from the store.
    pub async fn resolve_at(
        &self,
        who: &Principal,
        app: &str,
        env: &str,
        revision: Revision,
    ) -> Result<ResolvedView> {
        check_resolve(who, app, env)?;
        self.kernel.read().check_view(app, env)?;
        let scopes = Scope::layers(app, env);
        let versions = self.entries_at(&scopes, revision).await?;
        let mut layers: [ScopeEntries; 4] = Default::default();
        for v in versions {
            if let Some(i) = scopes.iter().position(|s| *s == v.scope) {
                layers[i].apply(v);
            }
        }
        let [a, b, c, d] = &layers;
        Ok(ResolvedView::build(
            app,
            env,
            [Some(a), Some(b), Some(c), Some(d)],
        ))
    }

    pub(crate) async fn entries_at(
        &self,
        scopes: &[Scope],
        revision: Revision,
    ) -> Result<Vec<EntryVersion>> {
        if revision < 0 {
            return Err(Error::invalid("revision", "must be 0 or more"));
        }
        match self.kernel.store().entries_at(scopes, revision).await {
            Err(StoreError::NotFound { .. }) => Err(Error::not_found(format!(
                "revision {revision} (the latest is {})",
                self.kernel.revision()
            ))),
            other => Ok(other?),
        }
    }

    /// The live entry at (scope, key).
    pub fn get(&self, who: &Principal, scope: &Scope, key: &str) -> Result<Arc<EntryVersion>> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        let st = self.kernel.read();
        st.check_scope(scope)?;
        st.entry(scope, key)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("entry {key} at {scope}")))
    }

    /// The entry at (scope, key) as of `revision` (a delete reads as not found).
    pub async fn get_at(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        revision: Revision,
    ) -> Result<EntryVersion> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        self.entries_at(std::slice::from_ref(scope), revision)
            .await?
            .into_iter()
            .find(|v| v.key == key && !v.is_tombstone())
            .ok_or_else(|| {
                Error::not_found(format!("entry {key} at {scope} as of revision {revision}"))
            })
    }

    /// One version of one entry (deletes included, as tombstones).
    pub async fn entry_version(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        version: i64,
    ) -> Result<EntryVersion> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        self.kernel
            .store()
            .entry_version(scope, key, version)
            .await?
            .ok_or_else(|| Error::not_found(format!("version {version} of {key} at {scope}")))
    }

    /// Live entries at exactly `scope`, optionally filtered by key glob and kind.
    pub fn list(
        &self,
        who: &Principal,
        scope: &Scope,
        filter: Option<&str>,
        kind: Option<EntryKind>,
    ) -> Result<Vec<Arc<EntryVersion>>> {
        check_read(who, scope)?;
        if let Some(f) = filter {
            validate_glob(f).map_err(|e| rename_field(e.into(), "filter".into()))?;
        }
        let st = self.kernel.read();
        st.check_scope(scope)?;
        Ok(st
            .scopes
            .get(scope)
            .map(|s| {
                s.entries
                    .values()
                    .filter(|e| filter.is_none_or(|f| glob_match(f, &e.key)))
                    .filter(|e| kind.is_none_or(|k| e.kind == k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Live entries at exactly `scope` as of `revision`.
    pub async fn list_at(
        &self,
        who: &Principal,
        scope: &Scope,
        revision: Revision,
        filter: Option<&str>,
        kind: Option<EntryKind>,
    ) -> Result<Vec<EntryVersion>> {
        check_read(who, scope)?;
        if let Some(f) = filter {
            validate_glob(f).map_err(|e| rename_field(e.into(), "filter".into()))?;
        }
        self.kernel.read().check_scope(scope)?;
        let mut out: Vec<EntryVersion> = self
            .entries_at(std::slice::from_ref(scope), revision)
            .await?
            .into_iter()
            .filter(|e| !e.is_tombstone())
            .filter(|e| filter.is_none_or(|f| glob_match(f, &e.key)))
            .filter(|e| kind.is_none_or(|k| e.kind == k))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Every version of (scope, key), oldest first.
    pub async fn history(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
    ) -> Result<Vec<EntryVersion>> {
        validate_any_key(key)?;
        check_read(who, scope)?;
        let h = self.kernel.store().entry_history(scope, key).await?;
        if h.is_empty() {
            return Err(Error::not_found(format!("entry {key} at {scope}")));
        }
        Ok(h)
    }

    /// Diff two versions of (scope, key); a delete compares as `null`.
    pub async fn diff(
        &self,
        who: &Principal,
        scope: &Scope,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<ValueDiff> {
        let a = self.entry_version(who, scope, key, from).await?;
        let b = self.entry_version(who, scope, key, to).await?;
        let null = Value::Null;
        Ok(diff_values(
            a.value.as_ref().unwrap_or(&null),
            b.value.as_ref().unwrap_or(&null),
            &format!("{key}@v{from}"),
            &format!("{key}@v{to}"),
        ))
    }

    /// Checksums of the current views (for tests and diagnostics).
    pub fn view_checksums(&self) -> BTreeMap<(String, String), String> {
        let st = self.kernel.read();
        let mut out = BTreeMap::new();
        for app in st.apps.keys() {
            for env in st.envs.keys() {
                if let Ok(v) = st.view(app, env) {
                    out.insert((app.clone(), env.clone()), v.checksum.clone());
                }
            }
        }
        out
    }
}

pub(crate) fn schema_violations(
    schemas: &[Arc<CompiledSchema>],
    scope: &Scope,
    key: &str,
    kind: EntryKind,
    value: &Value,
) -> Vec<Violation> {
    schemas
        .iter()
        .filter(|s| s.applies_to(scope, key, kind))
        .flat_map(|s| s.violations(value, None))
        .collect()
}

pub(crate) fn rename_field(e: Error, field: String) -> Error {
    match e {
        Error::Invalid { message, .. } => Error::Invalid { field, message },
        other => other,
    }
}

pub(crate) fn validate_message(message: &str) -> Result<()> {
    if message.len() > 4096 {
        return Err(Error::TooLarge {
            field: "message".into(),
            message: "at most 4096 bytes".into(),
        });
    }
    Ok(())
}
