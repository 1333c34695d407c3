//! Registered JSON Schemas (draft 2020-12 and draft 7, chosen by `$schema`),
//! compiled once, and the rules for which schemas apply to which entries.

use cairn_model::{glob_match, EntryKind, Scope};
use cairn_store::SchemaRecord;
use serde_json::Value;

use crate::{Error, Result, Violation};

/// An active schema, compiled.
pub struct CompiledSchema {
    pub record: SchemaRecord,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("record", &self.record)
            .finish()
    }
}

impl CompiledSchema {
    /// Compile a schema document; a document that is not a valid schema is `Invalid` on `schema`.
    pub fn compile(record: SchemaRecord) -> Result<Self> {
        if !record.schema.is_object() && !record.schema.is_boolean() {
            return Err(Error::invalid(
                "schema",
                "a JSON Schema must be an object or a boolean",
            ));
        }
        if let Err(e) = jsonschema::meta::validate(&record.schema) {
            return Err(Error::invalid(
                "schema",
                format!("not a valid JSON Schema at {}: {e}", e.instance_path),
            ));
        }
        let validator = jsonschema::validator_for(&record.schema)
            .map_err(|e| Error::invalid("schema", format!("cannot compile schema: {e}")))?;
        Ok(CompiledSchema { record, validator })
    }

    /// `app/pattern@version`, as violations name it.
    pub fn label(&self) -> String {
        format!(
            "{}/{}@{}",
            self.record
                .app
                .as_deref()
                .unwrap_or(cairn_model::GLOBAL_APP),
            self.record.pattern,
            self.record.version
        )
    }

    /// Does this schema govern `key` at `scope` of kind `kind`? Global schemas
    /// govern every scope, app schemas the scopes of their app; only `config`
    /// entries are governed (flags are checked against the flag format).
    pub fn applies_to(&self, scope: &Scope, key: &str, kind: EntryKind) -> bool {
        kind == EntryKind::Config
            && (self.record.app.is_none() || self.record.app == scope.app)
            && glob_match(&self.record.pattern, key)
    }

    /// Every violation of `value`, with `entry` as the subject (if any).
    pub fn violations(&self, value: &Value, entry: Option<&str>) -> Vec<Violation> {
        let label = self.label();
        self.validator
            .iter_errors(value)
            .map(|e| Violation {
                entry: entry.map(str::to_owned),
                pointer: e.instance_path.to_string(),
                message: e.to_string(),
                schema: label.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(schema: Value) -> SchemaRecord {
        SchemaRecord {
            app: Some("billing".into()),
            pattern: "database/*".into(),
            version: 1,
            schema,
            revision: 1,
            actor: "t".into(),
            message: String::new(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn both_drafts_validate_with_pointers() {
        for draft in [
            "https://json-schema.org/draft/2020-12/schema",
            "http://json-schema.org/draft-07/schema#",
        ] {
            let s = CompiledSchema::compile(rec(json!({
                "$schema": draft,
                "type": "object",
                "properties": {"max": {"type": "integer", "maximum": 100}, "idle": {"type": "integer"}},
                "required": ["max"]
            })))
            .unwrap();
            assert!(s.violations(&json!({"max": 20}), None).is_empty());
            let v = s.violations(&json!({"max": 200, "idle": "x"}), Some("k"));
            let mut pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
            pointers.sort();
            assert_eq!(pointers, ["/idle", "/max"], "{draft}");
            assert_eq!(v[0].schema, "billing/database/*@1");
            assert_eq!(s.violations(&json!({}), None).len(), 1);
        }
    }

    #[test]
    fn bad_schema_is_invalid() {
        let err = CompiledSchema::compile(rec(json!({"type": 12}))).unwrap_err();
        assert_eq!(err.field(), Some("schema"));
        assert!(CompiledSchema::compile(rec(json!("str"))).is_err());
    }

    #[test]
    fn scope_rules() {
        let s = CompiledSchema::compile(rec(json!({"type": "object"}))).unwrap();
        assert!(s.applies_to(
            &Scope::new(Some("billing"), Some("prod")),
            "database/pool",
            EntryKind::Config
        ));
        assert!(!s.applies_to(
            &Scope::new(Some("other"), None),
            "database/pool",
            EntryKind::Config
        ));
        assert!(!s.applies_to(&Scope::global(), "database/pool", EntryKind::Config));
        assert!(!s.applies_to(
            &Scope::new(Some("billing"), None),
            "database/pool",
            EntryKind::Flag
        ));
        assert!(!s.applies_to(
            &Scope::new(Some("billing"), None),
            "cache/ttl",
            EntryKind::Config
        ));
    }
}
