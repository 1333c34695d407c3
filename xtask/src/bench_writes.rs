//! `bench-writes`: versioned, validated, audited, durable writes per second
//! through the real write path, `Config::write_entries`: key and scope checks,
//! JSON Schema validation, one store transaction with the version and its
//! audit record (durable before it returns), then the in-memory catch-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use cairn_core::{ChangeItem, Origin, Principal, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::Store;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::machine;
use crate::pg::BenchPg;
use crate::stats::{fmt_duration, Latencies};
use crate::Backend;

pub struct Args {
    pub backends: Vec<Backend>,
    pub concurrency: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    pub dir: PathBuf,
}

/// Distinct keys each writer cycles through.
const KEYS_PER_WRITER: u64 = 64;

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!("machine: {}", machine::describe());
    println!("data dir: {}", args.dir.display());
    let dir = args.dir.clone();
    let floor =
        tokio::task::spawn_blocking(move || machine::fsync_floor(&dir, Duration::from_secs(2)))
            .await??;
    println!("disk: {floor}");
    let mut rows = Vec::new();
    for backend in &args.backends {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("cairn-bench-sqlite-")
                    .tempdir_in(&args.dir)?;
                let store = cairn_store_sqlite::SqliteStore::open(&dir.path().join("cairn.db"))
                    .await
                    .context("open SQLite")?;
                println!("\nsqlite: WAL, synchronous=FULL (as SqliteStore::open sets it)");
                rows.extend(bench_store("sqlite", Arc::new(store.clone()), &args).await?);
                store.close().await;
            }
            Backend::Postgres => {
                let pg = BenchPg::start(&args.dir).await?;
                println!("\npostgres: {}", pg.settings().await?);
                let store = cairn_store_postgres::PostgresStore::connect(&pg.url)
                    .await
                    .context("connect the PostgreSQL store")?;
                rows.extend(bench_store("postgres", Arc::new(store.clone()), &args).await?);
                store.close().await;
                pg.finish().await?;
            }
        }
    }
    println!(
        "\n| backend | writers | writes | writes/s | p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            r.backend,
            r.writers,
            r.writes,
            r.per_second,
            fmt_duration(r.p50),
            fmt_duration(r.p99),
            fmt_duration(r.max)
        );
    }
    Ok(())
}

struct Row {
    backend: &'static str,
    writers: usize,
    writes: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn bench_store(
    backend: &'static str,
    store: Arc<dyn Store>,
    args: &Args,
) -> anyhow::Result<Vec<Row>> {
    let (svc, token) = Service::open(store, Default::default()).await?;
    let token = token.context("a fresh store returns the bootstrap admin token")?;
    let admin = svc.identity().authenticate(&token)?;
    let origin = origin();
    svc.config()
        .create_app(&admin, &origin, "bench", "write benchmark")
        .await?;
    svc.config()
        .register_schema(
            &admin,
            &origin,
            None,
            "bench/**",
            schema(),
            false,
            "benchmark schema",
        )
        .await?;
    // The schema is enforced: a bad value is refused.
    let refused = svc
        .config()
        .write_entries(
            &admin,
            &origin,
            "bad",
            vec![item(0, 0, json!({"max": "x"}))],
            None,
        )
        .await;
    ensure!(refused.is_err(), "the schema did not reject a bad value");

    let mut rows = Vec::new();
    for &writers in &args.concurrency {
        drive(&svc, &admin, writers, args.warmup).await?;
        let before = svc.revision();
        let replans_before = svc.metrics().plan_retries();
        let (elapsed, samples) = drive(&svc, &admin, writers, args.duration).await?;
        let replans = svc.metrics().plan_retries() - replans_before;
        let writes = samples.len();
        // One write is one revision: nothing lost, nothing extra.
        ensure!(
            svc.revision() - before == writes as i64,
            "revision moved by {} for {writes} writes",
            svc.revision() - before
        );
        let l = Latencies::new(samples);
        let row = Row {
            backend,
            writers,
            writes,
            per_second: writes as f64 / elapsed.as_secs_f64(),
            p50: l.percentile(50.0),
            p99: l.percentile(99.0),
            max: l.percentile(100.0),
        };
        println!(
            "{backend:>8} writers={writers:<3} {:>7.0} writes/s  p50 {:>9}  p99 {:>9}  ({} writes in {:.1} s, {replans} planned again)",
            row.per_second,
            fmt_duration(row.p50),
            fmt_duration(row.p99),
            l.len(),
            elapsed.as_secs_f64()
        );
        rows.push(row);
    }
    Ok(rows)
}

/// `writers` tasks each write one entry at a time until `dur` has passed.
/// Returns the wall time until the last write finished and every latency.
async fn drive(
    svc: &Arc<Service>,
    who: &Principal,
    writers: usize,
    dur: Duration,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = JoinSet::new();
    for w in 0..writers {
        let svc = Arc::clone(svc);
        let who = who.clone();
        tasks.spawn(async move {
            let origin = origin();
            let mut samples = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let value = json!({
                    "max": i % 1000,
                    "host": format!("db-{w}.internal"),
                    "enabled": i & 1 == 0,
                    "tags": ["bench", "write"],
                });
                let t = Instant::now();
                svc.config()
                    .write_entries(&who, &origin, "bench write", vec![item(w, i, value)], None)
                    .await?;
                samples.push(t.elapsed());
                i += 1;
            }
            anyhow::Ok(samples)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((start.elapsed(), all))
}

fn item(writer: usize, i: u64, value: Value) -> ChangeItem {
    ChangeItem {
        scope: Scope::new(Some("bench"), Some("prod")),
        key: format!("bench/w{writer}/k{}", i % KEYS_PER_WRITER),
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        value: Some(value),
        expected_version: None,
    }
}

fn origin() -> Origin {
    Origin {
        client_ip: Some("127.0.0.1".into()),
        user_agent: Some("xtask bench-writes".into()),
    }
}

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "max": {"type": "integer", "minimum": 0, "maximum": 1000},
            "host": {"type": "string", "maxLength": 253},
            "enabled": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 16}
        },
        "required": ["max", "host"],
        "additionalProperties": false
    })
}
