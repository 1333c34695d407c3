//! Compile-time warnings: parts of a flag that compile (flagd accepts them) but can only ever
//! yield `null` or an error, or are ignored.

use std::fmt;

use serde::Serialize;

use crate::error::push_escaped;

/// What a [`Warning`] is about. Serializes as a kebab-case string (`"missing-ref"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningCode {
    /// `$ref` to an evaluator that does not exist: every evaluation of the flag is an error
    /// (PARSE_ERROR).
    MissingRef,
    /// `$ref` that leads back to an evaluator being inlined: every evaluation of the flag is
    /// an error (PARSE_ERROR).
    RefCycle,
    /// A custom operation (`starts_with`, `ends_with`, `sem_ver`, `fractional`) with the wrong
    /// number of arguments: it always yields `null`.
    ArgumentCount,
    /// A constant `sem_ver` operator that is not one of `= != < <= > >= ~ ^`: the operation
    /// always yields `null`.
    UnknownOperator,
    /// A constant operand a custom operation cannot use (a non-string `starts_with` operand, a
    /// version that does not parse, a fractional weight that is not a whole number, …), or a
    /// `$flagd.*` attribute flagd does not supply: always `null`.
    InvalidOperand,
    /// Every constant `fractional` weight is 0 (negative weights count as 0): always `null`.
    ZeroWeights,
    /// A constant negative `fractional` weight: it counts as 0, the bucket is never chosen.
    NegativeWeight,
    /// Constant `fractional` weights add up to more than 2^31-1: always `null`.
    WeightOverflow,
    /// A constant the targeting can return that names no variant of the flag (or a number or
    /// an array): that outcome is an error (GENERAL).
    UnknownVariant,
    /// A flag or document property flagd does not know (a typo such as `targetting`): ignored.
    UnknownProperty,
}

impl WarningCode {
    /// The kebab-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::MissingRef => "missing-ref",
            WarningCode::RefCycle => "ref-cycle",
            WarningCode::ArgumentCount => "argument-count",
            WarningCode::UnknownOperator => "unknown-operator",
            WarningCode::InvalidOperand => "invalid-operand",
            WarningCode::ZeroWeights => "zero-weights",
            WarningCode::NegativeWeight => "negative-weight",
            WarningCode::WeightOverflow => "weight-overflow",
            WarningCode::UnknownVariant => "unknown-variant",
            WarningCode::UnknownProperty => "unknown-property",
        }
    }
}

impl fmt::Display for WarningCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that compiles but cannot work as written.
///
/// `path` is a JSON pointer (RFC 6901): relative to the flag definition for
/// [`CompiledFlag::warnings`](crate::CompiledFlag::warnings) (e.g. `/targeting/if/0/sem_ver`;
/// for a problem inside a shared evaluator, the `$ref` that brings it in, the message naming
/// the place inside the evaluator), into the document for [`lint_document`](crate::lint_document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: WarningCode,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{}: {} (at {at})", self.code, self.message)
    }
}

/// A warning as the compiler records it: where it is in the value being compiled, and, when
/// it arose inside an inlined evaluator, which one and where inside it.
#[derive(Debug, Clone)]
pub(crate) struct RawWarning {
    pub code: WarningCode,
    /// Pointer relative to the compiled value, ending at the outermost `$ref` when inside an
    /// evaluator.
    pub outer: String,
    /// The innermost evaluator being inlined and the pointer inside its body.
    pub inner: Option<(String, String)>,
    pub message: String,
}

impl RawWarning {
    /// The pointer into a flagd document of the place inside the evaluator, if any.
    pub(crate) fn evaluator_pointer(&self) -> Option<String> {
        self.inner
            .as_ref()
            .map(|(name, p)| evaluator_pointer(name, p))
    }

    /// The public form, relative to the compiled value, with `prefix` (an escaped pointer)
    /// in front of the path.
    pub(crate) fn public(&self, prefix: &str) -> Warning {
        let message = match &self.inner {
            None => self.message.clone(),
            Some((name, p)) => format!(
                "{} (in evaluator `{name}`, at {})",
                self.message,
                evaluator_pointer(name, p)
            ),
        };
        Warning {
            code: self.code,
            path: format!("{prefix}{}", self.outer),
            message,
        }
    }
}

/// `/$evaluators/<name><inner>`.
pub(crate) fn evaluator_pointer(name: &str, inner: &str) -> String {
    let mut s = String::from("/$evaluators/");
    push_escaped(&mut s, name);
    s.push_str(inner);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_kebab_case_like_as_str() {
        for code in [
            WarningCode::MissingRef,
            WarningCode::RefCycle,
            WarningCode::ArgumentCount,
            WarningCode::UnknownOperator,
            WarningCode::InvalidOperand,
            WarningCode::ZeroWeights,
            WarningCode::NegativeWeight,
            WarningCode::WeightOverflow,
            WarningCode::UnknownVariant,
            WarningCode::UnknownProperty,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().to_owned())
            );
        }
        assert_eq!(WarningCode::MissingRef.as_str(), "missing-ref");
        assert_eq!(WarningCode::ZeroWeights.to_string(), "zero-weights");
    }

    #[test]
    fn public_form_names_the_evaluator_location() {
        let raw = RawWarning {
            code: WarningCode::UnknownOperator,
            outer: "/targeting/if/0/$ref".into(),
            inner: Some(("a/b".into(), "/sem_ver/1".into())),
            message: "bad".into(),
        };
        let w = raw.public("/flags/f");
        assert_eq!(w.path, "/flags/f/targeting/if/0/$ref");
        assert_eq!(
            w.message,
            "bad (in evaluator `a/b`, at /$evaluators/a~1b/sem_ver/1)"
        );
        assert_eq!(
            w.to_string(),
            "unknown-operator: bad (in evaluator `a/b`, at /$evaluators/a~1b/sem_ver/1) (at /flags/f/targeting/if/0/$ref)"
        );
    }
}
