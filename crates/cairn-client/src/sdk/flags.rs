//! Local flag evaluation: the flagd document the server serves for (app, env)
//! (`GET /v1/apps/{app}/envs/{env}/flagd.json`), compiled the way the server
//! compiles its own `FlagView` — each flag on its own against the document's
//! `$evaluators`, the set's `metadata` inherited — so a flag that does not
//! compile evaluates to ERROR / PARSE_ERROR, exactly as over OFREP.

use std::collections::BTreeMap;

use cairn_eval::{CompiledFlag, ErrorCode, EvalContext, FlagSet, Reason, Resolution};
use serde_json::{Map, Value};

/// The compiled flags of one (app, env).
#[derive(Debug, Default)]
pub struct Flags {
    set: FlagSet,
    /// Flags that do not compile: key → message.
    broken: BTreeMap<String, String>,
    /// Every flag key, sorted.
    keys: Vec<String>,
    empty: Map<String, Value>,
}

impl Flags {
    /// Compile a served flagd document. Never fails: a malformed document
    /// gives no flags (and is logged), a malformed flag evaluates to PARSE_ERROR.
    pub fn compile(doc: &Value) -> Flags {
        let empty = Map::new();
        let evaluators = doc
            .get("$evaluators")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let metadata = doc
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let Some(flags) = doc.get("flags").and_then(Value::as_object) else {
            if !doc.is_null() {
                tracing::warn!("the flagd document has no `flags` object; no flags");
            }
            return Flags::default();
        };
        let mut compiled = Vec::with_capacity(flags.len());
        let mut broken = BTreeMap::new();
        for (key, def) in flags {
            match CompiledFlag::compile(key, def, evaluators) {
                Ok(f) => compiled.push(f),
                Err(e) => {
                    tracing::warn!(flag = %key, error = %e, "flag does not compile; it evaluates to PARSE_ERROR");
                    broken.insert(key.clone(), e.to_string());
                }
            }
        }
        Flags {
            set: FlagSet::from_flags(compiled, metadata),
            broken,
            keys: flags.keys().cloned().collect(),
            empty,
        }
    }

    /// Evaluate flag `key` (FLAG_NOT_FOUND when there is none).
    pub fn evaluate(&self, key: &str, ctx: &EvalContext, now_unix: i64) -> Resolution<'_> {
        match self.broken.get(key) {
            Some(message) => Resolution {
                value: None,
                variant: None,
                reason: Reason::Error,
                error_code: Some(ErrorCode::ParseError),
                error_message: Some(message.clone()),
                metadata: &self.empty,
            },
            None => self.set.evaluate(key, ctx, now_unix),
        }
    }

    /// Every flag key, sorted.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The outcome of one local evaluation, owned, typed as the caller asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<T> {
    pub key: String,
    /// The flag's value, or the caller's default when there is none or on error.
    pub value: T,
    /// `None` when the default applies (no variant, or an error).
    pub variant: Option<String>,
    pub reason: Reason,
    pub error_code: Option<ErrorCode>,
    pub error_message: Option<String>,
    /// Flag-set metadata overlaid with the flag's own.
    pub metadata: Map<String, Value>,
}

impl<T> Evaluation<T> {
    /// Did the evaluation fail (the value is the caller's default)?
    pub fn is_error(&self) -> bool {
        self.error_code.is_some()
    }
}

/// Convert a resolution to `T` (`convert` returns `None` on a type mismatch).
pub(crate) fn typed<T>(
    key: &str,
    r: Resolution<'_>,
    default: T,
    want: &str,
    convert: impl FnOnce(&Value) -> Option<T>,
) -> Evaluation<T> {
    let metadata = r.metadata.clone();
    let base = |value, variant, reason, error_code, error_message| Evaluation {
        key: key.to_owned(),
        value,
        variant,
        reason,
        error_code,
        error_message,
        metadata,
    };
    if r.error_code.is_some() {
        return base(default, None, r.reason, r.error_code, r.error_message);
    }
    match r.value {
        None => base(default, None, r.reason, None, None),
        Some(v) => match convert(v) {
            Some(t) => base(t, r.variant.map(str::to_owned), r.reason, None, None),
            None => base(
                default,
                None,
                Reason::Error,
                Some(ErrorCode::TypeMismatch),
                Some(format!("the flag's value is not {want}")),
            ),
        },
    }
}

/// Whole numbers that fit an `i64` (as `cairn_eval::Resolution::into_int`).
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_broken_flag_is_a_parse_error_and_the_others_still_evaluate() {
        let flags = Flags::compile(&json!({
            "flags": {
                "ok": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"},
                "bad": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"$ref": "missing"}}
            },
            "metadata": {"flagSetId": "shop/prod"}
        }));
        let ctx = EvalContext::new();
        let ok = flags.evaluate("ok", &ctx, 0);
        assert_eq!(ok.value, Some(&json!(1)));
        assert_eq!(ok.metadata["flagSetId"], "shop/prod");
        let bad = flags.evaluate("bad", &ctx, 0);
        assert_eq!(bad.error_code, Some(ErrorCode::ParseError));
        let none = flags.evaluate("none", &ctx, 0);
        assert_eq!(none.error_code, Some(ErrorCode::FlagNotFound));
        assert_eq!(flags.keys(), ["bad", "ok"]);
        let t = typed(
            "ok",
            flags.evaluate("ok", &ctx, 0),
            false,
            "a boolean",
            Value::as_bool,
        );
        assert_eq!(t.error_code, Some(ErrorCode::TypeMismatch));
        assert!(!t.value);
        let t = typed("ok", flags.evaluate("ok", &ctx, 0), 0, "an integer", as_int);
        assert_eq!((t.value, t.variant.as_deref()), (1, Some("a")));
    }
}
