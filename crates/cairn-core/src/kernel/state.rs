//! The in-memory state every replica keeps: the catalog, the current version
//! of every entry by scope, and each resolved (app, env) view pre-serialized
//! with its checksum and ETag. Reads are served from here, never from the
//! database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use cairn_model::{checksum, resolve_layers, EntryKind, LayerValue, Revision, Scope};
use cairn_store::{App, Catalog, EntryVersion, Environment, Head, TokenRecord, UserRecord};
use serde::Serialize;
use serde_json::Value;

use crate::config::schema::CompiledSchema;
use crate::flags::{FlagView, Stats};
use crate::{Error, Result};

/// What an application reads: every config key of (app, env), merged across
/// the four scopes, with the revision it reflects and a checksum.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResolvedView {
    pub app: String,
    pub env: String,
    /// The latest revision that changed any entry of the view's four scopes.
    pub revision: Revision,
    /// `sha256:` of the canonical JSON of `values`.
    pub checksum: String,
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, Value>,
    /// Strong ETag of `body`.
    #[serde(skip)]
    pub etag: String,
    /// The JSON body, serialized once.
    #[serde(skip)]
    pub body: Bytes,
}

impl ResolvedView {
    /// Build a view from the four layers (least specific first).
    pub fn build(app: &str, env: &str, layers: [Option<&ScopeEntries>; 4]) -> Self {
        let empty = BTreeMap::new();
        let maps: Vec<&BTreeMap<String, Arc<EntryVersion>>> = layers
            .iter()
            .map(|l| l.map_or(&empty, |s| &s.entries))
            .collect();
        let values = resolve_layers(&maps, |e: &Arc<EntryVersion>| match (&e.value, e.kind) {
            (Some(value), EntryKind::Config) => Some(LayerValue {
                value,
                merge: e.merge,
            }),
            _ => None,
        });
        let revision = layers
            .iter()
            .flatten()
            .map(|s| s.last_revision)
            .max()
            .unwrap_or(0);
        let checksum = checksum(&Value::Object(values.clone().into_iter().collect()));
        let etag = format!(
            "\"{}-{}\"",
            revision,
            &checksum["sha256:".len().."sha256:".len() + 16]
        );
        let mut view = ResolvedView {
            app: app.to_owned(),
            env: env.to_owned(),
            revision,
            checksum,
            values,
            etag,
            body: Bytes::new(),
        };
        // Serializing a map of JSON values cannot fail.
        view.body = Bytes::from(serde_json::to_vec(&view).unwrap_or_default());
        view
    }
}

/// The live entries of one scope.
#[derive(Debug, Default, Clone)]
pub struct ScopeEntries {
    pub entries: BTreeMap<String, Arc<EntryVersion>>,
    /// Latest revision of any version written at this scope, deletes included.
    pub last_revision: Revision,
}

impl ScopeEntries {
    /// Apply a version (a tombstone removes the key).
    pub fn apply(&mut self, v: EntryVersion) {
        self.last_revision = self.last_revision.max(v.revision);
        if v.is_tombstone() {
            self.entries.remove(&v.key);
        } else {
            self.entries.insert(v.key.clone(), Arc::new(v));
        }
    }
}

#[derive(Default)]
pub struct State {
    pub head: Head,
    pub apps: BTreeMap<String, App>,
    pub envs: BTreeMap<String, Environment>,
    pub schemas: Vec<Arc<CompiledSchema>>,
    /// By token id.
    pub tokens: HashMap<String, TokenRecord>,
    /// By name.
    pub users: HashMap<String, UserRecord>,
    pub scopes: HashMap<Scope, ScopeEntries>,
    views: ViewCache<ResolvedView>,
    /// Compiled flag sets by (app, env), invalidated like `views` (see `crate::flags`).
    flag_views: ViewCache<FlagView>,
    /// Evaluation counts (in memory).
    flag_stats: Arc<Stats>,
}

impl State {
    pub fn set_catalog(
        &mut self,
        catalog: Catalog,
        tokens: Vec<TokenRecord>,
        users: Vec<UserRecord>,
    ) {
        self.users = users.into_iter().map(|u| (u.name.clone(), u)).collect();
        self.apps = catalog
            .apps
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        self.envs = catalog
            .envs
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        self.schemas = catalog
            .schemas
            .into_iter()
            .filter_map(|rec| match CompiledSchema::compile(rec) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    // Schemas are validated before they are stored; one that no
                    // longer compiles (library change) is skipped loudly.
                    tracing::error!(error = %e, "stored schema does not compile; skipped");
                    None
                }
            })
            .collect();
        self.tokens = tokens.into_iter().map(|t| (t.id.clone(), t)).collect();
    }

    /// Apply entry versions in revision order.
    pub fn apply_entries(&mut self, versions: Vec<EntryVersion>) {
        if versions.is_empty() {
            return;
        }
        for v in versions {
            self.views.invalidate(&v.scope);
            self.flag_views.invalidate(&v.scope);
            self.scopes.entry(v.scope.clone()).or_default().apply(v);
        }
    }

    pub fn set_scope_revision(&mut self, scope: Scope, revision: Revision) {
        let s = self.scopes.entry(scope).or_default();
        s.last_revision = s.last_revision.max(revision);
    }

    /// Does (app, env) name an existing view?
    pub fn check_view(&self, app: &str, env: &str) -> Result<()> {
        if !self.apps.contains_key(app) {
            return Err(Error::not_found(format!("app '{app}'")));
        }
        if !self.envs.contains_key(env) {
            return Err(Error::not_found(format!("environment '{env}'")));
        }
        Ok(())
    }

    /// Check that a scope names an existing app and environment.
    pub fn check_scope(&self, scope: &Scope) -> Result<()> {
        if let Some(app) = &scope.app {
            if !self.apps.contains_key(app) {
                return Err(Error::not_found(format!("app '{app}'")));
            }
        }
        if let Some(env) = &scope.env {
            if !self.envs.contains_key(env) {
                return Err(Error::not_found(format!("environment '{env}'")));
            }
        }
        Ok(())
    }

    /// The current resolved view of (app, env), built on first use and kept
    /// until a change touches one of its scopes.
    pub fn view(&self, app: &str, env: &str) -> Result<Arc<ResolvedView>> {
        self.check_view(app, env)?;
        Ok(self.views.get_or_build(app, env, || {
            let layers = Scope::layers(app, env).map(|s| self.scopes.get(&s));
            ResolvedView::build(app, env, layers)
        }))
    }

    /// The compiled flags of (app, env), built on first use and kept until a
    /// change touches one of its scopes.
    pub fn flag_view(&self, app: &str, env: &str) -> Result<Arc<FlagView>> {
        self.check_view(app, env)?;
        Ok(self.flag_views.get_or_build(app, env, || {
            let layers = Scope::layers(app, env).map(|s| self.scopes.get(&s));
            FlagView::build(app, env, layers, &self.flag_stats)
        }))
    }

    /// The flags' evaluation counts (in memory), which the flag views count in.
    pub fn flag_stats(&self) -> &Arc<Stats> {
        &self.flag_stats
    }

    /// The live entry at (scope, key).
    pub fn entry(&self, scope: &Scope, key: &str) -> Option<&Arc<EntryVersion>> {
        self.scopes.get(scope).and_then(|s| s.entries.get(key))
    }
}

/// Built views by app, then environment: looked up by `&str` under a read
/// lock (no allocation on a hit), dropped when a change touches their scopes.
pub struct ViewCache<T> {
    inner: std::sync::RwLock<HashMap<String, HashMap<String, Arc<T>>>>,
}

impl<T> Default for ViewCache<T> {
    fn default() -> Self {
        ViewCache {
            inner: std::sync::RwLock::new(HashMap::new()),
        }
    }
}

impl<T> ViewCache<T> {
    /// The cached view of (app, env), or `build` it and keep it.
    pub fn get_or_build(&self, app: &str, env: &str, build: impl FnOnce() -> T) -> Arc<T> {
        if let Some(v) = self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .and_then(|m| m.get(env))
        {
            return v.clone();
        }
        let view = Arc::new(build());
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(app.to_owned())
            .or_default()
            .insert(env.to_owned(), view.clone());
        view
    }

    /// Drop every view a change at `scope` affects.
    pub fn invalidate(&self, scope: &Scope) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for (app, envs) in inner.iter_mut() {
            envs.retain(|env, _| !scope.affects(app, env));
        }
    }
}
