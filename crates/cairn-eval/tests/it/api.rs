//! The public API: compile errors, serialization for OFREP, contexts, robustness.

use cairn_eval::{
    lint_document, CompiledFlag, ErrorCode, EvalContext, FlagSet, Reason, Warning, WarningCode,
    MAX_DEPTH,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn flag(targeting: Value) -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": targeting})
}

#[test]
fn compile_error_has_pointer_relative_to_the_definition_and_a_message() {
    let e = CompiledFlag::compile(
        "f",
        &flag(json!({"if": [{"sem_verr": [{"var": "v"}, ">=", "1.0.0"]}, "on", "off"]})),
        &Map::new(),
    )
    .unwrap_err();
    assert_eq!(e.path, "/targeting/if/0/sem_verr");
    assert!(
        e.message.contains("unknown operation `sem_verr`"),
        "{}",
        e.message
    );
    assert!(e.to_string().ends_with("(at /targeting/if/0/sem_verr)"));
}

#[test]
fn compile_error_inside_an_evaluator_points_at_the_ref_and_names_the_place_inside() {
    let mut evaluators = Map::new();
    evaluators.insert("beta".into(), json!({"!": {"nope": [1]}}));
    let e = CompiledFlag::compile(
        "f",
        &flag(json!({"if": [{"$ref": "beta"}, "on", "off"]})),
        &evaluators,
    )
    .unwrap_err();
    assert_eq!(e.path, "/targeting/if/0/$ref");
    assert!(
        e.message.contains("unknown operation `nope`")
            && e.message.contains("/$evaluators/beta/!/nope"),
        "{}",
        e.message
    );
}

fn codes_and_paths(ws: &[Warning]) -> Vec<(WarningCode, &str)> {
    ws.iter().map(|w| (w.code, w.path.as_str())).collect()
}

#[test]
fn warnings_have_codes_and_pointers_relative_to_the_definition() {
    let f = CompiledFlag::compile(
        "f",
        &json!({
            "state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targetting": {},
            "targeting": {"if": [
                {"sem_ver": [{"var": "v"}, "=>", "1.0.0"]}, "on",
                {"starts_with": [{"var": "e"}]}, "onn",
                {"fractional": [["on", -1], ["off", 0]]}
            ]}
        }),
        &Map::new(),
    )
    .unwrap();
    assert_eq!(
        codes_and_paths(f.warnings()),
        vec![
            (WarningCode::UnknownProperty, "/targetting"),
            (WarningCode::UnknownOperator, "/targeting/if/0/sem_ver/1"),
            (WarningCode::ArgumentCount, "/targeting/if/2/starts_with"),
            (WarningCode::UnknownVariant, "/targeting/if/3"),
            (
                WarningCode::NegativeWeight,
                "/targeting/if/4/fractional/0/1"
            ),
            (WarningCode::ZeroWeights, "/targeting/if/4/fractional"),
        ]
    );
    assert!(
        f.warnings()[1].message.contains("`=>`"),
        "{:?}",
        f.warnings()
    );
    // Still evaluates: the bad sem_ver is null, starts_with is null, the split is null.
    let r = f.evaluate(&EvalContext::new().with_targeting_key("u"), 0);
    assert_eq!((r.variant, r.reason), (Some("off"), Reason::Default));
    // A clean flag has none.
    let clean = CompiledFlag::compile(
        "g",
        &flag(json!({"if": [{"sem_ver": [{"var": "v"}, ">=", "1.0.0"]}, "on", "off"]})),
        &Map::new(),
    )
    .unwrap();
    assert!(clean.warnings().is_empty(), "{:?}", clean.warnings());
}

#[test]
fn missing_ref_compiles_with_a_warning_and_every_evaluation_is_parse_error() {
    let f = CompiledFlag::compile(
        "f",
        &flag(json!({"if": [{"$ref": "staff"}, "on", "off"]})),
        &Map::new(),
    )
    .unwrap();
    assert_eq!(
        codes_and_paths(f.warnings()),
        vec![(WarningCode::MissingRef, "/targeting/if/0/$ref")]
    );
    for ctx in [
        EvalContext::new(),
        EvalContext::from_value(json!({"targetingKey": "u", "email": "a@b.c"})).unwrap(),
    ] {
        let r = f.evaluate(&ctx, 0);
        assert_eq!(r.reason, Reason::Error);
        assert_eq!(r.error_code, Some(ErrorCode::ParseError));
        assert_eq!((r.value, r.variant), (None, None));
        assert!(
            r.error_message.as_deref().unwrap_or("").contains("staff"),
            "{r:?}"
        );
    }
    // With the evaluator it works and has no warning.
    let mut evaluators = Map::new();
    evaluators.insert(
        "staff".into(),
        json!({"ends_with": [{"var": "email"}, "@corp.com"]}),
    );
    let f = CompiledFlag::compile(
        "f",
        &flag(json!({"if": [{"$ref": "staff"}, "on", "off"]})),
        &evaluators,
    )
    .unwrap();
    assert!(f.warnings().is_empty());
    let ctx = EvalContext::from_value(json!({"email": "x@corp.com"})).unwrap();
    assert_eq!(f.evaluate(&ctx, 0).variant, Some("on"));
}

/// What cairn-core relies on when a segment is deleted: a flag using it, directly or
/// through another segment, reports `MissingRef`.
#[test]
fn missing_ref_is_reported_through_nested_evaluators() {
    let mut evaluators = Map::new();
    evaluators.insert(
        "beta-users".into(),
        json!({"and": [{"$ref": "staff"}, {"var": "beta"}]}),
    );
    let f = CompiledFlag::compile(
        "f",
        &flag(json!({"if": [{"$ref": "beta-users"}, "on", "off"]})),
        &evaluators,
    )
    .unwrap();
    assert_eq!(
        codes_and_paths(f.warnings()),
        vec![(WarningCode::MissingRef, "/targeting/if/0/$ref")]
    );
    let m = &f.warnings()[0].message;
    assert!(
        m.contains("`staff`") && m.contains("/$evaluators/beta-users/and/0/$ref"),
        "{m}"
    );
    assert_eq!(
        f.evaluate(&EvalContext::new(), 0).error_code,
        Some(ErrorCode::ParseError)
    );
}

#[test]
fn ref_cycle_compiles_with_a_warning_and_is_parse_error() {
    let mut evaluators = Map::new();
    evaluators.insert("a".into(), json!({"!": {"$ref": "b"}}));
    evaluators.insert("b".into(), json!({"!": {"$ref": "a"}}));
    let f = CompiledFlag::compile("f", &flag(json!({"$ref": "a"})), &evaluators).unwrap();
    assert_eq!(
        codes_and_paths(f.warnings()),
        vec![(WarningCode::RefCycle, "/targeting/$ref")]
    );
    assert!(f.warnings()[0].message.contains("/$evaluators/b/!/$ref"));
    assert_eq!(
        f.evaluate(&EvalContext::new(), 0).error_code,
        Some(ErrorCode::ParseError)
    );
}

#[test]
fn lint_document_points_into_the_document_and_reports_evaluator_problems_once() {
    let doc = json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flaggs": {},
        "$evaluators": {
            "old/app": {"sem_ver": [{"var": "v"}, "=<", "1.0.0"]},
            "pick": {"if": [{"var": "x"}, "yes", null]},
            "uses-gone": {"!": {"$ref": "gone"}}
        },
        "flags": {
            "a~b": flag(json!({"if": [{"$ref": "old/app"}, "on", "off"]})),
            "c": flag(json!({"if": [{"$ref": "old/app"}, "on", {"$ref": "uses-gone"}]})),
            "d": flag(json!({"$ref": "pick"})),
            "e": flag(json!({"fractional": [{"var": "targetingKey"}, ["on", 0], ["off", 0]]})),
            "clean": flag(json!({"if": [{"starts_with": [{"var": "id"}, "x"]}, "on", "off"]}))
        }
    });
    let ws = lint_document(&doc).unwrap();
    assert_eq!(
        codes_and_paths(&ws),
        vec![
            (WarningCode::UnknownProperty, "/flaggs"),
            (
                WarningCode::UnknownOperator,
                "/$evaluators/old~1app/sem_ver/1"
            ),
            (WarningCode::MissingRef, "/$evaluators/uses-gone/!/$ref"),
            (WarningCode::UnknownVariant, "/flags/d/targeting/$ref"),
            (WarningCode::ZeroWeights, "/flags/e/targeting/fractional"),
        ]
    );
    // The document still compiles: lint and parse agree.
    let set = FlagSet::parse(&doc).unwrap();
    assert_eq!(set.len(), 5);
    // The flags' own warnings carry the evaluator problems they bring in.
    assert_eq!(
        codes_and_paths(set.get("c").unwrap().warnings()),
        vec![
            (WarningCode::UnknownOperator, "/targeting/if/0/$ref"),
            (WarningCode::MissingRef, "/targeting/if/2/$ref"),
        ]
    );
    assert_eq!(
        set.evaluate("c", &EvalContext::new(), 0).error_code,
        Some(ErrorCode::ParseError)
    );
    assert_eq!(
        set.evaluate(
            "a~b",
            &EvalContext::from_value(json!({"v": "0.1.0"})).unwrap(),
            0
        )
        .variant,
        Some("off")
    );
    // Warnings serialize with kebab-case codes.
    assert_eq!(
        serde_json::to_value(&ws[4]).unwrap(),
        json!({"code": "zero-weights", "path": "/flags/e/targeting/fractional",
               "message": "every `fractional` weight is 0; it always yields null"})
    );
}

#[test]
fn lint_document_refuses_what_flagd_refuses_with_a_pointer_into_the_document() {
    let ok = flag(json!({}));
    for (doc, path) in [
        (json!("flags"), ""),
        (json!({"$evaluators": {}}), ""),
        (json!({"flags": [ok]}), "/flags"),
        (
            json!({"flags": {"f": {"state": "ON", "variants": {"a": 1}}}}),
            "/flags/f/state",
        ),
        (json!({"flags": {"f": {"state": "ENABLED"}}}), "/flags/f"),
        (
            json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1, "b": "2"}}}}),
            "/flags/f/variants/b",
        ),
        (
            json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "z"}}}),
            "/flags/f/defaultVariant",
        ),
        (
            json!({"flags": {"f": ok.clone()}, "metadata": {"m": [1]}}),
            "/metadata/m",
        ),
        (
            json!({"flags": {"f": ok.clone()}, "$evaluators": {"e": {"nope": []}}}),
            "/$evaluators/e/nope",
        ),
        (
            json!({"flags": {"f": ok.clone()}, "$evaluators": {"e": {}}}),
            "/$evaluators/e",
        ),
        (
            json!({"flags": {"f/g": flag(json!({"if": [{"==": [1, 1], "!=": [1, 2]}, "on"]}))}}),
            "/flags/f~1g/targeting/if/0",
        ),
    ] {
        let e = lint_document(&doc).expect_err(&doc.to_string());
        assert_eq!(e.path, path, "{doc}: {e}");
        assert_eq!(FlagSet::parse(&doc).unwrap_err(), e, "{doc}");
    }
}

#[test]
fn disabled_resolution_serializes_without_value_and_variant() {
    let set = FlagSet::parse(&json!({
        "flags": {"f": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
                        "metadata": {"owner": "x"}}},
        "metadata": {"flagSetId": "s"}
    }))
    .unwrap();
    let r = set.evaluate("f", &EvalContext::new(), 0);
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"reason": "DISABLED", "metadata": {"flagSetId": "s", "owner": "x"}})
    );
    assert!(!r.is_error());
    let typed = r.into_bool(false);
    assert_eq!(
        (typed.value, typed.variant, typed.reason),
        (false, None, Reason::Disabled)
    );
}

#[test]
fn metadata_merge_without_any_metadata_is_empty() {
    let set = FlagSet::parse(&json!({"flags": {"f": flag(json!({}))}})).unwrap();
    assert!(set
        .evaluate("f", &EvalContext::new(), 0)
        .metadata
        .is_empty());
    let f = CompiledFlag::compile("f", &flag(json!({})), &Map::new()).unwrap();
    let set = FlagSet::from_flags([f], Map::new());
    assert!(set
        .evaluate("f", &EvalContext::new(), 0)
        .metadata
        .is_empty());
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
    /// against arbitrary contexts; every warning points at a member of the definition.
    #[test]
    fn arbitrary_rules_never_panic(rule in arb_json(), ctx in arb_json(), now in any::<i64>()) {
        let def = json!({
            "state": "ENABLED", "variants": {"on": 1, "off": 0, "true": 2, "false": 3}, "defaultVariant": "off",
            "targeting": rule
        });
        if let Ok(f) = CompiledFlag::compile("f", &def, &Map::new()) {
            for w in f.warnings() {
                prop_assert!(def.pointer(&w.path).is_some(), "{w} does not point into {def}");
            }
            let mut c = EvalContext::new();
            c.insert("x", ctx);
            let r = f.evaluate(&c, now);
            prop_assert!(r.value.is_some() || r.reason == Reason::Error);
        }
    }

    /// Linting a document and parsing it agree: both refuse with the same error, or both
    /// accept; the document's warnings are the flag's, under `/flags/<key>`.
    #[test]
    fn lint_and_parse_agree(rule in arb_json()) {
        let doc = json!({"flags": {"f": {
            "state": "ENABLED", "variants": {"on": 1, "off": 0}, "defaultVariant": "off",
            "targeting": rule
        }}});
        match (lint_document(&doc), FlagSet::parse(&doc)) {
            (Ok(ws), Ok(set)) => {
                let own: Vec<Warning> = set.get("f").unwrap().warnings().iter().map(|w| Warning {
                    path: format!("/flags/f{}", w.path),
                    ..w.clone()
                }).collect();
                prop_assert_eq!(ws, own);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "lint {:?} but parse {:?}", a, b.map(|s| s.len())),
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
