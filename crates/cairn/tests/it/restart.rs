//! Stopping and starting the server on the same data directory.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::harness::{read_admin_token, write_file, Server};

#[test]
fn restart_keeps_everything_and_creates_no_new_admin_token() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("files dir");
    let server = Server::sqlite(data.path());
    assert!(
        server.banner.contains("First start"),
        "first start announces the admin token:\n{}",
        server.banner
    );
    let token = server.admin_token();
    assert!(
        server.banner.contains(&token),
        "the token is printed once:\n{}",
        server.banner
    );
    let token_path = data.path().join("admin.token");
    let mode = std::fs::metadata(&token_path)
        .expect("admin.token")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "admin.token mode is {:o}",
        mode & 0o777
    );
    let key_path = data.path().join("master.key");
    let master_key = std::fs::read(&key_path).expect("a master key generated next to the database");
    let mode = std::fs::metadata(&key_path)
        .expect("master.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "master.key mode is {:o}", mode & 0o777);

    let cli = server.cli(&token);
    cli.ok(&["app", "create", "billing"]);
    // Not protected: this test is about persistence, not approvals.
    cli.ok(&["env", "create", "qa", "--description", "quality"]);
    cli.ok(&["set", "db", "--value", r#"{"max":1,"idle":2}"#]);
    cli.ok(&["set", "db", "--app", "billing", "--value", r#"{"max":3}"#]);
    cli.ok(&["set", "db", "--app", "billing", "--value", r#"{"max":4}"#]);
    cli.ok(&["set", "gone", "--env", "qa", "--value", "true"]);
    cli.ok(&["delete", "gone", "--env", "qa", "-m", "bye"]);
    let schema = write_file(
        files.path(),
        "s.json",
        r#"{"type":"object","properties":{"max":{"type":"integer","maximum":10}}}"#,
    );
    cli.ok(&["schema", "register", "db", &schema]);
    let viewer = cli.json(&["token", "create", "--name", "ro", "--role", "viewer"]);
    let viewer = viewer["token"].as_str().expect("token").to_owned();

    let resolved = cli.json(&["resolve", "--app", "billing", "--env", "qa"]);
    assert_eq!(resolved["values"], json!({"db": {"max": 4, "idle": 2}}));
    let old_rev = resolved["revision"].as_i64().expect("revision");
    let snapshot = |cli: &crate::harness::Cli| {
        (
            cli.json(&["resolve", "--app", "billing", "--env", "qa"]),
            cli.json(&[
                "resolve",
                "--app",
                "billing",
                "--env",
                "qa",
                "--revision",
                &(old_rev - 1).to_string(),
            ]),
            cli.json(&["versions", "db", "--app", "billing"]),
            cli.json(&["versions", "gone", "--env", "qa"]),
            cli.json(&["app", "list"]),
            cli.json(&["env", "list"]),
            cli.json(&["schema", "list"]),
            cli.json(&["token", "list"]),
            cli.json(&["audit", "--limit", "10000"]),
        )
    };
    let before = snapshot(&cli);

    let status = server.terminate();
    assert!(status.success(), "graceful stop exits 0: {status:?}");

    let server = Server::sqlite(data.path());
    assert!(
        !server.banner.contains("First start"),
        "no new admin token on restart:\n{}",
        server.banner
    );
    assert_eq!(
        read_admin_token(data.path()),
        token,
        "admin.token unchanged"
    );
    let mode = std::fs::metadata(&token_path)
        .expect("admin.token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read(&key_path).expect("master.key"),
        master_key,
        "the master key is kept"
    );

    let cli = server.cli(&token);
    let after = snapshot(&cli);
    assert_eq!(after.0, before.0, "resolved view");
    assert_eq!(after.1, before.1, "resolved view at an older revision");
    assert_eq!(after.2, before.2, "versions of db");
    assert_eq!(after.3, before.3, "versions of a deleted key");
    assert_eq!(after.4, before.4, "apps");
    assert_eq!(after.5, before.5, "envs");
    assert_eq!(after.6, before.6, "schemas");
    assert_eq!(after.7, before.7, "tokens");
    assert_eq!(after.8, before.8, "audit");
    cli.expect(3, &["get", "gone", "--env", "qa"]);

    // Tokens still authenticate (and are still only viewers); schemas still apply.
    cli.with_token(&viewer).ok(&["get", "db"]);
    cli.with_token(&viewer)
        .expect(5, &["set", "db", "--value", "{}"]);
    cli.expect(4, &["set", "db", "--value", r#"{"max":11}"#]);

    // Revisions continue where they stopped.
    let head = before
        .8
        .as_array()
        .expect("audit array")
        .iter()
        .filter_map(|r| r["revision"].as_i64())
        .max()
        .expect("audit revisions");
    let w = cli.json(&[
        "set",
        "db",
        "--app",
        "billing",
        "--env",
        "qa",
        "--value",
        r#"{"idle":9}"#,
    ]);
    assert_eq!(w["revision"], head + 1, "{w}");
    let now = cli.json(&["resolve", "--app", "billing", "--env", "qa"]);
    assert_eq!(now["values"], json!({"db": {"max": 4, "idle": 9}}));
    assert_eq!(now["revision"], head + 1);
}
