//! An OpenFeature provider for the Rust `open-feature` crate (feature
//! `openfeature`): flags evaluated locally through the SDK
//! ([`CairnClient`]), with the same engine and results as the server.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_client::openfeature::CairnProvider;
//! use cairn_client::sdk::CairnClient;
//! use open_feature::{EvaluationContext, OpenFeature};
//!
//! let sdk = CairnClient::builder("http://127.0.0.1:8700", "shop", "prod")
//!     .token("cairn_…")
//!     .build()
//!     .await?;
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(CairnProvider::new(sdk)).await;
//! let client = api.create_client();
//! let ctx = EvaluationContext::default().with_targeting_key("user-1");
//! let on = client.get_bool_value("new-ui", Some(&ctx), None).await.unwrap_or(false);
//! # let _ = on; Ok(()) }
//! ```
//!
//! Mapping: reasons STATIC, TARGETING_MATCH, DEFAULT, DISABLED as such;
//! errors FLAG_NOT_FOUND, PARSE_ERROR, TYPE_MISMATCH as such, GENERAL as
//! `General(message)`. A flag that resolves to *no value* — a disabled flag
//! (reason DISABLED), or no default variant and the targeting named none
//! (DEFAULT) — is returned as an error `General(REASON)` (`General("DISABLED")`,
//! `General("DEFAULT")`): the Rust API has no "use the caller's default"
//! answer, and every `get_*_value(..).unwrap_or(default)` then gives the
//! caller's default, as flagd specifies. The context's `targeting_key`
//! becomes `targetingKey`; date-times become Unix seconds; struct fields are
//! passed when they hold a `serde_json::Value` or a `StructValue`.

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    async_trait, EvaluationContext, EvaluationContextFieldValue, EvaluationError,
    EvaluationErrorCode, EvaluationReason, EvaluationResult, FlagMetadata, FlagMetadataValue,
    StructValue,
};
use serde_json::{Map, Value};

use crate::sdk::{CairnClient, ErrorCode, EvalContext, Evaluation, Reason, Source};

/// The OpenFeature provider of one (app, env).
#[derive(Debug, Clone)]
pub struct CairnProvider {
    sdk: CairnClient,
    metadata: ProviderMetadata,
}

impl CairnProvider {
    pub fn new(sdk: CairnClient) -> Self {
        CairnProvider {
            sdk,
            metadata: ProviderMetadata::new("cairn"),
        }
    }

    /// The SDK client behind the provider.
    pub fn sdk(&self) -> &CairnClient {
        &self.sdk
    }

    fn resolve<T>(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        want: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        details(self.sdk.evaluate(key, &context(ctx)), want, convert)
    }
}

/// The OpenFeature context as a Cairn evaluation context.
pub fn context(ctx: &EvaluationContext) -> EvalContext {
    let mut attrs = Map::new();
    for (k, v) in &ctx.custom_fields {
        if let Some(v) = field_value(v) {
            attrs.insert(k.clone(), v);
        }
    }
    if let Some(tk) = &ctx.targeting_key {
        attrs.insert(
            cairn_eval::TARGETING_KEY.to_owned(),
            Value::String(tk.clone()),
        );
    }
    EvalContext::from_map(attrs)
}

fn field_value(v: &EvaluationContextFieldValue) -> Option<Value> {
    Some(match v {
        EvaluationContextFieldValue::Bool(b) => Value::Bool(*b),
        EvaluationContextFieldValue::Int(i) => Value::from(*i),
        EvaluationContextFieldValue::Float(f) => {
            serde_json::Number::from_f64(*f).map(Value::Number)?
        }
        EvaluationContextFieldValue::String(s) => Value::String(s.clone()),
        EvaluationContextFieldValue::DateTime(t) => Value::from(t.unix_timestamp()),
        EvaluationContextFieldValue::Struct(any) => {
            if let Some(v) = any.downcast_ref::<Value>() {
                v.clone()
            } else {
                struct_to_json(any.downcast_ref::<StructValue>()?)
            }
        }
    })
}

fn of_to_json(v: &open_feature::Value) -> Value {
    match v {
        open_feature::Value::Bool(b) => Value::Bool(*b),
        open_feature::Value::Int(i) => Value::from(*i),
        open_feature::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        open_feature::Value::String(s) => Value::String(s.clone()),
        open_feature::Value::Array(a) => Value::Array(a.iter().map(of_to_json).collect()),
        open_feature::Value::Struct(s) => struct_to_json(s),
    }
}

fn struct_to_json(s: &StructValue) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), of_to_json(v)))
            .collect(),
    )
}

/// JSON as an OpenFeature value; `null` has no OpenFeature form (`None`).
fn json_to_of(v: &Value) -> Option<open_feature::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => open_feature::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => open_feature::Value::Int(i),
            None => open_feature::Value::Float(n.as_f64()?),
        },
        Value::String(s) => open_feature::Value::String(s.clone()),
        Value::Array(a) => open_feature::Value::Array(a.iter().filter_map(json_to_of).collect()),
        Value::Object(m) => open_feature::Value::Struct(json_to_struct(m)),
    })
}

fn json_to_struct(m: &Map<String, Value>) -> StructValue {
    StructValue {
        fields: m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), json_to_of(v)?)))
            .collect(),
    }
}

fn reason(r: Reason) -> EvaluationReason {
    match r {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Default => EvaluationReason::Default,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Error => EvaluationReason::Error,
    }
}

fn error(code: ErrorCode, message: Option<String>) -> EvaluationError {
    let code = match code {
        ErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorCode::ParseError => EvaluationErrorCode::ParseError,
        ErrorCode::TypeMismatch => EvaluationErrorCode::TypeMismatch,
        ErrorCode::General => {
            EvaluationErrorCode::General(message.clone().unwrap_or_else(|| "GENERAL".into()))
        }
    };
    EvaluationError { code, message }
}

fn metadata(m: &Map<String, Value>) -> FlagMetadata {
    let mut out = FlagMetadata::default();
    for (k, v) in m {
        let v = match v {
            Value::Bool(b) => FlagMetadataValue::Bool(*b),
            Value::String(s) => FlagMetadataValue::String(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => FlagMetadataValue::Int(i),
                None => match n.as_f64() {
                    Some(f) => FlagMetadataValue::Float(f),
                    None => continue,
                },
            },
            _ => continue,
        };
        out.add_value(k.clone(), v);
    }
    out
}

/// An SDK evaluation as OpenFeature resolution details (see the module docs).
fn details<T>(
    e: Evaluation<Option<Value>>,
    want: &str,
    convert: impl FnOnce(&Value) -> Option<T>,
) -> EvaluationResult<ResolutionDetails<T>> {
    if let Some(code) = e.error_code {
        return Err(error(code, e.error_message));
    }
    let Some(value) = &e.value else {
        return Err(EvaluationError {
            code: EvaluationErrorCode::General(e.reason.as_str().into()),
            message: Some(format!(
                "flag `{}` resolved to no value (reason {}): the caller's default applies",
                e.key,
                e.reason.as_str()
            )),
        });
    };
    let Some(value) = convert(value) else {
        return Err(EvaluationError {
            code: EvaluationErrorCode::TypeMismatch,
            message: Some(format!("the value of flag `{}` is not {want}", e.key)),
        });
    };
    Ok(ResolutionDetails {
        value,
        variant: e.variant,
        reason: Some(reason(e.reason)),
        flag_metadata: Some(metadata(&e.metadata)),
    })
}

#[async_trait]
impl FeatureProvider for CairnProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// Ready while in touch with the server; stale while serving the cache
    /// file or the last snapshot during a reconnection.
    fn status(&self) -> ProviderStatus {
        let from_server = self.sdk.snapshot().source == Source::Server;
        if from_server && self.sdk.is_connected() {
            ProviderStatus::Ready
        } else {
            ProviderStatus::STALE
        }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, ctx, "a boolean", Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, ctx, "an integer", crate::sdk::as_int)
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, ctx, "a number", Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, ctx, "a string", |v| v.as_str().map(str::to_owned))
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, ctx, "an object", |v| {
            v.as_object().map(json_to_struct)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_context_carries_the_targeting_key_and_fields() {
        let ctx = EvaluationContext::default()
            .with_targeting_key("u1")
            .with_custom_field("email", "a@b.c")
            .with_custom_field("age", 42)
            .with_custom_field("beta", true)
            .with_custom_field(
                "obj",
                EvaluationContextFieldValue::new_struct(json!({"x": 1})),
            );
        let c = context(&ctx);
        assert_eq!(c.targeting_key(), Some("u1"));
        assert_eq!(c.get("email"), Some(&json!("a@b.c")));
        assert_eq!(c.get("age"), Some(&json!(42)));
        assert_eq!(c.get("beta"), Some(&json!(true)));
        assert_eq!(c.get("obj"), Some(&json!({"x": 1})));
    }

    #[test]
    fn json_and_struct_values_convert_both_ways() {
        let v = json!({"a": 1, "b": [true, "x"], "c": {"d": 1.5}, "n": null});
        let s = json_to_struct(v.as_object().unwrap());
        assert_eq!(
            struct_to_json(&s),
            json!({"a": 1, "b": [true, "x"], "c": {"d": 1.5}})
        );
    }
}
