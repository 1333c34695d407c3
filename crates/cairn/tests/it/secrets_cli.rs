//! `cairn secret …`, `cairn resolve --secrets` and `cairn admin rekey`
//! against a real server; the canary, in none of its forms (plain,
//! JSON-escaped, percent-encoded, hex, base64 at every alignment), shows up
//! where it must not: command outputs, the server's log at trace level, the
//! audit file, the database files.

use serde_json::{json, Value};

use crate::harness::{ServeOpts, Server};

/// The forms of a secret to search for (shared with the in-process search).
#[path = "../../../cairn-server/tests/it/secret_canary/forms.rs"]
mod forms;

/// With characters that JSON and URLs escape, and one beyond ASCII.
const CANARY: &str = "CLI-CANARY-\"4b7e\\1d/é";

#[test]
fn secret_commands_roles_and_canary() {
    let forms = forms::Forms::of(CANARY);
    let has = |text: &str| !forms.found_in(text.as_bytes()).is_empty();
    let data = tempfile::tempdir().expect("data dir");
    let audit_dir = tempfile::tempdir().expect("audit dir");
    let audit_file = audit_dir.path().join("audit.jsonl");
    let opts = ServeOpts {
        extra: vec!["--audit-file".into(), audit_file.display().to_string()],
        ..ServeOpts::default()
    };
    let server = Server::start_logging(data.path(), opts, "trace");
    let admin = server.cli(&server.admin_token());
    admin.ok(&["app", "create", "shop"]);
    let token_of = |role: &str| {
        let v = admin.json(&["token", "create", "--name", role, "--role", role]);
        v["token"].as_str().expect("token").to_owned()
    };
    let op = admin.with_token(&token_of("operator"));
    let viewer = admin.with_token(&token_of("viewer"));
    let mut outputs = Vec::new();

    // Create from stdin as an operator; a generated one too.
    let out = op.run_stdin(
        &[
            "secret",
            "create",
            "db/password",
            "-",
            "--rotation-days",
            "30",
            "--grace-days",
            "7",
        ],
        Some(&format!("{CANARY}\n")),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("secret db/password: version 1"),
        "{out:?}"
    );
    outputs.push(out);
    outputs.push(op.ok(&[
        "secret",
        "create",
        "api/key",
        "--app",
        "shop",
        "--generator",
        "random:20:hex",
    ]));

    // Metadata for everyone; plaintext for the admin only (exit 5 otherwise).
    for cli in [&op, &viewer] {
        outputs.push(cli.expect(5, &["secret", "get", "db/password"]));
        outputs.push(cli.ok(&["secret", "list"]));
        outputs.push(cli.ok(&["secret", "versions", "db/password"]));
        outputs.push(cli.ok(&["secret", "list", "-o", "json"]));
    }
    let got = admin.ok(&["secret", "get", "db/password"]);
    assert_eq!(got.stdout.trim(), CANARY);

    // References: missing → exit 4; present → resolve --secrets substitutes for the admin.
    outputs.push(op.expect(
        4,
        &[
            "set",
            "db",
            "--app",
            "shop",
            "--value",
            r#"{"password": {"$secret": "nope"}}"#,
        ],
    ));
    op.ok(&[
        "set",
        "db",
        "--app",
        "shop",
        "--value",
        r#"{"password": {"$secret": "db/password"}}"#,
    ]);
    let resolved = admin.json(&["resolve", "--app", "shop", "--env", "prod", "--secrets"]);
    assert_eq!(resolved["values"]["db"]["password"], CANARY);
    let out = viewer.ok(&["resolve", "--app", "shop", "--env", "prod", "--secrets"]);
    assert!(out.stdout.contains("$secret"), "{out:?}");
    outputs.push(out);
    outputs.push(viewer.ok(&["resolve", "--app", "shop", "--env", "prod"]));

    // Delete refused while referenced (exit 4), rotate, previous still readable.
    outputs.push(op.expect(4, &["secret", "delete", "db/password", "-m", "cleanup"]));
    let out = op.run_stdin(
        &["secret", "rotate", "db/password", "--force", "-"],
        Some("second-value-xyz"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    outputs.push(out);
    let previous = admin.ok(&["secret", "get", "db/password", "--version", "1"]);
    assert_eq!(previous.stdout.trim(), CANARY);
    let versions = viewer.json(&["secret", "versions", "db/password"]);
    assert_eq!(versions["versions"][0]["state"], "previous_in_grace");
    outputs.push(admin.ok(&["admin", "rekey"]));
    outputs.push(viewer.expect(5, &["admin", "rekey"]));
    outputs.push(op.ok(&[
        "secret",
        "delete",
        "db/password",
        "-m",
        "cleanup",
        "--force",
    ]));
    outputs.push(admin.ok(&["audit"]));
    outputs.push(admin.ok(&["audit", "-o", "json"]));

    // Every reading command, as every role, in both output formats: only
    // an admin's `secret get` / `resolve --secrets` and the view's SDK
    // token's `resolve --secrets` may print a value.
    let out = admin.run_stdin(
        &["secret", "create", "api/token", "-", "--app", "shop"],
        Some(CANARY),
    );
    assert_eq!(out.code, 0, "{out:?}");
    op.ok(&[
        "set",
        "svc",
        "--app",
        "shop",
        "--value",
        r#"{"token": {"$secret": "api/token"}}"#,
    ]);
    let sdk_token = admin.json(&[
        "token",
        "create",
        "--name",
        "shop-prod",
        "--sdk",
        "--app",
        "shop",
        "--env",
        "prod",
    ]);
    let sdk = admin.with_token(sdk_token["token"].as_str().expect("sdk token"));
    let commands: &[&[&str]] = &[
        &["get", "svc", "--app", "shop"],
        &["list", "--app", "shop"],
        &["versions", "svc", "--app", "shop"],
        &["resolve", "--app", "shop", "--env", "prod"],
        &["resolve", "--app", "shop", "--env", "prod", "--secrets"],
        &["secret", "list"],
        &["secret", "versions", "api/token", "--app", "shop"],
        &["secret", "get", "api/token", "--app", "shop"],
        &["audit"],
        &["audit", "api/token"],
        &["audit", "verify"],
        &["flag", "list", "--app", "shop", "--env", "prod"],
        &["flag", "export", "--app", "shop", "--env", "prod"],
        &["token", "list"],
        &["app", "list"],
        &["env", "list"],
        &["schema", "list"],
    ];
    let mut allowed = Vec::new();
    for (role, cli) in [
        ("admin", &admin),
        ("operator", &op),
        ("viewer", &viewer),
        ("sdk", &sdk),
    ] {
        for command in commands {
            for json in [false, true] {
                let mut args = command.to_vec();
                if json {
                    args.extend(["-o", "json"]);
                }
                let out = cli.run(&args);
                let may = matches!(
                    (role, command),
                    ("admin", ["secret", "get", ..])
                        | ("admin" | "sdk", ["resolve", .., "--secrets"])
                );
                if may {
                    allowed.push((role, command[0], json, has(&out.stdout)));
                } else {
                    outputs.push(out);
                }
            }
        }
    }
    // Admin resolve and get, sdk resolve, in both formats: each printed it.
    assert_eq!(
        allowed,
        [
            ("admin", "resolve", false, true),
            ("admin", "resolve", true, true),
            ("admin", "secret", false, true),
            ("admin", "secret", true, true),
            ("sdk", "resolve", false, true),
            ("sdk", "resolve", true, true),
        ],
        "admin get, admin and sdk resolve --secrets, in both formats"
    );

    // Exactly the reads that gave a value were audited, one `secret.read`
    // each: the admin's get, resolve, get of version 1, then in the loop
    // its two resolves (of api/token: db/password is deleted) and two gets,
    // and the SDK token's two resolves.
    let audit = admin.json(&["audit", "--action", "secret.read", "--limit", "10000"]);
    let reads: Vec<(Value, Value, Value)> = audit
        .as_array()
        .expect("audit records")
        .iter()
        .map(|r| {
            (
                r["actor"].clone(),
                r["key"].clone(),
                r["detail"]["via"].clone(),
            )
        })
        .collect();
    assert_eq!(reads.len(), 9, "{reads:#?}");
    let (by_admin, by_sdk) = (reads[0].0.clone(), reads[7].0.clone());
    assert_ne!(by_admin, by_sdk);
    let read = |who: &Value, key: &str, via: &str| (who.clone(), json!(key), json!(via));
    assert_eq!(
        reads,
        [
            read(&by_admin, "db/password", "read"),
            read(&by_admin, "db/password", "resolve"),
            read(&by_admin, "db/password", "read"),
            read(&by_admin, "api/token", "resolve"),
            read(&by_admin, "api/token", "resolve"),
            read(&by_admin, "api/token", "read"),
            read(&by_admin, "api/token", "read"),
            read(&by_sdk, "api/token", "resolve"),
            read(&by_sdk, "api/token", "resolve"),
        ]
    );

    let mut hits: Vec<String> = outputs
        .iter()
        .filter(|o| has(&o.stdout) || has(&o.stderr))
        .map(|o| o.args.join(" "))
        .collect();
    let log = server.log();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
    if has(&log) {
        hits.push("server log at trace level".into());
    }
    // The audit file and the database files (WAL included).
    let audit_text = std::fs::read_to_string(&audit_file).expect("the audit file");
    assert_eq!(audit_text.matches("\"secret.read\"").count(), 9);
    if has(&audit_text) {
        hits.push("audit file".into());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(data.path()).expect("the data dir") {
        let path = entry.expect("a data file").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("read a data file");
        if !forms.found_in(&bytes).is_empty() {
            hits.push(name.clone());
        }
        files.push(name);
    }
    for name in ["cairn.db", "cairn.db-wal"] {
        assert!(files.iter().any(|f| f == name), "no {name} in {files:?}");
    }
    assert!(hits.is_empty(), "canary found in {hits:?}");
    assert!(
        outputs.len() >= 140,
        "searched {} command outputs",
        outputs.len()
    );
    assert!(forms.len() >= 10, "{} forms", forms.len());
}

/// `cairn admin rekey` across a master-key change: the server restarts with a
/// new master key and the old one as previous; reads work before and after
/// the rekey, and after it without the old key.
#[test]
fn rekey_after_a_master_key_change() {
    let data = tempfile::tempdir().expect("data dir");
    let keys = tempfile::tempdir().expect("key dir");
    let server = Server::sqlite(data.path());
    let token = server.admin_token();
    let admin = server.cli(&token);
    let out = admin.run_stdin(&["secret", "create", "db/password", "-"], Some(CANARY));
    assert_eq!(out.code, 0, "{out:?}");
    server.terminate();

    let old_key = data.path().join("master.key");
    let new_key = crate::harness::write_file(keys.path(), "new.key", &"ab".repeat(32));
    let with_keys = |previous: bool| {
        let mut extra = vec!["--master-key-file".to_owned(), new_key.clone()];
        if previous {
            extra.push("--previous-master-key-file".into());
            extra.push(old_key.display().to_string());
        }
        Server::start(
            data.path(),
            ServeOpts {
                extra,
                ..ServeOpts::default()
            },
        )
    };
    let server = with_keys(true);
    let admin = server.cli(&token);
    assert_eq!(
        admin.ok(&["secret", "get", "db/password"]).stdout.trim(),
        CANARY
    );
    let out = admin.json(&["admin", "rekey"]);
    assert_eq!(out["rewrapped"], 1, "{out}");
    // The audit chain spans both master keys: it verifies while the server
    // holds the previous one too.
    let verified = admin.ok(&["audit", "verify"]);
    assert!(verified.stdout.contains("audit log OK"), "{verified}");
    server.terminate();

    let server = with_keys(false);
    let admin = server.cli(&token);
    assert_eq!(
        admin.ok(&["secret", "get", "db/password"]).stdout.trim(),
        CANARY
    );
    let versions = admin.json(&["secret", "versions", "db/password"]);
    assert_eq!(versions["versions"][0]["kek_id"], json_str(&out["kek_id"]));
    // Without the previous key the older part of the chain cannot be checked:
    // verification says so (exit 4) instead of claiming success.
    admin.expect(4, &["audit", "verify"]);
}

fn json_str(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_default()
}
