//! Feature flags in the service (DESIGN.md §4).
//!
//! Flags are entries of kind `flag` (a flagd flag definition) and segments are
//! entries of kind `segment` (a JsonLogic rule, flagd's `$evaluators`), at the
//! usual four scopes, written through the one write path. This module adds:
//!
//! - write-time validation (`validate_change_set`): a flag must compile with
//!   the segments visible at its scope, a segment must be a rule object, and a
//!   change to a segment must not break a flag that uses it;
//! - [`FlagView`]: the compiled flag set of one (app, env) — for each key the
//!   most specific scope wins (replace, not merge) — with its flagd document
//!   serialized once, cached in [`State`] and dropped when a change touches one
//!   of its scopes, exactly like a [`crate::ResolvedView`];
//! - in-memory evaluation counts per flag and variant ([`Stats`]), and the flag
//!   list with lifecycle data ([`FlagInfo`]) and the stale list.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use cairn_eval::{CompiledFlag, EvalContext, FlagSet, Reason, Resolution};
use cairn_model::{canonical_json, EntryKind, Revision, Scope};
use cairn_store::EntryVersion;
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::identity::policy::Action;
use crate::kernel::state::{ScopeEntries, State};
use crate::kernel::Kernel;
use crate::{Error, Principal, Result, Violation};
use cairn_store::{Guard, Mutation, Read};

use cairn_eval::{Warning, WarningCode};
use cairn_store::AuditAction;
use cairn_store::PutEntry;

/// The `schema` named by flag and segment violations.
pub const SCHEMA_NAME: &str = "flagd";
/// The JSON Schema of flagd documents, named in served documents.
pub const FLAGD_SCHEMA_URL: &str = "https://flagd.dev/schema/v0/flags.json";

// ----------------------------------------------------------------------
// Write-time validation
// ----------------------------------------------------------------------

/// The layers visible at `at`, least specific first.
fn layers_of(at: &Scope) -> Vec<Scope> {
    let (app, env) = (at.app.as_deref(), at.env.as_deref());
    let mut out = vec![Scope::global()];
    if env.is_some() {
        out.push(Scope::new(None, env));
    }
    if app.is_some() {
        out.push(Scope::new(app, None));
    }
    if app.is_some() && env.is_some() {
        out.push(Scope::new(app, env));
    }
    out
}

/// One entry change of a change set, as validation sees it.
struct Item<'a> {
    scope: &'a Scope,
    key: &'a str,
    kind: EntryKind,
    value: Option<&'a Value>,
}

/// The segments visible at `at` once `items` are applied: most specific wins.
fn segments_at(st: &State, items: &[Item<'_>], at: &Scope) -> Map<String, Value> {
    let mut out = Map::new();
    for layer in layers_of(at) {
        if let Some(entries) = st.scopes.get(&layer) {
            for (key, e) in &entries.entries {
                if let (EntryKind::Segment, Some(v)) = (e.kind, &e.value) {
                    out.insert(key.clone(), v.clone());
                }
            }
        }
        for item in items.iter().filter(|i| *i.scope == layer) {
            let was_segment = st
                .entry(&layer, item.key)
                .is_some_and(|e| e.kind == EntryKind::Segment);
            match (item.value, item.kind) {
                (Some(v), EntryKind::Segment) => {
                    out.insert(item.key.to_owned(), v.clone());
                }
                _ if was_segment => {
                    // Deleted, or replaced by another kind: the less specific one shows again.
                    out.remove(item.key);
                    for lower in layers_of(&layer).iter().rev().skip(1) {
                        if let Some(e) = st.entry(lower, item.key) {
                            if let (EntryKind::Segment, Some(v)) = (e.kind, &e.value) {
                                out.insert(item.key.to_owned(), v.clone());
                                break;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn violation(entry: Option<String>, pointer: String, message: String) -> Violation {
    Violation {
        entry,
        pointer,
        message,
        schema: SCHEMA_NAME.to_owned(),
    }
}

pub use cairn_api::FlagWarning;

/// The warning `w` of the flag or segment at (scope, key), as the API reports it.
fn flag_warning(scope: &Scope, key: &str, w: &Warning) -> FlagWarning {
    FlagWarning {
        entry: format!("{scope}:{key}"),
        scope: scope.clone(),
        key: key.to_owned(),
        pointer: w.path.clone(),
        code: w.code.as_str().to_owned(),
        message: w.message.clone(),
    }
}

/// The probe flag a segment is compiled in (a condition position).
fn segment_probe(value: &Value) -> Value {
    json!({
        "state": "ENABLED",
        "variants": {"in": true, "out": false},
        "defaultVariant": "out",
        "targeting": {"if": [value, "in", null]},
    })
}

/// A pointer into the probe, made relative to the segment.
fn segment_pointer(path: &str) -> String {
    path.strip_prefix("/targeting/if/0")
        .unwrap_or(path)
        .to_owned()
}

/// Check a segment: a JSON object usable as a rule (compiled in a condition
/// position). `Ok` carries its warnings, pointers relative to the segment.
fn check_segment(
    name: &str,
    value: &Value,
    evaluators: &Map<String, Value>,
) -> Result<Vec<Warning>, (String, String)> {
    if !value.is_object() {
        return Err((
            String::new(),
            "a segment must be a JSON object (a JsonLogic rule)".into(),
        ));
    }
    let mut evaluators = evaluators.clone();
    evaluators.insert(name.to_owned(), value.clone());
    match CompiledFlag::compile(name, &segment_probe(value), &evaluators) {
        Ok(f) => Ok(f
            .warnings()
            .iter()
            .map(|w| Warning {
                path: segment_pointer(&w.path),
                ..w.clone()
            })
            .collect()),
        Err(e) => Err((segment_pointer(&e.path), e.message)),
    }
}

/// Check flag-set metadata: an object of strings, numbers and booleans.
fn check_flag_set(value: &Value) -> Result<(), (String, String)> {
    let Value::Object(m) = value else {
        return Err((String::new(), "flag-set metadata must be an object".into()));
    };
    for (k, v) in m {
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            let mut p = "/".to_owned();
            p.push_str(&k.replace('~', "~0").replace('/', "~1"));
            return Err((
                p,
                "metadata values must be strings, numbers or booleans".into(),
            ));
        }
    }
    Ok(())
}

/// The `$ref`s to missing evaluators of a compiled flag, by pointer.
fn missing_refs(f: &CompiledFlag) -> Vec<&str> {
    f.warnings()
        .iter()
        .filter(|w| w.code == WarningCode::MissingRef)
        .map(|w| w.path.as_str())
        .collect()
}

/// Validate the flags, segments and flag-set metadata of a change set (the
/// entry mutations the write path is about to commit) against the state it
/// will be applied to. Config entries are not looked at.
///
/// Refused (`Error::SchemaViolation`, schema `flagd`, every problem with its
/// JSON pointer): what flagd's schema refuses, and a segment change that
/// breaks a stored flag (it no longer compiles, or one of its `$ref`s no
/// longer resolves). Returned: the warnings of the flags and segments written.
///
/// What it reads is added to `guard`: the segments visible at every flag
/// written; for every segment changed, the flags that can see it and the
/// segments of their views.
pub(crate) fn validate_change_set(
    st: &State,
    mutations: &[(Option<AuditAction>, Mutation)],
    guard: &mut Guard,
) -> Result<Vec<FlagWarning>> {
    let items: Vec<Item<'_>> = mutations
        .iter()
        .filter_map(|(_, m)| match m {
            Mutation::PutEntry(PutEntry {
                scope,
                key,
                kind,
                value,
                ..
            }) => Some(Item {
                scope,
                key,
                kind: *kind,
                value: value.as_ref(),
            }),
            _ => None,
        })
        .collect();
    let items = &items[..];
    let was = |i: &Item<'_>, k: EntryKind| st.entry(i.scope, i.key).is_some_and(|e| e.kind == k);
    let segment_changes: Vec<&Scope> = items
        .iter()
        .filter(|i| i.kind == EntryKind::Segment || was(i, EntryKind::Segment))
        .map(|i| i.scope)
        .collect();
    for scope in &segment_changes {
        guard.read(Read::Seeing {
            kind: Some(EntryKind::Flag),
            layer: (*scope).clone(),
        });
        guard.read(Read::Overlapping {
            kind: EntryKind::Segment,
            scope: (*scope).clone(),
        });
    }
    let mut warnings = Vec::new();
    if segment_changes.is_empty()
        && !items
            .iter()
            .any(|i| matches!(i.kind, EntryKind::Flag | EntryKind::FlagSet))
    {
        return Ok(warnings);
    }
    let many = items.len() > 1;
    let name = |scope: &Scope, key: &str| format!("{scope}:{key}");
    let mut violations = Vec::new();
    let mut first_key = None;
    for item in items {
        let Some(value) = item.value else { continue };
        let entry = many.then(|| name(item.scope, item.key));
        let problem = match item.kind {
            EntryKind::Config => continue,
            EntryKind::Flag => {
                guard.read(Read::VisibleFrom {
                    kind: EntryKind::Segment,
                    at: item.scope.clone(),
                });
                let segments = segments_at(st, items, item.scope);
                match CompiledFlag::compile(item.key, value, &segments) {
                    Ok(f) => {
                        let ws = f.warnings().iter();
                        warnings.extend(ws.map(|w| flag_warning(item.scope, item.key, w)));
                        None
                    }
                    Err(e) => Some((e.path, e.message)),
                }
            }
            EntryKind::Segment => {
                let mut segments = segments_at(st, items, item.scope);
                segments.remove(item.key);
                match check_segment(item.key, value, &segments) {
                    Ok(ws) => {
                        let ws = ws.iter();
                        warnings.extend(ws.map(|w| flag_warning(item.scope, item.key, w)));
                        None
                    }
                    Err(p) => Some(p),
                }
            }
            EntryKind::FlagSet => check_flag_set(value).err(),
        };
        if let Some((pointer, message)) = problem {
            first_key.get_or_insert_with(|| item.key.to_owned());
            violations.push(violation(entry, pointer, message));
        }
    }
    // A segment change must not break a stored flag that can see it.
    if !segment_changes.is_empty() {
        for (scope, entries) in &st.scopes {
            if !segment_changes.iter().any(|s| s.is_visible_from(scope)) {
                continue;
            }
            for (key, e) in &entries.entries {
                let (EntryKind::Flag, Some(def)) = (e.kind, &e.value) else {
                    continue;
                };
                if items.iter().any(|i| i.scope == scope && i.key == key) {
                    continue; // checked above with its new value
                }
                let segments = segments_at(st, items, scope);
                let broken = match CompiledFlag::compile(key, def, &segments) {
                    Err(err) => Some((err.path, err.message)),
                    Ok(after) => {
                        let dangling = missing_refs(&after);
                        // Only then is the flag compiled as it stands, to tell
                        // a new dangling `$ref` from one it already had.
                        let had = if dangling.is_empty() {
                            None
                        } else {
                            CompiledFlag::compile(key, def, &segments_at(st, &[], scope)).ok()
                        };
                        let had: Vec<&str> = had.as_ref().map(missing_refs).unwrap_or_default();
                        dangling.into_iter().find(|p| !had.contains(p)).map(|p| {
                            (
                                p.to_owned(),
                                "a `$ref` here would name a segment that no longer exists"
                                    .to_owned(),
                            )
                        })
                    }
                };
                if let Some((pointer, message)) = broken {
                    first_key.get_or_insert_with(|| key.clone());
                    violations.push(violation(
                        Some(name(scope, key)),
                        pointer,
                        format!("this change would break flag {key}: {message}"),
                    ));
                }
            }
        }
    }
    match first_key {
        None => Ok(warnings),
        Some(key) => Err(Error::SchemaViolation { key, violations }),
    }
}

/// Refuse `warnings` that reach an environment whose policy is
/// `strict_flags` (a write at an all-environments scope reaches every one).
pub(crate) fn enforce_strict(st: &State, warnings: &[FlagWarning]) -> Result<()> {
    let strict_env = |w: &FlagWarning| {
        st.envs
            .values()
            .find(|e| e.strict_flags && w.scope.env.as_deref().is_none_or(|x| x == e.name))
            .map(|e| e.name.clone())
    };
    let mut violations = Vec::new();
    let mut first_key = None;
    for w in warnings {
        if let Some(env) = strict_env(w) {
            first_key.get_or_insert_with(|| w.key.clone());
            violations.push(violation(
                Some(w.entry.clone()),
                w.pointer.clone(),
                format!(
                    "{} (environment {env} refuses flag warnings: strict_flags)",
                    w.message
                ),
            ));
        }
    }
    match first_key {
        None => Ok(()),
        Some(key) => Err(Error::SchemaViolation { key, violations }),
    }
}

// ----------------------------------------------------------------------
// Evaluation counts
// ----------------------------------------------------------------------

/// Evaluations of one flag in one (app, env), since this process started.
#[derive(Debug, Default)]
pub struct FlagCounter {
    total: AtomicU64,
    /// Unix seconds; 0 = never.
    last: AtomicI64,
    /// By variant name (`""`: no variant — the caller's default or an error).
    by_variant: RwLock<HashMap<String, AtomicU64>>,
    /// What the store already holds, by variant (see [`Stats::drain`]).
    flushed: Mutex<HashMap<String, u64>>,
}

impl FlagCounter {
    fn record(&self, variant: Option<&str>, now_unix: i64) {
        self.record_n(variant, 1, now_unix);
    }

    /// Count `n` evaluations at once (an SDK's report).
    fn record_n(&self, variant: Option<&str>, n: u64, now_unix: i64) {
        self.total.fetch_add(n, Ordering::Relaxed);
        self.last.fetch_max(now_unix, Ordering::Relaxed);
        let variant = variant.unwrap_or("");
        {
            let map = self.by_variant.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get(variant) {
                c.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.by_variant.write().unwrap_or_else(|p| p.into_inner());
        map.entry(variant.to_owned())
            .or_default()
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Start from stored totals (already flushed).
    fn seed(&self, variant: &str, count: u64, last_unix: Option<i64>) {
        self.total.fetch_add(count, Ordering::Relaxed);
        if let Some(t) = last_unix {
            self.last.fetch_max(t, Ordering::Relaxed);
        }
        self.by_variant
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(variant.to_owned())
            .or_default()
            .fetch_add(count, Ordering::Relaxed);
        *self
            .flushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(variant.to_owned())
            .or_default() += count;
    }

    /// The increments since the last drain, by variant; marks them flushed.
    fn drain(&self) -> Vec<(String, u64)> {
        let map = self.by_variant.read().unwrap_or_else(|p| p.into_inner());
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (variant, n) in map.iter() {
            let n = n.load(Ordering::Relaxed);
            let done = flushed.entry(variant.clone()).or_default();
            if n > *done {
                out.push((variant.clone(), n - *done));
                *done = n;
            }
        }
        out
    }

    /// Give back increments whose flush failed.
    fn undrain(&self, variant: &str, count: u64) {
        if let Some(done) = self
            .flushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(variant)
        {
            *done = done.saturating_sub(count);
        }
    }

    fn snapshot(&self) -> (u64, Option<DateTime<Utc>>, BTreeMap<String, u64>) {
        let last = self.last.load(Ordering::Relaxed);
        let map = self.by_variant.read().unwrap_or_else(|p| p.into_inner());
        (
            self.total.load(Ordering::Relaxed),
            (last > 0)
                .then(|| Utc.timestamp_opt(last, 0).single())
                .flatten(),
            map.iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect(),
        )
    }
}

/// Evaluation counts of every flag, counted in memory, loaded from the store at
/// start and flushed to it periodically ([`Flags::flush_flag_counts`]). Each
/// replica flushes its own increments, so stored totals add up across replicas.
#[derive(Debug)]
pub struct Stats {
    since: DateTime<Utc>,
    counters: Mutex<HashMap<(String, String, String), Arc<FlagCounter>>>,
    /// `created_at` of version 1 of (scope, key): immutable, so cached.
    created: Mutex<HashMap<(Scope, String), DateTime<Utc>>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            since: Utc::now(),
            counters: Mutex::default(),
            created: Mutex::default(),
        }
    }
}

impl Stats {
    /// When counting started (process start).
    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    /// Start from the totals the store holds.
    pub fn seed(&self, counts: &[cairn_store::FlagCount]) {
        for c in counts {
            let last = c.last_at.map(|t| t.timestamp());
            self.counter(&c.app, &c.env, &c.key).seed(
                &c.variant,
                u64::try_from(c.count).unwrap_or(0),
                last,
            );
        }
    }

    /// Every increment since the last drain, marked flushed.
    pub fn drain(&self) -> Vec<cairn_store::FlagCount> {
        let counters: Vec<_> = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        let mut out = Vec::new();
        for ((app, env, key), c) in counters {
            let last = c.last.load(Ordering::Relaxed);
            for (variant, n) in c.drain() {
                out.push(cairn_store::FlagCount {
                    app: app.clone(),
                    env: env.clone(),
                    key: key.clone(),
                    variant,
                    count: i64::try_from(n).unwrap_or(i64::MAX),
                    last_at: (last > 0)
                        .then(|| Utc.timestamp_opt(last, 0).single())
                        .flatten(),
                });
            }
        }
        out
    }

    /// Give back drained increments whose flush failed (they go with the next one).
    pub fn undrain(&self, counts: &[cairn_store::FlagCount]) {
        for c in counts {
            self.counter(&c.app, &c.env, &c.key)
                .undrain(&c.variant, u64::try_from(c.count).unwrap_or(0));
        }
    }

    fn counter(&self, app: &str, env: &str, key: &str) -> Arc<FlagCounter> {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((app.to_owned(), env.to_owned(), key.to_owned()))
            .or_default()
            .clone()
    }
}

// ----------------------------------------------------------------------
// The compiled flag set of one (app, env)
// ----------------------------------------------------------------------

/// The flags of one (app, env), compiled once, with their flagd document.
#[derive(Debug)]
pub struct FlagView {
    pub app: String,
    pub env: String,
    /// Latest revision that changed any entry of the view's four scopes.
    pub revision: Revision,
    /// The flagd document (`{"$schema", "flags", "$evaluators", "metadata"}`), serialized once.
    pub document: Bytes,
    /// `sha256:` of the canonical document.
    pub checksum: String,
    /// Strong ETag of `document`.
    pub etag: String,
    set: FlagSet,
    /// The winning entry of every flag key, by key.
    sources: BTreeMap<String, Arc<EntryVersion>>,
    /// Flags that do not compile with this view's segments: key → message.
    broken: BTreeMap<String, String>,
    /// What `cairn flag lint` reports of the view's flags (and their segments).
    warnings: Vec<FlagWarning>,
    counters: HashMap<String, Arc<FlagCounter>>,
    empty: Map<String, Value>,
}

impl FlagView {
    /// Build the view from the four layers (least specific first).
    pub fn build(app: &str, env: &str, layers: [Option<&ScopeEntries>; 4], stats: &Stats) -> Self {
        let mut segments = Map::new();
        let mut sources: BTreeMap<String, Arc<EntryVersion>> = BTreeMap::new();
        // The flag set's metadata: what the scopes set, the more specific
        // scope winning key by key. Nothing is invented.
        let mut metadata = Map::new();
        for layer in layers.iter().flatten() {
            for (key, e) in &layer.entries {
                match (e.kind, &e.value) {
                    (EntryKind::Segment, Some(v)) => {
                        segments.insert(key.clone(), v.clone());
                    }
                    (EntryKind::Flag, Some(_)) => {
                        sources.insert(key.clone(), e.clone());
                    }
                    (EntryKind::FlagSet, Some(Value::Object(m))) => {
                        metadata.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    _ => {}
                }
            }
        }
        let mut compiled = Vec::with_capacity(sources.len());
        let mut broken = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut flags = Map::new();
        let mut counters = HashMap::with_capacity(sources.len());
        for (key, e) in &sources {
            let Some(def) = &e.value else { continue };
            flags.insert(key.clone(), def.clone());
            counters.insert(key.clone(), stats.counter(app, env, key));
            match CompiledFlag::compile(key, def, &segments) {
                Ok(f) => {
                    let ws = f.warnings().iter();
                    warnings.extend(ws.map(|w| flag_warning(&e.scope, key, w)));
                    compiled.push(f);
                }
                Err(err) => {
                    // Validated when written; a segment overridden at a more
                    // specific scope can still break it here. It evaluates to
                    // ERROR (PARSE_ERROR), never to a panic.
                    tracing::warn!(%app, %env, flag = %key, error = %err, "flag does not compile in this view");
                    broken.insert(key.clone(), err.to_string());
                }
            }
        }
        let revision = layers
            .iter()
            .flatten()
            .map(|s| s.last_revision)
            .max()
            .unwrap_or(0);
        // Members a flagd document may leave out are left out when empty, so
        // that an imported document is exported as it was.
        let mut doc = json!({
            "$schema": FLAGD_SCHEMA_URL,
            "flags": flags,
        });
        if !segments.is_empty() {
            doc["$evaluators"] = Value::Object(segments);
        }
        if !metadata.is_empty() {
            doc["metadata"] = Value::Object(metadata.clone());
        }
        let checksum = cairn_model::checksum(&doc);
        let etag = format!("\"f{}\"", &checksum["sha256:".len().."sha256:".len() + 24]);
        // Serializing a JSON value cannot fail.
        let document = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        FlagView {
            app: app.to_owned(),
            env: env.to_owned(),
            revision,
            document,
            checksum,
            etag,
            set: FlagSet::from_flags(compiled, metadata),
            sources,
            broken,
            warnings,
            counters,
            empty: Map::new(),
        }
    }

    /// Evaluate flag `key` and count the evaluation. `now_unix` is what
    /// `$flagd.timestamp` reads.
    pub fn evaluate(&self, key: &str, ctx: &EvalContext, now_unix: i64) -> Resolution<'_> {
        let r = match self.broken.get(key) {
            Some(message) => Resolution {
                value: None,
                variant: None,
                reason: Reason::Error,
                error_code: Some(cairn_eval::ErrorCode::ParseError),
                error_message: Some(message.clone()),
                metadata: &self.empty,
            },
            None => self.set.evaluate(key, ctx, now_unix),
        };
        if let Some(c) = self.counters.get(key) {
            c.record(r.variant, now_unix);
        }
        r
    }

    /// Count `n` evaluations of flag `key` to `variant` (`""`: no variant)
    /// made elsewhere (an SDK evaluating locally). `false`, counting nothing,
    /// when the view has no such flag or the flag no such variant.
    pub fn count_reported(&self, key: &str, variant: &str, n: u64, now_unix: i64) -> bool {
        let Some(c) = self.counters.get(key) else {
            return false;
        };
        let known = variant.is_empty()
            || self
                .set
                .get(key)
                .is_some_and(|f| f.variants().any(|(v, _)| v == variant));
        if known {
            c.record_n(Some(variant), n, now_unix);
        }
        known
    }

    /// Every flag key of the view, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// The winning entry of flag `key`.
    pub fn source(&self, key: &str) -> Option<&Arc<EntryVersion>> {
        self.sources.get(key)
    }

    /// Warnings of the view's flags, as compiled here (with this view's segments).
    pub fn warnings(&self) -> &[FlagWarning] {
        &self.warnings
    }

    /// Flags that do not compile with this view's segments: key → message.
    pub fn broken(&self) -> &BTreeMap<String, String> {
        &self.broken
    }

    /// The compiled flag set (flags that do not compile are left out).
    pub fn set(&self) -> &FlagSet {
        &self.set
    }

    /// Bulk-evaluation ETag: a hash of the flag configuration, the context and
    /// the evaluated flags (time-based rules change the last without the others).
    pub fn bulk_etag(&self, ctx: &Value, body: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(self.checksum.as_bytes());
        h.update([0]);
        h.update(canonical_json(ctx).as_bytes());
        h.update([0]);
        h.update(body);
        format!("\"b{}\"", &hex::encode(h.finalize())[..24])
    }
}

// ----------------------------------------------------------------------
// Reads of flags
// ----------------------------------------------------------------------

/// One evaluation, owned (for the CLI-facing API and tests; the HTTP hot path
/// serializes the borrowed [`Resolution`] directly).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// STATIC, TARGETING_MATCH, DEFAULT, DISABLED or ERROR.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// The lint of the flags of one (app, env).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlagLint {
    pub app: String,
    pub env: String,
    pub warnings: Vec<FlagWarning>,
    /// Flags that do not compile in this view (a segment overridden at a more
    /// specific scope can break one); they evaluate to PARSE_ERROR.
    pub errors: Vec<FlagLintError>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlagLintError {
    pub key: String,
    pub message: String,
}

/// A flag of one (app, env), with its lifecycle data.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlagInfo {
    pub app: String,
    pub env: String,
    pub key: String,
    /// The scope the winning definition is set at.
    pub scope: Scope,
    /// Version of the winning definition at that scope.
    pub version: i64,
    /// ENABLED or DISABLED.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_variant: Option<String>,
    pub variants: Vec<String>,
    /// From the flag's `metadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// From `metadata.tags` (a comma-separated string: flagd metadata is scalar).
    pub tags: Vec<String>,
    /// When version 1 of the winning definition was written.
    pub created_at: DateTime<Utc>,
    /// When the winning definition was last changed.
    pub updated_at: DateTime<Utc>,
    /// Last evaluation (OFREP, CLI) since `counting_since`.
    pub last_evaluated: Option<DateTime<Utc>>,
    pub evaluations: u64,
    /// Evaluations by variant (`""`: no variant — caller's default or error).
    pub counts: BTreeMap<String, u64>,
    /// Counts are kept in memory since this time (process start).
    pub counting_since: DateTime<Utc>,
    /// Set when the flag does not compile in this view (it evaluates to PARSE_ERROR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn hidden_view(app: &str, env: &str) -> Error {
    Error::Hidden {
        what: format!("view {app}/{env}"),
    }
}

fn meta_str(m: &Value, k: &str) -> Option<String> {
    match m.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The flags feature ([`crate::Service::flags`]): compiled flag sets,
/// evaluation, listings with lifecycle data, lint, evaluation counts.
#[derive(Clone, Copy)]
pub struct Flags<'a> {
    kernel: &'a Kernel,
}

impl<'a> Flags<'a> {
    pub(crate) fn new(kernel: &'a Kernel) -> Self {
        Flags { kernel }
    }
}

impl Flags<'_> {
    /// The compiled flags of (app, env) (same access as resolving its configuration).
    pub fn flag_set(&self, who: &Principal, app: &str, env: &str) -> Result<Arc<FlagView>> {
        if !who.can(Action::Resolve, Some(app), Some(env)) {
            return Err(hidden_view(app, env));
        }
        self.kernel.read().flag_view(app, env)
    }

    /// Evaluate one flag of (app, env) against a context (a JSON object or null).
    pub fn evaluate(
        &self,
        who: &Principal,
        app: &str,
        env: &str,
        key: &str,
        context: Value,
    ) -> Result<Evaluation> {
        let view = self.flag_set(who, app, env)?;
        let ctx = EvalContext::from_value(context)
            .map_err(|e| Error::invalid("context", e.to_string()))?;
        let r = view.evaluate(key, &ctx, self.kernel.now().timestamp());
        Ok(Evaluation {
            key: key.to_owned(),
            value: r.value.cloned(),
            variant: r.variant.map(str::to_owned),
            reason: r.reason.as_str().to_owned(),
            error_code: r.error_code.map(|c| c.as_str().to_owned()),
            error_details: r.error_message,
            metadata: r.metadata.clone(),
        })
    }

    /// The flagd document of (app, env): what flagd and its in-process providers sync.
    pub fn flagd_document(&self, who: &Principal, app: &str, env: &str) -> Result<Value> {
        let view = self.flag_set(who, app, env)?;
        serde_json::from_slice(&view.document).map_err(|e| Error::Internal(e.to_string()))
    }

    /// The (app, env) pairs to list flags of: one, or all `who` can read.
    fn flag_views_for(
        &self,
        who: &Principal,
        app: Option<&str>,
        env: Option<&str>,
    ) -> Result<Vec<Arc<FlagView>>> {
        let st = self.kernel.read();
        if let (Some(a), Some(e)) = (app, env) {
            if !who.can(Action::Read, Some(a), Some(e)) {
                return Err(hidden_view(a, e));
            }
            return Ok(vec![st.flag_view(a, e)?]);
        }
        if let Some(a) = app {
            if !who.can(Action::Read, Some(a), None) || !st.apps.contains_key(a) {
                return Err(Error::not_found(format!("app '{a}'")));
            }
        }
        if let Some(e) = env {
            if !st.envs.contains_key(e) {
                return Err(Error::not_found(format!("environment '{e}'")));
            }
        }
        let mut out = Vec::new();
        for a in st.apps.keys().filter(|a| app.is_none_or(|x| x == *a)) {
            for e in st.envs.keys().filter(|e| env.is_none_or(|x| x == *e)) {
                if who.can(Action::Read, Some(a), Some(e)) {
                    out.push(st.flag_view(a, e)?);
                }
            }
        }
        Ok(out)
    }

    async fn created_at(&self, e: &EntryVersion) -> DateTime<Utc> {
        let key = (e.scope.clone(), e.key.clone());
        let stats = self.kernel.read().flag_stats().clone();
        if let Some(t) = stats
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return *t;
        }
        let t = match self.kernel.store().entry_version(&e.scope, &e.key, 1).await {
            Ok(Some(v1)) => v1.created_at,
            // Compacted away, or the database is unreachable: the best we know.
            _ => return e.created_at,
        };
        stats
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, t);
        t
    }

    /// Flags of (app, env) — or of every pair `who` can read — with lifecycle data.
    pub async fn flags(
        &self,
        who: &Principal,
        app: Option<&str>,
        env: Option<&str>,
    ) -> Result<Vec<FlagInfo>> {
        let views = self.flag_views_for(who, app, env)?;
        let since = self.kernel.read().flag_stats().since();
        let mut out = Vec::new();
        for view in views {
            for key in view.keys() {
                let Some(e) = view.source(key) else { continue };
                let def = e.value.clone().unwrap_or(Value::Null);
                // The flag's metadata over the flag set's, as evaluations answer it.
                let meta = match view.set.get(key) {
                    Some(f) => Value::Object(f.metadata().clone()),
                    None => def.get("metadata").cloned().unwrap_or(Value::Null),
                };
                let (evaluations, last_evaluated, counts) = view
                    .counters
                    .get(key)
                    .map(|c| c.snapshot())
                    .unwrap_or_default();
                let mut variants: Vec<String> = def
                    .get("variants")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                variants.sort();
                out.push(FlagInfo {
                    app: view.app.clone(),
                    env: view.env.clone(),
                    key: key.to_owned(),
                    scope: e.scope.clone(),
                    version: e.version,
                    state: def
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("ENABLED")
                        .to_owned(),
                    default_variant: def
                        .get("defaultVariant")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    variants,
                    owner: meta_str(&meta, "owner"),
                    description: meta_str(&meta, "description"),
                    tags: meta_str(&meta, "tags")
                        .map(|t| {
                            t.split(',')
                                .map(str::trim)
                                .filter(|t| !t.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                    created_at: self.created_at(e).await,
                    updated_at: e.created_at,
                    last_evaluated,
                    evaluations,
                    counts,
                    counting_since: since,
                    error: view.broken.get(key).cloned(),
                });
            }
        }
        Ok(out)
    }

    /// What `cairn flag lint` reports for the flags of (app, env), or of every
    /// pair `who` can read: warnings, and flags that do not compile there.
    pub fn lint_flags(
        &self,
        who: &Principal,
        app: Option<&str>,
        env: Option<&str>,
    ) -> Result<Vec<FlagLint>> {
        let views = self.flag_views_for(who, app, env)?;
        Ok(views
            .iter()
            .map(|v| FlagLint {
                app: v.app.clone(),
                env: v.env.clone(),
                warnings: v.warnings.clone(),
                errors: v
                    .broken
                    .iter()
                    .map(|(key, message)| FlagLintError {
                        key: key.clone(),
                        message: message.clone(),
                    })
                    .collect(),
            })
            .collect())
    }

    /// Write the flag evaluation counts gathered since the last flush.
    pub async fn flush_flag_counts(&self) -> Result<()> {
        let stats = self.kernel.read().flag_stats().clone();
        let increments = stats.drain();
        if let Err(e) = self.kernel.store().add_flag_counts(&increments).await {
            stats.undrain(&increments);
            return Err(e.into());
        }
        Ok(())
    }

    /// Flags not evaluated for `days` days. A flag never evaluated counts from
    /// its creation, or from when counting started (counts are in memory), whichever is later.
    pub async fn stale_flags(
        &self,
        who: &Principal,
        app: Option<&str>,
        env: Option<&str>,
        days: u32,
    ) -> Result<Vec<FlagInfo>> {
        if days > 36_500 {
            return Err(Error::invalid("days", "at most 36500"));
        }
        let cutoff = self.kernel.now() - chrono::Duration::days(i64::from(days));
        let all = self.flags(who, app, env).await?;
        Ok(all
            .into_iter()
            .filter(|f| {
                let seen = f
                    .last_evaluated
                    .unwrap_or_else(|| f.created_at.max(f.counting_since));
                seen < cutoff
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_visible_from_a_scope() {
        let at = Scope::new(Some("billing"), None);
        assert_eq!(
            layers_of(&at),
            vec![Scope::global(), Scope::new(Some("billing"), None)]
        );
        assert!(Scope::global().is_visible_from(&at));
        assert!(!Scope::new(None, Some("prod")).is_visible_from(&at));
        assert_eq!(layers_of(&Scope::new(Some("a"), Some("e"))).len(), 4);
    }

    #[test]
    fn segment_pointer_is_relative_to_the_segment() {
        let err = check_segment(
            "beta",
            &json!({"in": [{"var": "email"}, ["a"]], "x": 1}),
            &Map::new(),
        )
        .unwrap_err();
        assert_eq!(err.0, "", "{err:?}");
        // An unknown `sem_ver` operator is stored (flagd accepts it) with a
        // warning whose pointer is relative to the segment.
        let warnings = check_segment(
            "beta",
            &json!({"and": [true, {"sem_ver": [{"var": "v"}, "=~", "1.0.0"]}]}),
            &Map::new(),
        )
        .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].path.starts_with("/and/1/sem_ver"),
            "{warnings:?}"
        );
        assert!(check_segment("s", &json!(true), &Map::new()).is_err());
        assert_eq!(
            check_segment("s", &json!({"==": [{"var": "plan"}, "pro"]}), &Map::new()),
            Ok(vec![])
        );
    }

    #[test]
    fn flag_set_metadata_is_an_object_of_scalars() {
        assert!(check_flag_set(&json!({"team": "web", "v": 2, "beta": true})).is_ok());
        assert_eq!(
            check_flag_set(&json!({"a/b": {"nested": 1}}))
                .unwrap_err()
                .0,
            "/a~1b"
        );
        assert!(check_flag_set(&json!(["x"])).is_err());
    }
}
