//! `bench-watch`: write-to-event latency with N open watch streams on one
//! replica, and memory per open stream. With `--across-replicas`: two
//! services (two connection pools, as two replicas) on one PostgreSQL
//! database; writes go through replica A, the streams watch replica B, which
//! learns of A's commits from `LISTEN/NOTIFY` and reads them from the change
//! table (its 500 ms poll stays as the safety net).
//!
//! The real router serves SSE on a loopback socket; N minimal HTTP/1.1 clients
//! (raw TCP, one task each) hold `GET /v1/watch` streams open. Each round writes
//! one entry through `Config::write_entries` and every stream records how long
//! after the write its `id: <revision>` line arrived. Memory: the process's RSS
//! before and after opening the streams, divided by N (it includes the client
//! side of each connection, so it overstates the server's share).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cairn_core::{ChangeItem, Origin, Service};
use cairn_model::{EntryKind, MergeMode, Scope};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::stats::{fmt_duration, Latencies};

pub struct Args {
    pub streams: usize,
    pub rounds: usize,
    pub across_replicas: bool,
    pub client_process: bool,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One watcher: sends (revision, arrival) for every event id it reads.
async fn watcher(
    addr: std::net::SocketAddr,
    token: String,
    tx: mpsc::UnboundedSender<(i64, SystemTime)>,
    ready: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!(
        "GET /v1/watch?app=bench&env=prod HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut lines = BufReader::new(s).lines();
    let mut signalled = false;
    while let Some(line) = lines.next_line().await? {
        if !signalled && line.is_empty() {
            // End of the response head: the stream is open.
            signalled = true;
            let _ = ready.send(());
        }
        if let Some(id) = line.strip_prefix("id:") {
            if let Ok(rev) = id.trim().parse() {
                let _ = tx.send((rev, SystemTime::now()));
            }
        }
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!("machine: {}", crate::machine::describe());
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-watch-")
        .tempdir()?;
    let mut pg = None;
    let (svc, watched, token) = if args.across_replicas {
        let db = crate::pg::BenchPg::start(dir.path()).await?;
        println!("postgres: {}", db.settings().await?);
        let opts = || cairn_core::Options {
            master_key: cairn_core::keys::MasterKey::from_bytes([7; 32]),
            ..Default::default()
        };
        let a = cairn_store_postgres::PostgresStore::connect(&db.url).await?;
        let (a, token) = Service::open(Arc::new(a), opts()).await?;
        let b = cairn_store_postgres::PostgresStore::connect(&db.url).await?;
        let (b, _) = Service::open(Arc::new(b), opts()).await?;
        for svc in [&a, &b] {
            svc.spawn_change_listener().await;
            svc.spawn_sync_loop(Duration::from_millis(500));
        }
        pg = Some(db);
        println!("replicas: writes through A, streams on B");
        (a, b, token)
    } else {
        let store = cairn_store_sqlite::SqliteStore::open(&dir.path().join("cairn.db")).await?;
        let (svc, token) = Service::open(Arc::new(store), Default::default()).await?;
        (svc.clone(), svc, token)
    };
    let token = token.context("bootstrap token")?;
    let admin = svc.identity().authenticate(&token)?;
    svc.config()
        .create_app(&admin, &Origin::default(), "bench", "")
        .await?;
    let write = |svc: Arc<Service>, i: usize| {
        let admin = admin.clone();
        async move {
            let item = ChangeItem {
                scope: Scope::new(Some("bench"), Some("prod")),
                key: "k".into(),
                kind: EntryKind::Config,
                merge: MergeMode::Merge,
                value: Some(json!({"i": i})),
                expected_version: None,
            };
            svc.config()
                .write_entries(&admin, &Origin::default(), "", vec![item], None)
                .await
        }
    };
    write(svc.clone(), 0).await?;
    // The watched replica has the app and the first write before streams open.
    if args.across_replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        while watched.identity().authenticate(&token).is_err()
            || watched.config().resolve(&admin, "bench", "prod").is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "replica B did not catch up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(cairn_server::serve(
        listener,
        cairn_server::router(watched.clone()),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));

    let before = rss_kib();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let open_started = Instant::now();
    let mut child = None;
    if args.client_process {
        let mut c = tokio::process::Command::new(std::env::current_exe()?)
            .args(["bench-watch-clients", "--addr", &addr.to_string()])
            .args(["--streams", &args.streams.to_string()])
            .env("CAIRN_TOKEN", &token)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn the client process")?;
        let out = c.stdout.take().context("client stdout")?;
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut parts = line.split_whitespace();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("ready"), ..) => {
                        let _ = ready_tx.send(());
                    }
                    (Some("ev"), Some(rev), Some(nanos)) => {
                        if let (Ok(rev), Ok(nanos)) = (rev.parse(), nanos.parse()) {
                            let _ = tx.send((rev, UNIX_EPOCH + Duration::from_nanos(nanos)));
                        }
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(120), ready_rx.recv())
            .await
            .context("the client process did not open its streams")?
            .context("the client process ended")?;
        child = Some(c);
    } else {
        open_streams(addr, &token, args.streams, &tx, Duration::from_secs(60)).await?;
    }
    println!(
        "opened {} streams in {}",
        args.streams,
        fmt_duration(open_started.elapsed())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    let after = rss_kib();
    let per_stream = (after.saturating_sub(before)) as f64 * 1024.0 / args.streams as f64;
    let sides = if args.client_process {
        "server side only"
    } else {
        "client and server side"
    };
    println!(
        "memory: RSS {before} KiB -> {after} KiB, {:.1} KiB per open stream ({sides})",
        per_stream / 1024.0
    );

    let mut all = Vec::new();
    for round in 1..=args.rounds {
        let started = SystemTime::now();
        let committed = write(svc.clone(), round).await?;
        let rev = committed.committed.revision;
        let mut got = 0;
        let mut samples = Vec::with_capacity(args.streams);
        let deadline = Instant::now() + Duration::from_secs(30);
        while got < args.streams {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some((r, at))) = tokio::time::timeout(left, rx.recv()).await else {
                anyhow::bail!(
                    "round {round}: only {got} of {} streams saw revision {rev}",
                    args.streams
                );
            };
            if r == rev {
                got += 1;
                samples.push(at.duration_since(started).unwrap_or_default());
            }
        }
        let l = Latencies::new(samples.clone());
        println!(
            "round {round}: revision {rev} reached {} streams: p50 {} p99 {} max {}",
            args.streams,
            fmt_duration(l.percentile(50.0)),
            fmt_duration(l.percentile(99.0)),
            fmt_duration(l.percentile(100.0))
        );
        all.extend(samples);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let l = Latencies::new(all);
    println!(
        "write-to-event over {} rounds x {} streams: p50 {} p99 {}",
        args.rounds,
        args.streams,
        fmt_duration(l.percentile(50.0)),
        fmt_duration(l.percentile(99.0))
    );
    drop(child);
    let _ = stop_tx.send(true);
    if let Some(db) = pg {
        drop((svc, watched));
        db.finish().await.ok();
    }
    Ok(())
}

/// Open `n` watch streams (one task each) sending their events to `tx`;
/// returns once all are open, or fails after `within` per stream.
async fn open_streams(
    addr: std::net::SocketAddr,
    token: &str,
    n: usize,
    tx: &mpsc::UnboundedSender<(i64, SystemTime)>,
    within: Duration,
) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    for _ in 0..n {
        let (tx, ready_tx, token) = (tx.clone(), ready_tx.clone(), token.to_owned());
        tokio::spawn(async move {
            if let Err(e) = watcher(addr, token, tx, ready_tx).await {
                eprintln!("watcher: {e}");
            }
        });
    }
    for opened in 0..n {
        tokio::time::timeout(within, ready_rx.recv())
            .await
            .with_context(|| format!("only {opened} of {n} streams opened"))?;
    }
    Ok(())
}

/// The client side of `--client-process`: N streams in this process; one
/// line per event on stdout, written by one task so lines never interleave.
pub async fn clients(
    addr: std::net::SocketAddr,
    token: String,
    streams: usize,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(i64, SystemTime)>();
    open_streams(addr, &token, streams, &tx, Duration::from_secs(110)).await?;
    // Plain blocking writes: the parent reads the pipe as fast as lines come.
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    out.write_all(b"ready\n")?;
    out.flush()?;
    while let Some((rev, at)) = rx.recv().await {
        let nanos = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        writeln!(out, "ev {rev} {nanos}")?;
        if rx.is_empty() {
            out.flush()?;
        }
    }
    Ok(())
}
