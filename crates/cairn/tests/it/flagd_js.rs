//! `cairn agent --format flagd`: the flagd document of (app, env) kept in a
//! file, rewritten when (and only when) a flag or segment change alters it;
//! and flagd's in-process provider for JavaScript
//! (`@openfeature/flagd-provider`, offline file source), unmodified,
//! evaluating that file and following a change made in Cairn without a
//! restart (`tests/js/flagd_check.mjs`; how it notices the file is said there).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{poll, write_file, Cli, Server, BIN};
use crate::js::{self, flagd_document, MAX_ITEMS_FIVE};

/// `cairn agent --format flagd`, killed on drop; every write appends a line to `writes`.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(s: &Server, token: &str, out: &Path, writes: &Path) -> Agent {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
    let exec = format!("echo write >> '{}'", writes.display());
    let child = cmd
        .args([
            "agent", "--app", "shop", "--env", "prod", "--format", "flagd",
        ])
        .arg("--out")
        .arg(out)
        .args(["--exec", &exec])
        .env("CAIRN_ADDR", &s.addr)
        .env("CAIRN_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn agent");
    Agent(child)
}

/// A server with app `shop` and the test document imported at shop/prod.
fn server_with_flags(dir: &Path) -> (Server, Cli) {
    let server = Server::sqlite(&dir.join("data"));
    let cli = server.cli(&server.admin_token());
    cli.ok(&["app", "create", "shop"]);
    let file = write_file(dir, "import.json", &flagd_document().to_string());
    cli.ok(&["flag", "import", &file, "--app", "shop", "--env", "prod"]);
    (server, cli)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text:?}"))
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Wait until the file shows `pointer` = `want`; then it must equal what the server serves.
fn wait_for_file(cli: &Cli, file: &Path, pointer: &str, want: &Value) -> Value {
    let doc = poll(
        Duration::from_secs(15),
        &format!("the agent's file to show {pointer} = {want}"),
        || {
            let doc = read_json(file)?;
            match doc.pointer(pointer) {
                Some(v) if v == want => Ok(doc),
                other => Err(format!("{other:?}")),
            }
        },
    );
    let served = cli.json(&["flag", "export", "--app", "shop", "--env", "prod"]);
    assert_eq!(doc, served, "the file is the document the server serves");
    doc
}

fn wait_for_writes(writes: &Path, n: usize) {
    poll(
        Duration::from_secs(15),
        &format!("{n} writes of the agent"),
        || match lines(writes) {
            k if k >= n => Ok(()),
            k => Err(format!("{k} writes")),
        },
    );
}

#[test]
fn the_agent_keeps_the_flagd_document_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cli) = server_with_flags(dir.path());
    let file = dir.path().join("out/flags.json");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let writes = dir.path().join("writes.log");
    let _agent = start_agent(&server, &server.admin_token(), &file, &writes);

    let doc = wait_for_file(
        &cli,
        &file,
        "/flags/newWelcomeBanner/state",
        &json!("ENABLED"),
    );
    assert_eq!(
        doc["flags"].as_object().map(|f| f.len()),
        Some(7),
        "every flag: {doc}"
    );
    assert_eq!(doc["$evaluators"], flagd_document()["$evaluators"]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    wait_for_writes(&writes, 1);

    // A configuration change leaves the document as it is: no write. The
    // flag change after it (a later revision, so handled after it) is one.
    cli.ok(&["set", "site/name", "--app", "shop", "--value", r#""shop""#]);
    cli.ok(&[
        "flag",
        "disable",
        "newWelcomeBanner",
        "--app",
        "shop",
        "--env",
        "prod",
    ]);
    wait_for_file(
        &cli,
        &file,
        "/flags/newWelcomeBanner/state",
        &json!("DISABLED"),
    );
    wait_for_writes(&writes, 2);
    assert_eq!(
        lines(&writes),
        2,
        "one write at start, one for the flag change, none for the configuration change"
    );

    // A segment change (re-importing the document with another `staff`).
    let mut changed = flagd_document();
    changed["$evaluators"]["staff"] = json!({"ends_with": [{"var": "email"}, "@example.org"]});
    let import = write_file(dir.path(), "changed.json", &changed.to_string());
    cli.ok(&["flag", "import", &import, "--app", "shop", "--env", "prod"]);
    wait_for_file(
        &cli,
        &file,
        "/$evaluators/staff/ends_with/1",
        &json!("@example.org"),
    );
}

/// What cairn-eval says each targeting key gets from `checkout`.
fn expected_split(doc: &Value) -> Value {
    let set = cairn_eval::FlagSet::parse(doc).expect("the document compiles");
    let mut out = serde_json::Map::new();
    for i in 0..200 {
        let key = format!("user-{i}");
        let ctx = cairn_eval::EvalContext::new().with_targeting_key(key.clone());
        let r = set.evaluate("checkout", &ctx, 1_700_000_000);
        out.insert(key, json!(r.variant.expect("a variant")));
    }
    Value::Object(out)
}

#[test]
fn the_flagd_in_process_javascript_provider_follows_the_agents_file() {
    if !js::clients_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, cli) = server_with_flags(dir.path());
    let file = dir.path().join("flags.json");
    let writes = dir.path().join("writes.log");
    let _agent = start_agent(&server, &server.admin_token(), &file, &writes);
    wait_for_file(&cli, &file, "/flags/maxItems/defaultVariant", &json!("ten"));
    let split = write_file(
        dir.path(),
        "split.json",
        &expected_split(&flagd_document()).to_string(),
    );

    let run = js::run_driver(
        "flagd_check.mjs",
        &[
            ("CAIRN_FLAGD_FILE", file.to_str().unwrap()),
            ("CAIRN_EXPECTED_SPLIT", &split),
        ],
        Duration::from_secs(120),
        |step| {
            assert_eq!(step, "disable-newWelcomeBanner-and-set-maxItems-five");
            let view = ["--app", "shop", "--env", "prod"];
            cli.ok(&[&["flag", "disable", "newWelcomeBanner"][..], &view].concat());
            cli.ok(&[
                &["flag", "set", "maxItems", "--value", MAX_ITEMS_FIVE][..],
                &view,
            ]
            .concat());
            // The file has both before the driver waits: what it waits for
            // is the provider alone.
            wait_for_file(
                &cli,
                &file,
                "/flags/maxItems/defaultVariant",
                &json!("five"),
            );
            wait_for_file(
                &cli,
                &file,
                "/flags/newWelcomeBanner/state",
                &json!("DISABLED"),
            );
        },
    );
    assert!(
        run.passed(),
        "the flagd in-process provider check failed:\n{run}\nserver log:\n{}",
        server.log()
    );
}
