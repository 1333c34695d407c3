//! Runs every conformance case file in `tests/cases/`.
//!
//! File format (reusable by any SDK):
//! ```text
//! { "description": "...",
//!   "document": { flagd document: flags, $evaluators, metadata },
//!   "tests": [ { "name": "...", "flag": "key", "context": {...}, "now": 1700000000,
//!                "type": "boolean|string|integer|float|object" (optional), "default": <value>,
//!                "expected": { "value": ..., "variant": "...", "reason": "...",
//!                              "errorCode": "...", "metadata": {...} } } ],
//!   "warnings": [ { "code": "missing-ref", "path": "/flags/f/targeting/$ref",
//!                   "messageContains": "text" (optional) } ],
//!   "invalid": [ { "name": "...", "document": {...}, "errorPath": "/json/pointer",
//!                  "errorContains": "text" } ] }
//! ```
//! In `expected`, an absent `value`/`variant`/`errorCode` means the resolution must not have
//! one; `metadata` is checked only when given. With `type`, the typed helper is used and
//! `value` is the typed result (the `default` when there is no value or on error).
//! `warnings` lists exactly what linting the document reports (in any order); a file without
//! it expects none.

use std::path::PathBuf;

use cairn_eval::{lint_document, EvalContext, FlagSet};
use serde_json::{json, Value};

fn case_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run_test(set: &FlagSet, t: &Value) -> Result<(), String> {
    let flag = t["flag"].as_str().ok_or("test without `flag`")?;
    let ctx = EvalContext::from_value(t.get("context").cloned().unwrap_or(Value::Null))
        .map_err(|e| e.to_string())?;
    let now = t.get("now").and_then(Value::as_i64).unwrap_or(0);
    let want = &t["expected"];
    let r = set.evaluate(flag, &ctx, now);
    let got = match t.get("type").and_then(Value::as_str) {
        None => serde_json::to_value(&r).unwrap(),
        Some(ty) => {
            let default = t.get("default").cloned().unwrap_or(Value::Null);
            let typed = match ty {
                "boolean" => serde_json::to_value(r.into_bool(default.as_bool().ok_or("default")?)),
                "string" => serde_json::to_value(r.into_str(default.as_str().ok_or("default")?)),
                "integer" => serde_json::to_value(r.into_int(default.as_i64().ok_or("default")?)),
                "float" => serde_json::to_value(r.into_float(default.as_f64().ok_or("default")?)),
                "object" => serde_json::to_value(r.into_object(&default)),
                other => return Err(format!("unknown type {other}")),
            };
            typed.unwrap()
        }
    };
    let mut problems = Vec::new();
    for field in ["value", "variant", "reason", "errorCode"] {
        if want.get(field) != got.get(field) {
            problems.push(format!(
                "{field}: want {}, got {}",
                want.get(field).map_or("(absent)".into(), Value::to_string),
                got.get(field).map_or("(absent)".into(), Value::to_string)
            ));
        }
    }
    if let Some(m) = want.get("metadata") {
        if got.get("metadata") != Some(m) {
            problems.push(format!("metadata: want {m}, got {}", got["metadata"]));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} [{}]", problems.join("; "), got))
    }
}

/// Compares `lint_document` of the case's document with its `warnings` (code and path, in
/// any order; `messageContains` when given).
fn check_warnings(case: &Value) -> Result<(), String> {
    let got = lint_document(&case["document"]).map_err(|e| format!("lint refused: {e}"))?;
    let want = case
        .get("warnings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut got_keys: Vec<(String, String)> = got
        .iter()
        .map(|w| (w.code.as_str().to_owned(), w.path.clone()))
        .collect();
    let mut want_keys: Vec<(String, String)> = want
        .iter()
        .map(|w| {
            (
                w["code"].as_str().unwrap_or_default().to_owned(),
                w["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got_keys.sort();
    want_keys.sort();
    if got_keys != want_keys {
        return Err(format!("want {want_keys:?}, got {got:?}"));
    }
    for w in &want {
        if let Some(text) = w.get("messageContains").and_then(Value::as_str) {
            let found = got.iter().any(|g| {
                g.code.as_str() == w["code"] && g.path == w["path"] && g.message.contains(text)
            });
            if !found {
                return Err(format!(
                    "no {} at {} mentions {text:?}: {got:?}",
                    w["code"], w["path"]
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn conformance_cases_all_pass() {
    let mut failures = Vec::new();
    let mut count = 0;
    for path in case_files() {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let case = load(&path);
        let tests = case["tests"].as_array().cloned().unwrap_or_default();
        let invalid = case["invalid"].as_array().cloned().unwrap_or_default();
        assert!(
            !tests.is_empty() || !invalid.is_empty(),
            "{file} has no tests"
        );
        if !tests.is_empty() {
            let set = FlagSet::parse(&case["document"])
                .unwrap_or_else(|e| panic!("{file}: document does not compile: {e}"));
            for t in &tests {
                count += 1;
                if let Err(e) = run_test(&set, t) {
                    failures.push(format!("{file} / {}: {e}", t["name"]));
                }
            }
            count += 1;
            if let Err(e) = check_warnings(&case) {
                failures.push(format!("{file} / warnings: {e}"));
            }
        }
        for t in &invalid {
            count += 1;
            match FlagSet::parse(&t["document"]) {
                Ok(_) => failures.push(format!(
                    "{file} / {}: compiled, expected an error",
                    t["name"]
                )),
                Err(e) => {
                    if let Some(p) = t.get("errorPath").and_then(Value::as_str) {
                        if e.path != p {
                            failures.push(format!(
                                "{file} / {}: path {:?}, want {p:?} ({e})",
                                t["name"], e.path
                            ));
                        }
                    }
                    if let Some(s) = t.get("errorContains").and_then(Value::as_str) {
                        if !e.message.contains(s) {
                            failures.push(format!(
                                "{file} / {}: message {:?} lacks {s:?}",
                                t["name"], e.message
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(count > 100, "only {count} cases found");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_runner_detects_a_wrong_expectation() {
    let set = FlagSet::parse(
        &json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}),
    )
    .unwrap();
    let wrong = json!({"flag": "f", "expected": {"value": 2, "variant": "a", "reason": "STATIC"}});
    assert!(run_test(&set, &wrong).is_err());
    let right = json!({"flag": "f", "expected": {"value": 1, "variant": "a", "reason": "STATIC"}});
    assert_eq!(run_test(&set, &right), Ok(()));
}

#[test]
fn the_runner_detects_missing_and_unexpected_warnings() {
    let document = json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
                                          "targeting": {"if": [{"$ref": "gone"}, "a", null]}}}});
    let expected = json!({"code": "missing-ref", "path": "/flags/f/targeting/if/0/$ref"});
    assert_eq!(
        check_warnings(&json!({"document": document, "warnings": [expected]})),
        Ok(())
    );
    assert!(check_warnings(&json!({"document": document})).is_err());
    let wrong_path = json!({"code": "missing-ref", "path": "/flags/f/targeting"});
    assert!(check_warnings(&json!({"document": document, "warnings": [wrong_path]})).is_err());
    let wrong_text = json!({"code": "missing-ref", "path": "/flags/f/targeting/if/0/$ref", "messageContains": "zzz"});
    assert!(check_warnings(&json!({"document": document, "warnings": [wrong_text]})).is_err());
}
