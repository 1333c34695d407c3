//! Runs the real `cairn` binary: a server as a child process (killed and
//! reaped on drop) and CLI commands as child processes with captured output.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `cairn serve` child process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    /// Everything printed on stdout up to and including the listening line.
    pub banner: String,
    pub data_dir: PathBuf,
    /// The server's stderr (its log), for failure messages.
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// Options for [`Server::start`].
#[derive(Default, Clone)]
pub struct ServeOpts {
    pub database_url: Option<String>,
    pub extra: Vec<String>,
}

impl Server {
    /// `cairn serve --dev --data-dir DIR --listen 127.0.0.1:0` on SQLite.
    pub fn sqlite(data_dir: &Path) -> Server {
        Server::start(data_dir, ServeOpts::default())
    }

    pub fn start(data_dir: &Path, opts: ServeOpts) -> Server {
        Server::start_logging(data_dir, opts, "warn")
    }

    /// [`Server::start`] with this `RUST_LOG` for the server.
    pub fn start_logging(data_dir: &Path, opts: ServeOpts, rust_log: &str) -> Server {
        let log_dir = tempfile::tempdir().expect("temp dir for the server log");
        let log_path = log_dir.path().join("server.log");
        let log = File::create(&log_path).expect("create the server log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--dev")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(url) = &opts.database_url {
            cmd.args(["--database-url", url]);
        }
        cmd.args(&opts.extra);
        clear_cairn_env(&mut cmd);
        cmd.env("RUST_LOG", rust_log)
            .current_dir(log_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn cairn serve");
        let stdout = child.stdout.take().expect("piped stdout");

        // Read stdout on a thread until the server exits (a closed pipe would make
        // its next print fail); lines go through the channel while anyone listens.
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let mut banner = String::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if let Some(rest) = line.strip_prefix("cairn listening on ") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        break addr.to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "cairn serve did not print its listening line ({status:?})\nstdout:\n{banner}\nlog:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
            }
        };
        assert!(
            addr.starts_with("http://127.0.0.1:") || addr.starts_with("https://127.0.0.1:"),
            "unexpected address in {banner:?}"
        );
        Server {
            child,
            addr,
            banner,
            data_dir: data_dir.to_owned(),
            log_path,
            _log_dir: log_dir,
        }
    }

    /// The admin token written by `--dev` on first start.
    pub fn admin_token(&self) -> String {
        read_admin_token(&self.data_dir)
    }

    /// A CLI talking to this server with `token`.
    pub fn cli(&self, token: &str) -> Cli {
        Cli {
            addr: self.addr.clone(),
            token: Some(token.to_owned()),
        }
    }

    /// A CLI talking to this server without any token.
    pub fn anonymous_cli(&self) -> Cli {
        Cli {
            addr: self.addr.clone(),
            token: None,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL, then reap.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful shutdown) and wait for the exit, at most 20 s.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for cairn serve") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "cairn serve did not exit within 20 s of SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read_admin_token(data_dir: &Path) -> String {
    let path = data_dir.join("admin.token");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let token = text.trim().to_owned();
    assert!(token.starts_with("cairn_"), "unexpected token {token:?}");
    token
}

fn clear_cairn_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
}

/// The result of one CLI run.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Out {
    /// The stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout of {:?} is not JSON ({e}):\n{self}", self.args))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cairn {:?} → exit {}\n--- stdout\n{}--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs CLI commands against one server.
#[derive(Clone)]
pub struct Cli {
    pub addr: String,
    pub token: Option<String>,
}

impl Cli {
    pub fn with_token(&self, token: &str) -> Cli {
        Cli {
            addr: self.addr.clone(),
            token: Some(token.to_owned()),
        }
    }

    /// Runs `cairn ARGS` with `stdin` (empty when `None`).
    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        clear_cairn_env(&mut cmd);
        cmd.env("CAIRN_ADDR", &self.addr)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = &self.token {
            cmd.env("CAIRN_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("spawn cairn");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait for cairn");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_stdin(args, None)
    }

    /// Runs and asserts the exit code.
    pub fn expect(&self, code: i32, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, code, "unexpected exit code:\n{out}");
        out
    }

    /// Runs, asserts exit 0, returns the output.
    pub fn ok(&self, args: &[&str]) -> Out {
        self.expect(0, args)
    }

    /// Runs with `--output json`, asserts exit 0, returns the parsed stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        self.ok(&all).json()
    }
}

/// Polls `f` until it returns `Ok`, panicking with `what` and the last error
/// after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}
