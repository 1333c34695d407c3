//! The evaluation context: the caller's attributes, including the optional `targetingKey`.

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The name of the targeting key attribute in the context (OpenFeature / OFREP).
pub const TARGETING_KEY: &str = "targetingKey";

/// Up to this many attributes, lookups scan linearly (a length check rejects most keys
/// without comparing bytes); above it, they binary-search.
const LINEAR_MAX: usize = 16;

/// Attributes a flag is evaluated against. Built once per request and borrowed by evaluation.
///
/// Rules read it with `{"var": "path.to.attr"}`; `targetingKey` is an ordinary attribute.
/// A `$flagd` attribute given by the caller is shadowed: `$flagd.flagKey` and
/// `$flagd.timestamp` are supplied by the evaluator, as flagd does.
#[derive(Debug, Clone, Default)]
pub struct EvalContext {
    /// Sorted by name, names unique.
    attrs: Vec<(String, Value)>,
    /// The whole context as one JSON object, built on first use (`{"var": ""}`).
    whole: OnceLock<Value>,
}

impl PartialEq for EvalContext {
    fn eq(&self, other: &Self) -> bool {
        self.attrs == other.attrs
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
            Value::Object(attrs) => Ok(Self::from_map(attrs)),
            Value::Null => Ok(Self::default()),
            Value::Bool(_) => Err(ContextError { found: "a boolean" }),
            Value::Number(_) => Err(ContextError { found: "a number" }),
            Value::String(_) => Err(ContextError { found: "a string" }),
            Value::Array(_) => Err(ContextError { found: "an array" }),
        }
    }

    /// A context from the attributes of a JSON object.
    pub fn from_map(attrs: Map<String, Value>) -> Self {
        let mut attrs: Vec<(String, Value)> = attrs.into_iter().collect();
        // A no-op for serde_json's default sorted map; needed with `preserve_order`.
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            attrs,
            whole: OnceLock::new(),
        }
    }

    /// Sets the targeting key.
    pub fn with_targeting_key(mut self, key: impl Into<String>) -> Self {
        self.insert(TARGETING_KEY, Value::String(key.into()));
        self
    }

    /// Sets one attribute.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) -> &mut Self {
        let name = name.into();
        match self.attrs.binary_search_by(|(k, _)| k.as_str().cmp(&name)) {
            Ok(i) => self.attrs[i].1 = value,
            Err(i) => self.attrs.insert(i, (name, value)),
        }
        self.whole = OnceLock::new();
        self
    }

    /// One top-level attribute.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Value> {
        if self.attrs.len() <= LINEAR_MAX {
            self.attrs
                .iter()
                .find(|(k, _)| crate::value::short_eq(k, name))
                .map(|(_, v)| v)
        } else {
            self.attrs
                .binary_search_by(|(k, _)| k.as_str().cmp(name))
                .ok()
                .map(|i| &self.attrs[i].1)
        }
    }

    /// The targeting key, if present and a string.
    pub fn targeting_key(&self) -> Option<&str> {
        self.get(TARGETING_KEY).and_then(Value::as_str)
    }

    /// All attributes as one JSON object (built once, on first use).
    pub fn as_value(&self) -> &Value {
        self.whole
            .get_or_init(|| Value::Object(self.attrs.iter().cloned().collect()))
    }

    /// Attribute names and values, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl From<Map<String, Value>> for EvalContext {
    fn from(attrs: Map<String, Value>) -> Self {
        Self::from_map(attrs)
    }
}
