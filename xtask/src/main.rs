//! Cairn's developer tasks: `cargo run --release -p xtask -- <task>`.
//!
//! - `bench-writes`: versioned, validated, audited, durable writes per second
//!   through `Config::write_entries`, on SQLite and on PostgreSQL with fsync on.
//! - `bench-http`: requests/s and latency of the resolved view over HTTP, next
//!   to a bare axum "hello" handler served and loaded the same way (`wrk`).
//! - `bench-watch`: write-to-event latency with N open watch streams (one
//!   replica on SQLite, or `--across-replicas` on PostgreSQL), and
//!   memory per open stream.
//! - `bench-approvals`: a change request's calls (request, show, approve,
//!   the approval that applies) next to a direct write, on SQLite and on
//!   PostgreSQL.
//!
//! What they measured, and how, is written up in `docs/benchmarks.md`.

// A command-line tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench_approvals;
mod bench_http;
mod bench_watch;
mod bench_writes;
mod machine;
mod pg;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "xtask", about = "Cairn developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)] // the subcommands are bench-*
enum Task {
    /// Writes per second through the real write path (validate, commit with audit, re-sync).
    BenchWrites {
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
        backend: Vec<Backend>,
        /// Numbers of concurrent writers, one measurement each.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        concurrency: Vec<usize>,
        /// Seconds of measurement per backend and concurrency.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of unmeasured writing before each measurement.
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
        /// Directory for the SQLite file and the PostgreSQL cluster (default: the
        /// system temp dir). It must be a real disk, not tmpfs, for fsync to mean anything.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Resolved view over HTTP vs a bare axum hello handler, loaded with `wrk`.
    BenchHttp {
        /// Open connections (wrk -c).
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// Load generator threads (wrk -t).
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// Seconds per target and round.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Rounds; each round measures every target once, in turn.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Keys in the resolved view.
        #[arg(long, default_value_t = 50)]
        keys: usize,
        /// Run wrk pinned to these CPUs (`taskset -c`), e.g. `1` while this
        /// process runs under `taskset -c 0`, so load and server do not share a core.
        #[arg(long)]
        wrk_cpus: Option<String>,
    },
    /// Write-to-event latency with N open watch streams, and memory per stream.
    BenchWatch {
        /// Open watch streams (each is a socket on both ends: mind `ulimit -n`).
        #[arg(long, default_value_t = 5000)]
        streams: usize,
        /// Writes to time.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Across two replicas on PostgreSQL: write through one, watch the other
        /// (LISTEN/NOTIFY hint + change-table catch-up), instead of one on SQLite.
        #[arg(long)]
        across_replicas: bool,
        /// Hold the streams in a child process (its own file descriptors, so
        /// 10,000 streams fit under a 20,000 limit; the RSS is the server's alone).
        #[arg(long)]
        client_process: bool,
    },
    /// Change-request calls (request, show, approve, approve → applied) next to a direct write.
    BenchApprovals {
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
        backend: Vec<Backend>,
        /// Rounds (each: a direct write, a request, show, two approvals).
        #[arg(long, default_value_t = 300)]
        rounds: usize,
        /// Directory for the SQLite file and the PostgreSQL cluster (default: the
        /// system temp dir; a real disk, not tmpfs).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// (Used by `bench-watch --client-process`.) Open N watch streams and
    /// print `ready` once all are open, then `ev <revision> <unix nanos>` per event.
    #[command(hide = true)]
    BenchWatchClients {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        streams: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::BenchWrites {
            backend,
            concurrency,
            seconds,
            warmup_seconds,
            dir,
        } => {
            bench_writes::run(bench_writes::Args {
                backends: backend,
                concurrency,
                duration: Duration::from_secs(seconds),
                warmup: Duration::from_secs(warmup_seconds),
                dir: dir.unwrap_or_else(std::env::temp_dir),
            })
            .await
        }
        Task::BenchHttp {
            connections,
            threads,
            seconds,
            rounds,
            keys,
            wrk_cpus,
        } => {
            bench_http::run(bench_http::Args {
                connections,
                threads,
                duration: Duration::from_secs(seconds),
                rounds,
                keys,
                wrk_cpus,
            })
            .await
        }
        Task::BenchWatch {
            streams,
            rounds,
            across_replicas,
            client_process,
        } => {
            bench_watch::run(bench_watch::Args {
                streams,
                rounds,
                across_replicas,
                client_process,
            })
            .await
        }
        Task::BenchApprovals {
            backend,
            rounds,
            dir,
        } => {
            bench_approvals::run(bench_approvals::Args {
                backends: backend,
                rounds,
                dir: dir.unwrap_or_else(std::env::temp_dir),
            })
            .await
        }
        Task::BenchWatchClients { addr, streams } => {
            let token = std::env::var("CAIRN_TOKEN").unwrap_or_default();
            bench_watch::clients(addr, token, streams).await
        }
    }
}
