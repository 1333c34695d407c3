//! `bench-http`: the resolved view (`GET /v1/apps/{app}/envs/{env}/config`)
//! and an OFREP single-flag evaluation (`POST /ofrep/v1/evaluate/flags/{key}`
//! with an SDK token: a flag with three targeting rules and a fractional split)
//! over HTTP next to a bare axum "hello" handler, in the same run, served the
//! same way (in this process, `cairn_server::serve` on a 127.0.0.1:0 listener,
//! one tokio runtime) and loaded the same way (`wrk`, keep-alive connections).
//! On a small machine `wrk` competes with the server for the same cores, so
//! only the ratios within one run are meaningful.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use axum::routing::get;
use cairn_core::{ChangeItem, Origin, Principal, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use cairn_store::Role;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::machine;
use crate::stats::median;

pub struct Args {
    pub connections: u32,
    pub threads: u32,
    pub duration: Duration,
    pub rounds: usize,
    pub keys: usize,
    pub wrk_cpus: Option<String>,
}

const APP: &str = "bench";
const ENV: &str = "prod";

struct Target {
    name: &'static str,
    url: String,
    headers: Vec<String>,
    /// A wrk Lua script (POST with a body).
    script: Option<std::path::PathBuf>,
    /// The status every response must have.
    status: u16,
}

/// What `wrk --latency` reports.
#[derive(Clone, Copy)]
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure_wrk().await?;
    println!("machine: {}", machine::describe());
    if let Some(cpus) = &args.wrk_cpus {
        println!("wrk pinned to CPU(s) {cpus}");
    }
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-http-")
        .tempdir()?;
    let store = cairn_store_sqlite::SqliteStore::open(&dir.path().join("cairn.db")).await?;
    let (svc, token) = Service::open(Arc::new(store), Default::default()).await?;
    let token = token.context("a fresh store returns the bootstrap admin token")?;
    let admin = svc.identity().authenticate(&token)?;
    seed(&svc, &admin, args.keys).await?;
    seed_flag(&svc, &admin).await?;
    let sdk = svc
        .identity()
        .create_token(
            &admin,
            &Origin::default(),
            "bench-sdk",
            Role::Sdk,
            APP,
            ENV,
            None,
        )
        .await?
        .token;
    let ofrep_script = dir.path().join("ofrep.lua");
    std::fs::write(&ofrep_script, OFREP_LUA)?;
    let view = svc.config().resolve(&admin, APP, ENV)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let cairn = spawn_server(cairn_server::router(Arc::clone(&svc)), stop_rx.clone()).await?;
    let hello = spawn_server(
        axum::Router::new().route("/", get(|| async { "Hello, World!" })),
        stop_rx,
    )
    .await?;

    let config_url = format!("http://{cairn}/v1/apps/{APP}/envs/{ENV}/config");
    let auth = format!("Authorization: Bearer {token}");
    check_responses(&config_url, &token, &view.etag, args.keys).await?;
    let ofrep_url = format!("http://{cairn}/ofrep/v1/evaluate/flags/{FLAG}");
    check_ofrep(&ofrep_url, &sdk).await?;
    let targets = [
        Target {
            name: "hello",
            url: format!("http://{hello}/"),
            headers: vec![],
            script: None,
            status: 200,
        },
        Target {
            name: "config 200",
            url: config_url.clone(),
            headers: vec![auth.clone()],
            script: None,
            status: 200,
        },
        Target {
            name: "config 304",
            url: config_url,
            headers: vec![auth, format!("If-None-Match: {}", view.etag)],
            script: None,
            status: 304,
        },
        Target {
            name: "ofrep eval",
            url: ofrep_url,
            headers: vec![format!("Authorization: Bearer {sdk}")],
            script: Some(ofrep_script),
            status: 200,
        },
    ];
    println!(
        "resolved view: {} keys, {} bytes of JSON body; wrk -t{} -c{} -d{}s, {} round(s)",
        args.keys,
        view.body.len(),
        args.threads,
        args.connections,
        args.duration.as_secs(),
        args.rounds
    );
    println!(
        "command (token elided): {}",
        wrk_command(&targets[2], &args, true)
    );
    println!(
        "command (token elided): {}\nofrep.lua: {}",
        wrk_command(&targets[3], &args, true),
        OFREP_LUA.replace('\n', " ")
    );

    // Warm up every target once (connections, caches, CPU frequency).
    for t in &targets {
        wrk(t, &args, Duration::from_secs(2)).await?;
    }
    let mut results: Vec<Vec<WrkResult>> = vec![Vec::new(); targets.len()];
    for round in 1..=args.rounds {
        for (i, t) in targets.iter().enumerate() {
            let r = wrk(t, &args, args.duration).await?;
            println!(
                "round {round} {:<11} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
                t.name, r.rps, r.p50_ms, r.p99_ms
            );
            results[i].push(r);
        }
        let hello_rps = results[0][round - 1].rps;
        println!(
            "round {round} ratios: config 200 / hello = {:.2}, config 304 / hello = {:.2}, ofrep / hello = {:.2}",
            results[1][round - 1].rps / hello_rps,
            results[2][round - 1].rps / hello_rps,
            results[3][round - 1].rps / hello_rps
        );
    }
    let _ = stop_tx.send(true);

    println!("\nmedian over {} round(s):", args.rounds);
    println!("| target | req/s | p50 | p99 | req/s ÷ hello (median of per-round ratios) |");
    println!("|---|---:|---:|---:|---:|");
    for (i, t) in targets.iter().enumerate() {
        let mut rps: Vec<f64> = results[i].iter().map(|r| r.rps).collect();
        let mut p50: Vec<f64> = results[i].iter().map(|r| r.p50_ms).collect();
        let mut p99: Vec<f64> = results[i].iter().map(|r| r.p99_ms).collect();
        let mut ratio: Vec<f64> = results[i]
            .iter()
            .zip(&results[0])
            .map(|(r, h)| r.rps / h.rps)
            .collect();
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} |",
            t.name,
            median(&mut rps),
            median(&mut p50),
            median(&mut p99),
            median(&mut ratio)
        );
    }
    Ok(())
}

const FLAG: &str = "checkout";

/// POST one OFREP evaluation; the context matches the third rule, so all three run.
const OFREP_LUA: &str = r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"context":{"targetingKey":"user-4711","email":"ann@example.com","plan":"free","version":"2.3.1"}}'
"#;

/// A flag with three targeting rules and a fractional split (as `cairn-eval`'s
/// criterion bench): beta testers, an app version range, a plan, then 50/30/20.
async fn seed_flag(svc: &Service, admin: &Principal) -> anyhow::Result<()> {
    let def = json!({
        "state": "ENABLED",
        "variants": {"a": "flow-a", "b": "flow-b", "c": "flow-c"},
        "defaultVariant": "a",
        "targeting": {"if": [
            {"in": [{"var": "email"}, ["qa@example.com", "beta@example.com"]]}, "c",
            {"sem_ver": [{"var": "version"}, "<", "2.0.0"]}, "a",
            {"==": [{"var": "plan"}, "enterprise"]}, "b",
            {"fractional": [["a", 50], ["b", 30], ["c", 20]]}
        ]}
    });
    let item = ChangeItem {
        scope: Scope::new(Some(APP), Some(ENV)),
        key: FLAG.into(),
        kind: EntryKind::Flag,
        merge: MergeMode::Replace,
        value: Some(def),
        expected_version: None,
    };
    svc.config()
        .write_entries(admin, &Origin::default(), "seed flag", vec![item], None)
        .await?;
    Ok(())
}

/// The OFREP target answers a fractional-split success.
async fn check_ofrep(url: &str, token: &str) -> anyhow::Result<()> {
    let body = OFREP_LUA
        .lines()
        .find_map(|l| l.strip_prefix("wrk.body = '"))
        .and_then(|l| l.strip_suffix('\''))
        .context("body in the Lua script")?;
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    ensure!(r.status() == 200, "OFREP: {}", r.status());
    let v: Value = r.json().await?;
    ensure!(
        v["reason"] == "TARGETING_MATCH" && v["value"].is_string(),
        "OFREP answered {v}"
    );
    Ok(())
}

/// `keys` global defaults; a fifth overridden for every app in prod, a fifth
/// for the bench app, a fifth for the bench app in prod: every layer merges.
async fn seed(svc: &Service, admin: &Principal, keys: usize) -> anyhow::Result<()> {
    let origin = Origin::default();
    svc.config()
        .create_app(admin, &origin, APP, "HTTP benchmark")
        .await?;
    let layers = [
        (Scope::global(), 1),
        (Scope::new(None, Some(ENV)), 5),
        (Scope::new(Some(APP), None), 5),
        (Scope::new(Some(APP), Some(ENV)), 5),
    ];
    for (layer, (scope, every)) in layers.into_iter().enumerate() {
        let items: Vec<ChangeItem> = (0..keys)
            .filter(|k| k % every == layer % every)
            .map(|k| ChangeItem {
                scope: scope.clone(),
                key: format!("services/svc-{k:02}/client"),
                kind: EntryKind::Config,
                merge: MergeMode::Merge,
                value: Some(value(k, layer)),
                expected_version: None,
            })
            .collect();
        for chunk in items.chunks(cairn_model::MAX_CHANGESET_ENTRIES) {
            svc.config()
                .write_entries(admin, &origin, "seed", chunk.to_vec(), None)
                .await?;
        }
    }
    Ok(())
}

fn value(k: usize, layer: usize) -> Value {
    match layer {
        0 => json!({
            "url": format!("http://svc-{k:02}.internal:8080"),
            "timeout_ms": 250,
            "retries": {"max": 3, "backoff_ms": [50, 100, 200]},
            "tls": false,
        }),
        1 => json!({"url": format!("https://svc-{k:02}.prod.internal"), "tls": true}),
        2 => json!({"timeout_ms": 500}),
        _ => json!({"retries": {"max": 5}}),
    }
}

async fn spawn_server(
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(cairn_server::serve(listener, app, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    Ok(addr)
}

/// The targets answer what we think they answer before we load them.
async fn check_responses(url: &str, token: &str, etag: &str, keys: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let full = client.get(url).bearer_auth(token).send().await?;
    ensure!(full.status() == 200, "GET config: {}", full.status());
    let header = full
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(header == etag, "ETag {header:?}, expected {etag:?}");
    let body: Value = full.json().await?;
    let n = body
        .get("values")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    ensure!(n == keys, "the view has {n} keys, expected {keys}: {body}");
    let cached = client
        .get(url)
        .bearer_auth(token)
        .header("If-None-Match", etag)
        .send()
        .await?;
    ensure!(cached.status() == 304, "revalidation: {}", cached.status());
    Ok(())
}

async fn ensure_wrk() -> anyhow::Result<()> {
    match tokio::process::Command::new("wrk")
        .arg("--version")
        .output()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => bail!("cannot run `wrk` ({e}): install it (apt-get install -y wrk)"),
    }
}

fn wrk_args(t: &Target, args: &Args, dur: Duration) -> Vec<String> {
    let mut v = vec![
        format!("-t{}", args.threads),
        format!("-c{}", args.connections),
        format!("-d{}s", dur.as_secs()),
        "--latency".to_owned(),
    ];
    for h in &t.headers {
        v.push("-H".into());
        v.push(h.clone());
    }
    if let Some(s) = &t.script {
        v.push("-s".into());
        v.push(s.display().to_string());
    }
    v.push(t.url.clone());
    v
}

/// The command line, shell-quoted, for the record.
fn wrk_command(t: &Target, args: &Args, elide_token: bool) -> String {
    let mut parts = vec![];
    if let Some(cpus) = &args.wrk_cpus {
        parts.extend(["taskset".to_owned(), "-c".to_owned(), cpus.clone()]);
    }
    parts.push("wrk".to_owned());
    for a in wrk_args(t, args, args.duration) {
        let a = if elide_token && a.starts_with("Authorization:") {
            "Authorization: Bearer $CAIRN_TOKEN".to_owned()
        } else {
            a
        };
        if a.contains([' ', '"', '$']) {
            parts.push(format!("'{a}'"));
        } else {
            parts.push(a);
        }
    }
    parts.join(" ")
}

async fn wrk(t: &Target, args: &Args, dur: Duration) -> anyhow::Result<WrkResult> {
    let mut cmd = match &args.wrk_cpus {
        Some(cpus) => {
            let mut c = tokio::process::Command::new("taskset");
            c.args(["-c", cpus, "wrk"]);
            c
        }
        None => tokio::process::Command::new("wrk"),
    };
    let out = cmd
        .args(wrk_args(t, args, dur))
        .output()
        .await
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&text, t.status).with_context(|| format!("wrk output for {}:\n{text}", t.name))
}

fn parse_wrk(text: &str, status: u16) -> anyhow::Result<WrkResult> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = Some(v.trim().parse::<f64>()?);
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = Some(wrk_ms(v.trim())?);
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = Some(wrk_ms(v.trim())?);
        } else if line.starts_with("Socket errors:") || line.starts_with("Non-2xx") {
            // 304 counts as "3xx" for wrk, so any such line is a failure.
            bail!("{line} (every response should be {status})");
        }
    }
    Ok(WrkResult {
        rps: rps.context("no Requests/sec")?,
        p50_ms: p50.context("no 50% latency")?,
        p99_ms: p99.context("no 99% latency")?,
    })
}

/// wrk's `123.45us`, `1.20ms`, `2.00s` in milliseconds.
fn wrk_ms(v: &str) -> anyhow::Result<f64> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .context("no unit")?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => bail!("unknown unit {unit:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:1/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us  200.00us   5.00ms   90.00%
    Req/Sec    50.00k     2.00k   60.00k    70.00%
  Latency Distribution
     50%  635.91us
     75%  712.00us
     90%  800.00us
     99%    1.20ms
  1000000 requests in 10.00s, 123.00MB read
Requests/sec: 100000.12
Transfer/sec:     12.30MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let r = parse_wrk(SAMPLE, 200).unwrap();
        assert_eq!(r.rps, 100000.12);
        assert!((r.p50_ms - 0.63591).abs() < 1e-9);
        assert_eq!(r.p99_ms, 1.2);
    }

    #[test]
    fn errors_fail_the_run() {
        let bad = SAMPLE.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 3\nRequests/sec",
        );
        assert!(parse_wrk(&bad, 200).is_err());
    }

    #[test]
    fn wrk_units() {
        assert_eq!(wrk_ms("2.00s").unwrap(), 2000.0);
        assert!(wrk_ms("3.0xs").is_err());
    }
}
