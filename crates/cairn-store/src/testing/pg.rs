//! A PostgreSQL server for tests, and a fresh database per test case.
//!
//! - `DATABASE_URL` set: that server is used; each [`TestPg::create_database`]
//!   creates a uniquely named database on it (with `psql`).
//! - Otherwise a throwaway cluster is created with `initdb` and started with
//!   `pg_ctl` (binaries from `PATH` or `/usr/lib/postgresql/*/bin`) in a
//!   temporary directory, listening on a free 127.0.0.1 port with its socket
//!   inside that directory, trust authentication, durability off (it is thrown
//!   away). As root, the binaries run as the `postgres` user. The cluster is
//!   stopped (`pg_ctl stop -m immediate`) and its directory deleted on drop,
//!   and by a watchdog process if the test process dies first.
//!
//! No PostgreSQL found is a loud failure, not a skip, unless `CAIRN_SKIP_PG=1`.
//!
//! ```ignore
//! let Some(pg) = cairn_store::testing::pg::TestPg::shared() else { return }; // CAIRN_SKIP_PG=1
//! let url = pg.create_database();
//! ```

use std::ffi::OsStr;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// `true` when `CAIRN_SKIP_PG=1`: PostgreSQL tests should return early.
pub fn skip_requested() -> bool {
    std::env::var("CAIRN_SKIP_PG").is_ok_and(|v| v == "1")
}

/// A PostgreSQL server to create test databases on.
pub struct TestPg {
    admin_url: String,
    psql: PathBuf,
    cluster: Option<Cluster>,
    created: Mutex<Vec<String>>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestPg {
    /// A server of its own (a new cluster unless `DATABASE_URL` is set),
    /// stopped on drop. `None` only when `CAIRN_SKIP_PG=1`; panics when no
    /// PostgreSQL can be found or started.
    pub fn start() -> Option<TestPg> {
        if skip_requested() {
            return None;
        }
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let psql = find_program("psql").unwrap_or_else(|| {
                    panic!("DATABASE_URL is set but no `psql` was found (PATH, /usr/lib/postgresql/*/bin)")
                });
                Some(TestPg {
                    admin_url: url,
                    psql,
                    cluster: None,
                    created: Mutex::new(Vec::new()),
                })
            }
            _ => {
                let cluster = Cluster::start();
                Some(TestPg {
                    admin_url: format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port),
                    psql: cluster.bin.join("psql"),
                    cluster: Some(cluster),
                    created: Mutex::new(Vec::new()),
                })
            }
        }
    }

    /// One server for the whole test process, started on first use. Its
    /// cluster (if any) is removed by the watchdog when the process exits.
    pub fn shared() -> Option<&'static TestPg> {
        static SHARED: OnceLock<Option<TestPg>> = OnceLock::new();
        SHARED.get_or_init(TestPg::start).as_ref()
    }

    /// URL of the maintenance database (`postgres`, or `DATABASE_URL`).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Creates a new, empty, uniquely named database and returns its URL.
    pub fn create_database(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "cairn_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        if let Ok(mut created) = self.created.lock() {
            created.push(name.clone());
        }
        with_database(&self.admin_url, &name)
    }

    /// Runs one SQL command on the maintenance database; panics on failure.
    pub fn psql(&self, sql: &str) {
        let out = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.admin_url,
                "-c",
                sql,
            ])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.psql.display()));
        assert!(
            out.status.success(),
            "psql failed ({sql}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        if self.cluster.is_some() {
            return; // the cluster goes away whole
        }
        let names = self.created.lock().map(|v| v.clone()).unwrap_or_default();
        for name in names {
            // Best effort: a failure here must not turn a passing test red.
            let _ = Command::new(&self.psql)
                .args(["-X", "-q", "-d", &self.admin_url, "-c"])
                .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    format!("{prefix}/{db}{query}")
}

/// A throwaway cluster in a temporary directory.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run the binaries as the `postgres` user (we are root).
    as_postgres: bool,
    watchdog: Option<Child>,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL found: install it (initdb/pg_ctl on PATH or in \
                 /usr/lib/postgresql/*/bin), set DATABASE_URL, or set CAIRN_SKIP_PG=1 to skip"
            )
        });
        let dir = std::env::temp_dir().join(format!(
            "cairn-pg-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(dir.join("sock"))
            .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let as_postgres = std::fs::metadata(&dir)
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            as_postgres,
            watchdog: None,
        };
        if as_postgres {
            let uid = id_of("-u");
            let gid = id_of("-g");
            for p in [cluster.dir.clone(), cluster.dir.join("sock")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", p.display()));
            }
        }
        cluster.watchdog = cluster.spawn_watchdog();
        cluster.initdb();
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command running `program` from the cluster's bin dir, as postgres if needed.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn run(&self, what: &str, mut cmd: Command) -> Output {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
        if !out.status.success() {
            panic!(
                "{what} failed: {}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    fn initdb(&self) {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(self.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.run("initdb", cmd);
    }

    fn start_server(&mut self) {
        let mut last_error = String::new();
        for _ in 0..5 {
            self.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB",
                self.port,
                self.dir.join("sock").display()
            );
            let mut cmd = self.command("pg_ctl");
            cmd.arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
            if out.status.success() {
                return;
            }
            let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
            last_error = format!("{}\n{log}", String::from_utf8_lossy(&out.stderr));
            if !log.contains("could not bind") && !log.contains("already in use") {
                break;
            }
        }
        panic!("pg_ctl start failed:\n{last_error}");
    }

    /// The shell command that stops the cluster and removes its directory.
    fn teardown_script(&self) -> String {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = format!(
            "{} -D {} stop -m immediate",
            sh_quote(pg_ctl.as_os_str()),
            sh_quote(self.data().as_os_str())
        );
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {stop}")
        } else {
            stop
        };
        format!(
            "{stop} >/dev/null 2>&1; rm -rf {}",
            sh_quote(self.dir.as_os_str())
        )
    }

    /// A detached shell that tears the cluster down once this process is gone
    /// (covers aborts and the process-wide shared server, which is never dropped).
    fn spawn_watchdog(&self) -> Option<Child> {
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 0.5; done; {}",
            std::process::id(),
            self.teardown_script()
        );
        let mut cmd = if Path::new("/usr/bin/setsid").exists() || Path::new("/bin/setsid").exists()
        {
            let mut c = Command::new("setsid");
            c.arg("sh");
            c
        } else {
            Command::new("sh")
        };
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(self.teardown_script())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn sh_quote(s: &OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run id: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "running as root, but there is no `postgres` user to run PostgreSQL as \
                 (initdb refuses root): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The directory holding `initdb`, `pg_ctl`, `postgres` and `psql`.
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Follow symlinks (e.g. /usr/local/bin/initdb) to the real bin dir.
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    return Some(parent.to_path_buf());
                }
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

/// `program` on PATH, else in the newest `/usr/lib/postgresql/*/bin`.
fn find_program(program: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(program);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    find_bin_dir()
        .map(|d| d.join(program))
        .filter(|p| p.is_file())
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
        assert_eq!(
            with_database("postgresql://h:1/", "x"),
            "postgresql://h:1/x"
        );
    }
}
