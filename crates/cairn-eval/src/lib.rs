//! Pure, synchronous evaluation of flagd feature flags.
//!
//! A flag definition (flagd format: `state`, `variants`, `defaultVariant`, `targeting`,
//! `metadata`) is compiled once into an expression tree ([`CompiledFlag`]) and evaluated many
//! times against an [`EvalContext`]. Targeting is JsonLogic plus flagd's `fractional`,
//! `sem_ver`, `starts_with` and `ends_with`; rules read `$flagd.flagKey` and
//! `$flagd.timestamp` (the `now_unix` the caller passes: this crate reads no clock).
//!
//! ```
//! use cairn_eval::{EvalContext, FlagSet, Reason};
//! use serde_json::json;
//!
//! let set = FlagSet::parse(&json!({
//!     "flags": {
//!         "new-ui": {
//!             "state": "ENABLED",
//!             "variants": {"on": true, "off": false},
//!             "defaultVariant": "off",
//!             "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on"]}
//!         }
//!     }
//! })).unwrap();
//! let ctx = EvalContext::from_value(json!({"email": "ada@example.com"})).unwrap();
//! let r = set.evaluate("new-ui", &ctx, 1_700_000_000);
//! assert_eq!(r.value, Some(&json!(true)));
//! assert_eq!(r.reason, Reason::TargetingMatch);
//! ```
//!
//! Only what flagd refuses is a [`ParseError`]; what compiles but can only ever yield `null`
//! or an error (a `$ref` to a missing evaluator, wrong argument counts, unknown `sem_ver`
//! operators, all-zero weights, …) is reported as [`Warning`]s, by [`CompiledFlag::warnings`]
//! and [`lint_document`]. A custom operation that cannot be applied yields `null` in place.
//!
//! No IO, no async, no clock. See `docs/flags-engine.md` for the semantics chosen where flagd's
//! documents leave room.

mod compile;
mod context;
mod error;
mod eval;
mod flag;
pub mod fractional;
pub mod murmur3;
pub mod semver;
mod value;
mod warning;

pub use compile::MAX_DEPTH;
pub use context::{ContextError, EvalContext, TARGETING_KEY};
pub use error::ParseError;
pub use flag::{
    CompiledFlag, ErrorCode, FlagSet, Reason, Resolution, TypedResolution, VariantType,
};
pub use warning::{Warning, WarningCode};

/// Lints a whole flagd document (`flags`, `$evaluators`, `metadata`): `Err` when flagd
/// refuses it (the error's path points into the document), else every [`Warning`] — what
/// compiles but can only ever yield `null` or an error, or is ignored — with a JSON pointer
/// into the document (`/flags/<key>/targeting/…`, `/$evaluators/<name>/…`). A problem inside
/// an evaluator is reported once, at its place in `$evaluators`, however many flags use it.
pub fn lint_document(doc: &serde_json::Value) -> Result<Vec<Warning>, ParseError> {
    flag::compile_document(doc).map(|(_, warnings)| warnings)
}
