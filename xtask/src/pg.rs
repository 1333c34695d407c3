//! A PostgreSQL database for the write benchmark, with the server's default
//! durability (fsync, synchronous_commit and full_page_writes on).
//!
//! `DATABASE_URL` set: a uniquely named database is created on that server and
//! dropped afterwards. Otherwise a throwaway cluster is made with `initdb` and
//! `pg_ctl` (as the `postgres` user when we are root) in a temporary directory,
//! listening on a free 127.0.0.1 port, and stopped and removed on drop. (The
//! test harness `cairn_store::testing::pg` runs with fsync off, which is right
//! for tests and wrong for a durability benchmark.)

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use sqlx::{Connection, PgConnection};

/// A database to benchmark on, and what keeps its server alive.
pub struct BenchPg {
    /// URL of the benchmark database.
    pub url: String,
    admin_url: String,
    db: String,
    _cluster: Option<Cluster>,
}

impl BenchPg {
    pub async fn start(dir: &Path) -> anyhow::Result<BenchPg> {
        let (admin_url, cluster) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let c = Cluster::start(dir)?;
                (
                    format!("postgres://postgres@127.0.0.1:{}/postgres", c.port),
                    Some(c),
                )
            }
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let db = format!("cairn_bench_{}_{nanos}", std::process::id());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .context("connect to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE \"{db}\""))
            .execute(&mut conn)
            .await
            .context("create the benchmark database")?;
        conn.close().await.ok();
        Ok(BenchPg {
            url: with_database(&admin_url, &db),
            admin_url,
            db,
            _cluster: cluster,
        })
    }

    /// The durability settings in force, as `name=value` pairs.
    pub async fn settings(&self) -> anyhow::Result<String> {
        let mut conn = PgConnection::connect(&self.url).await?;
        let mut out = Vec::new();
        for name in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "wal_sync_method",
        ] {
            let v: String = sqlx::query_scalar(&format!("SHOW {name}"))
                .fetch_one(&mut conn)
                .await
                .with_context(|| format!("SHOW {name}"))?;
            out.push(format!("{name}={v}"));
        }
        conn.close().await.ok();
        Ok(out.join(" "))
    }

    /// Drops the benchmark database (the cluster, if ours, goes on drop).
    pub async fn finish(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.db
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await.ok();
        Ok(())
    }
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    format!("{prefix}/{db}{query}")
}

/// A throwaway cluster with default durability.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn start(parent: &Path) -> anyhow::Result<Cluster> {
        let bin = find_bin_dir().context(
            "no PostgreSQL found (initdb on PATH or in /usr/lib/postgresql/*/bin); \
             install it or set DATABASE_URL",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("cairn-bench-pg-")
            .tempdir_in(parent)
            .context("create the cluster directory")?;
        std::fs::create_dir(dir.path().join("sock"))?;
        let as_postgres = std::fs::metadata(dir.path())?.uid() == 0;
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            let (uid, gid) = (postgres_id("-u")?, postgres_id("-g")?);
            for p in [cluster.dir.path().to_owned(), cluster.sock()] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .with_context(|| format!("chown {} to postgres", p.display()))?;
            }
        }
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(cluster.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run("initdb", initdb)?;
        cluster.port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        // Only where to listen: every durability setting stays at its default.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            cluster.port,
            cluster.sock().display()
        );
        let mut pg_ctl = cluster.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(cluster.data())
            .arg("-l")
            .arg(cluster.dir.path().join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        if let Err(e) = run("pg_ctl start", pg_ctl) {
            let log = std::fs::read_to_string(cluster.dir.path().join("postgres.log"))
                .unwrap_or_default();
            bail!("{e:#}\n{log}");
        }
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "fast", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Best effort; the directory is removed by TempDir either way.
        let _ = stop.status();
    }
}

fn run(what: &str, mut cmd: Command) -> anyhow::Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {what} ({cmd:?})"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn postgres_id(flag: &str) -> anyhow::Result<u32> {
    let out = run("id", {
        let mut c = Command::new("id");
        c.args([flag, "postgres"]);
        c
    })
    .context("running as root, but there is no `postgres` user to run PostgreSQL as")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_in_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
