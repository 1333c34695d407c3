//! Validation against committed state: two writes sent at the same moment,
//! each valid alone and refused after the other, must never both commit.
//!
//! Each round fires the two requests together (through one server on SQLite;
//! through two server processes on one PostgreSQL database, one request to
//! each). Whatever order they commit in, the second must be refused — exactly
//! as if they had been sent one after the other — and the invariant the pair
//! could break holds at the end:
//! - a flag using segment `s` vs deleting `s`, in a `strict_flags`
//!   environment: every stored flag there compiles with no warning;
//! - a value vs a stricter schema for its key: every stored value validates
//!   against every active schema;
//! - configuration referencing secret `pw` vs deleting `pw`: no dangling
//!   reference.

use std::time::Duration;

use cairn_store::testing::pg::TestPg;
use serde_json::{json, Value};

use crate::harness::{write_file, ServeOpts, Server};
use crate::load::{http_client, runtime};

const ROUNDS: usize = 30;

/// The two addresses requests go to (the same one twice on SQLite), and an admin token.
struct Target {
    addrs: [String; 2],
    token: String,
    _servers: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

fn sqlite() -> Target {
    let dir = tempfile::tempdir().expect("data dir");
    let server = Server::sqlite(dir.path());
    let token = server.admin_token();
    Target {
        addrs: [server.addr.clone(), server.addr.clone()],
        token,
        _servers: vec![server],
        _dirs: vec![dir],
    }
}

fn postgres() -> Option<Target> {
    let pg = TestPg::shared()?; // None: CAIRN_SKIP_PG=1
    let url = pg.create_database();
    let (a_dir, b_dir, keys) = (
        tempfile::tempdir().expect("dir a"),
        tempfile::tempdir().expect("dir b"),
        tempfile::tempdir().expect("key dir"),
    );
    let key_file = write_file(keys.path(), "master.key", &"3c".repeat(32));
    let opts = ServeOpts {
        database_url: Some(url),
        // The default catch-up interval: a replica's memory may be behind
        // the database for up to this long, which is the race's window.
        extra: vec!["--master-key-file".into(), key_file],
    };
    let a = Server::start(a_dir.path(), opts.clone());
    let token = a.admin_token();
    let b = Server::start(b_dir.path(), opts);
    Some(Target {
        addrs: [a.addr.clone(), b.addr.clone()],
        token,
        _servers: vec![a, b],
        _dirs: vec![a_dir, b_dir, keys],
    })
}

/// One request: method, path (with query), body.
struct Req(&'static str, String, Option<Value>);

impl Target {
    async fn send(&self, http: &reqwest::Client, to: usize, req: &Req) -> (u16, Value) {
        let url = format!("{}{}", self.addrs[to], req.1);
        let mut b = match req.0 {
            "PUT" => http.put(&url),
            "POST" => http.post(&url),
            "DELETE" => http.delete(&url),
            _ => http.get(&url),
        }
        .bearer_auth(&self.token);
        if let Some(body) = &req.2 {
            b = b.json(body);
        }
        let resp = b
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", req.0, req.1));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Send through server 0 and require a 2xx.
    async fn ok(&self, http: &reqwest::Client, req: Req) -> Value {
        let (status, body) = self.send(http, 0, &req).await;
        assert!(
            (200..300).contains(&status),
            "{} {}: {status} {body}",
            req.0,
            req.1
        );
        body
    }

    /// Wait until server 1 answers `path` with 200 (a replica has caught up).
    async fn seen_by_both(&self, http: &reqwest::Client, path: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.send(http, 1, &Req("GET", path.to_owned(), None)).await;
            if status == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the second server never saw {path}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fire both at once, `a` to server 0 and `b` to server 1; statuses.
    async fn race(&self, http: &reqwest::Client, a: &Req, b: &Req) -> [(u16, Value); 2] {
        let (ra, rb) = tokio::join!(self.send(http, 0, a), self.send(http, 1, b));
        [ra, rb]
    }
}

/// Exactly one of the pair committed; the other was refused with one of `refused`.
fn one_won(round: usize, what: &str, results: &[(u16, Value); 2], refused: &[u16]) -> usize {
    let won: Vec<usize> = (0..2)
        .filter(|&i| results[i].0 == 200 || results[i].0 == 201)
        .collect();
    assert_eq!(
        won.len(),
        1,
        "round {round} ({what}): exactly one of the two may commit, got {results:?}"
    );
    let lost = 1 - won[0];
    assert!(
        refused.contains(&results[lost].0),
        "round {round} ({what}): the other is refused with one of {refused:?}, got {results:?}"
    );
    won[0]
}

async fn setup(t: &Target, http: &reqwest::Client) {
    t.ok(
        http,
        Req("POST", "/v1/apps".into(), Some(json!({"name": "svc"}))),
    )
    .await;
    t.ok(
        http,
        Req(
            "POST",
            "/v1/envs".into(),
            Some(json!({"name": "strict", "strict_flags": true})),
        ),
    )
    .await;
    t.seen_by_both(http, "/v1/envs/strict").await;
}

async fn segment_vs_flag(t: Target) {
    let http = http_client();
    setup(&t, &http).await;
    let mut wins = [0; 2];
    for i in 0..ROUNDS {
        let seg = format!("seg{i}");
        t.ok(
            &http,
            Req(
                "PUT",
                format!("/v1/entries/{seg}?app=svc"),
                Some(json!({"kind": "segment", "message": "race",
                            "value": {"in": [{"var": "email"}, ["a@example.com"]]}})),
            ),
        )
        .await;
        t.seen_by_both(&http, &format!("/v1/entries/{seg}?app=svc"))
            .await;
        let flag = Req(
            "PUT",
            format!("/v1/entries/f{i}?app=svc&env=strict"),
            Some(json!({"kind": "flag", "message": "race", "value": {
                "state": "ENABLED", "variants": {"on": true, "off": false},
                "defaultVariant": "off", "targeting": {"if": [{"$ref": seg}, "on", "off"]}}})),
        );
        let delete = Req(
            "DELETE",
            format!("/v1/entries/{seg}?app=svc&message=race"),
            None,
        );
        let results = t.race(&http, &flag, &delete).await;
        // The flag after the delete has a missing-ref warning, which the
        // strict environment refuses (422); the delete after the flag would
        // break it (422).
        wins[one_won(i, "flag vs segment delete", &results, &[422])] += 1;
    }
    // Every stored flag of the strict environment compiles, with no warning.
    let lint = t
        .ok(
            &http,
            Req("GET", "/v1/flags/lint?app=svc&env=strict".into(), None),
        )
        .await;
    assert_eq!(lint[0]["warnings"], json!([]), "{lint}");
    assert_eq!(lint[0]["errors"], json!([]), "{lint}");
    let flags = t
        .ok(
            &http,
            Req("GET", "/v1/apps/svc/envs/strict/flagd.json".into(), None),
        )
        .await;
    let stored = flags["flags"].as_object().map_or(0, |m| m.len());
    assert_eq!(stored, wins[0], "one flag per round the flag won: {flags}");
}

async fn value_vs_schema(t: Target) {
    let http = http_client();
    setup(&t, &http).await;
    let mut schema_won = Vec::new();
    for i in 0..ROUNDS {
        let key = format!("limits/k{i}");
        let value = Req(
            "PUT",
            format!("/v1/entries/{key}?app=svc&env=dev"),
            Some(json!({"value": "not a number", "message": "race"})),
        );
        let schema = Req(
            "POST",
            "/v1/schemas".into(),
            Some(
                json!({"app": "svc", "pattern": key, "schema": {"type": "integer"},
                        "message": "race"}),
            ),
        );
        let results = t.race(&http, &value, &schema).await;
        // The value after the schema violates it (422); the schema after the
        // value would reject a stored value (409, drift).
        if one_won(i, "value vs schema", &results, &[409, 422]) == 1 {
            schema_won.push(key);
        }
    }
    // No stored value violates an active schema: every key whose schema won
    // holds no value, and every key whose value won has no schema.
    let list = t
        .ok(
            &http,
            Req("GET", "/v1/entries?app=svc&env=dev".into(), None),
        )
        .await;
    let schemas = t.ok(&http, Req("GET", "/v1/schemas".into(), None)).await;
    let stored: Vec<&str> = list
        .as_array()
        .or_else(|| list["entries"].as_array())
        .expect("entry list")
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    let with_schema: Vec<&str> = schemas
        .as_array()
        .expect("schema list")
        .iter()
        .filter(|s| s["app"] == "svc")
        .filter_map(|s| s["pattern"].as_str())
        .collect();
    for key in &schema_won {
        assert!(
            !stored.contains(&key.as_str()),
            "{key}: a value stored under its schema"
        );
    }
    assert_eq!(with_schema.len(), schema_won.len(), "{schemas}");
    for key in &stored {
        assert!(
            !with_schema.contains(key),
            "{key}: stored and under a schema it violates"
        );
    }
    assert_eq!(stored.len() + schema_won.len(), ROUNDS);
}

async fn reference_vs_secret_delete(t: Target) {
    let http = http_client();
    setup(&t, &http).await;
    let mut refs_won = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("db/pw{i}");
        t.ok(
            &http,
            Req(
                "POST",
                "/v1/secrets".into(),
                Some(json!({"name": name, "app": "svc", "value": "s3cret", "message": "race"})),
            ),
        )
        .await;
        let config = Req(
            "PUT",
            format!("/v1/entries/db/c{i}?app=svc&env=dev"),
            Some(json!({"value": {"password": {"$secret": name}}, "message": "race"})),
        );
        let delete = Req(
            "DELETE",
            format!("/v1/secrets/{name}?app=svc&message=race"),
            None,
        );
        let results = t.race(&http, &config, &delete).await;
        // The reference after the delete names no secret (422); the delete
        // after the reference is refused while it is referenced (409).
        if one_won(i, "reference vs secret delete", &results, &[409, 422]) == 0 {
            refs_won.push(name);
        }
    }
    // No dangling reference: every referenced secret exists.
    let secrets = t.ok(&http, Req("GET", "/v1/secrets".into(), None)).await;
    let live: Vec<&str> = secrets
        .as_array()
        .expect("secret list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for name in &refs_won {
        assert!(
            live.contains(&name.as_str()),
            "{name} is referenced and deleted: {secrets}"
        );
    }
    assert_eq!(live.len(), refs_won.len(), "{secrets}");
}

#[test]
fn sqlite_a_flag_and_the_delete_of_its_segment_never_both_commit() {
    runtime().block_on(segment_vs_flag(sqlite()));
}

#[test]
fn sqlite_a_value_and_a_schema_refusing_it_never_both_commit() {
    runtime().block_on(value_vs_schema(sqlite()));
}

#[test]
fn sqlite_a_reference_and_the_delete_of_its_secret_never_both_commit() {
    runtime().block_on(reference_vs_secret_delete(sqlite()));
}

#[test]
fn postgres_a_flag_and_the_delete_of_its_segment_never_both_commit() {
    let Some(t) = postgres() else { return };
    runtime().block_on(segment_vs_flag(t));
}

#[test]
fn postgres_a_value_and_a_schema_refusing_it_never_both_commit() {
    let Some(t) = postgres() else { return };
    runtime().block_on(value_vs_schema(t));
}

#[test]
fn postgres_a_reference_and_the_delete_of_its_secret_never_both_commit() {
    let Some(t) = postgres() else { return };
    runtime().block_on(reference_vs_secret_delete(t));
}
