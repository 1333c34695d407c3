//! Change requests through the real binary and the CLI (DESIGN.md §7, issue
//! #13): a protected prod, operators requesting and approving, `--wait`,
//! `--apply-at` applied by the server's scheduler, edit, conflict and rebase,
//! `--force-approval`, every bypass path turned into a request; and two
//! server processes on one PostgreSQL database.

use std::time::Duration;

use cairn_store::testing::pg::TestPg;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::harness::{poll, write_file, Cli, Out, ServeOpts, Server};
use crate::tour::{requested_id, Fixture};

/// How long the scheduler may take to apply a due request (it ticks every
/// second by default; CI machines are slow).
const SCHEDULED: Duration = Duration::from_secs(30);

/// A token with one role everywhere, and a CLI using it; with its principal
/// identity (`token:tok_…`).
fn token(admin: &Cli, name: &str, role: &str) -> (Cli, String) {
    let created = admin.json(&["token", "create", "--name", name, "--role", role]);
    let secret = created["token"].as_str().expect("token");
    let id = created["id"].as_str().expect("id");
    (admin.with_token(secret), format!("token:{id}"))
}

/// The principals of a test: an admin, three operators, a viewer.
struct People {
    admin: Cli,
    ann: Cli,
    ann_id: String,
    bob: Cli,
    carol: Cli,
    viewer: Cli,
}

impl People {
    fn new(admin: &Cli) -> People {
        let (ann, ann_id) = token(admin, "ann", "operator");
        People {
            admin: admin.clone(),
            ann,
            ann_id,
            bob: token(admin, "bob", "operator").0,
            carol: token(admin, "carol", "operator").0,
            viewer: token(admin, "viewer", "viewer").0,
        }
    }
}

const FLAG_OFF: &str =
    r#"{"state":"DISABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}"#;

/// A server with app billing, entries written before prod became protected
/// (`database/pool` global `{"max":20}`, at prod version 1 `{"host":"old-db"}`
/// and version 2 `{"host":"prod-db"}`, flag `new-ui` disabled), then prod
/// protected with two required approvals.
fn protected_server() -> (Fixture, People) {
    let f = Fixture::new();
    let cli = &f.cli;
    cli.ok(&["app", "create", "billing"]);
    cli.ok(&["set", "database/pool", "--value", r#"{"max":20}"#]);
    for host in ["old-db", "prod-db"] {
        let value = json!({ "host": host }).to_string();
        cli.ok(&["set", "database/pool", "--env", "prod", "--value", &value]);
    }
    cli.ok(&["flag", "set", "new-ui", "--value", FLAG_OFF]);
    protect_prod(cli);
    let people = People::new(cli);
    (f, people)
}

fn protect_prod(cli: &Cli) {
    cli.ok(&[
        "env",
        "set",
        "prod",
        "--protected",
        "true",
        "--required-approvals",
        "2",
    ]);
}

fn view(cli: &Cli, env: &str) -> Value {
    cli.json(&["resolve", "--app", "billing", "--env", env])
}

fn get_prod(cli: &Cli, key: &str) -> Value {
    cli.ok(&["get", key, "--env", "prod"]).json()
}

/// `change show` as JSON: the record and its preview.
fn shown(cli: &Cli, id: &str) -> Value {
    cli.json(&["change", "show", id])
}

fn state(cli: &Cli, id: &str) -> String {
    shown(cli, id)["change"]["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

/// The actions of the audit records of change `id`, in order.
fn change_actions(cli: &Cli, id: &str) -> Vec<String> {
    let records = cli.json(&["audit", id]);
    records
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["action"].as_str().expect("action").to_owned())
        .collect()
}

fn applied_line(id: &str, revision: i64) -> String {
    format!("change {id} applied (revision {revision})\n")
}

fn applied_revision(cli: &Cli, id: &str) -> i64 {
    let s = shown(cli, id);
    assert_eq!(s["change"]["state"], "applied", "{s}");
    s["change"]["applied_revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no applied revision: {s}"))
}

/// The id of the one pending request with this message.
fn pending_with_message(cli: &Cli, message: &str) -> Result<String, String> {
    let pending = cli.json(&["pending"]);
    let found: Vec<&Value> = pending
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["message"] == message)
        .collect();
    match found.as_slice() {
        [one] => Ok(one["id"].as_str().expect("id").to_owned()),
        _ => Err(format!("{} requests with message {message:?}", found.len())),
    }
}

/// `cairn ARGS` on a thread, for commands that wait.
fn spawn(cli: &Cli, args: &[&str]) -> std::thread::JoinHandle<Out> {
    let (cli, args): (Cli, Vec<String>) =
        (cli.clone(), args.iter().map(|s| s.to_string()).collect());
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.run(&args)
    })
}

/// A time `secs` from now, whole seconds, and how the CLI prints it.
fn seconds_ahead(secs: i64) -> (DateTime<Utc>, String) {
    let at = DateTime::from_timestamp(Utc::now().timestamp() + secs, 0).expect("time");
    (at, at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[test]
fn a_request_applies_after_two_approvals_by_others_and_not_before() {
    let (_f, p) = protected_server();
    let (prod0, dev0) = (view(&p.admin, "prod"), view(&p.admin, "dev"));
    assert_eq!(
        prod0["values"]["database/pool"],
        json!({"max": 20, "host": "prod-db"}),
        "{prod0}"
    );

    let out = p.ann.ok(&[
        "set",
        "database/pool",
        "--env",
        "prod",
        "--value",
        r#"{"host":"prod-db","max":80}"#,
        "-m",
        "peak",
    ]);
    assert_eq!(out.stderr, "", "{out}");
    let id = requested_id(&out.stdout, "0/2");
    assert_eq!(
        get_prod(&p.admin, "database/pool"),
        json!({"host": "prod-db"})
    );
    assert_eq!(
        view(&p.admin, "prod"),
        prod0,
        "prod changed before approval"
    );

    // pending, with its filters.
    let pending = p.admin.json(&["pending"]);
    let [r] = pending.as_array().expect("array").as_slice() else {
        panic!("one request expected: {pending}");
    };
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["state"], "pending");
    assert_eq!(r["requester"], p.ann_id.as_str());
    assert_eq!(r["required_approvals"], 2);
    assert_eq!(r["approvals"], json!([]));
    assert_eq!(r["environments"], json!(["prod"]));
    assert_eq!(r["message"], "peak");
    let ids = |args: &[&str]| -> Vec<String> {
        let v = p.admin.json(args);
        v.as_array()
            .expect("array")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        ids(&["pending", "--env", "prod"]),
        std::slice::from_ref(&id)
    );
    assert_eq!(ids(&["pending", "--env", "dev"]), Vec::<String>::new());
    assert_eq!(
        ids(&["pending", "--app", "billing"]),
        std::slice::from_ref(&id)
    );
    let text = p.admin.ok(&["pending"]);
    let row = text.stdout.lines().nth(1).expect("a row");
    assert!(
        row.starts_with(&id) && row.contains(" 0/2 ") && row.contains(&p.ann_id),
        "{text}"
    );

    // show: the entry before/after and the reached views.
    let s = shown(&p.viewer, &id);
    let entries = s["preview"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{s}");
    let e = &entries[0];
    assert_eq!(
        (&e["key"], &e["base_version"], &e["current_version"]),
        (&json!("database/pool"), &json!(2), &json!(2)),
        "{e}"
    );
    assert_eq!(e["before"], json!({"host": "prod-db"}), "{e}");
    assert_eq!(e["after"], json!({"host": "prod-db", "max": 80}), "{e}");
    let views = s["preview"]["views"].as_array().expect("views");
    let billing = views
        .iter()
        .find(|v| v["app"] == "billing")
        .unwrap_or_else(|| panic!("billing/prod in {s}"));
    assert_eq!(billing["env"], "prod");
    assert_eq!(
        billing["before"],
        json!({"database/pool": {"max": 20, "host": "prod-db"}})
    );
    assert_eq!(
        billing["after"],
        json!({"database/pool": {"max": 80, "host": "prod-db"}})
    );
    assert!(
        views.iter().all(|v| v["env"] == "prod"),
        "only prod is reached: {s}"
    );

    // Refusals: the requester, a viewer, the same approver twice.
    let out = p.ann.expect(5, &["approve", &id]);
    assert!(
        out.stderr
            .contains("a requester cannot approve their own request"),
        "{out}"
    );
    p.viewer.expect(5, &["approve", &id]);
    p.viewer.expect(5, &["reject", &id, "--reason", "no"]);
    let out = p.bob.ok(&["approve", &id, "-m", "fine"]);
    assert_eq!(out.stdout, format!("change {id} pending (1/2 approvals)\n"));
    let out = p.bob.expect(4, &["approve", &id]);
    assert!(out.stderr.contains("already approved"), "{out}");
    assert_eq!(
        view(&p.admin, "prod"),
        prod0,
        "one approval applies nothing"
    );
    assert_eq!(
        p.admin.json(&["pending"])[0]["approvals"][0]["note"],
        "fine"
    );

    let out = p.carol.ok(&["approve", &id]);
    let prod1 = view(&p.admin, "prod");
    let revision = prod1["revision"].as_i64().expect("revision");
    assert_eq!(out.stdout, applied_line(&id, revision));
    assert_eq!(applied_revision(&p.admin, &id), revision);
    assert_eq!(
        prod1["values"]["database/pool"],
        json!({"max": 80, "host": "prod-db"})
    );
    assert_eq!(
        get_prod(&p.admin, "database/pool"),
        json!({"host": "prod-db", "max": 80})
    );
    assert_eq!(view(&p.admin, "dev"), dev0, "dev is not reached");
    assert_eq!(p.admin.json(&["pending"]), json!([]));
    // Applied once, as one version.
    let versions = p
        .admin
        .json(&["versions", "database/pool", "--env", "prod"]);
    assert_eq!(versions.as_array().map(Vec::len), Some(3), "{versions}");
    assert_eq!(
        change_actions(&p.admin, &id),
        [
            "change.request",
            "change.approve",
            "change.approve",
            "change.apply"
        ]
    );
    // Approving it again: it is applied (409, exit 4).
    p.admin.expect(4, &["approve", &id]);
}

#[test]
fn wait_exits_0_when_applied_elsewhere_and_4_when_rejected() {
    let (_f, p) = protected_server();
    let waiting = spawn(
        &p.ann,
        &[
            "set",
            "limits/rps",
            "--env",
            "prod",
            "--value",
            "100",
            "-m",
            "wait for it",
            "--wait",
        ],
    );
    let id = poll(Duration::from_secs(20), "the waiting request", || {
        pending_with_message(&p.admin, "wait for it")
    });
    p.bob.ok(&["approve", &id]);
    assert!(!waiting.is_finished(), "--wait returned after one approval");
    p.carol.ok(&["approve", &id]);
    let out = waiting.join().expect("the waiting CLI");
    assert_eq!(out.code, 0, "{out}");
    let revision = applied_revision(&p.admin, &id);
    assert_eq!(
        out.stdout,
        format!(
            "change {id} pending (0/2 approvals)\n{}",
            applied_line(&id, revision)
        ),
        "{out}"
    );
    assert_eq!(get_prod(&p.admin, "limits/rps"), json!(100));

    let waiting = spawn(
        &p.ann,
        &[
            "delete",
            "limits/rps",
            "--env",
            "prod",
            "-m",
            "drop the limit",
            "--wait",
        ],
    );
    let id = poll(Duration::from_secs(20), "the waiting delete", || {
        pending_with_message(&p.admin, "drop the limit")
    });
    let out = p
        .bob
        .ok(&["reject", &id, "--reason", "not during the freeze"]);
    assert_eq!(
        out.stdout,
        format!("change {id} rejected (0/2 approvals)\n")
    );
    let out = waiting.join().expect("the waiting CLI");
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr
            .contains(&format!("change {id} rejected: not during the freeze")),
        "{out}"
    );
    assert_eq!(get_prod(&p.admin, "limits/rps"), json!(100), "not deleted");
}

#[test]
fn apply_at_waits_as_scheduled_and_the_server_applies_it() {
    let (_f, p) = protected_server();
    let (at, at_arg) = seconds_ahead(6);
    let out = p.ann.ok(&[
        "set",
        "banner/text",
        "--env",
        "prod",
        "--value",
        r#""holiday hours""#,
        "-m",
        "christmas",
        "--apply-at",
        &at_arg,
    ]);
    let id = requested_id(&out.stdout, "0/2");
    p.bob.ok(&["approve", &id]);
    let out = p.carol.ok(&["approve", &id]);
    assert_eq!(
        out.stdout,
        format!(
            "change {id} scheduled (2/2 approvals, applies at {})\n",
            at.to_rfc3339()
        ),
        "approved before its time: scheduled"
    );
    p.admin.expect(3, &["get", "banner/text", "--env", "prod"]);
    let pending = p.admin.json(&["pending"]);
    assert_eq!(pending[0]["state"], "scheduled", "{pending}");

    // Applied by the server's scheduler, at (not before) its time.
    poll(
        SCHEDULED,
        "the scheduler to apply the request",
        || match state(&p.admin, &id).as_str() {
            "applied" => Ok(()),
            other => Err(other.to_owned()),
        },
    );
    let s = shown(&p.admin, &id);
    let applied_at: DateTime<Utc> =
        serde_json::from_value(s["change"]["updated_at"].clone()).expect("updated_at");
    assert!(applied_at >= at, "applied at {applied_at}, due {at}");
    assert_eq!(get_prod(&p.admin, "banner/text"), json!("holiday hours"));
    let records = p.admin.json(&["audit", &id, "--action", "change.apply"]);
    let [apply] = records.as_array().expect("array").as_slice() else {
        panic!("one change.apply record: {records}");
    };
    assert_eq!(apply["actor"], "system", "{apply}");
    assert_eq!(
        apply["revision"], s["change"]["applied_revision"],
        "{apply}"
    );
}

#[test]
fn an_edit_resets_the_approvals() {
    let (_f, p) = protected_server();
    let out = p
        .ann
        .ok(&["set", "limits/rps", "--env", "prod", "--value", "10"]);
    let id = requested_id(&out.stdout, "0/2");
    p.bob.ok(&["approve", &id]);
    // Only the requester (or an admin) edits.
    p.bob.expect(5, &["change", "edit", &id, "--value", "99"]);
    let out = p.ann.ok(&["change", "edit", &id, "--value", "20"]);
    assert_eq!(out.stdout, format!("change {id} pending (0/2 approvals)\n"));
    let text = p.admin.ok(&["change", "show", &id]).stdout;
    assert!(text.contains("approvals:\n  (none)\n"), "{text}");
    assert!(text.contains("    after:  20\n"), "{text}");
    // Bob approved the earlier content: he may approve this one.
    let out = p.bob.ok(&["approve", &id]);
    assert_eq!(out.stdout, format!("change {id} pending (1/2 approvals)\n"));
    let out = p.carol.ok(&["approve", &id]);
    assert_eq!(
        out.stdout,
        applied_line(&id, applied_revision(&p.admin, &id))
    );
    assert_eq!(get_prod(&p.admin, "limits/rps"), json!(20));
}

#[test]
fn a_write_meanwhile_conflicts_rebase_then_applies_and_force_is_audited() {
    let (_f, p) = protected_server();
    let out = p.ann.ok(&[
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
    p.bob.ok(&["approve", &id]);

    // --force-approval: usage rules, an operator refused, an admin applies.
    p.admin.expect(
        2,
        &[
            "set",
            "database/pool",
            "--env",
            "prod",
            "--value",
            "{}",
            "--force-approval",
        ],
    );
    p.admin.expect(
        2,
        &[
            "set",
            "database/pool",
            "--env",
            "prod",
            "--value",
            "{}",
            "--reason",
            "x",
        ],
    );
    let out = p.ann.expect(
        5,
        &[
            "set",
            "database/pool",
            "--env",
            "prod",
            "--value",
            r#"{"host":"ann-db"}"#,
            "-m",
            "ann forcing",
            "--force-approval",
            "--reason",
            "i want to",
        ],
    );
    let refused = requested_id(&out.stdout, "0/2");
    assert!(out.stderr.contains("admin"), "{out}");
    assert_eq!(
        state(&p.admin, &refused),
        "pending",
        "still a plain request"
    );
    p.ann.ok(&["change", "cancel", &refused]);

    let out = p.admin.ok(&[
        "set",
        "database/pool",
        "--env",
        "prod",
        "--value",
        r#"{"host":"db2"}"#,
        "-m",
        "failover",
        "--force-approval",
        "--reason",
        "incident 4711",
    ]);
    let (first, second) = out.stdout.split_once('\n').expect("two lines");
    let forced = requested_id(&format!("{first}\n"), "0/2");
    let revision = applied_revision(&p.admin, &forced);
    assert_eq!(
        second,
        format!("change {forced} applied (revision {revision}, forced)\n")
    );
    assert_eq!(get_prod(&p.admin, "database/pool"), json!({"host": "db2"}));
    let records = p.admin.json(&["audit", "--action", "change.force"]);
    let [force] = records.as_array().expect("array").as_slice() else {
        panic!("one change.force record: {records}");
    };
    assert_eq!(force["key"], forced.as_str(), "{force}");
    assert_eq!(force["revision"], revision, "{force}");
    assert_eq!(force["detail"]["forced"], true, "{force}");
    assert_eq!(force["detail"]["reason"], "incident 4711", "{force}");
    assert_eq!(
        change_actions(&p.admin, &forced),
        ["change.request", "change.force"]
    );

    // The first request's entry moved: `change show` says it would not
    // apply, and its last approval conflicts (exit 4).
    let text = p.carol.ok(&["change", "show", &id]).stdout;
    let check = text
        .lines()
        .find(|l| l.starts_with("check: "))
        .unwrap_or_else(|| panic!("no check line in\n{text}"));
    assert_eq!(
        check,
        // The request was `set … --env prod` (no app): scope global/prod.
        "check: would NOT apply now: database/pool at global/prod moved since the request \
         (version 2 → 3): rebase it (conflict)"
    );
    let out = p.carol.expect(4, &["approve", &id]);
    assert_eq!(
        out.stdout,
        format!("change {id} conflicted (2/2 approvals)\n")
    );
    assert!(out.stderr.contains("change rebase"), "{out}");
    assert_eq!(get_prod(&p.admin, "database/pool"), json!({"host": "db2"}));
    let s = shown(&p.admin, &id);
    let e = &s["preview"]["entries"][0];
    assert_eq!(
        (&e["base_version"], &e["current_version"]),
        (&json!(2), &json!(3))
    );

    // Rebased: pending again, no approvals; approved again, applied.
    let out = p.ann.ok(&["change", "rebase", &id]);
    assert_eq!(out.stdout, format!("change {id} pending (0/2 approvals)\n"));
    p.carol.ok(&["approve", &id]);
    let out = p.bob.ok(&["approve", &id]);
    assert_eq!(
        out.stdout,
        applied_line(&id, applied_revision(&p.admin, &id))
    );
    assert_eq!(
        get_prod(&p.admin, "database/pool"),
        json!({"host": "prod-db", "max": 80})
    );
}

#[test]
fn every_path_that_reaches_prod_becomes_a_request() {
    let (f, p) = protected_server();
    let (prod0, dev0) = (view(&p.admin, "prod"), view(&p.admin, "dev"));
    let flags0 = p
        .admin
        .json(&["flag", "export", "--app", "billing", "--env", "prod"]);
    assert_eq!(flags0["flags"]["new-ui"]["state"], "DISABLED", "{flags0}");
    let import = write_file(
        f.files.path(),
        "flags.json",
        &json!({"flags": {"dark-mode": serde_json::from_str::<Value>(FLAG_OFF).unwrap()}})
            .to_string(),
    );
    let attempts: Vec<Vec<&str>> = vec![
        // A write at the global scope reaches prod.
        vec!["set", "database/pool", "--value", r#"{"max":30}"#],
        // At the app's own scope, too.
        vec![
            "set",
            "database/pool",
            "--app",
            "billing",
            "--value",
            r#"{"max":40}"#,
        ],
        vec![
            "rollback",
            "database/pool",
            "1",
            "--env",
            "prod",
            "-m",
            "back",
        ],
        vec!["delete", "database/pool", "--env", "prod", "-m", "gone"],
        vec![
            "flag", "enable", "new-ui", "--app", "billing", "--env", "prod",
        ],
        vec![
            "flag",
            "set",
            "new-ui",
            "--value",
            r#"{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"}"#,
        ],
        vec!["flag", "import", &import, "--app", "billing"],
    ];
    let mut ids = Vec::new();
    for args in &attempts {
        let out = p.ann.ok(args);
        ids.push(requested_id(&out.stdout, "0/2"));
    }
    assert_eq!(view(&p.admin, "prod"), prod0, "prod moved");
    assert_eq!(
        view(&p.admin, "dev"),
        dev0,
        "a request applies nothing anywhere"
    );
    assert_eq!(
        p.admin
            .json(&["flag", "export", "--app", "billing", "--env", "prod"]),
        flags0
    );
    let pending = p.admin.json(&["pending"]);
    let pending = pending.as_array().expect("array");
    assert_eq!(pending.len(), attempts.len(), "{pending:?}");
    for r in pending {
        assert!(ids.iter().any(|id| r["id"] == id.as_str()), "{r}");
        assert_eq!(r["environments"], json!(["prod"]), "{r}");
        assert_eq!(r["required_approvals"], 2, "{r}");
    }
}

#[test]
fn a_pending_request_expires_after_change_expiry_and_wait_exits_4() {
    let data = tempfile::tempdir().expect("data dir");
    let server = Server::start(
        data.path(),
        ServeOpts {
            extra: ["--change-expiry", "3s", "--change-check-ms", "200"]
                .map(String::from)
                .to_vec(),
            ..ServeOpts::default()
        },
    );
    let admin = server.cli(&server.admin_token());
    protect_prod(&admin);
    let p = People::new(&admin);
    let waiting = spawn(
        &p.ann,
        &[
            "set",
            "k",
            "--env",
            "prod",
            "--value",
            "1",
            "-m",
            "soon stale",
            "--wait",
        ],
    );
    let id = poll(Duration::from_secs(20), "the waiting request", || {
        pending_with_message(&admin, "soon stale")
    });
    let record = &shown(&admin, &id)["change"];
    let time = |field: &str| -> DateTime<Utc> {
        serde_json::from_value(record[field].clone()).expect("a time")
    };
    assert_eq!(
        time("expires_at") - time("created_at"),
        chrono::Duration::seconds(3),
        "{record}"
    );
    // The scheduler expires it; the waiting CLI reports that, exit 4.
    poll(SCHEDULED, "the request to expire", || {
        if waiting.is_finished() {
            Ok(())
        } else {
            Err(state(&admin, &id))
        }
    });
    let out = waiting.join().expect("the waiting CLI");
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr.contains(&format!("change {id} expired")),
        "{out}"
    );
    assert_eq!(state(&admin, &id), "expired");
    assert!(Utc::now() >= time("expires_at"));
    assert_eq!(
        change_actions(&admin, &id),
        ["change.request", "change.expire"]
    );
    admin.expect(3, &["get", "k", "--env", "prod"]);
    // An expired request is approved no more.
    p.bob.expect(4, &["approve", &id]);
}

/// Two replicas on one PostgreSQL database.
struct Replicas {
    a: Server,
    b: Server,
    token: String,
    _dirs: [tempfile::TempDir; 3],
}

fn replicas() -> Option<Replicas> {
    let pg = TestPg::shared()?;
    let url = pg.create_database();
    let dirs = [
        tempfile::tempdir().expect("dir a"),
        tempfile::tempdir().expect("dir b"),
        tempfile::tempdir().expect("key dir"),
    ];
    let key_file = write_file(dirs[2].path(), "master.key", &"7c".repeat(32));
    let opts = |replica: &str| ServeOpts {
        database_url: Some(url.clone()),
        extra: [
            "--sync-interval-ms",
            "100",
            "--change-check-ms",
            "200",
            "--replica",
            replica,
            "--master-key-file",
            &key_file,
        ]
        .map(String::from)
        .to_vec(),
    };
    let a = Server::start(dirs[0].path(), opts("a"));
    let token = a.admin_token();
    let b = Server::start(dirs[1].path(), opts("b"));
    Some(Replicas {
        a,
        b,
        token,
        _dirs: dirs,
    })
}

/// Poll until `cli` reads `value` at (global, prod) `key`.
fn wait_for_value(cli: &Cli, key: &str, value: &Value, what: &str) {
    poll(Duration::from_secs(20), what, || {
        let out = cli.run(&["get", key, "--env", "prod"]);
        match out.code {
            0 if out.json() == *value => Ok(()),
            _ => Err(out.to_string()),
        }
    });
}

#[test]
fn postgres_requested_on_one_replica_approved_on_the_other_applied_once() {
    let Some(r) = replicas() else {
        return; // CAIRN_SKIP_PG=1
    };
    let admin_a = r.a.cli(&r.token);
    admin_a.ok(&["app", "create", "billing"]);
    admin_a.ok(&[
        "set",
        "database/pool",
        "--env",
        "prod",
        "--value",
        r#"{"max":20}"#,
    ]);
    protect_prod(&admin_a);
    let p = People::new(&admin_a);
    let on_b = |cli: &Cli| Cli {
        addr: r.b.addr.clone(),
        token: cli.token.clone(),
    };
    let (bob_b, carol_b, admin_b) = (on_b(&p.bob), on_b(&p.carol), on_b(&admin_a));
    // B knows the tokens and sees prod protected.
    poll(Duration::from_secs(20), "B to know the tokens", || {
        let out = carol_b.run(&["pending"]);
        let envs = bob_b.run(&["env", "list", "--output", "json"]);
        let prod_protected = envs.code == 0
            && envs.json().as_array().is_some_and(|a| {
                a.iter()
                    .any(|e| e["name"] == "prod" && e["protected"] == true)
            });
        if out.code == 0 && prod_protected {
            Ok(())
        } else {
            Err(format!("{out}\n{envs}"))
        }
    });

    let out = p.ann.ok(&[
        "set",
        "database/pool",
        "--env",
        "prod",
        "--value",
        r#"{"max":80}"#,
        "-m",
        "peak",
    ]);
    let id = requested_id(&out.stdout, "0/2");
    let out = bob_b.ok(&["approve", &id]);
    assert_eq!(out.stdout, format!("change {id} pending (1/2 approvals)\n"));
    let out = carol_b.ok(&["approve", &id]);
    let revision = applied_revision(&admin_b, &id);
    assert_eq!(out.stdout, applied_line(&id, revision));
    let value = json!({"max": 80});
    wait_for_value(
        &admin_b,
        "database/pool",
        &value,
        "B to serve the applied value",
    );
    wait_for_value(
        &admin_a,
        "database/pool",
        &value,
        "A to serve the applied value",
    );
    for cli in [&admin_a, &admin_b] {
        assert_eq!(
            change_actions(cli, &id),
            [
                "change.request",
                "change.approve",
                "change.approve",
                "change.apply"
            ]
        );
        let versions = cli.json(&["versions", "database/pool", "--env", "prod"]);
        assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    }
    let apply = admin_a.json(&["audit", &id, "--action", "change.apply"]);
    assert_eq!(apply[0]["replica"], "b", "applied where approved: {apply}");
    assert_eq!(apply[0]["revision"], revision, "{apply}");

    // Scheduled, with both replicas' schedulers running: applied once. A
    // second request due after it is the event to wait for: once it is
    // applied, both schedulers have long been past the first.
    let (first_at, first_arg) = seconds_ahead(5);
    let (_, second_arg) = seconds_ahead(7);
    let mut scheduled = Vec::new();
    for (key, at) in [("sched/first", &first_arg), ("sched/second", &second_arg)] {
        let out = p.ann.ok(&[
            "set",
            key,
            "--env",
            "prod",
            "--value",
            "1",
            "--apply-at",
            at,
        ]);
        let id = requested_id(&out.stdout, "0/2");
        p.bob.ok(&["approve", &id]);
        let out = carol_b.ok(&["approve", &id]);
        assert!(
            out.stdout.starts_with(&format!(
                "change {id} scheduled (2/2 approvals, applies at "
            )),
            "{out}"
        );
        scheduled.push(id);
    }
    assert!(
        Utc::now() < first_at,
        "the approvals took too long for this test"
    );
    for cli in [&admin_a, &admin_b] {
        wait_for_value(
            cli,
            "sched/second",
            &json!(1),
            "the second scheduled request",
        );
        assert_eq!(get_prod(cli, "sched/first"), json!(1));
    }
    for id in &scheduled {
        let applies = admin_a.json(&["audit", id, "--action", "change.apply"]);
        assert_eq!(applies.as_array().map(Vec::len), Some(1), "{applies}");
        assert_eq!(applies[0]["actor"], "system", "{applies}");
    }
    for key in ["sched/first", "sched/second"] {
        let versions = admin_b.json(&["versions", key, "--env", "prod"]);
        assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    }
}

/// `env set` on protected prod takes the gate's flags: `--force-approval
/// --reason` (admins) applies the policy change at once, audited forced;
/// `--apply-at` makes it wait as scheduled once approved.
#[test]
fn env_set_takes_force_approval_and_apply_at() {
    let (_f, p) = protected_server();
    let strict = |p: &People| -> Value {
        let envs = p.admin.json(&["env", "list"]);
        envs.as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == "prod"))
            .map(|e| e["strict_flags"].clone())
            .unwrap_or_else(|| panic!("no prod in {envs}"))
    };
    let out = p.admin.ok(&[
        "env",
        "set",
        "prod",
        "--strict-flags",
        "true",
        "--force-approval",
        "--reason",
        "incident 4712",
    ]);
    let (first, second) = out.stdout.split_once('\n').expect("two lines");
    let forced = requested_id(&format!("{first}\n"), "0/2");
    let revision = applied_revision(&p.admin, &forced);
    assert_eq!(
        second,
        format!("change {forced} applied (revision {revision}, forced)\n")
    );
    assert_eq!(strict(&p), json!(true));
    assert_eq!(
        change_actions(&p.admin, &forced),
        ["change.request", "change.force"]
    );

    let (_, at) = seconds_ahead(3600);
    let out = p.admin.ok(&[
        "env",
        "set",
        "prod",
        "--strict-flags",
        "false",
        "--apply-at",
        &at,
    ]);
    let later = requested_id(&out.stdout, "0/2");
    let shown = shown(&p.admin, &later);
    assert_eq!(
        shown["change"]["apply_at"].as_str().map(|s| &s[..19]),
        Some(&at[..19])
    );
    assert_eq!(strict(&p), json!(true), "not before it is approved and due");
}
