//! `cairn flag import -` with a real flagd file (camelCase keys, document metadata),
//! export giving it back, `cairn flag lint` (offline and against the server) and its exit
//! codes, warnings on stderr, and `cairn env set --strict-flags`.

use serde_json::{json, Value};

use crate::harness::{write_file, Server};

/// A flagd file as users write them: camelCase keys, shared evaluators, metadata.
fn flagd_file() -> Value {
    json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            "newWelcomeBanner": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "targeting": {"if": [{"$ref": "isBetaTester"}, "on", "off"]}
            },
            "headerColor": {
                "state": "ENABLED",
                "variants": {"red": "#FF0000", "blue": "#0000FF"},
                "defaultVariant": "red",
                "metadata": {"owner": "design"}
            }
        },
        "$evaluators": {
            "isBetaTester": {"in": [{"var": "email"}, ["ann@example.com", "bob@example.com"]]}
        },
        "metadata": {"owner": "web", "flagSetId": "storefront"}
    })
}

/// A flag flagd stores but whose rule can only ever yield null (unknown `sem_ver` operator).
const NEVER_WORKS: &str = r#"{"state":"ENABLED","variants":{"a":"a","b":"b"},"defaultVariant":"a","targeting":{"if":[{"sem_ver":[{"var":"v"},"=~","1.0.0"]},"b","a"]}}"#;

#[test]
fn flagd_files_import_from_stdin_export_unchanged_and_lint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::sqlite(&dir.path().join("data"));
    let cli = server.cli(&server.admin_token());
    cli.ok(&["app", "create", "shop"]);

    // Standard input, like `cairn set -`.
    let doc = flagd_file();
    let out = cli.run_stdin(
        &["flag", "import", "-", "--app", "shop", "--env", "prod"],
        Some(&doc.to_string()),
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("imported 4 entries"), "{out}");
    assert!(
        out.stderr.is_empty(),
        "a clean file warns of nothing: {out}"
    );
    let exported = cli.json(&["flag", "export", "--app", "shop", "--env", "prod"]);
    assert_eq!(exported, doc);
    // Evaluated with the merged metadata, under its camelCase key.
    let r = cli.json(&[
        "flag",
        "eval",
        "newWelcomeBanner",
        "--app",
        "shop",
        "--env",
        "prod",
        "--context",
        r#"{"email": "ann@example.com"}"#,
    ]);
    assert_eq!(
        r,
        json!({"key": "newWelcomeBanner", "value": true, "variant": "on",
               "reason": "TARGETING_MATCH", "metadata": {"owner": "web", "flagSetId": "storefront"}})
    );
    let r = cli.json(&[
        "flag",
        "get",
        "headerColor",
        "--app",
        "shop",
        "--env",
        "prod",
    ]);
    assert_eq!(r["value"], doc["flags"]["headerColor"]);

    // Lint of a file, offline: clean → 0.
    let clean = write_file(dir.path(), "clean.json", &doc.to_string());
    let out = cli.ok(&["flag", "lint", &clean]);
    assert!(out.stdout.contains("no warnings"), "{out}");
    // A rule that can never work → 2, with its pointer on stderr.
    let mut warned = doc.clone();
    warned["flags"]["semverFlag"] = serde_json::from_str(NEVER_WORKS).unwrap();
    let warned_file = write_file(dir.path(), "warned.json", &warned.to_string());
    let out = cli.expect(2, &["flag", "lint", &warned_file]);
    assert!(
        out.stderr.contains("warning[unknown-operator]: ")
            && out
                .stderr
                .contains("/flags/semverFlag/targeting/if/0/sem_ver/1"),
        "{out}"
    );
    // From standard input too.
    let out = cli.run_stdin(&["flag", "lint", "-"], Some(&warned.to_string()));
    assert_eq!(out.code, 2, "{out}");
    // What flagd's schema refuses → 1.
    let refused =
        json!({"flags": {"x": {"state": "ON", "variants": {"a": 1}, "defaultVariant": "a"}}});
    let out = cli.run_stdin(&["flag", "lint", "-"], Some(&refused.to_string()));
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("/flags/x/state"), "{out}");

    // A write of a rule that can never work succeeds, and says so on stderr.
    let out = cli.ok(&[
        "flag",
        "set",
        "semverFlag",
        "--app",
        "shop",
        "--env",
        "dev",
        "--value",
        NEVER_WORKS,
    ]);
    assert!(
        out.stderr
            .contains("warning[unknown-operator]: shop/dev:semverFlag /targeting/if/0/sem_ver/1"),
        "{out}"
    );
    // The server's lint: warnings → 2; a clean view → 0.
    let out = cli.expect(2, &["flag", "lint", "--app", "shop", "--env", "dev"]);
    assert!(out.stderr.contains("semverFlag"), "{out}");
    cli.ok(&["flag", "lint", "--app", "shop", "--env", "prod"]);

    // A strict environment refuses it (exit 4, the pointer named), and keeps what it had.
    cli.ok(&["env", "set", "prod", "--strict-flags", "true"]);
    let envs = cli.json(&["env", "list"]);
    let prod = envs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "prod")
        .unwrap();
    assert_eq!(prod["strict_flags"], true);
    let before = cli.json(&["flag", "export", "--app", "shop", "--env", "prod"]);
    let out = cli.expect(
        4,
        &[
            "flag",
            "set",
            "semverFlag",
            "--app",
            "shop",
            "--env",
            "prod",
            "--value",
            NEVER_WORKS,
        ],
    );
    assert!(out.stderr.contains("/targeting/if/0/sem_ver/1"), "{out}");
    assert!(out.stderr.contains("strict_flags"), "{out}");
    let after = cli.json(&["flag", "export", "--app", "shop", "--env", "prod"]);
    assert_eq!(after, before);
}
