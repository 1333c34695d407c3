//! What the benchmark ran on, printed with every result.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::stats::{fmt_duration, Latencies};

/// One line: cores, CPU model, kernel.
pub fn describe() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {kernel}")
}

/// How fast this disk makes 4 KiB durable: overwrite + fdatasync in a loop
/// for `dur`, in a file under `dir`. The floor under any durable commit.
pub fn fsync_floor(dir: &Path, dur: Duration) -> anyhow::Result<String> {
    use std::io::{Seek, SeekFrom, Write};
    let file = tempfile::NamedTempFile::new_in(dir).context("create fsync probe file")?;
    let mut f = file.as_file();
    let block = [0x5au8; 4096];
    let mut samples = Vec::new();
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let t = Instant::now();
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&block)?;
        f.sync_data()?;
        samples.push(t.elapsed());
    }
    let n = samples.len();
    let l = Latencies::new(samples);
    Ok(format!(
        "{:.0} fdatasync/s on one thread (p50 {}, p99 {})",
        n as f64 / dur.as_secs_f64(),
        fmt_duration(l.percentile(50.0)),
        fmt_duration(l.percentile(99.0))
    ))
}
