//! `cairn secret …`, `cairn resolve --secrets` and `cairn admin rekey`
//! against a real server; the canary never shows up where it must not.

use crate::harness::{ServeOpts, Server};

const CANARY: &str = "CLI-CANARY-4b7e1d";

#[test]
fn secret_commands_roles_and_canary() {
    let data = tempfile::tempdir().expect("data dir");
    let server = Server::start_logging(data.path(), ServeOpts::default(), "trace");
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
    let mut allowed_hits = 0;
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
                    allowed_hits += usize::from(out.stdout.contains(CANARY));
                } else {
                    outputs.push(out);
                }
            }
        }
    }
    assert_eq!(
        allowed_hits, 6,
        "admin get, admin and sdk resolve --secrets, in both formats"
    );

    let mut hits: Vec<String> = outputs
        .iter()
        .filter(|o| o.stdout.contains(CANARY) || o.stderr.contains(CANARY))
        .map(|o| o.args.join(" "))
        .collect();
    if server.log().contains(CANARY) {
        hits.push("server log at trace level".into());
    }
    assert!(hits.is_empty(), "canary found in {hits:?}");
    assert!(
        outputs.len() >= 140,
        "searched {} command outputs",
        outputs.len()
    );
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
