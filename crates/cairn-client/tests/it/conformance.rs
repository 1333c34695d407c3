//! Local evaluation equals server evaluation: every flag conformance case of
//! `cairn-eval` (crates/cairn-eval/tests/cases), stored on a real server as
//! flag and segment entries, evaluated by the SDK locally and by the server
//! over OFREP, compared field by field.

use std::path::PathBuf;
use std::time::Duration;

use cairn_client::sdk::{CairnClient, EvalContext};
use cairn_client::HttpMethod;
use serde_json::{json, Map, Value};

use crate::harness::{any_port, Admin, Data, TestServer};

fn case_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cairn-eval/tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// The OFREP answer of the server, in the shape of a local evaluation.
async fn ofrep(admin: &Admin, app: &str, key: &str, context: &Value) -> Value {
    let r = admin
        .0
        .send_json::<Value>(
            HttpMethod::POST,
            &format!("/v1/apps/{app}/envs/dev/ofrep/v1/evaluate/flags/{key}"),
            &[],
            Some(&json!({ "context": context })),
        )
        .await;
    match r {
        Ok(v) => json!({
            "value": v.get("value"),
            "variant": v.get("variant").filter(|v| *v != "").cloned(),
            "reason": v["reason"],
            "errorCode": null,
            "metadata": v["metadata"],
        }),
        // OFREP errors are 4xx `{key, errorCode, errorDetails}` (the client keeps the code).
        Err(cairn_client::ClientError::Api { problem, .. }) => json!({
            "value": null, "variant": null, "reason": "ERROR", "errorCode": problem.code,
            "metadata": null,
        }),
        Err(e) => panic!("OFREP {app}/{key}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_evaluation_equals_server_evaluation_on_the_conformance_cases() {
    let data = Data::new();
    let server = TestServer::start(&data, any_port());
    let admin = Admin::new(&server.url(), server.token.as_deref().unwrap());
    let mut compared = 0;
    let mut failures = Vec::new();
    for path in case_files() {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(tests) = case["tests"].as_array().filter(|t| !t.is_empty()) else {
            continue;
        };
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let app = format!("case-{stem}");
        admin.app(&app).await;
        let doc = &case["document"];
        let empty = Map::new();
        let mut entries = Vec::new();
        for (name, rule) in doc["$evaluators"].as_object().unwrap_or(&empty) {
            entries.push(json!({"app": app, "key": name, "kind": "segment", "value": rule}));
        }
        for (key, def) in doc["flags"].as_object().unwrap() {
            entries.push(json!({"app": app, "key": key, "kind": "flag", "value": def}));
        }
        admin
            .send(
                HttpMethod::POST,
                "/v1/changes",
                json!({"entries": entries, "message": format!("conformance {stem}")}),
            )
            .await;
        let sdk = CairnClient::builder(&server.url(), &app, "dev")
            .token(server.token.as_deref().unwrap())
            .report_interval(Duration::ZERO)
            .initial_timeout(Duration::from_secs(30))
            .build()
            .await
            .unwrap();
        for t in tests {
            let flag = t["flag"].as_str().unwrap();
            let context = t.get("context").cloned().unwrap_or(Value::Null);
            // OFREP refuses a non-string targetingKey before evaluating (INVALID_CONTEXT).
            if context.get("targetingKey").is_some_and(|k| !k.is_string()) {
                continue;
            }
            let Ok(ctx) = EvalContext::from_value(context.clone()) else {
                continue;
            };
            let local = sdk.evaluate(flag, &ctx);
            let local = json!({
                "value": local.value,
                "variant": local.variant,
                "reason": local.reason,
                "errorCode": local.error_code,
                "metadata": if local.error_code.is_some() { Value::Null } else { Value::Object(local.metadata) },
            });
            let remote = ofrep(&admin, &app, flag, &context).await;
            compared += 1;
            if local != remote {
                failures.push(format!(
                    "{stem} / {}: local {local} != server {remote}",
                    t["name"]
                ));
            }
        }
    }
    assert!(compared > 200, "only {compared} cases compared");
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
