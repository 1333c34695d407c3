use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an entry holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Any JSON value, part of the resolved configuration.
    #[default]
    Config,
    /// A flagd flag definition.
    Flag,
    /// A reusable targeting rule (`$evaluators` in flagd).
    Segment,
    /// The flag-set metadata of a scope (a flagd document's `metadata`): one
    /// object of scalars, always at the empty key ([`crate::FLAG_SET_KEY`]).
    #[serde(rename = "flagset")]
    FlagSet,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Config => "config",
            EntryKind::Flag => "flag",
            EntryKind::Segment => "segment",
            EntryKind::FlagSet => "flagset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "config" => Some(EntryKind::Config),
            "flag" => Some(EntryKind::Flag),
            "segment" => Some(EntryKind::Segment),
            "flagset" => Some(EntryKind::FlagSet),
            _ => None,
        }
    }
}

/// How a more specific value combines with the less specific ones below it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MergeMode {
    /// RFC 7396 JSON Merge Patch onto what the less specific scopes give.
    #[default]
    Merge,
    /// This value replaces what the less specific scopes give.
    Replace,
}

impl MergeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMode::Merge => "merge",
            MergeMode::Replace => "replace",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "merge" => Some(MergeMode::Merge),
            "replace" => Some(MergeMode::Replace),
            _ => None,
        }
    }
}

/// One scope's contribution to one key.
#[derive(Debug, Clone, Copy)]
pub struct LayerValue<'a> {
    pub value: &'a Value,
    pub merge: MergeMode,
}

/// One scope's entries, by key.
pub type Layer<M> = BTreeMap<String, M>;

/// Resolve one key from its values, least specific first.
///
/// The resolved configuration is a JSON document `{key: value, …}` and every
/// scope is an RFC 7396 merge patch of it: objects merge member by member,
/// anything else replaces, and `null` removes (a `null` at a more specific
/// scope removes the key from the view). `MergeMode::Replace` replaces the
/// value below instead of merging into it. `None` means the key is absent.
pub fn resolve_key<'a>(values: impl IntoIterator<Item = LayerValue<'a>>) -> Option<Value> {
    let mut acc: Option<Value> = None;
    for lv in values {
        let next = match lv.merge {
            MergeMode::Replace => lv.value.clone(),
            MergeMode::Merge => {
                let mut base = acc.take().unwrap_or(Value::Null);
                json_patch::merge(&mut base, lv.value);
                base
            }
        };
        acc = (!next.is_null()).then_some(next);
    }
    acc
}

/// Resolve whole layers (least specific first) into `key → value`.
///
/// `view` turns a stored entry into its contribution, or `None` when it does
/// not take part (another kind, a tombstone).
pub fn resolve_layers<'a, M>(
    layers: &[&'a Layer<M>],
    view: impl Fn(&'a M) -> Option<LayerValue<'a>>,
) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for layer in layers {
        for (key, m) in layer.iter() {
            let Some(lv) = view(m) else { continue };
            let prev = out.remove(key);
            let merged = match prev {
                Some(prev) => resolve_key([
                    LayerValue {
                        value: &prev,
                        merge: MergeMode::Replace,
                    },
                    lv,
                ]),
                None => resolve_key([lv]),
            };
            if let Some(v) = merged {
                out.insert(key.clone(), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn layer(pairs: &[(&str, Value, MergeMode)]) -> Layer<(Value, MergeMode)> {
        pairs
            .iter()
            .map(|(k, v, m)| (k.to_string(), (v.clone(), *m)))
            .collect()
    }

    fn view(m: &(Value, MergeMode)) -> Option<LayerValue<'_>> {
        Some(LayerValue {
            value: &m.0,
            merge: m.1,
        })
    }

    #[test]
    fn four_levels_merge_most_specific_wins() {
        use MergeMode::Merge as M;
        let g = layer(&[
            ("db", json!({"max": 10, "idle": 2, "host": "g"}), M),
            ("only_global", json!(1), M),
        ]);
        let ge = layer(&[("db", json!({"host": "prod-db"}), M)]);
        let a = layer(&[("db", json!({"max": 20}), M)]);
        let ae = layer(&[("db", json!({"idle": null, "tls": {"on": true}}), M)]);
        let out = resolve_layers(&[&g, &ge, &a, &ae], view);
        assert_eq!(
            out["db"],
            json!({"max": 20, "host": "prod-db", "tls": {"on": true}})
        );
        assert_eq!(out["only_global"], json!(1));
    }

    #[test]
    fn null_removes_a_key_and_replace_replaces() {
        let g = layer(&[
            ("a", json!({"x": 1, "y": 2}), MergeMode::Merge),
            ("b", json!(5), MergeMode::Merge),
        ]);
        let app = layer(&[
            ("a", json!({"z": 3}), MergeMode::Replace),
            ("b", Value::Null, MergeMode::Merge),
        ]);
        let out = resolve_layers(&[&g, &app], view);
        assert_eq!(out["a"], json!({"z": 3}));
        assert!(!out.contains_key("b"));
    }

    #[test]
    fn non_objects_replace() {
        let g = layer(&[("a", json!({"x": 1}), MergeMode::Merge)]);
        let app = layer(&[("a", json!([1, 2]), MergeMode::Merge)]);
        assert_eq!(resolve_layers(&[&g, &app], view)["a"], json!([1, 2]));
        let app2 = layer(&[("a", json!({"y": 2}), MergeMode::Merge)]);
        assert_eq!(resolve_layers(&[&app, &app2], view)["a"], json!({"y": 2}));
    }

    #[test]
    fn excluded_entries_do_not_take_part() {
        let g = layer(&[("a", json!(1), MergeMode::Merge)]);
        let out = resolve_layers(&[&g], |_| None);
        assert!(out.is_empty());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-100i64..100).prop_map(Value::from),
            "[a-c]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_layer() -> impl Strategy<Value = Layer<(Value, MergeMode)>> {
        prop::collection::btree_map(
            "[k-n]",
            arb_json().prop_map(|v| (v, MergeMode::Merge)),
            0..4,
        )
    }

    proptest! {
        /// Resolving equals folding RFC 7396 merge patches of the layer
        /// documents `{key: value}` onto an empty document.
        #[test]
        fn resolving_equals_folding_merge_patches(layers in prop::collection::vec(arb_layer(), 1..5)) {
            let refs: Vec<&Layer<(Value, MergeMode)>> = layers.iter().collect();
            let resolved = resolve_layers(&refs, view);
            let mut doc = json!({});
            for l in &layers {
                let patch = Value::Object(l.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect());
                json_patch::merge(&mut doc, &patch);
            }
            let expected: BTreeMap<String, Value> = doc.as_object().unwrap().clone().into_iter().collect();
            prop_assert_eq!(resolved, expected);
        }

        /// A replace-mode value at the top is exactly what is served (unless null).
        #[test]
        fn replace_on_top_wins(below in arb_layer(), top in arb_json()) {
            let mut top_layer = Layer::new();
            top_layer.insert("k".to_string(), (top.clone(), MergeMode::Replace));
            let resolved = resolve_layers(&[&below, &top_layer], view);
            if top.is_null() {
                prop_assert!(!resolved.contains_key("k"));
            } else {
                prop_assert_eq!(&resolved["k"], &top);
            }
        }
    }
}
