//! Watch streams, the agent and `cairn run`, through the real binary; and a
//! change on one PostgreSQL replica reaching a watcher on another through
//! LISTEN/NOTIFY (the periodic catch-up is set to a minute, so only the
//! notification can deliver it in time).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cairn_store::testing::pg::TestPg;
use serde_json::Value;

use crate::harness::{poll, write_file, ServeOpts, Server, BIN};

/// A long-running CLI child (watch, agent), killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(server_addr: &str, token: &str, args: &[&str], stdout: Stdio) -> Running {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args(args)
        .env("CAIRN_ADDR", server_addr)
        .env("CAIRN_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn");
    Running(child)
}

/// Lines of a child's stdout, through a channel.
fn lines(child: &mut Running) -> mpsc::Receiver<String> {
    let out = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_event(rx: &mpsc::Receiver<String>, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no watch event within {within:?}"));
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            return v;
        }
    }
}

/// Wait until the watcher behind `rx` is connected, without sleeping: make
/// changes to its view with `write` (which returns their revision) until an
/// event arrives, then read on up to the last one made, so none is still to
/// come. (A watcher without `--since` starts at the state it connects to,
/// so the first changes may be before its time.) Each write must change the
/// view.
fn connected(rx: &mpsc::Receiver<String>, mut write: impl FnMut() -> i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = write();
    let mut seen = loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(line) => match serde_json::from_str::<Value>(&line) {
                Ok(e) => break e["revision"].as_i64().unwrap(),
                Err(_) => continue,
            },
            Err(_) => {
                assert!(Instant::now() < deadline, "the watcher never connected");
                last = write();
            }
        }
    };
    while seen < last {
        seen = next_event(rx, Duration::from_secs(10))["revision"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(seen, last, "events after the last write");
}

/// The revision `cairn set` reports: `… (revision N)`.
fn revision_of(out: &crate::harness::Out) -> i64 {
    out.stdout
        .split("revision ")
        .nth(1)
        .and_then(|r| r.trim_end_matches([')', '\n']).parse().ok())
        .unwrap_or_else(|| panic!("no revision in {out}"))
}

/// Replicas A and B on one new PostgreSQL database (B's URL with `b_query`
/// appended), app `svc` created through A and seen by B within
/// `seen_within`, and `cairn watch --app svc --env dev` on B, drained.
struct Replicas {
    a: Server,
    b: Server,
    token: String,
    rx: mpsc::Receiver<String>,
    _watch: Running,
    _dirs: [tempfile::TempDir; 3],
}

fn replicas_watching_b(
    pg: &TestPg,
    sync_interval_ms: &str,
    b_query: &str,
    seen_within: Duration,
) -> Replicas {
    let url = pg.create_database();
    let url_b = match (b_query.is_empty(), url.contains('?')) {
        (true, _) => url.clone(),
        (false, true) => format!("{url}&{b_query}"),
        (false, false) => format!("{url}?{b_query}"),
    };
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let key_file = write_file(dirs[2].path(), "master.key", &"6b".repeat(32));
    let opts = |url: &str| ServeOpts {
        database_url: Some(url.to_owned()),
        extra: vec![
            "--sync-interval-ms".into(),
            sync_interval_ms.into(),
            "--master-key-file".into(),
            key_file.clone(),
        ],
    };
    let a = Server::start(dirs[0].path(), opts(&url));
    let token = a.admin_token();
    let b = Server::start(dirs[1].path(), opts(&url_b));
    a.cli(&token).ok(&["app", "create", "svc"]);
    let cli_b = b.cli(&token);
    poll(seen_within, "B to see app svc", || {
        let out = cli_b.run(&["app", "list"]);
        if out.stdout.contains("svc") {
            Ok(())
        } else {
            Err(out.to_string())
        }
    });
    let mut watch = spawn(
        &b.addr,
        &token,
        &["watch", "--app", "svc", "--env", "dev", "--output", "json"],
        Stdio::piped(),
    );
    let rx = lines(&mut watch);
    // Writes through B reach its watchers without waiting for a sync.
    let mut n = 0;
    connected(&rx, || {
        n += 1;
        let v = n.to_string();
        revision_of(&cli_b.ok(&[
            "set", "ready", "--app", "svc", "--env", "dev", "--value", &v,
        ]))
    });
    Replicas {
        a,
        b,
        token,
        rx,
        _watch: watch,
        _dirs: dirs,
    }
}

#[test]
fn watch_prints_one_event_per_change_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::sqlite(dir.path());
    let token = s.admin_token();
    let cli = s.cli(&token);
    cli.ok(&["app", "create", "billing"]);
    cli.ok(&[
        "set", "db", "--app", "billing", "--env", "prod", "--value", "1",
    ]);
    let mut watch = spawn(
        &s.addr,
        &token,
        &[
            "watch", "--app", "billing", "--env", "prod", "--output", "json",
        ],
        Stdio::piped(),
    );
    let rx = lines(&mut watch);
    let mut n = 0;
    connected(&rx, || {
        n += 1;
        let v = n.to_string();
        revision_of(&cli.ok(&[
            "set", "ready", "--app", "billing", "--env", "prod", "--value", &v,
        ]))
    });
    let mut last = 0;
    for i in 2..=4 {
        let out = cli.ok(&[
            "set",
            "db",
            "--app",
            "billing",
            "--env",
            "prod",
            "--value",
            &i.to_string(),
        ]);
        let rev = revision_of(&out);
        // A change to another view wakes nobody here.
        cli.ok(&["set", "other", "--env", "dev", "--value", "0"]);
        let e = next_event(&rx, Duration::from_secs(10));
        assert_eq!(e["revision"], rev, "{e}");
        assert!(rev > last);
        assert_eq!(e["keys"], serde_json::json!(["db"]), "{e}");
        last = rev;
    }
    // No duplicate or extra event: the next one is a sentinel's.
    let sentinel = revision_of(&cli.ok(&[
        "set", "sentinel", "--app", "billing", "--env", "prod", "--value", "1",
    ]));
    let e = next_event(&rx, Duration::from_secs(10));
    assert_eq!(e["revision"], sentinel, "no duplicate or extra events: {e}");
    // Resuming from an old revision replays what was missed, in order.
    let mut resumed = spawn(
        &s.addr,
        &token,
        &[
            "watch", "--app", "billing", "--env", "prod", "--output", "json", "--since", "5",
        ],
        Stdio::piped(),
    );
    let rx = lines(&mut resumed);
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let e = next_event(&rx, Duration::from_secs(10));
        seen.push(e["revision"].as_i64().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(seen[0] > 5, "{seen:?}");
}

#[test]
fn the_agent_keeps_a_whole_file_in_step_and_run_passes_env() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::sqlite(dir.path());
    let token = s.admin_token();
    let cli = s.cli(&token);
    cli.ok(&["app", "create", "billing"]);
    cli.ok(&[
        "set",
        "database/pool",
        "--app",
        "billing",
        "--value",
        r#"{"max": 0, "host": "db"}"#,
    ]);
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("config.json");
    let file_arg = file.to_string_lossy().into_owned();
    let _agent = spawn(
        &s.addr,
        &token,
        &[
            "agent", "--app", "billing", "--env", "prod", "--out", &file_arg,
        ],
        Stdio::null(),
    );
    poll(Duration::from_secs(10), "the agent's first file", || {
        std::fs::read_to_string(&file).map_err(|e| e.to_string())
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A reader that must never see a partial file.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&file).expect("the file is always there");
                let v: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("partial or invalid file ({e}): {text:?}"));
                assert!(v["database/pool"]["host"] == "db", "{v}");
                reads += 1;
            }
            reads
        })
    };
    for i in 1..=15 {
        let v = format!(
            r#"{{"max": {i}, "host": "db", "pad": "{}"}}"#,
            "x".repeat(4000)
        );
        cli.ok(&["set", "database/pool", "--app", "billing", "--value", &v]);
    }
    poll(
        Duration::from_secs(10),
        "the file to show the last write",
        || {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            if v["database/pool"]["max"] == 15 {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    );
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("the reader saw only whole files");
    assert!(reads > 10, "{reads}");

    // `cairn run`: the configuration as environment variables.
    let out = cli.ok(&[
        "run",
        "--app",
        "billing",
        "--env",
        "prod",
        "--",
        "sh",
        "-c",
        "echo max=$DATABASE_POOL_MAX host=$DATABASE_POOL_HOST",
    ]);
    assert!(out.stdout.contains("max=15 host=db"), "{out}");
    let failing = cli.run(&[
        "run", "--app", "billing", "--env", "prod", "--", "sh", "-c", "exit 7",
    ]);
    assert_eq!(failing.code, 7, "the child's exit code: {failing}");
}

/// The agent writes the secrets the configuration references (for a
/// principal that may read them) and follows their rotation, which changes
/// no configuration revision; `cairn run` passes them too.
#[test]
fn the_agent_writes_referenced_secrets_and_follows_their_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::sqlite(dir.path());
    let token = s.admin_token();
    let cli = s.cli(&token);
    cli.ok(&["app", "create", "billing"]);
    let out = cli.run_stdin(
        &["secret", "create", "db/password", "-"],
        Some("pw-version-1"),
    );
    assert_eq!(out.code, 0, "{out}");
    cli.ok(&[
        "set",
        "db",
        "--app",
        "billing",
        "--value",
        r#"{"host": "db", "password": {"$secret": "db/password"}}"#,
    ]);
    let viewer = cli.json(&["token", "create", "--name", "v", "--role", "viewer"]);
    let viewer = viewer["token"].as_str().unwrap().to_owned();
    let out_dir = tempfile::tempdir().unwrap();
    let read = |name: &str| -> Result<Value, String> {
        let text = std::fs::read_to_string(out_dir.path().join(name)).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    let file_arg = |name: &str| out_dir.path().join(name).to_string_lossy().into_owned();
    let agent_args = |name: &str| {
        vec![
            "agent".to_owned(),
            "--app".into(),
            "billing".into(),
            "--env".into(),
            "prod".into(),
            "--out".into(),
            file_arg(name),
            "--secrets-refresh".into(),
            "1".into(),
        ]
    };
    let admin_args = agent_args("admin.json");
    let _admin_agent = spawn(
        &s.addr,
        &token,
        &admin_args.iter().map(String::as_str).collect::<Vec<_>>(),
        Stdio::null(),
    );
    let viewer_args = agent_args("viewer.json");
    let _viewer_agent = spawn(
        &s.addr,
        &viewer,
        &viewer_args.iter().map(String::as_str).collect::<Vec<_>>(),
        Stdio::null(),
    );
    poll(Duration::from_secs(10), "the admin agent's file", || {
        let v = read("admin.json")?;
        if v["db"]["password"] == "pw-version-1" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = out_dir.path().join("admin.json");
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A viewer may not read secrets: its file keeps the reference.
    poll(Duration::from_secs(10), "the viewer agent's file", || {
        let v = read("viewer.json")?;
        if v["db"]["password"] == serde_json::json!({"$secret": "db/password"}) {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });

    // A rotation reaches the file within the refresh period.
    let out = cli.run_stdin(
        &["secret", "rotate", "db/password", "-"],
        Some("pw-version-2"),
    );
    assert_eq!(out.code, 0, "{out}");
    poll(
        Duration::from_secs(10),
        "the rotated value in the file",
        || {
            let v = read("admin.json")?;
            if v["db"]["password"] == "pw-version-2" {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    );

    // `cairn run`: secrets in the environment; with --no-secrets the
    // reference object, flattened by the naming rule.
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--app", "billing", "--env", "prod"];
        all.extend_from_slice(args);
        all.extend([
            "--",
            "sh",
            "-c",
            "echo \"pw=$DB_PASSWORD ref=$DB_PASSWORD__SECRET\"",
        ]);
        cli.ok(&all).stdout
    };
    assert_eq!(run(&[]).trim(), "pw=pw-version-2 ref=");
    assert_eq!(run(&["--no-secrets"]).trim(), "pw= ref=db/password");
}

#[test]
fn a_change_on_one_postgres_replica_reaches_a_watcher_on_the_other() {
    let Some(pg) = TestPg::shared() else {
        return; // CAIRN_SKIP_PG=1
    };
    // B's poll is a minute away: only NOTIFY can deliver in time.
    let r = replicas_watching_b(pg, "60000", "", Duration::from_secs(5));
    let (cli_a, rx) = (r.a.cli(&r.token), &r.rx);
    let started = Instant::now();
    let out = cli_a.ok(&["set", "k", "--app", "svc", "--value", "42"]);
    let rev = revision_of(&out);
    let e = next_event(rx, Duration::from_secs(5));
    assert_eq!(e["revision"], rev, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A watcher on replica B while B's database connections are cut again and
/// again (its LISTEN connection and its pool): every change written through
/// replica A meanwhile reaches the watcher once, in order, without a gap —
/// B catches up from the change table when it reconnects.
#[test]
fn a_replica_whose_database_connections_are_cut_loses_no_event() {
    let Some(pg) = TestPg::shared() else {
        return; // CAIRN_SKIP_PG=1
    };
    let r = replicas_watching_b(
        pg,
        "200",
        "application_name=cairn-replica-b",
        Duration::from_secs(10),
    );
    let (cli_a, cli_b, b, rx) = (r.a.cli(&r.token), r.b.cli(&r.token), &r.b, &r.rx);

    // Cut B's connections every 150 ms (the pace of the cuts) while A writes.
    let cutting = Arc::new(AtomicBool::new(true));
    let cuts = Arc::new(AtomicUsize::new(0));
    let cutter = {
        let (cutting, cuts) = (cutting.clone(), cuts.clone());
        std::thread::spawn(move || {
            while cutting.load(Ordering::Relaxed) {
                pg.psql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'cairn-replica-b'",
                );
                cuts.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let mut written = Vec::new();
    for i in 0..15 {
        let out = cli_a.ok(&["set", "k", "--app", "svc", "--value", &i.to_string()]);
        let rev = revision_of(&out);
        written.push(rev);
        // Another view's change must not show up on this stream.
        cli_a.ok(&["set", "other", "--env", "prod", "--value", "0"]);
        // At least one cut between one write and the next.
        let before = cuts.load(Ordering::Relaxed);
        poll(Duration::from_secs(10), "a cut of B's connections", || {
            if cuts.load(Ordering::Relaxed) > before {
                Ok(())
            } else {
                Err(format!("{before} cuts"))
            }
        });
    }
    cutting.store(false, Ordering::Relaxed);
    cutter.join().unwrap();
    let cuts = cuts.load(Ordering::Relaxed);
    assert!(cuts >= 15, "B's connections were cut {cuts} times");
    assert!(
        b.log().contains("LISTEN connection lost"),
        "the cuts reached B's listening connection:\n{}",
        b.log()
    );

    let last = *written.last().unwrap();
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let e = next_event(rx, Duration::from_secs(30));
        assert_eq!(e["keys"], serde_json::json!(["k"]), "{e}");
        seen.push(e["revision"].as_i64().unwrap());
    }
    assert_eq!(seen, written, "every change once, in order");
    // No duplicate or extra event: the next one is a sentinel's.
    let out = cli_a.ok(&["set", "sentinel", "--app", "svc", "--value", "1"]);
    let sentinel = revision_of(&out);
    let e = next_event(rx, Duration::from_secs(30));
    assert_eq!(e["revision"], sentinel, "no duplicate or extra events: {e}");
    // B serves the final value and is ready again.
    let v = cli_b.json(&["get", "k", "--app", "svc"]);
    assert_eq!(v["value"], 14, "{v}");
}
