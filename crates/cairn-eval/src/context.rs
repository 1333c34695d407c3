//! The evaluation context: the caller's attributes, including the optional `targetingKey`.

use serde_json::{Map, Value};

/// The name of the targeting key attribute in the context (OpenFeature / OFREP).
pub const TARGETING_KEY: &str = "targetingKey";

/// Attributes a flag is evaluated against. Built once per request and borrowed by evaluation.
///
/// Rules read it with `{"var": "path.to.attr"}`; `targetingKey` is an ordinary attribute.
/// A `$flagd` attribute given by the caller is shadowed: `$flagd.flagKey` and
/// `$flagd.timestamp` are supplied by the evaluator, as flagd does.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalContext {
    /// Always a `Value::Object`, so rules can borrow the whole context as a JSON value.
    attrs: Value,
}

impl Default for EvalContext {
    fn default() -> Self {
        Self {
            attrs: Value::Object(Map::new()),
        }
    }
}

/// The context given was not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the evaluation context must be a JSON object, found {found}")]
pub struct ContextError {
    /// The JSON type that was given instead.
    pub found: &'static str,
}

impl EvalContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context from a JSON object; `null` gives an empty context.
    pub fn from_value(v: Value) -> Result<Self, ContextError> {
        match v {
            v @ Value::Object(_) => Ok(Self { attrs: v }),
            Value::Null => Ok(Self::default()),
            Value::Bool(_) => Err(ContextError { found: "a boolean" }),
            Value::Number(_) => Err(ContextError { found: "a number" }),
            Value::String(_) => Err(ContextError { found: "a string" }),
            Value::Array(_) => Err(ContextError { found: "an array" }),
        }
    }

    /// A context from the attributes of a JSON object.
    pub fn from_map(attrs: Map<String, Value>) -> Self {
        Self {
            attrs: Value::Object(attrs),
        }
    }

    /// Sets the targeting key.
    pub fn with_targeting_key(mut self, key: impl Into<String>) -> Self {
        self.insert(TARGETING_KEY, Value::String(key.into()));
        self
    }

    /// Sets one attribute.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) -> &mut Self {
        // `attrs` is an object by construction (private field, every constructor makes one).
        if let Value::Object(m) = &mut self.attrs {
            m.insert(name.into(), value);
        }
        self
    }

    /// The targeting key, if present and a string.
    pub fn targeting_key(&self) -> Option<&str> {
        self.attrs.get(TARGETING_KEY).and_then(Value::as_str)
    }

    /// All attributes, as a JSON object.
    pub fn as_value(&self) -> &Value {
        &self.attrs
    }
}

impl From<Map<String, Value>> for EvalContext {
    fn from(attrs: Map<String, Value>) -> Self {
        Self::from_map(attrs)
    }
}
