//! The public API: compile errors, serialization for OFREP, contexts, robustness.

use cairn_eval::{CompiledFlag, ErrorCode, EvalContext, FlagSet, Reason, MAX_DEPTH};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn flag(targeting: Value) -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": targeting})
}

#[test]
fn compile_error_has_pointer_relative_to_the_definition_and_a_message() {
    let e = CompiledFlag::compile(
        "f",
        &flag(json!({"if": [{"sem_ver": [{"var": "v"}, "=>", "1.0.0"]}, "on", "off"]})),
        &Map::new(),
    )
    .unwrap_err();
    assert_eq!(e.path, "/targeting/if/0/sem_ver/1");
    assert!(
        e.message.contains("unknown `sem_ver` operator `=>`"),
        "{}",
        e.message
    );
    assert!(e.to_string().ends_with("(at /targeting/if/0/sem_ver/1)"));
}

#[test]
fn compile_error_inside_an_evaluator_names_it() {
    let mut evaluators = Map::new();
    evaluators.insert("beta".into(), json!({"nope": [1]}));
    let e = CompiledFlag::compile(
        "f",
        &flag(json!({"if": [{"$ref": "beta"}, "on", "off"]})),
        &evaluators,
    )
    .unwrap_err();
    assert!(e.message.contains("$evaluators/beta"), "{}", e.message);
}

#[test]
fn document_errors_point_into_the_document() {
    let e =
        FlagSet::parse(&json!({"flags": {"a/b": flag(json!({"in": 1, "cat": 2}))}})).unwrap_err();
    assert_eq!(e.path, "/flags/a~1b/targeting");
}

#[test]
fn resolution_serializes_as_ofrep() {
    let set = FlagSet::parse(&json!({
        "flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": null,
                        "targeting": {"if": [{"var": "beta"}, "on", {"var": "bad"}]}, "metadata": {"v": 2}}},
        "metadata": {"flagSetId": "s", "v": 1}
    }))
    .unwrap();
    let ok = set.evaluate(
        "f",
        &EvalContext::from_value(json!({"beta": true})).unwrap(),
        0,
    );
    assert_eq!(
        serde_json::to_value(&ok).unwrap(),
        json!({"value": true, "variant": "on", "reason": "TARGETING_MATCH", "metadata": {"flagSetId": "s", "v": 2}})
    );
    let code_default = set.evaluate("f", &EvalContext::new(), 0);
    assert_eq!(
        serde_json::to_value(&code_default).unwrap(),
        json!({"reason": "DEFAULT", "metadata": {"flagSetId": "s", "v": 2}})
    );
    let err = set.evaluate(
        "f",
        &EvalContext::from_value(json!({"bad": "nope"})).unwrap(),
        0,
    );
    let v = serde_json::to_value(&err).unwrap();
    assert_eq!(v["reason"], "ERROR");
    assert_eq!(v["errorCode"], "GENERAL");
    assert!(v["errorDetails"].as_str().unwrap().contains("nope"));
    assert!(v.get("value").is_none());
    let missing = set.evaluate("zzz", &EvalContext::new(), 0);
    assert_eq!(missing.error_code, Some(ErrorCode::FlagNotFound));
    assert_eq!(
        serde_json::to_value(missing).unwrap()["errorCode"],
        "FLAG_NOT_FOUND"
    );
}

#[test]
fn from_flags_applies_set_metadata_under_flag_metadata() {
    let f = CompiledFlag::compile(
        "f",
        &json!({"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "metadata": {"owner": "x"}}),
        &Map::new(),
    )
    .unwrap();
    let mut meta = Map::new();
    meta.insert("owner".into(), json!("set"));
    meta.insert("env".into(), json!("prod"));
    let set = FlagSet::from_flags([f], meta);
    let r = set.evaluate("f", &EvalContext::new(), 0);
    assert_eq!(r.reason, Reason::Static);
    assert_eq!(
        Value::Object(r.metadata.clone()),
        json!({"owner": "x", "env": "prod"})
    );
}

#[test]
fn context_must_be_an_object() {
    assert!(EvalContext::from_value(json!([1])).is_err());
    assert!(EvalContext::from_value(json!("x")).is_err());
    assert_eq!(
        EvalContext::from_value(Value::Null).unwrap(),
        EvalContext::new()
    );
    let c = EvalContext::from_value(json!({"targetingKey": "k"})).unwrap();
    assert_eq!(c.targeting_key(), Some("k"));
    assert_eq!(
        EvalContext::from_value(json!({"targetingKey": 5}))
            .unwrap()
            .targeting_key(),
        None
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_a_parse_error_not_a_stack_overflow() {
    let mut rule = json!({"var": "x"});
    for _ in 0..(MAX_DEPTH + 10) {
        rule = json!({"!": [rule]});
    }
    let e = CompiledFlag::compile("f", &flag(json!({"if": [rule, "on", "off"]})), &Map::new())
        .unwrap_err();
    assert!(e.message.contains("nested deeper"), "{}", e.message);
    let mut ok = json!({"var": "x"});
    for _ in 0..40 {
        ok = json!({"!": [ok]});
    }
    let f =
        CompiledFlag::compile("f", &flag(json!({"if": [ok, "on", "off"]})), &Map::new()).unwrap();
    assert_eq!(f.evaluate(&EvalContext::new(), 0).variant, Some("off"));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let ops = prop::sample::select(vec![
        "var",
        "if",
        "==",
        "===",
        "!=",
        "!",
        "!!",
        "or",
        "and",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "min",
        "max",
        "cat",
        "substr",
        "in",
        "merge",
        "map",
        "filter",
        "reduce",
        "all",
        "some",
        "none",
        "missing",
        "missing_some",
        "starts_with",
        "ends_with",
        "sem_ver",
        "fractional",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        prop::sample::select(vec![
            "on",
            "off",
            "a",
            "",
            "1.2.3",
            ">=",
            "x.y",
            "targetingKey"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            (ops.clone(), prop::collection::vec(inner, 0..4))
                .prop_map(|(op, args)| json!({ op: args })),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary rules either fail to compile with an error or evaluate without panicking,
    /// against arbitrary contexts.
    #[test]
    fn arbitrary_rules_never_panic(rule in arb_json(), ctx in arb_json(), now in any::<i64>()) {
        if let Ok(f) = CompiledFlag::compile("f", &json!({
            "state": "ENABLED", "variants": {"on": 1, "off": 0, "true": 2, "false": 3}, "defaultVariant": "off",
            "targeting": rule
        }), &Map::new()) {
            let mut c = EvalContext::new();
            c.insert("x", ctx);
            let r = f.evaluate(&c, now);
            prop_assert!(r.value.is_some() || r.reason == Reason::Error);
        }
    }
}

/// Found by `arbitrary_rules_never_panic`: `in` over a constant empty array once recursed
/// forever between the hot and cold evaluation paths.
#[test]
fn in_over_a_constant_empty_array_is_false() {
    let f = CompiledFlag::compile(
        "f",
        &json!({
            "state": "ENABLED", "variants": {"true": 2, "false": 3}, "defaultVariant": "true",
            "targeting": {"in": [[1, {"+": []}], []]}
        }),
        &Map::new(),
    )
    .unwrap();
    let r = f.evaluate(&EvalContext::new(), 0);
    assert_eq!(
        (r.variant, r.reason),
        (Some("false"), Reason::TargetingMatch)
    );
}
