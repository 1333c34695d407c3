use serde_json::Value;
use sha2::{Digest, Sha256};

/// Canonical JSON: object members sorted by key (byte order), no insignificant
/// whitespace, numbers and strings as serde_json writes them. Two equal values
/// always give the same text, whatever order their members were inserted in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Serializing a string cannot fail.
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `sha256:<hex>` of the canonical JSON of `value`.
pub fn checksum(value: &Value) -> String {
    checksum_bytes(canonical_json(value).as_bytes())
}

/// `sha256:<hex>` of raw bytes.
pub fn checksum_bytes(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_order_does_not_change_the_text() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"y":2,"x":1}],"c":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}"#
        );
        assert_eq!(checksum(&a), checksum(&b));
    }

    #[test]
    fn different_values_have_different_checksums() {
        assert_ne!(checksum(&json!({"a": 1})), checksum(&json!({"a": 2})));
        assert!(checksum(&json!(1)).starts_with("sha256:"));
        assert_eq!(checksum(&json!(1)).len(), "sha256:".len() + 64);
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            canonical_json(&json!({"a\"b": "x\ny"})),
            r#"{"a\"b":"x\ny"}"#
        );
    }
}
