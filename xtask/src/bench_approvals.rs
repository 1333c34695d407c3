//! `bench-approvals`: what a change request costs on top of a direct write,
//! through the real service (`Service::approvals`, `Service::config`), on
//! SQLite and on PostgreSQL with fsync on. Each round, in turn: a direct
//! write at an open environment (the reference), the same through the
//! gate (what the API does), a gated write at a
//! protected one (the request is stored and audited), `show` (the
//! before/after preview with the resolved views), the first approval, and
//! the second approval, which applies the request as one revision
//! (re-planned against committed state, compare-and-set on the base
//! version). Rounds alternate, so every kind of call sees the same noise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cairn_core::approvals::{Outcome, RequestOptions};
use cairn_core::{ChangeItem, EnvSettings, Origin, Principal, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::{Binding, ChangeState, Role, Store};
use serde_json::json;

use crate::machine;
use crate::pg::BenchPg;
use crate::stats::{fmt_duration, Latencies};
use crate::Backend;

pub struct Args {
    pub backends: Vec<Backend>,
    pub rounds: usize,
    pub dir: PathBuf,
}

/// Distinct keys the rounds cycle through.
const KEYS: usize = 64;

const STEPS: [&str; 6] = [
    "direct write (dev), Config::write_entries",
    "direct write (dev) through the gate",
    "request (gated write, prod)",
    "show (preview)",
    "approve 1 of 2",
    "approve 2 of 2 → applied",
];

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!("machine: {}", machine::describe());
    println!("rounds: {}", args.rounds);
    let mut tables = Vec::new();
    for backend in &args.backends {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("cairn-bench-approvals-")
                    .tempdir_in(&args.dir)?;
                let store = cairn_store_sqlite::SqliteStore::open(&dir.path().join("cairn.db"))
                    .await
                    .context("open SQLite")?;
                let t = bench_store(Arc::new(store.clone()), args.rounds).await?;
                tables.push(("sqlite", t));
                store.close().await;
            }
            Backend::Postgres => {
                let pg = BenchPg::start(&args.dir).await?;
                println!("postgres: {}", pg.settings().await?);
                let store = cairn_store_postgres::PostgresStore::connect(&pg.url)
                    .await
                    .context("connect the PostgreSQL store")?;
                let t = bench_store(Arc::new(store.clone()), args.rounds).await?;
                tables.push(("postgres", t));
                store.close().await;
                pg.finish().await?;
            }
        }
    }
    println!("\n| backend | call | p50 | p99 | p50 / direct write p50 |\n|---|---|---:|---:|---:|");
    for (backend, steps) in &tables {
        let direct = steps[0].percentile(50.0).as_secs_f64();
        for (name, l) in STEPS.iter().zip(steps) {
            println!(
                "| {backend} | {name} | {} | {} | {:.2} |",
                fmt_duration(l.percentile(50.0)),
                fmt_duration(l.percentile(99.0)),
                l.percentile(50.0).as_secs_f64() / direct
            );
        }
    }
    Ok(())
}

fn user(name: &str, role: Role) -> Principal {
    Principal {
        actor: format!("user:{name}"),
        name: name.into(),
        bindings: vec![Binding {
            role,
            app: "*".into(),
            env: "*".into(),
        }],
    }
}

fn item(env: &str, i: usize) -> ChangeItem {
    ChangeItem {
        scope: Scope::new(Some("bench"), Some(env)),
        key: format!("bench/k{}", i % KEYS),
        kind: EntryKind::Config,
        merge: MergeMode::Merge,
        value: Some(json!({"max": i % 1000, "host": "db.internal", "round": i})),
        expected_version: None,
    }
}

async fn timed<T>(samples: &mut Vec<Duration>, f: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = f.await;
    samples.push(t.elapsed());
    out
}

async fn bench_store(store: Arc<dyn Store>, rounds: usize) -> anyhow::Result<Vec<Latencies>> {
    let (svc, _) = Service::open(store, Default::default()).await?;
    let origin = Origin {
        client_ip: Some("127.0.0.1".into()),
        user_agent: Some("xtask bench-approvals".into()),
    };
    let (adm, ann, bob, cid) = (
        user("adm", Role::Admin),
        user("ann", Role::Operator),
        user("bob", Role::Operator),
        user("cid", Role::Operator),
    );
    svc.config().create_app(&adm, &origin, "bench", "").await?;
    let protect = EnvSettings {
        protected: Some(true),
        required_approvals: Some(2),
        auto_approve: Some(false),
        ..EnvSettings::default()
    };
    svc.config()
        .update_env(&adm, &origin, "prod", protect)
        .await?;
    let mut steps: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); STEPS.len()];
    let a = svc.approvals();
    for i in 0..rounds {
        let direct = timed(
            &mut steps[0],
            svc.config()
                .write_entries(&ann, &origin, "direct", vec![item("dev", i)], None),
        )
        .await?;
        ensure!(
            !direct.committed.applied.is_empty(),
            "the direct write wrote nothing"
        );
        // What the API does: the gate, and the reached environments' settings guarded.
        let ungated = timed(
            &mut steps[1],
            a.write_entries(
                &ann,
                &origin,
                "direct, gated path",
                vec![item("dev", i + 1)],
                None,
                RequestOptions::default(),
            ),
        )
        .await?;
        ensure!(
            matches!(ungated, Outcome::Written(_)),
            "a write at open dev was gated"
        );
        let requested = timed(
            &mut steps[2],
            a.write_entries(
                &ann,
                &origin,
                "gated",
                vec![item("prod", i)],
                None,
                RequestOptions::default(),
            ),
        )
        .await?;
        let Outcome::Requested(r) = requested else {
            bail!("a write at protected prod was not gated");
        };
        let (_, preview) = timed(&mut steps[3], a.show(&bob, &r.id)).await?;
        ensure!(preview.entries.len() == 1, "the preview lost the entry");
        let one = timed(&mut steps[4], a.approve(&bob, &origin, &r.id, "")).await?;
        ensure!(
            one.state == ChangeState::Pending,
            "applied after one approval"
        );
        let before = svc.revision();
        let two = timed(&mut steps[5], a.approve(&cid, &origin, &r.id, "")).await?;
        ensure!(
            two.state == ChangeState::Applied && two.applied_revision > Some(before),
            "the second approval did not apply it: {:?}",
            two.state
        );
    }
    Ok(steps.into_iter().map(Latencies::new).collect())
}
