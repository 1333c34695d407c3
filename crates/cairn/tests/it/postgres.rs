//! Two server processes on one PostgreSQL database.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_store::testing::pg::TestPg;
use serde_json::{json, Value};

use crate::harness::{poll, write_file, Cli, ServeOpts, Server};
use crate::load::{
    ack_of, assert_gapless, entries_by_key, get_json, http_client, put_entry, runtime, Ack,
};

const TASKS: usize = 8;
const WRITES_PER_TASK: usize = 25;

/// `task` writes `k{task}-{i}`, alternating between the servers.
async fn write_through_both(addrs: [String; 2], token: String) -> Vec<Ack> {
    let http = http_client();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let (http, addrs, token) = (http.clone(), addrs.clone(), token.clone());
        handles.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..WRITES_PER_TASK {
                let addr = &addrs[(t + i) % 2];
                let key = format!("k{t}-{i}");
                let value = json!({"task": t, "i": i, "via": (t + i) % 2});
                let (status, body) = put_entry(&http, addr, &token, &key, &value)
                    .await
                    .unwrap_or_else(|e| panic!("PUT {key} via {addr}: {e}"));
                assert_eq!(status, 200, "PUT {key} via {addr}: {body}");
                acks.push(ack_of(&key, &value, &body));
            }
            acks
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("writer task"));
    }
    all
}

fn resolve_at(cli: &Cli, revision: i64) -> Value {
    cli.json(&[
        "resolve",
        "--app",
        "svc",
        "--env",
        "dev",
        "--revision",
        &revision.to_string(),
    ])
}

#[test]
fn postgres_two_replicas_keep_revisions_gapless_and_lose_nothing() {
    let Some(pg) = TestPg::shared() else {
        return; // CAIRN_SKIP_PG=1
    };
    let url = pg.create_database();
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir a"),
        tempfile::tempdir().expect("dir b"),
    );
    // Replicas on PostgreSQL share one master key.
    let keys = tempfile::tempdir().expect("key dir");
    let key_file = write_file(keys.path(), "master.key", &"5a".repeat(32));
    let opts = ServeOpts {
        database_url: Some(url),
        extra: vec![
            "--sync-interval-ms".into(),
            "100".into(),
            "--master-key-file".into(),
            key_file,
        ],
    };
    let a = Server::start(dir_a.path(), opts.clone());
    assert!(a.banner.contains("(postgres)"), "{}", a.banner);
    assert!(a.banner.contains("First start"), "{}", a.banner);
    let token = a.admin_token();
    let b = Server::start(dir_b.path(), opts);
    assert!(
        !b.banner.contains("First start"),
        "only the first replica creates the admin token:\n{}",
        b.banner
    );
    assert!(!dir_b.path().join("admin.token").exists());
    let (cli_a, cli_b) = (a.cli(&token), b.cli(&token));

    // Catalog changes made through A reach B.
    cli_a.ok(&["app", "create", "svc"]);
    poll(Duration::from_secs(10), "B to see app svc", || {
        let out = cli_b.ok(&["app", "list"]);
        if out.stdout.lines().any(|l| l.starts_with("svc")) {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });

    let rt = runtime();
    let acks = rt.block_on(write_through_both(
        [a.addr.clone(), b.addr.clone()],
        token.clone(),
    ));
    assert_eq!(acks.len(), TASKS * WRITES_PER_TASK);
    assert!(acks.iter().all(|a| a.version == 1), "each key written once");
    let revisions: Vec<i64> = acks.iter().map(|a| a.revision).collect();
    assert_gapless(revisions.clone());
    let min = *revisions.iter().min().expect("min");
    let max = *revisions.iter().max().expect("max");
    assert_eq!(
        (max - min + 1) as usize,
        acks.len(),
        "the writes' revisions are exactly min..=max"
    );

    // Every write present exactly once, with its value and revision, on both.
    let http = http_client();
    let check = |list: &Value| -> Result<(), String> {
        let by_key = entries_by_key(list, "k");
        if by_key.len() != acks.len() {
            return Err(format!("{} of {} entries", by_key.len(), acks.len()));
        }
        for ack in &acks {
            let e = by_key
                .get(&ack.key)
                .ok_or_else(|| format!("{} missing", ack.key))?;
            if e["value"] != ack.value || e["revision"] != ack.revision || e["version"] != 1 {
                return Err(format!("{} is {e}, acknowledged {ack:?}", ack.key));
            }
        }
        Ok(())
    };
    // Each replica may lag by the sync interval for the other's writes.
    for (name, server) in [("A", &a), ("B", &b)] {
        poll(
            Duration::from_secs(10),
            &format!("server {name} to list every write"),
            || check(&rt.block_on(get_json(&http, &server.addr, &token, "/v1/entries"))),
        );
    }

    // The same view through either replica, now and at past revisions.
    poll(
        Duration::from_secs(10),
        "the same current view on A and B",
        || {
            let va = cli_a.json(&["resolve", "--app", "svc", "--env", "dev"]);
            let vb = cli_b.json(&["resolve", "--app", "svc", "--env", "dev"]);
            if va == vb {
                Ok(())
            } else {
                Err(format!("A: {va}\nB: {vb}"))
            }
        },
    );
    for r in [min - 1, min, min + 37, (min + max) / 2, max - 1, max] {
        let via_a = resolve_at(&cli_a, r);
        let via_b = resolve_at(&cli_b, r);
        assert_eq!(via_a, via_b, "resolve --revision {r}");
        let expected: BTreeMap<&str, &Value> = acks
            .iter()
            .filter(|a| a.revision <= r)
            .map(|a| (a.key.as_str(), &a.value))
            .collect();
        let got = via_a["values"].as_object().expect("values");
        assert_eq!(got.len(), expected.len(), "revision {r}");
        for (k, v) in expected {
            assert_eq!(got.get(k), Some(v), "{k} at revision {r}");
        }
    }

    // One entry.set audit record per acknowledged write, at its revision.
    let audit = rt.block_on(get_json(&http, &b.addr, &token, "/v1/audit?limit=10000"));
    let mut sets: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for rec in audit.as_array().expect("audit array") {
        if rec["action"] == "entry.set" {
            let key = rec["key"].as_str().unwrap_or_default().to_owned();
            sets.entry(key)
                .or_default()
                .push(rec["revision"].as_i64().unwrap_or(-1));
        }
    }
    assert_eq!(sets.len(), acks.len(), "entry.set records by key");
    for ack in &acks {
        assert_eq!(
            sets.get(&ack.key),
            Some(&vec![ack.revision]),
            "audit of {}",
            ack.key
        );
    }
}
