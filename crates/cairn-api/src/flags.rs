//! Flag reads: the bodies of the OpenFeature Remote Evaluation Protocol
//! (OFREP, single and bulk evaluation) and the queries of `GET /v1/flags`,
//! `/v1/flags/lint` and `/v1/flags/stale`.
//!
//! The OFREP answers borrow (`Cow`): the server serializes them straight from
//! the compiled flag set without copying values or metadata; a client reads
//! them owned (`OfrepSuccess<'static>`). What the flag list and the lint
//! answer is `cairn_core`'s (`FlagInfo`, `FlagLint`); a flagd document is
//! flagd's own format.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// OFREP evaluation request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfrepRequest {
    /// The evaluation context; `targetingKey` is optional.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

/// OFREP evaluation success. `value` is absent when the caller's code default applies;
/// a disabled flag has no `value` and a `null` variant (reason DISABLED).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfrepSuccess<'a> {
    pub key: Cow<'a, str>,
    // Documented as required, as it always was, although it is left out when
    // the caller's default applies (see the type's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, required = true)]
    pub value: Option<Cow<'a, Value>>,
    /// STATIC, TARGETING_MATCH, DEFAULT or DISABLED.
    pub reason: Cow<'a, str>,
    /// `null` when the flag is disabled; `""` when the flag has no default variant and
    /// nothing matched.
    // Never left out: published providers (Python's OFREP provider) read it
    // unconditionally.
    pub variant: Option<Cow<'a, str>>,
    #[schema(value_type = Object)]
    pub metadata: Cow<'a, Map<String, Value>>,
}

/// OFREP evaluation failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepFailure<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Cow<'a, str>>,
    /// FLAG_NOT_FOUND (404), PARSE_ERROR, INVALID_CONTEXT, GENERAL (400).
    pub error_code: Cow<'a, str>,
    pub error_details: Cow<'a, str>,
}

/// One flag of a bulk evaluation: a success or a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OfrepItem<'a> {
    Success(OfrepSuccess<'a>),
    Failure(OfrepFailure<'a>),
}

/// OFREP bulk evaluation: one item per flag, successes and failures alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfrepBulk<'a> {
    #[schema(value_type = Vec<Object>)]
    pub flags: Vec<OfrepItem<'a>>,
}

/// The query of `GET /v1/flags` and `GET /v1/flags/lint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlagsQuery {
    /// One app (absent: every app the caller can read).
    pub app: Option<String>,
    /// One environment (absent: every environment).
    pub env: Option<String>,
}

/// The query of `GET /v1/flags/stale`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StaleQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    /// Not evaluated for this many days (default 30).
    #[param(maximum = 36500)]
    pub days: Option<u32>,
}
