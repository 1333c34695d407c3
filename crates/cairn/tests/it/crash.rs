//! DESIGN §14: `kill -9` during concurrent writes loses no acknowledged write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use cairn_store::testing::pg::TestPg;

use crate::harness::{write_file, ServeOpts, Server};
use crate::load::{
    ack_of, assert_gapless, entries_by_key, get_json, http_client, put_entry, runtime, Ack,
};

const WRITERS: usize = 6;
/// Kill once this many writes were acknowledged.
const KILL_AFTER: usize = 150;

#[test]
fn sigkill_during_concurrent_writes_on_sqlite_loses_no_acknowledged_write() {
    let data = tempfile::tempdir().expect("data dir");
    kill_during_writes(|| Server::sqlite(data.path()));
}

#[test]
fn sigkill_during_concurrent_writes_on_postgres_loses_no_acknowledged_write() {
    let Some(pg) = TestPg::shared() else {
        return; // CAIRN_SKIP_PG=1
    };
    let data = tempfile::tempdir().expect("data dir");
    let key_file = write_file(data.path(), "shared.key", &"a5".repeat(32));
    let opts = ServeOpts {
        database_url: Some(pg.create_database()),
        extra: vec!["--master-key-file".into(), key_file],
    };
    kill_during_writes(|| Server::start(data.path(), opts.clone()));
}

/// Starts a server with `start`, runs concurrent writers, SIGKILLs the server
/// mid-way, starts it again with `start` and checks every acknowledged write.
fn kill_during_writes(start: impl Fn() -> Server) {
    let mut server = start();
    let token = server.admin_token();
    let addr = server.addr.clone();
    let rt = runtime();
    let acked = Arc::new(AtomicUsize::new(0));

    // Writers run until the server is gone; each keeps its acknowledged writes
    // (in order) and any response that was neither 200 nor a broken connection.
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (addr, token, acked) = (addr.clone(), token.clone(), Arc::clone(&acked));
            rt.spawn(async move {
                let http = http_client();
                let mut acks: Vec<Ack> = Vec::new();
                let mut odd = Vec::new();
                for i in 0.. {
                    let key = format!("c{t}-{i}");
                    let value = json!({"t": t, "i": i, "pad": "x".repeat(200)});
                    match put_entry(&http, &addr, &token, &key, &value).await {
                        Ok((200, body)) => {
                            acks.push(ack_of(&key, &value, &body));
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok((status, body)) => {
                            odd.push(format!("PUT {key}: {status} {body}"));
                            break;
                        }
                        Err(_) => break, // the server was killed
                    }
                }
                (acks, odd)
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} writes acknowledged in 30 s; log:\n{}",
            acked.load(Ordering::SeqCst),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill_9();

    let mut unexpected = Vec::new();
    let mut per_writer: Vec<Vec<Ack>> = Vec::new();
    for w in writers {
        let (acks, odd) = rt.block_on(w).expect("writer task");
        unexpected.extend(odd);
        per_writer.push(acks);
    }
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let total: usize = per_writer.iter().map(Vec::len).sum();
    assert!(total >= KILL_AFTER, "{total} acknowledged");

    // Restart on the same data directory: every acknowledged write is there.
    let server = start();
    assert!(!server.banner.contains("First start"), "{}", server.banner);
    let http = http_client();
    let list = rt.block_on(get_json(&http, &server.addr, &token, "/v1/entries"));
    let by_key = entries_by_key(&list, "c");
    let mut lost = Vec::new();
    for ack in per_writer.iter().flatten() {
        match by_key.get(&ack.key) {
            Some(e) if e["value"] == ack.value && e["revision"] == ack.revision => {}
            other => lost.push(format!(
                "{} acknowledged at revision {}, now {other:?}",
                ack.key, ack.revision
            )),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {total} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    // Beyond the acknowledged ones, at most the write each writer had in
    // flight may have been committed.
    for (t, acks) in per_writer.iter().enumerate() {
        let extra: Vec<&String> = by_key
            .keys()
            .filter(|k| {
                k.strip_prefix(&format!("c{t}-"))
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| i >= acks.len())
            })
            .collect();
        assert!(
            extra.len() <= 1 && extra.iter().all(|k| **k == format!("c{t}-{}", acks.len())),
            "writer {t}: unacknowledged writes present: {extra:?}"
        );
    }
    // What was committed is gapless, and the next write continues from it.
    let revisions: Vec<i64> = by_key
        .values()
        .map(|e| e["revision"].as_i64().expect("revision"))
        .collect();
    let head = *revisions.iter().max().expect("some revisions");
    assert_gapless(revisions);
    let value = json!("after the crash");
    let (status, body) = rt
        .block_on(put_entry(&http, &server.addr, &token, "after", &value))
        .expect("PUT after restart");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], head + 1, "{body}");
}
