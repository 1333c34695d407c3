//! Flag definitions, flag sets and the resolution of one flag.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::compile::{Compiler, Expr, Pos};
use crate::context::EvalContext;
use crate::error::{push_escaped, ParseError};
use crate::eval::{decide, Decision, Env};
use crate::value::Val;
use crate::warning::{RawWarning, Warning, WarningCode};

/// Why a flag resolved to what it did (OpenFeature resolution reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no targeting: the default variant.
    Static,
    /// The targeting named a variant.
    TargetingMatch,
    /// The targeting returned `null` (for instance a custom operation that could not be
    /// applied, as the whole rule), or there is no default variant: the default variant, or no
    /// value (the caller's code default).
    Default,
    /// The flag is disabled: no value and no variant (the caller's code default), no error.
    Disabled,
    /// Evaluation failed; see the error code. The caller uses its code default.
    Error,
}

impl Reason {
    /// The upper-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::Error => "ERROR",
        }
    }
}

/// Why an evaluation failed (OpenFeature error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    FlagNotFound,
    ParseError,
    TypeMismatch,
    General,
}

impl ErrorCode {
    /// The upper-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// The JSON type shared by all variants of a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantType {
    Boolean,
    String,
    /// Integers and floats alike.
    Number,
    /// Objects (and arrays).
    Object,
}

impl VariantType {
    fn of(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(_) => Some(Self::Boolean),
            Value::String(_) => Some(Self::String),
            Value::Number(_) => Some(Self::Number),
            Value::Object(_) | Value::Array(_) => Some(Self::Object),
            Value::Null => None,
        }
    }
}

/// The outcome of evaluating a flag. Borrows the value, variant and metadata from the flag set.
///
/// Serializes as the body of an OFREP success (`value`, `variant`, `reason`, `metadata`) or,
/// when `errorCode` is set, carries what an OFREP error body needs (`errorCode`,
/// `errorDetails`). `value` and `variant` are omitted when the caller's code default applies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution<'s> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<&'s Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'s str>,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(rename = "errorDetails", skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Flag-set metadata overlaid with the flag's own metadata.
    pub metadata: &'s Map<String, Value>,
}

static EMPTY_METADATA: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

fn empty_metadata() -> &'static Map<String, Value> {
    EMPTY_METADATA.get_or_init(Map::new)
}

impl<'s> Resolution<'s> {
    fn error(code: ErrorCode, message: String, metadata: &'s Map<String, Value>) -> Self {
        Self {
            value: None,
            variant: None,
            reason: Reason::Error,
            error_code: Some(code),
            error_message: Some(message),
            metadata,
        }
    }

    /// The resolution for a flag key that is not in the set.
    pub fn not_found(key: &str) -> Resolution<'static> {
        Resolution::error(
            ErrorCode::FlagNotFound,
            format!("flag `{key}` was not found"),
            empty_metadata(),
        )
    }

    /// Whether evaluation failed.
    pub fn is_error(&self) -> bool {
        self.error_code.is_some()
    }

    fn typed<T>(
        self,
        default: T,
        want: &'static str,
        convert: impl FnOnce(&'s Value) -> Option<T>,
    ) -> TypedResolution<'s, T> {
        let (value, reason, error_code, error_message, variant) = match self.value {
            _ if self.error_code.is_some() => (
                default,
                self.reason,
                self.error_code,
                self.error_message,
                None,
            ),
            None => (default, self.reason, None, None, None),
            Some(v) => match convert(v) {
                Some(t) => (t, self.reason, None, None, self.variant),
                None => (
                    default,
                    Reason::Error,
                    Some(ErrorCode::TypeMismatch),
                    Some(format!("the flag's value is not {want}")),
                    None,
                ),
            },
        };
        TypedResolution {
            value,
            variant,
            reason,
            error_code,
            error_message,
            metadata: self.metadata,
        }
    }

    /// As a boolean; `default` when there is no value or on error (TYPE_MISMATCH if not bool).
    pub fn into_bool(self, default: bool) -> TypedResolution<'s, bool> {
        self.typed(default, "a boolean", Value::as_bool)
    }

    /// As a string.
    pub fn into_str(self, default: &'s str) -> TypedResolution<'s, &'s str> {
        self.typed(default, "a string", Value::as_str)
    }

    /// As an integer: the value must be a whole number that fits an `i64`.
    pub fn into_int(self, default: i64) -> TypedResolution<'s, i64> {
        self.typed(default, "an integer", |v| {
            v.as_i64().or_else(|| {
                let f = v.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
            })
        })
    }

    /// As a float (any number).
    pub fn into_float(self, default: f64) -> TypedResolution<'s, f64> {
        self.typed(default, "a number", Value::as_f64)
    }

    /// As a JSON object (or array).
    pub fn into_object(self, default: &'s Value) -> TypedResolution<'s, &'s Value> {
        self.typed(default, "an object", |v| {
            (v.is_object() || v.is_array()).then_some(v)
        })
    }
}

/// A resolution converted to the type the caller asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypedResolution<'s, T> {
    /// The flag's value, or the caller's default when there is none or on error.
    pub value: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'s str>,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(rename = "errorDetails", skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub metadata: &'s Map<String, Value>,
}

/// A flag definition compiled for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledFlag {
    key: Arc<str>,
    enabled: bool,
    /// Sorted by name.
    variants: Box<[(Box<str>, Value)]>,
    variant_type: VariantType,
    default_variant: Option<usize>,
    targeting: Option<Expr>,
    /// Why every evaluation is PARSE_ERROR (a `$ref` to a missing evaluator, a `$ref` cycle).
    broken: Option<String>,
    /// What compiles but can only ever yield `null` or an error, or is ignored.
    warnings: Box<[Warning]>,
    /// The flag's own metadata.
    own_metadata: Map<String, Value>,
    /// Flag-set metadata overlaid with the flag's metadata.
    metadata: Map<String, Value>,
}

const FLAG_FIELDS: [&str; 5] = [
    "state",
    "variants",
    "defaultVariant",
    "targeting",
    "metadata",
];

fn metadata_of(v: Option<&Value>, at: &str) -> Result<Map<String, Value>, ParseError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !(v.is_string() || v.is_number() || v.is_boolean()) {
                    return Err(ParseError::new(
                        format!("{at}/{}", {
                            let mut s = String::new();
                            crate::error::push_escaped(&mut s, k);
                            s
                        }),
                        "metadata values must be strings, numbers or booleans",
                    ));
                }
            }
            Ok(m.clone())
        }
        Some(_) => Err(ParseError::new(
            at.to_owned(),
            "`metadata` must be an object",
        )),
    }
}

impl CompiledFlag {
    /// Compiles one flagd flag definition. `evaluators` are the flag set's `$evaluators`
    /// (shared rules referenced with `{"$ref": "name"}`), inlined here.
    ///
    /// Refuses (with a JSON pointer relative to `definition` and a message fit for users) only
    /// what flagd refuses (see `docs/flags-engine.md`); what compiles but cannot work is listed
    /// in [`CompiledFlag::warnings`]. The server uses this as the write-time validation of flag
    /// entries.
    pub fn compile(
        key: &str,
        definition: &Value,
        evaluators: &Map<String, Value>,
    ) -> Result<Self, ParseError> {
        Self::compile_raw(key, definition, evaluators).map(|(f, _)| f)
    }

    /// [`CompiledFlag::compile`], also returning the warnings as the compiler recorded them.
    pub(crate) fn compile_raw(
        key: &str,
        definition: &Value,
        evaluators: &Map<String, Value>,
    ) -> Result<(Self, Vec<RawWarning>), ParseError> {
        let Value::Object(def) = definition else {
            return Err(ParseError::new(
                String::new(),
                "a flag definition must be an object",
            ));
        };
        let mut raw = Vec::new();
        for unknown in def.keys().filter(|k| !FLAG_FIELDS.contains(&k.as_str())) {
            let mut outer = String::from("/");
            push_escaped(&mut outer, unknown);
            raw.push(RawWarning {
                code: WarningCode::UnknownProperty,
                outer,
                inner: None,
                message: format!(
                    "unknown flag property `{unknown}` is ignored; flagd reads state, variants, defaultVariant, targeting, metadata"
                ),
            });
        }
        let enabled = match def.get("state") {
            Some(Value::String(s)) if s == "ENABLED" => true,
            Some(Value::String(s)) if s == "DISABLED" => false,
            None => {
                return Err(ParseError::new(
                    String::new(),
                    "`state` is required (ENABLED or DISABLED)",
                ))
            }
            Some(_) => {
                return Err(ParseError::new(
                    "/state".into(),
                    "`state` must be \"ENABLED\" or \"DISABLED\"",
                ))
            }
        };
        let Some(Value::Object(vars)) = def.get("variants") else {
            return Err(ParseError::new(
                if def.contains_key("variants") {
                    "/variants".into()
                } else {
                    String::new()
                },
                "`variants` is required and must be an object of variant name to value",
            ));
        };
        if vars.is_empty() {
            return Err(ParseError::new(
                "/variants".into(),
                "a flag needs at least one variant",
            ));
        }
        let mut variant_type = None;
        let mut variants: Vec<(Box<str>, Value)> = Vec::with_capacity(vars.len());
        for (name, value) in vars {
            let at = || {
                let mut p = String::from("/variants/");
                push_escaped(&mut p, name);
                p
            };
            if name.is_empty() {
                return Err(ParseError::new(at(), "a variant name must not be empty"));
            }
            let Some(t) = VariantType::of(value) else {
                return Err(ParseError::new(at(), "a variant value must not be null"));
            };
            match variant_type {
                None => variant_type = Some((t, name)),
                Some((first, first_name)) if first != t => {
                    return Err(ParseError::new(
                        at(),
                        format!(
                            "all variants must have one type: `{first_name}` is {first:?} but `{name}` is {t:?}"
                        ),
                    ))
                }
                Some(_) => {}
            }
            variants.push((name.as_str().into(), value.clone()));
        }
        variants.sort_by(|a, b| a.0.cmp(&b.0));
        let variant_type = variant_type.map_or(VariantType::Object, |(t, _)| t);
        let find = |name: &str| {
            variants
                .binary_search_by(|(n, _)| n.as_ref().cmp(name))
                .ok()
        };
        let default_variant = match def.get("defaultVariant") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(find(name).ok_or_else(|| {
                ParseError::new(
                    "/defaultVariant".into(),
                    format!("`defaultVariant` names `{name}`, which is not a variant"),
                )
            })?),
            Some(_) => {
                return Err(ParseError::new(
                    "/defaultVariant".into(),
                    "`defaultVariant` must be a variant name or null",
                ))
            }
        };
        let (targeting, broken) = match def.get("targeting") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(m)) if m.is_empty() => (None, None),
            Some(t) => {
                let mut c = Compiler::new(evaluators, key, &variants, &["targeting"]);
                let expr = c.compile(t, Pos::Result)?;
                raw.append(&mut c.warnings);
                (Some(expr), c.broken)
            }
        };
        let own_metadata = metadata_of(def.get("metadata"), "/metadata")?;
        let warnings = raw.iter().map(|w| w.public("")).collect();
        Ok((
            Self {
                key: key.into(),
                enabled,
                variants: variants.into_boxed_slice(),
                variant_type,
                default_variant,
                targeting,
                broken,
                warnings,
                metadata: own_metadata.clone(),
                own_metadata,
            },
            raw,
        ))
    }

    /// Overlays flag-set metadata under the flag's own metadata (the flag's keys win).
    pub fn with_set_metadata(mut self, set_metadata: &Map<String, Value>) -> Self {
        let mut merged = set_metadata.clone();
        for (k, v) in &self.own_metadata {
            merged.insert(k.clone(), v.clone());
        }
        self.metadata = merged;
        self
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn variant_type(&self) -> VariantType {
        self.variant_type
    }

    /// The default variant's name, if the flag has one.
    pub fn default_variant(&self) -> Option<&str> {
        self.default_variant.map(|i| self.variants[i].0.as_ref())
    }

    pub fn has_targeting(&self) -> bool {
        self.targeting.is_some()
    }

    /// Variant names and values, sorted by name.
    pub fn variants(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.variants.iter().map(|(n, v)| (n.as_ref(), v))
    }

    /// Flag-set metadata overlaid with the flag's own metadata (as served with every
    /// resolution, disabled flags included).
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// What compiles but can only ever yield `null` or an error (or is ignored), with JSON
    /// pointers relative to the flag definition. Empty for a flag without problems.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    fn variant(&self, name: &str) -> Option<(&str, &Value)> {
        // Flags have few variants: a linear scan (length first) beats a binary search.
        self.variants
            .iter()
            .find(|(n, _)| crate::value::short_eq(n, name))
            .map(|(n, v)| (n.as_ref(), v))
    }

    fn default_resolution(&self, reason: Reason) -> Resolution<'_> {
        let (variant, value) = match self.default_variant {
            Some(i) => (Some(self.variants[i].0.as_ref()), Some(&self.variants[i].1)),
            None => (None, None),
        };
        Resolution {
            value,
            variant,
            // Without a default variant nothing is static: the caller's code default applies.
            reason: if reason == Reason::Static && variant.is_none() {
                Reason::Default
            } else {
                reason
            },
            error_code: None,
            error_message: None,
            metadata: &self.metadata,
        }
    }

    /// Evaluates the flag. `now_unix` (seconds) is what `$flagd.timestamp` reads.
    pub fn evaluate(&self, ctx: &EvalContext, now_unix: i64) -> Resolution<'_> {
        if !self.enabled {
            // A success without a value: the caller's code default applies (flagd's ADR
            // "Treat Disabled Flag Evaluation as Successful with Reason DISABLED").
            return Resolution {
                value: None,
                variant: None,
                reason: Reason::Disabled,
                error_code: None,
                error_message: None,
                metadata: &self.metadata,
            };
        }
        if let Some(why) = &self.broken {
            return Resolution::error(ErrorCode::ParseError, why.clone(), &self.metadata);
        }
        let Some(rule) = &self.targeting else {
            return self.default_resolution(Reason::Static);
        };
        let env = Env::new(ctx, &self.key, now_unix);
        let name = match decide(rule, &env) {
            Decision::Variant(i) => {
                let (n, v) = &self.variants[i];
                return Resolution {
                    value: Some(v),
                    variant: Some(n),
                    reason: Reason::TargetingMatch,
                    error_code: None,
                    error_message: None,
                    metadata: &self.metadata,
                };
            }
            Decision::Value(v) => v,
        };
        let name = match name {
            v if v.is_null() => return self.default_resolution(Reason::Default),
            Val::Str(s) => s,
            Val::Bool(b) => std::borrow::Cow::Borrowed(if b { "true" } else { "false" }),
            other => {
                return Resolution::error(
                    ErrorCode::General,
                    format!(
                        "targeting returned {}, which is not a variant name",
                        other.to_json()
                    ),
                    &self.metadata,
                )
            }
        };
        match self.variant(&name) {
            Some((n, v)) => Resolution {
                value: Some(v),
                variant: Some(n),
                reason: Reason::TargetingMatch,
                error_code: None,
                error_message: None,
                metadata: &self.metadata,
            },
            None => Resolution::error(
                ErrorCode::General,
                format!("targeting returned `{name}`, which is not a variant of this flag"),
                &self.metadata,
            ),
        }
    }
}

/// An FxHash-style hasher (8 bytes per step): flag keys are short and chosen by operators,
/// not by attackers of the process, so a fast unkeyed hash suits the lookup done on every
/// evaluation.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }
}

type FlagMap = HashMap<Arc<str>, CompiledFlag, BuildHasherDefault<KeyHasher>>;

/// A compiled flagd document: flags, plus the flag-set metadata they inherit.
#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    flags: FlagMap,
    metadata: Map<String, Value>,
}

impl FlagSet {
    /// Parses and compiles a whole flagd document
    /// `{"flags": {…}, "$evaluators": {…}, "metadata": {…}}`. A document flagd refuses fails
    /// whole, with a path pointing into the document; what compiles but cannot work is
    /// reported by [`lint_document`](crate::lint_document) and [`CompiledFlag::warnings`].
    pub fn parse(doc: &Value) -> Result<Self, ParseError> {
        compile_document(doc).map(|(set, _)| set)
    }

    /// A set from flags compiled one by one (each inherits `metadata`).
    pub fn from_flags(
        flags: impl IntoIterator<Item = CompiledFlag>,
        metadata: Map<String, Value>,
    ) -> Self {
        let flags = flags
            .into_iter()
            .map(|f| {
                let f = f.with_set_metadata(&metadata);
                (Arc::clone(&f.key), f)
            })
            .collect();
        Self { flags, metadata }
    }

    /// Evaluates flag `key`; FLAG_NOT_FOUND when the set has no such flag.
    pub fn evaluate(&self, key: &str, ctx: &EvalContext, now_unix: i64) -> Resolution<'_> {
        match self.flags.get(key) {
            Some(f) => f.evaluate(ctx, now_unix),
            None => Resolution::not_found(key),
        }
    }

    pub fn evaluate_bool(
        &self,
        key: &str,
        ctx: &EvalContext,
        now_unix: i64,
        default: bool,
    ) -> TypedResolution<'_, bool> {
        self.evaluate(key, ctx, now_unix).into_bool(default)
    }

    pub fn evaluate_str<'s>(
        &'s self,
        key: &str,
        ctx: &EvalContext,
        now_unix: i64,
        default: &'s str,
    ) -> TypedResolution<'s, &'s str> {
        self.evaluate(key, ctx, now_unix).into_str(default)
    }

    pub fn evaluate_int(
        &self,
        key: &str,
        ctx: &EvalContext,
        now_unix: i64,
        default: i64,
    ) -> TypedResolution<'_, i64> {
        self.evaluate(key, ctx, now_unix).into_int(default)
    }

    pub fn evaluate_float(
        &self,
        key: &str,
        ctx: &EvalContext,
        now_unix: i64,
        default: f64,
    ) -> TypedResolution<'_, f64> {
        self.evaluate(key, ctx, now_unix).into_float(default)
    }

    pub fn evaluate_object<'s>(
        &'s self,
        key: &str,
        ctx: &EvalContext,
        now_unix: i64,
        default: &'s Value,
    ) -> TypedResolution<'s, &'s Value> {
        self.evaluate(key, ctx, now_unix).into_object(default)
    }

    pub fn get(&self, key: &str) -> Option<&CompiledFlag> {
        self.flags.get(key)
    }

    /// Flag keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.flags.keys().map(|k| k.as_ref())
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flag-set metadata.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }
}

const DOC_FIELDS: [&str; 4] = ["$schema", "flags", "$evaluators", "metadata"];

fn escaped(segments: &[&str]) -> String {
    let mut p = String::new();
    for s in segments {
        p.push('/');
        push_escaped(&mut p, s);
    }
    p
}

/// Compiles a whole flagd document: the flag set, and every warning with a pointer into the
/// document (each problem inside an evaluator once, at its place in `$evaluators`).
pub(crate) fn compile_document(doc: &Value) -> Result<(FlagSet, Vec<Warning>), ParseError> {
    let Value::Object(d) = doc else {
        return Err(ParseError::new(
            String::new(),
            "a flagd document must be an object",
        ));
    };
    let mut warnings = Vec::new();
    for unknown in d.keys().filter(|k| !DOC_FIELDS.contains(&k.as_str())) {
        warnings.push(Warning {
            code: WarningCode::UnknownProperty,
            path: escaped(&[unknown]),
            message: format!(
                "unknown document property `{unknown}` is ignored; flagd reads flags, $evaluators, metadata"
            ),
        });
    }
    let empty = Map::new();
    let evaluators = match d.get("$evaluators") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ParseError::new(
                "/$evaluators".into(),
                "`$evaluators` must be an object of evaluator name to rule",
            ))
        }
    };
    let Some(Value::Object(flags)) = d.get("flags") else {
        return Err(ParseError::new(
            if d.contains_key("flags") {
                "/flags".into()
            } else {
                String::new()
            },
            "`flags` is required and must be an object of flag key to definition",
        ));
    };
    let metadata = metadata_of(d.get("metadata"), "/metadata")?;
    // Every evaluator is checked on its own (flagd's schema checks unused ones too); the
    // problems found inside one are reported once, here.
    let mut seen: std::collections::HashSet<(WarningCode, String)> = Default::default();
    for (name, body) in evaluators {
        let at = escaped(&["$evaluators", name]);
        if name.is_empty() {
            return Err(ParseError::new(at, "an evaluator name must not be empty"));
        }
        match body {
            Value::Object(m) if !m.is_empty() => {}
            Value::Object(_) => {
                return Err(ParseError::new(
                    at,
                    "an evaluator must be a rule; flagd refuses an empty one",
                ))
            }
            _ => {
                return Err(ParseError::new(
                    at,
                    "an evaluator must be a JSON object (a JsonLogic rule)",
                ))
            }
        }
        let mut c = Compiler::for_evaluator(evaluators, name);
        c.compile(body, Pos::Value)?;
        for w in c.warnings {
            let path = w.evaluator_pointer().unwrap_or(w.outer);
            if seen.insert((w.code, path.clone())) {
                warnings.push(Warning {
                    code: w.code,
                    path,
                    message: w.message,
                });
            }
        }
    }
    let mut compiled = FlagMap::with_capacity_and_hasher(flags.len(), Default::default());
    for (key, def) in flags {
        let prefix = escaped(&["flags", key]);
        if key.is_empty() {
            return Err(ParseError::new(prefix, "a flag key must not be empty"));
        }
        let (flag, raw) = CompiledFlag::compile_raw(key, def, evaluators)
            .map_err(|e| e.prefixed(&["flags", key]))?;
        for w in raw {
            // What arose inside an evaluator was reported there, unless it depends on the flag.
            let reported = w
                .evaluator_pointer()
                .is_some_and(|p| seen.contains(&(w.code, p)));
            if !reported {
                warnings.push(w.public(&prefix));
            }
        }
        let flag = flag.with_set_metadata(&metadata);
        compiled.insert(Arc::clone(&flag.key), flag);
    }
    Ok((
        FlagSet {
            flags: compiled,
            metadata,
        },
        warnings,
    ))
}
