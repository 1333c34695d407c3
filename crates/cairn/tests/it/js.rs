//! Running the published OpenFeature JavaScript clients (`tests/js`, pinned
//! by its package-lock.json, installed with `npm ci`) against a real server:
//! the flagd document both JavaScript tests import, the check that node and
//! the packages are there, and a driver runner that answers the driver's
//! `STEP name` lines (see tests/js/lib.mjs).
//!
//! Without node or the packages the tests skip, with one line on stderr
//! saying how to install them; with `CI=true` they fail instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const JS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");

const INSTALL: &str = "cd crates/cairn/tests/js && npm ci";

/// The flags both JavaScript tests evaluate (camelCase keys, as in real flagd files).
pub fn flagd_document() -> Value {
    json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "metadata": {"owner": "team-web"},
        "$evaluators": {
            "staff": {"ends_with": [{"var": "email"}, "@example.com"]}
        },
        "flags": {
            "newWelcomeBanner": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "targeting": {"if": [{"$ref": "staff"}, "on"]},
                "metadata": {"description": "the welcome banner"}
            },
            "headerColor": {
                "state": "ENABLED",
                "variants": {"red": "#c00", "blue": "#00c"},
                "defaultVariant": "red",
                "targeting": {"if": [{"sem_ver": [{"var": "version"}, ">=", "2.0.0"]}, "blue"]}
            },
            "maxItems": {"state": "ENABLED", "variants": {"ten": 10, "five": 5}, "defaultVariant": "ten"},
            "discount": {"state": "ENABLED", "variants": {"quarter": 0.25, "half": 0.5}, "defaultVariant": "quarter"},
            "limits": {
                "state": "ENABLED",
                "variants": {"small": {"max": 1}, "big": {"max": 9, "burst": [1, 2]}},
                "defaultVariant": "small",
                "targeting": {"if": [{"$ref": "staff"}, "big", "small"]}
            },
            "checkout": {
                "state": "ENABLED",
                "variants": {"a": "flow-a", "b": "flow-b", "c": "flow-c"},
                "defaultVariant": "a",
                "targeting": {"fractional": [["a", 50], ["b", 30], ["c", 20]]}
            },
            "oldCheckout": {
                "state": "DISABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "on"
            }
        }
    })
}

/// `maxItems` with `five` as its default variant (the change the drivers wait for).
pub const MAX_ITEMS_FIVE: &str =
    r#"{"state":"ENABLED","variants":{"ten":10,"five":5},"defaultVariant":"five"}"#;

/// Whether node and the pinned packages are installed. When they are not:
/// panics under `CI=true`, else prints one line (once per run) and returns
/// false so the caller returns early.
pub fn clients_installed() -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    static SAID: std::sync::Once = std::sync::Once::new();
    let Err(why) = CHECK.get_or_init(check_installed) else {
        return true;
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "CI=true and the OpenFeature JavaScript clients are missing ({why}): {INSTALL}"
    );
    // Straight to the stderr handle, past the test harness's capture, so the
    // one line shows in a normal `cargo test` run.
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "skipping the OpenFeature JavaScript client tests ({why}); install them with `{INSTALL}`"
        );
    });
    false
}

fn check_installed() -> Result<(), String> {
    let out = Command::new("node")
        .arg("installed.mjs")
        .current_dir(JS_DIR)
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Err(if text.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_owned()
        } else {
            text
        })
    }
}

/// What a driver printed, and how it ended.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exited 0 and printed its closing `… checks ok` line.
    pub fn passed(&self) -> bool {
        self.status.success()
            && self
                .stdout
                .lines()
                .any(|l| l.starts_with("all ") && l.ends_with("checks ok"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node → {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A node child, killed and reaped on drop (a failed step ends it too).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `node SCRIPT` in tests/js with `envs`; on every `STEP name` line call
/// `on_step(name)`, then answer `go`. Killed after `timeout`.
pub fn run_driver(
    script: &str,
    envs: &[(&str, &str)],
    timeout: Duration,
    mut on_step: impl FnMut(&str),
) -> Run {
    let mut child = Node(
        Command::new("node")
            .arg(script)
            .current_dir(JS_DIR)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node"),
    );
    let mut stdin = child.0.stdin.take().expect("piped stdin");
    let out = child.0.stdout.take().expect("piped stdout");
    let mut err = child.0.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut stdout = String::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                stdout.push_str(&line);
                stdout.push('\n');
                if let Some(name) = line.strip_prefix("STEP ") {
                    on_step(name.trim());
                    // A driver that already exited cannot read it; its status tells.
                    let _ = stdin.write_all(b"go\n");
                    let _ = stdin.flush();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.0.kill();
                break;
            }
        }
    }
    drop(stdin);
    let status = child.0.wait().expect("wait for node");
    let mut stderr = stderr.join().unwrap_or_default();
    if timed_out {
        stderr.push_str(&format!("\n(killed after {timeout:?})\n"));
    }
    Run {
        status,
        stdout,
        stderr,
    }
}
