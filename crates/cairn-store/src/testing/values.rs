//! JSON values come back exactly as written.

use std::sync::Arc;

use cairn_model::Scope;
use serde_json::{json, Value};

use super::{commit, put};
use crate::Store;

pub(super) async fn values_round_trip_exactly(s: Arc<dyn Store>) {
    let mut key_order = serde_json::Map::new();
    for k in ["zeta", "alpha", "mid", "Beta", "_"] {
        key_order.insert(k.to_owned(), json!(k.len()));
    }
    let values: Vec<Value> = vec![
        json!(u64::MAX),
        json!(i64::MIN),
        json!(9_007_199_254_740_993_u64),
        json!(0.1),
        json!(1.0),
        json!(-0.0),
        json!(1e300),
        json!(5e-324),
        json!(std::f64::consts::PI),
        json!(0),
        json!(-1),
        Value::Null,
        json!(true),
        json!(""),
        json!("héllo wörld ✓ 日本語 🚀 \u{7f} \\ \" \n\t"),
        json!("nul \u{0} inside"),
        json!([]),
        json!({}),
        json!([1, "two", [3.5, [null]], {"four": 4}]),
        json!({"a": {"b": {"c": {"d": [1, {"e": null}]}}}, "unicode-ключ": "значение"}),
        Value::Object(key_order),
        json!("x".repeat(100_000)),
    ];
    let g = Scope::global();
    let mutations = values
        .iter()
        .enumerate()
        .map(|(i, v)| put(&g, &format!("v/{i:02}"), v.clone()))
        .collect();
    let c = commit(&*s, mutations).await.unwrap();
    let (_, changes) = s.entry_changes_since(0).await.unwrap();
    let live = s.load().await.unwrap().entries;
    let past = s
        .entries_at(std::slice::from_ref(&g), c.revision)
        .await
        .unwrap();
    for (i, want) in values.iter().enumerate() {
        let key = format!("v/{i:02}");
        let got = s.entry_version(&g, &key, 1).await.unwrap().unwrap();
        let want_text = serde_json::to_string(want).unwrap();
        assert_eq!(
            got.value.as_ref(),
            Some(want),
            "value {i} ({want_text:.80})"
        );
        assert_eq!(
            serde_json::to_string(got.value.as_ref().unwrap()).unwrap(),
            want_text,
            "value {i} text"
        );
        for (source, list) in [
            ("changes", &changes),
            ("load", &live),
            ("entries_at", &past),
        ] {
            let found = list.iter().find(|v| v.key == key).unwrap();
            assert_eq!(found.value.as_ref(), Some(want), "{source}: value {i}");
        }
    }
    // `null` is a value, not a delete.
    let null = s.entry_version(&g, "v/11", 1).await.unwrap().unwrap();
    assert!(!null.is_tombstone());
}
