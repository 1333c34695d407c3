//! `cairn webhook …` against the real binary: create (secret from stdin),
//! list, deliveries with a retried attempt, delete; a loopback target
//! refused by a server started without `--allow-private-targets`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::webhooks::verify_signature;
use serde_json::Value;

use crate::harness::{poll, write_file, ServeOpts, Server};

const SECRET: &str = "cli-signing-secret-5e1f";

/// What the receiver got: the headers (lowercased names) and body of each request.
type Got = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A tiny HTTP receiver on 127.0.0.1: 500 to the first `fail_first`
/// requests, 204 after.
fn receiver(fail_first: usize) -> (u16, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let n = {
                let mut g = g.lock().unwrap();
                g.push((headers, body));
                g.len()
            };
            let status = if n <= fail_first {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}

/// The fenced block of README.md that starts with `first_line`.
fn readme_block(first_line: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let start = readme
        .find(first_line)
        .unwrap_or_else(|| panic!("README has {first_line:?}"));
    let end = start + readme[start..].find("```").expect("end of the block");
    readme[start..end].to_owned()
}

/// The README's verification examples (Python, openssl) accept a real delivery.
fn readme_examples_verify(headers: &[(String, String)], body: &[u8]) {
    let sig = headers
        .iter()
        .find(|(k, _)| k == "cairn-signature")
        .map(|(_, v)| v.clone())
        .expect("a signature");
    let t = sig
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .to_owned();
    let v1 = sig.rsplit_once("v1=").unwrap().1.to_owned();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body.json"), body).unwrap();

    let openssl = readme_block("printf '%s.' \"$T\" | cat - body.json");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&openssl)
        .current_dir(dir.path())
        .env("T", &t)
        .env("WEBHOOK_SECRET", SECRET)
        .output()
        .expect("run sh");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.split_whitespace().last(),
        Some(v1.as_str()),
        "{printed}"
    );

    if std::env::var_os("CAIRN_SKIP_PYTHON").is_some() {
        return;
    }
    let python = readme_block("import hashlib, hmac, time");
    let script = write_file(
        dir.path(),
        "verify.py",
        &format!(
            "{python}\nimport sys\nbody = open(sys.argv[3], 'rb').read()\n\
             ok = verify(sys.argv[1].encode(), sys.argv[2], body)\n\
             bad = verify(b'not-the-secret', sys.argv[2], body)\n\
             sys.exit(0 if ok and not bad else 1)\n"
        ),
    );
    let status = std::process::Command::new("python3")
        .args([&script, SECRET, &sig])
        .arg(dir.path().join("body.json"))
        .status()
        .expect("run python3 (CAIRN_SKIP_PYTHON=1 skips)");
    assert!(
        status.success(),
        "the README's Python verify() rejected a real delivery"
    );
}

#[test]
fn webhook_commands_against_the_real_binary() {
    let (port, got) = receiver(1);
    let url = format!("http://127.0.0.1:{port}/hook");

    // Without the option a loopback target is refused, and nothing is created.
    let strict_dir = tempfile::tempdir().unwrap();
    let strict = Server::sqlite(strict_dir.path());
    let cli = strict.cli(&strict.admin_token());
    let out = cli.run_stdin(
        &[
            "webhook",
            "create",
            "--url",
            &url,
            "--events",
            "config.changed",
            "--secret",
            "-",
        ],
        Some(SECRET),
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("refused"), "{out}");
    assert_eq!(cli.json(&["webhook", "list"]), serde_json::json!([]));
    drop(strict);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        ServeOpts {
            extra: vec!["--allow-private-targets".into()],
            ..ServeOpts::default()
        },
    );
    let cli = server.cli(&server.admin_token());
    // Bad input: a clear error, exit 1, nothing created.
    let out = cli.run(&[
        "webhook",
        "create",
        "--url",
        &url,
        "--events",
        "config.chaged",
        "--secret",
        SECRET,
    ]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("events"), "{out}");

    let out = cli.run_stdin(
        &[
            "webhook",
            "create",
            "--url",
            &url,
            "--events",
            "config.changed,flag.changed",
            "--secret",
            "-",
            "--output",
            "json",
        ],
        Some(&format!("{SECRET}\n")),
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains(SECRET), "{out}");
    let id = out.json()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{id}");

    let list = cli.ok(&["webhook", "list"]).stdout;
    assert!(
        list.contains(&id) && list.contains("config.changed,flag.changed"),
        "{list}"
    );
    assert!(!list.contains(SECRET));
    let listed = cli.json(&["webhook", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["url"], url.as_str());

    cli.ok(&[
        "set",
        "feature/limits",
        "--value",
        "{\"max\": 3}",
        "-m",
        "hook me",
    ]);
    // The first attempt gets a 500; the retry (after ~2 s) a 204.
    let delivered: Value = poll(Duration::from_secs(30), "a delivered webhook", || {
        let log = cli.json(&["webhook", "deliveries", &id]);
        match log[0]["status"].as_str() {
            Some("delivered") => Ok(log),
            other => Err(format!("{other:?}: {log}")),
        }
    });
    let d = &delivered[0];
    assert_eq!(d["attempts"], 2, "{d}");
    assert_eq!(d["event"], "config.changed");
    assert_eq!(d["attempt_log"][0]["status"], 500);
    assert_eq!(d["attempt_log"][1]["status"], 204);
    let text = cli.ok(&["webhook", "deliveries", &id]).stdout;
    assert!(
        text.contains("delivered") && text.contains("500; 204"),
        "{text}"
    );

    // What the receiver got verifies with the secret.
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for (headers, body) in &got {
        let h = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let now = chrono::Utc::now().timestamp();
        let sig = h("cairn-signature");
        assert!(
            verify_signature(SECRET.as_bytes(), &sig, body, now, Duration::from_secs(300)),
            "{sig}"
        );
        assert!(!verify_signature(
            b"not-the-secret-at-all",
            &sig,
            body,
            now,
            Duration::from_secs(300)
        ));
        assert_eq!(h("cairn-event"), "config.changed");
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["id"], h("cairn-delivery").as_str());
        assert_eq!(payload["key"], "feature/limits");
        assert_eq!(payload["message"], "hook me");
    }

    readme_examples_verify(&got[1].0, &got[1].1);

    cli.ok(&["webhook", "delete", &id]);
    assert_eq!(cli.json(&["webhook", "list"]), serde_json::json!([]));
    cli.expect(3, &["webhook", "delete", &id]);
    cli.expect(3, &["webhook", "deliveries", "wh_nope"]);
    // The log outlives the subscription.
    assert_eq!(
        cli.json(&["webhook", "deliveries", &id])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Only admins manage webhooks.
    let viewer = cli.json(&["token", "create", "--name", "v", "--role", "viewer"]);
    let viewer = cli.with_token(viewer["token"].as_str().unwrap());
    viewer.expect(5, &["webhook", "list"]);
    assert!(
        !server.log().contains(SECRET),
        "the secret is in the server log"
    );
}

/// Two replicas on one PostgreSQL database, both running the dispatcher:
/// every change written through either is delivered exactly once (the
/// cursor's compare-and-set and the claims keep them from doubling up).
#[test]
fn postgres_two_replicas_deliver_each_event_once() {
    let Some(pg) = cairn_store::testing::pg::TestPg::shared() else {
        return; // CAIRN_SKIP_PG=1
    };
    let (port, got) = receiver(0);
    let url = format!("http://127.0.0.1:{port}/hook");
    let keys = tempfile::tempdir().unwrap();
    let key_file = crate::harness::write_file(keys.path(), "master.key", &"6b".repeat(32));
    let opts = ServeOpts {
        database_url: Some(pg.create_database()),
        extra: vec![
            "--sync-interval-ms".into(),
            "100".into(),
            "--master-key-file".into(),
            key_file,
            "--allow-private-targets".into(),
        ],
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(dir_a.path(), opts.clone());
    let token = a.admin_token();
    let b = Server::start(dir_b.path(), opts);
    let (cli_a, cli_b) = (a.cli(&token), b.cli(&token));
    let out = cli_a.run_stdin(
        &[
            "webhook",
            "create",
            "--url",
            &url,
            "--events",
            "config.changed",
            "--secret",
            "-",
            "--output",
            "json",
        ],
        Some(SECRET),
    );
    assert_eq!(out.code, 0, "{out}");
    let id = out.json()["id"].as_str().unwrap().to_owned();
    const WRITES: usize = 20;
    for i in 0..WRITES {
        let cli = if i % 2 == 0 { &cli_a } else { &cli_b };
        cli.ok(&["set", &format!("k{i}"), "--value", &i.to_string()]);
    }
    let distinct = || {
        let got = got.lock().unwrap();
        let mut seqs: Vec<i64> = got
            .iter()
            .map(|(_, b)| {
                serde_json::from_slice::<Value>(b).unwrap()["audit_seq"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        seqs.sort();
        seqs.dedup();
        (got.len(), seqs.len())
    };
    poll(
        Duration::from_secs(30),
        "every change delivered",
        || match distinct() {
            (_, n) if n == WRITES => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // Sentinels: one more change through each replica, each waited for,
    // so both dispatchers have polled again since; then every delivery is
    // finished and none was made or sent twice.
    for (n, cli) in [(WRITES + 1, &cli_a), (WRITES + 2, &cli_b)] {
        cli.ok(&["set", &format!("sentinel{n}"), "--value", "1"]);
        poll(
            Duration::from_secs(30),
            "the sentinel delivered",
            || match distinct() {
                (_, d) if d == n => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
    let total = WRITES + 2;
    let log = poll(Duration::from_secs(30), "every delivery finished", || {
        let log = cli_b.json(&["webhook", "deliveries", &id]);
        let log = log.as_array().unwrap().clone();
        if log.iter().all(|d| d["status"] != "pending") {
            Ok(log)
        } else {
            Err(format!("{log:?}"))
        }
    });
    assert_eq!(distinct(), (total, total), "each event delivered once");
    assert_eq!(log.len(), total);
    assert!(log
        .iter()
        .all(|d| d["status"] == "delivered" && d["attempts"] == 1));
}
