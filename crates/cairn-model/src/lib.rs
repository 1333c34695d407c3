//! Cairn's domain model: the pure rules every other crate builds on.
//!
//! Nothing in this crate does IO. It names things (keys, apps, environments,
//! scopes), resolves layered configuration by RFC 7396 merge patch, computes
//! canonical JSON and checksums, matches key globs and diffs values.

mod canonical;
mod diff;
mod error;
mod glob;
mod names;
mod resolve;
pub mod rollout;

pub use canonical::{canonical_json, checksum, checksum_bytes};
pub use diff::{diff_values, ValueDiff};
pub use error::ModelError;
pub use glob::{glob_match, validate_glob};
pub use names::{
    validate_any_key, validate_app, validate_entry_key, validate_env, validate_flag_key,
    validate_key, Scope, FLAG_SET_KEY, GLOBAL_APP, MAX_KEY_BYTES,
};
pub use resolve::{resolve_key, resolve_layers, EntryKind, Layer, LayerValue, MergeMode};

/// Server-wide change counter: +1 for every committed change set.
pub type Revision = i64;

/// Default limit on one value's serialized size (512 KiB).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 512 * 1024;
/// Most entries one change set may carry.
pub const MAX_CHANGESET_ENTRIES: usize = 64;
