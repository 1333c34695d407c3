//! The secret-rotation scheduler across two server processes on one
//! PostgreSQL database: exactly one replica rotates (a lease in the
//! database), each due rotation happens once, and the other replica takes
//! over when the rotating one dies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cairn_store::testing::pg::TestPg;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::{poll, write_file, Cli, ServeOpts, Server};

const SECRETS: usize = 4;

/// Scheduled rotations in the audit log: (secret, to_version, replica).
fn scheduled_rotations(cli: &Cli) -> Vec<(String, i64, String)> {
    let audit = cli.json(&[
        "audit",
        "--actor",
        "system:rotation",
        "--action",
        "secret.rotate",
    ]);
    audit
        .as_array()
        .expect("audit records")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or_default().to_owned(),
                r["to_version"].as_i64().unwrap_or_default(),
                r["replica"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Every version of `name`, each at least `interval` after the one before
/// (a rotation that ran twice would make two versions close together).
fn assert_spaced(cli: &Cli, name: &str, interval: chrono::Duration) -> usize {
    let info = cli.json(&["secret", "versions", name]);
    let versions = info["versions"].as_array().expect("versions");
    let times: Vec<DateTime<Utc>> = versions
        .iter()
        .map(|v| v["created_at"].as_str().unwrap().parse().unwrap())
        .collect();
    for (i, pair) in times.windows(2).enumerate() {
        assert!(
            pair[1] - pair[0] >= interval,
            "{name}: versions {} and {} only {} apart: rotated twice?\n{info:#}",
            i + 1,
            i + 2,
            pair[1] - pair[0]
        );
    }
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=numbers.len() as i64).collect::<Vec<_>>(),
        "{name}"
    );
    versions.len()
}

#[test]
fn postgres_two_replicas_rotate_each_secret_exactly_once() {
    let Some(pg) = TestPg::shared() else {
        return; // CAIRN_SKIP_PG=1
    };
    let url = pg.create_database();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let keys = tempfile::tempdir().unwrap();
    let key_file = write_file(keys.path(), "master.key", &"3c".repeat(32));
    let opts = |replica: &str| ServeOpts {
        database_url: Some(url.clone()),
        extra: [
            "--sync-interval-ms",
            "100",
            "--master-key-file",
            &key_file,
            "--replica",
            replica,
            "--rotation-check-ms",
            "200",
        ]
        .map(String::from)
        .to_vec(),
    };
    let a = Server::start(dir_a.path(), opts("replica-a"));
    let token = a.admin_token();
    let b = Server::start(dir_b.path(), opts("replica-b"));
    let mut servers = BTreeMap::from([("replica-a".to_owned(), a), ("replica-b".to_owned(), b)]);
    let cli_a = servers["replica-a"].cli(&token);
    let cli_b = servers["replica-b"].cli(&token);

    // A hook needs a signing secret (usage error without one); on a loopback
    // address it is refused: these servers don't allow private targets.
    let hook = [
        "secret",
        "create",
        "hooked",
        "--hook",
        "http://127.0.0.1:9/rotate",
    ];
    let usage = cli_a.expect(2, &hook);
    assert!(usage.stderr.contains("--hook-secret"), "{usage}");
    let out = cli_a.run_stdin(
        &["secret", "create", "hooks/signing", "-"],
        Some("hook-signing-key-7"),
    );
    assert_eq!(out.code, 0, "{out}");
    let mut args = hook.to_vec();
    args.extend([
        "--hook-secret",
        "hooks/signing",
        "--rotation-interval",
        "1h",
    ]);
    let refused = cli_a.expect(1, &args);
    assert!(
        refused.stderr.contains("--allow-private-targets"),
        "{refused}"
    );

    for i in 0..SECRETS {
        let cli = if i % 2 == 0 { &cli_a } else { &cli_b };
        cli.ok(&[
            "secret",
            "create",
            &format!("svc/{i}"),
            "--generator",
            "random:24:alnum",
            "--rotation-interval",
            "2s",
            "--grace-days",
            "1",
        ]);
    }
    let interval = chrono::Duration::seconds(2);

    // Both replicas run the scheduler; the secrets keep rotating.
    poll(
        Duration::from_secs(40),
        "every secret rotated twice",
        || {
            let list = cli_b.json(&["secret", "list"]);
            let behind: Vec<String> = list
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("svc/")))
                .filter(|s| s["current_version"].as_i64().unwrap_or(0) < 3)
                .map(|s| format!("{}@{}", s["name"], s["current_version"]))
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(behind.join(", "))
            }
        },
    );
    let rotations = scheduled_rotations(&cli_a);
    let holders: BTreeSet<&str> = rotations.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(holders.len(), 1, "one replica rotates: {rotations:?}");
    let holder = holders.into_iter().next().unwrap().to_owned();
    let unique: BTreeSet<(&str, i64)> = rotations.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        unique.len(),
        rotations.len(),
        "no version written twice: {rotations:?}"
    );
    for i in 0..SECRETS {
        assert!(assert_spaced(&cli_a, &format!("svc/{i}"), interval) >= 3);
    }

    // The rotating replica dies; the other takes over once its lease lapses.
    let mut dead = servers.remove(&holder).unwrap();
    dead.kill_9();
    let (survivor_name, survivor) = servers.into_iter().next().unwrap();
    let cli = survivor.cli(&token);
    poll(
        Duration::from_secs(40),
        "the surviving replica to rotate",
        || {
            let rotations = scheduled_rotations(&cli);
            let theirs = rotations.iter().filter(|r| r.2 == survivor_name).count();
            if theirs >= SECRETS {
                Ok(())
            } else {
                Err(format!("{rotations:?}"))
            }
        },
    );
    let rotations = scheduled_rotations(&cli);
    let unique: BTreeSet<(&str, i64)> = rotations.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        unique.len(),
        rotations.len(),
        "no version written twice: {rotations:?}"
    );
    for i in 0..SECRETS {
        assert_spaced(&cli, &format!("svc/{i}"), interval);
    }
    // Every rotated value decrypts on the survivor and the audit chain holds.
    let got = cli.ok(&["secret", "get", "svc/0"]);
    assert_eq!(got.stdout.trim().len(), 24, "{got}");
    let verified: Value = cli.json(&["audit", "verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
}
