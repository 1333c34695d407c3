use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

/// The difference between two values: an RFC 6902 patch that turns `from`
/// into `to`, and a readable unified diff of their pretty-printed forms.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValueDiff {
    pub patch: json_patch::Patch,
    pub text: String,
}

/// Diff two values. `from_label`/`to_label` head the text diff (e.g. `v2`, `v5`).
pub fn diff_values(from: &Value, to: &Value, from_label: &str, to_label: &str) -> ValueDiff {
    let patch = json_patch::diff(from, to);
    let a = pretty(from);
    let b = pretty(to);
    let text = TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(from_label, to_label)
        .to_string();
    ValueDiff { patch, text }
}

fn pretty(v: &Value) -> String {
    // Canonical member order so the text diff shows only real changes.
    let canon: Value = serde_json::from_str(&crate::canonical_json(v)).unwrap_or(Value::Null);
    let mut s = serde_json::to_string_pretty(&canon).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn patch_and_text() {
        let a = json!({"max": 10, "idle": 2});
        let b = json!({"max": 20, "idle": 2, "tls": true});
        let d = diff_values(&a, &b, "v1", "v2");
        let mut x = a.clone();
        json_patch::patch(&mut x, &d.patch).unwrap();
        assert_eq!(x, b);
        assert!(d.text.contains("--- v1"));
        assert!(d.text.contains("-  \"max\": 10"), "{}", d.text);
        assert!(d.text.contains("+  \"max\": 20"), "{}", d.text);
        assert!(d.text.contains("+  \"tls\": true"), "{}", d.text);
    }

    #[test]
    fn equal_values_have_empty_diff() {
        let d = diff_values(&json!({"a": [1, 2]}), &json!({"a": [1, 2]}), "a", "b");
        assert!(d.patch.0.is_empty());
        assert!(d.text.is_empty());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 20, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-d~/]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn diff_patch_round_trip(a in arb_json(), b in arb_json()) {
            let d = diff_values(&a, &b, "a", "b");
            let mut x = a.clone();
            json_patch::patch(&mut x, &d.patch).unwrap();
            prop_assert_eq!(x, b);
        }
    }
}
