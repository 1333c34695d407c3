//! The README's five-minute tour, through the CLI only, on SQLite.

use serde_json::{json, Value};

use crate::harness::{write_file, Cli, Server};

/// A fresh server on a temp dir, its admin CLI, and a scratch dir for files.
pub struct Fixture {
    pub server: Server,
    pub cli: Cli,
    pub files: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let data = tempfile::tempdir().expect("data dir");
        let server = Server::sqlite(data.path());
        let cli = server.cli(&server.admin_token());
        Fixture {
            server,
            cli,
            files: tempfile::tempdir().expect("files dir"),
            _data: data,
        }
    }

    pub fn file(&self, name: &str, text: &str) -> String {
        write_file(self.files.path(), name, text)
    }
}

fn revision_of(v: &Value) -> i64 {
    v["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no revision in {v}"))
}

/// `set` text output: `KEY: version V (revision R)` → (V, R).
fn parse_set_line(stdout: &str, key: &str) -> (i64, i64) {
    let rest = stdout
        .trim()
        .strip_prefix(&format!("{key}: version "))
        .unwrap_or_else(|| panic!("unexpected set output {stdout:?}"));
    let (v, r) = rest
        .split_once(" (revision ")
        .unwrap_or_else(|| panic!("unexpected set output {stdout:?}"));
    (
        v.parse().expect("version number"),
        r.trim_end_matches(')').parse().expect("revision number"),
    )
}

#[test]
fn tour_apps_envs_four_scopes_resolve_history_and_rollback() {
    let f = Fixture::new();
    let cli = &f.cli;

    // Apps and environments.
    let out = cli.ok(&["app", "create", "billing"]);
    assert!(out.stdout.starts_with("app billing created"), "{out}");
    cli.ok(&["env", "create", "qa"]);
    let apps = cli.ok(&["app", "list"]);
    assert!(
        apps.stdout.lines().any(|l| l.starts_with("billing")),
        "{apps}"
    );
    let envs = cli.ok(&["env", "list"]);
    for name in ["dev", "staging", "prod", "qa"] {
        assert!(
            envs.stdout.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{envs}"
        );
    }
    cli.ok(&["env", "set", "qa", "--description", "quality"]);
    let envs = cli.json(&["env", "list"]);
    let qa = envs
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "qa"))
        .unwrap_or_else(|| panic!("no qa in {envs}"));
    assert_eq!(qa["protected"], false, "{qa}");
    assert_eq!(qa["description"], "quality", "{qa}");
    // Creating it again is a conflict.
    cli.expect(4, &["app", "create", "billing"]);

    // One key at the four scopes, four ways of giving the value.
    let out = cli.ok(&[
        "set",
        "database/pool",
        "--value",
        r#"{"max":20,"idle":5}"#,
        "-m",
        "defaults",
    ]);
    let (v, r1) = parse_set_line(&out.stdout, "database/pool");
    assert_eq!(v, 1);
    let prod_json = f.file("prod.json", r#"{"host": "prod-db"}"#);
    let out = cli.ok(&["set", "database/pool", "--env", "prod", &prod_json]);
    let (v, r2) = parse_set_line(&out.stdout, "database/pool");
    assert_eq!((v, r2), (1, r1 + 1), "{out}");
    let billing_yaml = f.file("billing.yaml", "max: 50\n");
    cli.ok(&["set", "database/pool", "--app", "billing", &billing_yaml]);
    let out = cli.run_stdin(
        &[
            "set",
            "database/pool",
            "--app",
            "billing",
            "--env",
            "prod",
            "-",
            "--output",
            "json",
        ],
        Some("idle: null\n"),
    );
    assert_eq!(out.code, 0, "{out}");
    let r_tour = revision_of(&out.json());
    assert_eq!(r_tour, r1 + 3, "{out}");
    cli.ok(&["set", "cache/ttl", "--app", "billing", "--value", "60"]);

    // Reads at each scope.
    let get = |args: &[&str]| -> Value { cli.ok(args).json() };
    assert_eq!(
        get(&["get", "database/pool"]),
        json!({"max": 20, "idle": 5})
    );
    assert_eq!(
        get(&["get", "database/pool", "--env", "prod"]),
        json!({"host": "prod-db"})
    );
    assert_eq!(
        get(&["get", "database/pool", "--app", "billing"]),
        json!({"max": 50})
    );
    assert_eq!(
        get(&["get", "database/pool", "--app", "billing", "--env", "prod"]),
        json!({"idle": null})
    );
    let entry = cli.json(&["get", "database/pool", "--app", "billing"]);
    assert_eq!(entry["version"], 1, "{entry}");
    assert_eq!(entry["value"], json!({"max": 50}), "{entry}");
    assert!(
        entry["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("token:")),
        "{entry}"
    );

    // list --filter
    let listed = cli.ok(&["list", "--app", "billing", "--filter", "database/*"]);
    assert!(listed.stdout.contains("database/pool"), "{listed}");
    assert!(!listed.stdout.contains("cache/ttl"), "{listed}");
    let listed = cli.json(&["list", "--app", "billing"]);
    let mut keys: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["cache/ttl", "database/pool"], "{listed}");

    // resolve: text and JSON agree; merged by RFC 7396.
    let expected = json!({"database/pool": {"host": "prod-db", "max": 50}, "cache/ttl": 60});
    let text = cli.ok(&["resolve", "--app", "billing", "--env", "prod"]);
    let (head, body) = text.stdout.split_once('\n').expect("two parts");
    let resolved = cli.json(&["resolve", "--app", "billing", "--env", "prod"]);
    assert_eq!(resolved["values"], expected, "{resolved}");
    let r_before_history = revision_of(&resolved);
    assert_eq!(
        r_before_history,
        r_tour + 1,
        "the view's revision is its last change"
    );
    let checksum = resolved["checksum"].as_str().expect("checksum");
    assert_eq!(
        checksum,
        cairn_model::checksum(&expected),
        "checksum of the values"
    );
    assert!(checksum.starts_with("sha256:"), "{checksum}");
    assert_eq!(
        head,
        format!("# billing/prod at revision {r_before_history} checksum {checksum}")
    );
    assert_eq!(
        serde_json::from_str::<Value>(body).expect("JSON body"),
        expected
    );
    // dev sees the global value merged with the app's.
    let dev = cli.json(&["resolve", "--app", "billing", "--env", "dev"]);
    assert_eq!(
        dev["values"]["database/pool"],
        json!({"max": 50, "idle": 5})
    );

    // versions, compare-and-set.
    let versions = cli.ok(&["versions", "database/pool", "--app", "billing"]);
    assert!(versions.stdout.starts_with("VERSION"), "{versions}");
    let out = cli.ok(&[
        "set",
        "database/pool",
        "--app",
        "billing",
        "--value",
        r#"{"max":80}"#,
        "--expect-version",
        "1",
    ]);
    assert_eq!(parse_set_line(&out.stdout, "database/pool").0, 2);
    let audit_before = cli.json(&["audit", "--limit", "10000"]);
    let out = cli.expect(
        4,
        &[
            "set",
            "database/pool",
            "--app",
            "billing",
            "--value",
            r#"{"max":90}"#,
            "--expect-version",
            "1",
        ],
    );
    assert!(out.stderr.contains("error:"), "{out}");
    assert_eq!(
        get(&["get", "database/pool", "--app", "billing"]),
        json!({"max": 80}),
        "a failed compare-and-set writes nothing"
    );
    let hist = cli.json(&["versions", "database/pool", "--app", "billing"]);
    assert_eq!(hist.as_array().map(Vec::len), Some(2), "{hist}");
    assert_eq!(
        cli.json(&["audit", "--limit", "10000"]),
        audit_before,
        "a failed compare-and-set is not audited as a change"
    );
    // --expect-version 0: must not exist.
    cli.expect(
        4,
        &[
            "set",
            "cache/ttl",
            "--app",
            "billing",
            "--value",
            "1",
            "--expect-version",
            "0",
        ],
    );

    // get --version / --revision
    assert_eq!(
        get(&["get", "database/pool", "--app", "billing", "--version", "1"]),
        json!({"max": 50})
    );
    assert_eq!(
        get(&[
            "get",
            "database/pool",
            "--app",
            "billing",
            "--revision",
            &r_tour.to_string()
        ]),
        json!({"max": 50})
    );
    cli.expect(
        3,
        &["get", "database/pool", "--app", "billing", "--version", "9"],
    );

    // diff: RFC 6902 patch and a text diff.
    let diff = cli.ok(&["diff", "database/pool", "1", "2", "--app", "billing"]);
    assert!(diff.stdout.contains("JSON Patch (RFC 6902)"), "{diff}");
    let patch_line = diff.stdout.lines().next().unwrap_or_default();
    let patch: Value = serde_json::from_str(
        patch_line
            .strip_prefix("JSON Patch (RFC 6902): ")
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("patch is not JSON ({e}): {diff}"));
    assert_eq!(
        patch,
        json!([{"op": "replace", "path": "/max", "value": 80}])
    );
    assert!(diff.stdout.contains("-  \"max\": 50"), "{diff}");
    assert!(diff.stdout.contains("+  \"max\": 80"), "{diff}");

    // rollback: -m is required.
    cli.expect(2, &["rollback", "database/pool", "1", "--app", "billing"]);
    let out = cli.ok(&[
        "rollback",
        "database/pool",
        "1",
        "--app",
        "billing",
        "-m",
        "80 was too many",
    ]);
    assert!(out.stdout.contains("as version 3"), "{out}");
    assert_eq!(
        get(&["get", "database/pool", "--app", "billing"]),
        json!({"max": 50})
    );
    let hist = cli.json(&["versions", "database/pool", "--app", "billing"]);
    let hist = hist.as_array().expect("array");
    assert_eq!(hist.len(), 3, "{hist:?}");
    assert!(
        hist.iter()
            .any(|h| h["version"] == 3 && h["message"] == "80 was too many"),
        "{hist:?}"
    );

    // resolve --revision gives exactly what was served then.
    let now = cli.json(&["resolve", "--app", "billing", "--env", "prod"]);
    assert_eq!(now["values"], expected, "same values after the rollback");
    assert_eq!(
        now["checksum"], resolved["checksum"],
        "same values, same checksum"
    );
    assert!(revision_of(&now) > r_before_history);
    let then = cli.json(&[
        "resolve",
        "--app",
        "billing",
        "--env",
        "prod",
        "--revision",
        &r_before_history.to_string(),
    ]);
    assert_eq!(
        then, resolved,
        "resolve --revision differs from what was served"
    );
    let then_text = cli.ok(&[
        "resolve",
        "--app",
        "billing",
        "--env",
        "prod",
        "--revision",
        &r_before_history.to_string(),
    ]);
    assert_eq!(then_text.stdout, text.stdout);
    // After the 80 write, before the rollback.
    let mid = cli.json(&[
        "resolve",
        "--app",
        "billing",
        "--env",
        "prod",
        "--revision",
        &(revision_of(&now) - 1).to_string(),
    ]);
    assert_eq!(mid["values"]["database/pool"]["max"], 80, "{mid}");
    assert_eq!(
        mid["checksum"],
        cairn_model::checksum(&mid["values"]),
        "{mid}"
    );
    assert_ne!(mid["checksum"], resolved["checksum"]);
    cli.expect(
        3,
        &[
            "resolve",
            "--app",
            "billing",
            "--env",
            "prod",
            "--revision",
            "100000",
        ],
    );

    // delete: -m is required; history stays.
    cli.expect(2, &["delete", "database/pool", "--app", "billing"]);
    let out = cli.ok(&[
        "delete",
        "database/pool",
        "--app",
        "billing",
        "-m",
        "moved to the global default",
    ]);
    assert!(out.stdout.contains("deleted as version 4"), "{out}");
    cli.expect(3, &["get", "database/pool", "--app", "billing"]);
    let hist = cli.json(&["versions", "database/pool", "--app", "billing"]);
    assert_eq!(hist.as_array().map(Vec::len), Some(4), "{hist}");
    let after = cli.json(&["resolve", "--app", "billing", "--env", "prod"]);
    assert_eq!(
        after["values"]["database/pool"],
        json!({"max": 20, "host": "prod-db"}),
        "{after}"
    );
    // The deleted version is still readable by version.
    assert_eq!(
        get(&["get", "database/pool", "--app", "billing", "--version", "2"]),
        json!({"max": 80})
    );

    tour_protected_prod(&f);
}

/// `change chg_… pending (0/2 approvals)`: the id of the change request a
/// gated write printed, checked against the whole line.
pub fn requested_id(stdout: &str, approvals: &str) -> String {
    let id = stdout
        .strip_prefix("change ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("not a change request line: {stdout:?}"));
    assert!(
        id.len() == 28 && id.starts_with("chg_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?} in {stdout:?}"
    );
    assert_eq!(
        stdout,
        format!("change {id} pending ({approvals} approvals)\n"),
        "the request line"
    );
    id
}

/// A user with one binding, and a CLI with its login token.
pub fn user_cli(f: &Fixture, name: &str, role: &str) -> Cli {
    let password = format!("{name}'s long passphrase");
    let out = f
        .cli
        .run_stdin(&["user", "create", name, "--role", role], Some(&password));
    assert_eq!(out.code, 0, "{out}");
    let out = f.cli.run_stdin(&["login", name], Some(&password));
    assert_eq!(out.code, 0, "{out}");
    f.cli.with_token(out.stdout.trim())
}

/// The tour's protected environment (README): a write that reaches prod
/// becomes a change request, nothing changes until two principals other
/// than its requester approved it, then it applies as one revision.
fn tour_protected_prod(f: &Fixture) {
    let cli = &f.cli;
    let prod = || cli.json(&["resolve", "--app", "billing", "--env", "prod"]);
    let dev = || cli.json(&["resolve", "--app", "billing", "--env", "dev"]);
    let (prod_before, dev_before) = (prod(), dev());
    assert_eq!(
        prod_before["values"]["database/pool"],
        json!({"max": 20, "host": "prod-db"}),
        "{prod_before}"
    );

    let out = cli.ok(&[
        "env",
        "set",
        "prod",
        "--protected",
        "true",
        "--required-approvals",
        "2",
    ]);
    assert!(
        out.stdout
            .starts_with("environment prod updated (revision "),
        "{out}"
    );
    let ann = user_cli(f, "ann", "operator");
    let bob = user_cli(f, "bob", "operator");

    // The request: exit 0, its line, and prod reads what it read before.
    let out = ann.ok(&[
        "set",
        "database/pool",
        "--env",
        "prod",
        "--value",
        r#"{"host":"prod-db","max":80}"#,
        "-m",
        "peak",
    ]);
    let id = requested_id(&out.stdout, "0/2");
    assert_eq!(prod(), prod_before, "prod's view moved before any approval");
    assert_eq!(
        cli.ok(&["get", "database/pool", "--env", "prod"]).json(),
        json!({"host": "prod-db"})
    );

    // pending: one row, the request's.
    let pending = cli.ok(&["pending"]);
    let lines: Vec<&str> = pending.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{pending}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "STATE",
            "REQUESTER",
            "AGE",
            "APPROVALS",
            "ENVIRONMENTS",
            "MESSAGE"
        ],
        "{pending}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row.len(), 7, "{pending}");
    assert_eq!(
        [row[0], row[1], row[2], row[4], row[5], row[6]],
        [id.as_str(), "pending", "user:ann", "0/2", "prod", "peak"],
        "{pending}"
    );
    assert!(row[3].ends_with('s'), "age in seconds: {pending}");

    // change show: the entry before/after, every reached view before/after.
    let shown = cli.ok(&["change", "show", &id]);
    let text = &shown.stdout;
    let has = |line: &str| text.lines().any(|l| l == line);
    for line in [
        format!("change {id} pending (0/2 approvals)"),
        "message: peak".into(),
        "environments: prod".into(),
        "approvals:".into(),
        "  (none)".into(),
        "  global/prod database/pool (config), based on version 1".into(),
        r#"    before: {"host":"prod-db"}"#.into(),
        r#"    after:  {"host":"prod-db","max":80}"#.into(),
        "resolved views (what applications read):".into(),
        "  billing/prod".into(),
        r#"    before: {"cache/ttl":60,"database/pool":{"host":"prod-db","max":20}}"#.into(),
        r#"    after:  {"cache/ttl":60,"database/pool":{"host":"prod-db","max":80}}"#.into(),
    ] {
        assert!(has(&line), "no line {line:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("requested by user:ann at ")),
        "{text}"
    );
    assert!(!text.contains("billing/dev"), "dev is not reached:\n{text}");

    // The requester may not approve their own request (403: exit 5).
    let out = ann.expect(5, &["approve", &id]);
    assert!(
        out.stderr
            .contains("a requester cannot approve their own request"),
        "{out}"
    );
    let out = bob.ok(&["approve", &id, "-m", "ok"]);
    assert_eq!(out.stdout, format!("change {id} pending (1/2 approvals)\n"));
    assert_eq!(prod(), prod_before, "one approval of two applies nothing");
    let out = cli.ok(&["approve", &id]);
    let after = prod();
    let revision = revision_of(&after);
    assert_eq!(
        out.stdout,
        format!("change {id} applied (revision {revision})\n")
    );
    assert_eq!(
        after["values"]["database/pool"],
        json!({"host": "prod-db", "max": 80}),
        "{after}"
    );
    assert_eq!(dev(), dev_before, "dev is not touched");
    assert_eq!(cli.json(&["pending"]), json!([]));

    // A write at the global scope reaches prod too: a request as well.
    let out = cli.ok(&[
        "set",
        "database/pool",
        "--value",
        r#"{"max":25,"idle":5}"#,
        "-m",
        "smaller pools",
    ]);
    let global = requested_id(&out.stdout, "0/2");
    assert_eq!((prod(), dev()), (after, dev_before), "nothing applied");
    let pending = cli.json(&["pending"]);
    assert_eq!(pending[0]["id"], global.as_str(), "{pending}");
    assert_eq!(pending[0]["environments"], json!(["prod"]), "{pending}");
    let out = cli.ok(&["change", "cancel", &global]);
    assert_eq!(
        out.stdout,
        format!("change {global} cancelled (0/2 approvals)\n")
    );
    assert_eq!(cli.json(&["pending"]), json!([]));
}

#[test]
fn tour_schemas_validate_writes_and_force() {
    let f = Fixture::new();
    let cli = &f.cli;
    cli.ok(&["app", "create", "billing"]);
    cli.ok(&["set", "database/pool", "--value", r#"{"max":20}"#]);
    cli.ok(&[
        "set",
        "database/pool",
        "--app",
        "billing",
        "--value",
        r#"{"max":50}"#,
    ]);
    let schema = f.file(
        "pool.schema.json",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
            "properties":{"max":{"type":"integer","maximum":100}}}"#,
    );
    let out = cli.ok(&["schema", "register", "database/*", &schema]);
    assert!(
        out.stdout.starts_with("schema database/* version 1 active"),
        "{out}"
    );
    let listed = cli.ok(&["schema", "list"]);
    assert!(listed.stdout.contains("database/*"), "{listed}");

    // A write violating the schema: exit 4, the pointer listed, nothing written.
    let out = cli.expect(
        4,
        &[
            "set",
            "database/pool",
            "--app",
            "billing",
            "--value",
            r#"{"max":500}"#,
        ],
    );
    assert!(out.stderr.contains("/max"), "{out}");
    let out = cli.expect(
        4,
        &[
            "set",
            "database/pool",
            "--app",
            "billing",
            "--value",
            r#"{"max":"many"}"#,
            "--output",
            "json",
        ],
    );
    let problem: Value = serde_json::from_str(&out.stderr).expect("problem JSON on stderr");
    assert_eq!(problem["status"], 422, "{problem}");
    assert!(
        problem["errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|v| v["pointer"] == "/max")),
        "{problem}"
    );
    assert_eq!(
        cli.ok(&["get", "database/pool", "--app", "billing"]).json(),
        json!({"max": 50})
    );
    let hist = cli.json(&["versions", "database/pool", "--app", "billing"]);
    assert_eq!(hist.as_array().map(Vec::len), Some(1), "{hist}");
    // Keys outside the pattern are not governed.
    cli.ok(&["set", "cache/size", "--value", "500"]);

    // schema validate writes nothing either way.
    let good = f.file("candidate.json", r#"{"max": 7}"#);
    let out = cli.ok(&["schema", "validate", "database/pool", &good]);
    assert!(out.stdout.contains("valid for database/pool"), "{out}");
    let bad = f.file("bad.yaml", "max: 700\n");
    let out = cli.expect(4, &["schema", "validate", "database/pool", &bad]);
    assert!(out.stdout.contains("INVALID"), "{out}");
    assert!(out.stdout.contains("/max"), "{out}");

    // A stricter schema that stored values violate: rejected unless --force.
    let strict = f.file(
        "strict.json",
        r#"{"type":"object","properties":{"max":{"type":"integer","maximum":10}}}"#,
    );
    let out = cli.expect(4, &["schema", "register", "database/*", &strict]);
    assert!(out.stderr.contains("/max"), "{out}");
    let active = cli.json(&["schema", "list"]);
    let active = active.as_array().expect("array");
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["version"], 1, "the rejected schema is not active");
    let out = cli.ok(&[
        "schema",
        "register",
        "database/*",
        &strict,
        "--force",
        "-m",
        "tighten",
    ]);
    assert!(out.stdout.contains("version 2 active"), "{out}");
    assert!(out.stdout.contains("forced past"), "{out}");
    let active = cli.json(&["schema", "list"]);
    assert_eq!(active[0]["version"], 2, "{active}");
    let all = cli.json(&["schema", "list", "--all"]);
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    // The new schema now governs writes.
    cli.expect(
        4,
        &[
            "set",
            "database/pool",
            "--app",
            "billing",
            "--value",
            r#"{"max":50}"#,
        ],
    );
    cli.ok(&[
        "set",
        "database/pool",
        "--app",
        "billing",
        "--value",
        r#"{"max":9}"#,
    ]);
    let forced = cli.json(&["audit", "--action", "schema.register.forced"]);
    assert_eq!(forced.as_array().map(Vec::len), Some(1), "{forced}");
}

#[test]
fn tour_audit_with_filters() {
    let f = Fixture::new();
    let cli = &f.cli;
    cli.ok(&["app", "create", "billing"]);
    for i in 1..=3 {
        cli.ok(&[
            "set",
            "database/pool",
            "--app",
            "billing",
            "--value",
            &format!(r#"{{"max":{i}}}"#),
            "-m",
            &format!("step {i}"),
        ]);
    }
    cli.ok(&["set", "other", "--value", "true"]);
    cli.ok(&[
        "rollback",
        "database/pool",
        "1",
        "--app",
        "billing",
        "-m",
        "back",
    ]);
    cli.ok(&["delete", "other", "-m", "unused"]);

    let text = cli.ok(&["audit", "database/pool"]);
    assert!(text.stdout.starts_with("SEQ"), "{text}");
    assert!(text.stdout.contains("entry.set"), "{text}");
    assert!(text.stdout.contains("step 2"), "{text}");
    assert!(!text.stdout.contains("unused"), "{text}");

    let records = cli.json(&["audit", "database/pool"]);
    let records = records.as_array().expect("array");
    assert_eq!(records.len(), 4, "3 sets and a rollback: {records:?}");
    assert!(records.iter().all(|r| r["key"] == "database/pool"));
    let actor = records[0]["actor"].as_str().expect("actor").to_owned();
    assert!(actor.starts_with("token:"), "{actor}");
    assert!(
        records
            .iter()
            .all(|r| r["client_ip"].as_str().is_some_and(|ip| ip == "127.0.0.1")),
        "{records:?}"
    );

    let mine = cli.json(&["audit", "--actor", &actor, "--since", "1h"]);
    let mine = mine.as_array().expect("array");
    assert!(mine.len() >= 6, "{mine:?}");
    assert!(mine.iter().all(|r| r["actor"] == actor.as_str()));
    let nobody = cli.json(&["audit", "--actor", "token:tok_nobody"]);
    assert_eq!(nobody, json!([]));
    let future = cli.json(&["audit", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(future, json!([]));

    let rollbacks = cli.json(&["audit", "--action", "entry.rollback"]);
    let rollbacks = rollbacks.as_array().expect("array");
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert_eq!(rollbacks[0]["message"], "back");
    assert_eq!(rollbacks[0]["to_version"], 4);
    let deletes = cli.json(&["audit", "--action", "entry.delete"]);
    assert_eq!(deletes.as_array().map(Vec::len), Some(1), "{deletes}");
    assert_eq!(deletes[0]["key"], "other");
    assert_eq!(deletes[0]["message"], "unused");
    let in_app = cli.json(&["audit", "--app", "billing", "--action", "entry.set"]);
    assert_eq!(in_app.as_array().map(Vec::len), Some(3), "{in_app}");
    let limited = cli.json(&["audit", "--limit", "2"]);
    assert_eq!(limited.as_array().map(Vec::len), Some(2), "{limited}");
    cli.expect(1, &["audit", "--since", "yesterday"]);
}

#[test]
fn tokens_permissions_and_exit_codes() {
    let f = Fixture::new();
    let cli = &f.cli;
    cli.ok(&["set", "feature/x", "--value", "1"]);

    // A viewer can read but not write.
    let created = cli.json(&["token", "create", "--name", "ro", "--role", "viewer"]);
    let secret = created["token"].as_str().expect("token").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    let viewer = cli.with_token(&secret);
    assert_eq!(viewer.ok(&["get", "feature/x"]).json(), json!(1));
    let out = viewer.expect(5, &["set", "feature/x", "--value", "2"]);
    assert!(out.stderr.contains("error:"), "{out}");
    viewer.expect(5, &["app", "create", "nope"]);
    viewer.expect(5, &["delete", "feature/x", "-m", "no"]);
    assert_eq!(cli.ok(&["get", "feature/x"]).json(), json!(1));
    let tokens = cli.ok(&["token", "list"]);
    assert!(tokens.stdout.contains(&id), "{tokens}");

    // Text output shows the token once.
    let out = cli.ok(&["token", "create", "--name", "ops", "--role", "operator"]);
    assert!(out.stdout.contains("shown only this once"), "{out}");
    let op_secret = out
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("cairn_"))
        .expect("the token in the output")
        .to_owned();
    cli.with_token(&op_secret)
        .ok(&["set", "feature/x", "--value", "3"]);

    // A revoked token is refused.
    cli.ok(&["token", "revoke", &id]);
    viewer.expect(5, &["get", "feature/x"]);

    // No token, a wrong token.
    let anon = f.server.anonymous_cli();
    anon.expect(5, &["get", "feature/x"]);
    anon.expect(5, &["resolve", "--app", "global", "--env", "dev"]);
    cli.with_token("cairn_tok_bogus_secret")
        .expect(5, &["get", "feature/x"]);

    // Not found, bad input, usage.
    cli.expect(3, &["get", "no/such/key"]);
    cli.expect(3, &["versions", "no/such/key"]);
    cli.expect(3, &["get", "feature/x", "--app", "ghost"]);
    // Reads take any key a flag may have (`Bad Key!` is one, so 404 above);
    // a control character is no key at all.
    cli.expect(3, &["get", "Bad Key!"]);
    cli.expect(1, &["get", "bad\u{7}key"]);
    cli.expect(1, &["set", "bad key", "--value", "1"]);
    cli.expect(1, &["set", "k", "--value", "{not json"]);
    cli.expect(1, &["set", "k"]);
    cli.expect(1, &["set", "k", "/no/such/file.json"]);
    cli.expect(2, &["set"]);
    cli.expect(2, &["get"]);
    cli.expect(2, &["resolve", "--app", "billing"]);
    cli.expect(2, &["diff", "k", "one", "two"]);
    cli.expect(2, &["frobnicate"]);
    cli.expect(3, &["get", "k"]);

    // No server at all.
    let nowhere = Cli {
        addr: "http://127.0.0.1:9".into(),
        token: Some("x".into()),
    };
    nowhere.expect(1, &["get", "feature/x"]);
}

/// `cairn user …` and `cairn login`: a user acts with its bindings as they
/// are now (a grant or a disable applies to a login token at once), and only
/// its current password logs in.
#[test]
fn users_grant_disable_and_log_in() {
    const PW: &str = "correct horse battery";
    const PW2: &str = "staple battery horse";
    let f = Fixture::new();
    let cli = &f.cli;
    cli.ok(&["app", "create", "shop"]);
    cli.ok(&["set", "k", "--app", "shop", "--value", "1"]);
    let out = cli.run_stdin(
        &[
            "user", "create", "alice", "--role", "viewer", "--app", "shop",
        ],
        Some(PW),
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.starts_with("user alice created (revision "),
        "{out}"
    );
    // A role that does not exist is refused before any password is asked for.
    let out = cli.expect(1, &["user", "create", "bob", "--role", "wizard"]);
    assert!(out.stderr.contains("--role must be"), "{out}");
    cli.expect(3, &["user", "grant", "nobody", "--role", "viewer"]);

    let login = |password: &str, code: i32| {
        let out = cli.run_stdin(&["login", "alice", "--ttl", "1h"], Some(password));
        assert_eq!(out.code, code, "{out}");
        out.stdout.trim().to_owned()
    };
    let token = login(PW, 0);
    assert!(token.starts_with("cairn_"), "{token}");
    let alice = cli.with_token(&token);
    assert_eq!(alice.ok(&["get", "k", "--app", "shop"]).json(), json!(1));
    alice.expect(5, &["set", "k", "--app", "shop", "--value", "2"]);

    let out = cli.ok(&[
        "user", "grant", "alice", "--role", "operator", "--app", "shop",
    ]);
    assert!(
        out.stdout
            .starts_with("user alice: granted operator on shop/* (revision "),
        "{out}"
    );
    alice.ok(&["set", "k", "--app", "shop", "--value", "2"]);
    let users = cli.json(&["user", "list"]);
    let listed = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap_or_else(|| panic!("alice in {users}"));
    assert_eq!(
        listed["bindings"],
        json!([{"role": "viewer", "app": "shop", "env": "*"},
               {"role": "operator", "app": "shop", "env": "*"}])
    );
    assert_eq!(listed["disabled"], false);
    assert!(listed.get("password_hash").is_none(), "{listed}");

    cli.ok(&["user", "disable", "alice"]);
    alice.expect(5, &["get", "k", "--app", "shop"]);
    login(PW, 5);
    cli.ok(&["user", "enable", "alice"]);
    let out = cli.run_stdin(&["user", "passwd", "alice"], Some(PW2));
    assert_eq!(out.code, 0, "{out}");
    login(PW, 5);
    let token = login(PW2, 0);
    cli.with_token(&token).ok(&["get", "k", "--app", "shop"]);
    // Longer than a login token may live: the server's 400.
    let out = cli.run_stdin(&["login", "alice", "--ttl", "8d"], Some(PW2));
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("between 1 second and 7 days"), "{out}");
}

/// `cairn audit` follows the server's pages (1,000 records each, by sequence
/// number): every record once, in order, and `--limit` across pages.
#[test]
fn audit_export_walks_every_page() {
    let f = Fixture::new();
    let cli = &f.cli;
    cli.ok(&["app", "create", "billing"]);
    // 17 change sets of 64 entries: 1,088 change records, more than one page.
    for round in 0..17 {
        let flags: serde_json::Map<String, Value> = (0..64)
            .map(|i| {
                let def =
                    json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"});
                (format!("k/{round}/{i}"), def)
            })
            .collect();
        let doc = json!({ "flags": flags });
        let out = cli.run_stdin(
            &[
                "flag",
                "import",
                "-",
                "--app",
                "billing",
                "-m",
                &format!("round {round}"),
            ],
            Some(&doc.to_string()),
        );
        assert_eq!(out.code, 0, "{out}");
    }
    let all = cli.json(&["audit", "--app", "billing"]);
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    // The app's creation, then every imported flag's record, once.
    assert_eq!(seqs.len(), 1 + 17 * 64);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates"
    );
    let some = cli.json(&["audit", "--app", "billing", "--limit", "1500"]);
    assert_eq!(some.as_array().unwrap().len(), 1089);
    let first = cli.json(&["audit", "--app", "billing", "--limit", "1001"]);
    let first: Vec<i64> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(first, seqs[..1001]);
}
