//! `cairn watch`, `cairn agent` and `cairn run`: following a resolved
//! configuration (or, with `cairn agent --format flagd`, the flagd document
//! of the view's flags) from the command line.
//!
//! Environment naming for `cairn run` and `--format env`: every config key
//! and, inside objects, every member path is joined with `_`, upper-cased,
//! and every character that is not an ASCII letter or digit becomes `_`
//! (`database/pool` member `max` → `DATABASE_POOL_MAX`). Strings are passed
//! as is, numbers and booleans as their JSON text, `null` as an empty string,
//! arrays as JSON text. If two paths map to the same name the later one in
//! key order wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_client::sse::{SseEvent, SseParser};
use cairn_client::{Client, ClientError};
use serde_json::{json, Value};

use crate::output::Format;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub env: String,
    /// Start after this revision (events since then are replayed).
    #[arg(long)]
    pub since: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// The resolved values as a JSON object.
    Json,
    /// The resolved values as YAML.
    Yaml,
    /// The resolved values as `NAME='value'` lines (the naming rule of `cairn run`).
    Env,
    /// The flags of (app, env) as the flagd document the server serves at
    /// `/v1/apps/{app}/envs/{env}/flagd.json` (`flags`, `$evaluators`,
    /// `metadata`), for flagd's file sync and its in-process providers'
    /// offline file source. No secret is read.
    Flagd,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub env: String,
    /// The file kept equal to the resolved configuration, or to the flagd
    /// document with `--format flagd` (written atomically, mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// What the file holds: the resolved values (json, yaml, env) or the
    /// view's flags as a flagd document (flagd).
    #[arg(long, value_enum, default_value = "json")]
    pub format: FileFormat,
    /// Run this shell command after every write.
    #[arg(long, conflicts_with = "signal")]
    pub exec: Option<String>,
    /// Send SIGHUP to this process after every write.
    #[arg(long)]
    pub signal: Option<u32>,
    /// Leave `{"$secret": …}` references as they are instead of writing the
    /// secrets' values (which needs a principal allowed to read them).
    #[arg(long)]
    pub no_secrets: bool,
    /// Re-read every this many seconds even without a change event: a
    /// rotated secret changes no configuration revision (0: never). Each
    /// read of a secret is audited.
    #[arg(long, default_value_t = 300)]
    pub secrets_refresh: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub env: String,
    /// Leave `{"$secret": …}` references as they are (as JSON text).
    #[arg(long)]
    pub no_secrets: bool,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Follow the watch stream of (app, env) forever, reconnecting with
/// `Last-Event-ID` after a dropped connection; `on_event` sees every event.
/// API errors (not found, forbidden) end it.
async fn follow(
    client: &Client,
    app: &str,
    env: &str,
    mut last_id: Option<String>,
    mut on_event: impl AsyncFnMut(&SseEvent) -> Result<()>,
) -> Result<()> {
    let q = [("app", Some(app.to_owned())), ("env", Some(env.to_owned()))];
    let mut backoff = Duration::from_millis(200);
    loop {
        let resp = match client
            .open_stream("/v1/watch", &q, last_id.as_deref())
            .await
        {
            Ok(r) => r,
            Err(e @ ClientError::Api { .. }) => return Err(e.into()),
            Err(e) => {
                eprintln!("watch: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        let mut resp = resp;
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    parser.feed(&chunk, &mut events);
                    for e in events.drain(..) {
                        on_event(&e).await?;
                        if e.id.is_some() {
                            last_id.clone_from(&e.id);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("watch: connection lost: {e}");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// `cairn watch`: print every event until interrupted.
pub async fn watch(client: &Client, output: Format, a: WatchArgs) -> Result<()> {
    follow(
        client,
        &a.app,
        &a.env,
        a.since.map(|s| s.to_string()),
        async |e: &SseEvent| {
            let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
            match output {
                Format::Json | Format::Jsonl => {
                    let mut v = json!({"event": e.event, "id": e.id});
                    if let (Value::Object(m), Value::Object(d)) = (&mut v, data) {
                        m.extend(d);
                    }
                    println!("{}", serde_json::to_string(&v).unwrap_or_default());
                }
                Format::Text => {
                    let keys = data["keys"]
                        .as_array()
                        .map(|k| {
                            k.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    println!(
                        "{} revision {} {} {}",
                        e.event,
                        data["revision"],
                        data["checksum"].as_str().unwrap_or(""),
                        keys
                    );
                }
            }
            Ok(())
        },
    )
    .await
}

/// The resolved view of (app, env); with `secrets`, references replaced by
/// the values this principal may read (never cached by the server).
async fn fetch_view(client: &Client, app: &str, env: &str, secrets: bool) -> Result<Value> {
    let q = [("secrets", secrets.then(|| "true".to_owned()))];
    Ok(client
        .get(&format!("/v1/apps/{app}/envs/{env}/config"), &q)
        .await?)
}

/// `cairn agent`: keep `--out` equal to the resolved configuration, with
/// the secrets it references (or, with `--format flagd`, to the flagd
/// document of the view's flags).
pub async fn agent(client: &Client, a: AgentArgs) -> Result<()> {
    let refresh = Duration::from_secs(a.secrets_refresh);
    let agent = tokio::sync::Mutex::new(Agent {
        a,
        written: None,
        revision: 0,
    });
    agent.lock().await.refresh_retrying(client).await?;
    let (app, env, since) = {
        let agent = agent.lock().await;
        (agent.a.app.clone(), agent.a.env.clone(), agent.revision)
    };
    // From the revision the file was rendered from: a change committed
    // before the stream opens is replayed, not missed.
    let since = Some(since.to_string());
    let events = follow(client, &app, &env, since, async |e: &SseEvent| {
        if e.event == "change" || e.event == "resync" {
            agent.lock().await.refresh_retrying(client).await?;
        }
        Ok(())
    });
    // Rotated secrets change no revision: re-read on a timer too (the file
    // is rewritten only when its content changes).
    let periodic = async {
        if refresh.is_zero() {
            return std::future::pending::<Result<()>>().await;
        }
        let mut tick = tokio::time::interval(refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            // A failed periodic read is not fatal: the file stays, the next tick retries.
            if let Err(e) = agent.lock().await.refresh_retrying(client).await {
                eprintln!("agent: periodic refresh failed: {e:#}");
            }
        }
    };
    tokio::select! {
        r = events => r,
        r = periodic => r,
    }
}

struct Agent {
    a: AgentArgs,
    /// What the file holds.
    written: Option<String>,
    /// The revision of the view it was rendered from.
    revision: i64,
}

impl Agent {
    /// [`Agent::refresh`], retried while the server cannot be reached.
    async fn refresh_retrying(&mut self, client: &Client) -> Result<()> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.refresh(client).await {
                Err(e) if matches!(e.downcast_ref(), Some(ClientError::Transport(_))) => {
                    eprintln!("agent: {e:#}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Write the current view (or flagd document) if the file differs from
    /// it, then run the hook.
    async fn refresh(&mut self, client: &Client) -> Result<()> {
        let (revision, text) = self.render_current(client).await?;
        // An older view (a lagging replica behind a load balancer) never
        // replaces a newer one; the same revision may bring rotated secrets.
        if revision < self.revision {
            return Ok(());
        }
        if self.written.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        write_atomic(&self.a.out, text.as_bytes())?;
        self.written = Some(text);
        self.revision = revision;
        eprintln!(
            "agent: wrote {} (revision {revision})",
            self.a.out.display()
        );
        hook(&self.a).await;
        Ok(())
    }

    /// The file's content now, with the revision of the view it comes from.
    async fn render_current(&self, client: &Client) -> Result<(i64, String)> {
        let (app, env) = (&self.a.app, &self.a.env);
        if self.a.format == FileFormat::Flagd {
            // The view's revision moves with every flag and segment entry of
            // its scopes; it is read first, so the document is at least as new.
            let view = fetch_view(client, app, env, false).await?;
            let doc: Value = client
                .get(&format!("/v1/apps/{app}/envs/{env}/flagd.json"), &[])
                .await?;
            let revision = view["revision"].as_i64().unwrap_or(0);
            return Ok((revision, serde_json::to_string_pretty(&doc)? + "\n"));
        }
        let view = fetch_view(client, app, env, !self.a.no_secrets).await?;
        let revision = view["revision"].as_i64().unwrap_or(0);
        let values = view.get("values").cloned().unwrap_or(json!({}));
        Ok((revision, render(&values, self.a.format)?))
    }
}

async fn hook(a: &AgentArgs) {
    let result = if let Some(cmd) = &a.exec {
        tokio::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .await
    } else if let Some(pid) = a.signal {
        tokio::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .await
    } else {
        return;
    };
    match result {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("agent: hook exited with {s}"),
        Err(e) => eprintln!("agent: hook failed: {e}"),
    }
}

/// Write `bytes` to `path` so a reader sees the old or the new content,
/// never a mix (the SDK's cache writer: an exclusively created 0600 temp
/// file under a fresh name, fsync, rename, fsync of the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    cairn_client::sdk::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn render(values: &Value, format: FileFormat) -> Result<String> {
    Ok(match format {
        FileFormat::Json => serde_json::to_string_pretty(values)? + "\n",
        FileFormat::Yaml => serde_yaml::to_string(values)?,
        FileFormat::Env => env_vars(values)
            .iter()
            .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', r"'\''")))
            .collect(),
        FileFormat::Flagd => bail!("the flagd document is not rendered from values"),
    })
}

fn env_name(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Flatten resolved values into environment variables (the rule in the module docs).
pub fn env_vars(values: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let name = if prefix.is_empty() {
                        env_name(k)
                    } else {
                        format!("{prefix}_{}", env_name(k))
                    };
                    walk(&name, v, out);
                }
            }
            Value::String(s) => {
                out.insert(prefix.to_owned(), s.clone());
            }
            Value::Null => {
                out.insert(prefix.to_owned(), String::new());
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", values, &mut out);
    out
}

/// `cairn run`: start the command with the configuration in its environment;
/// returns its exit code.
pub async fn run(client: &Client, a: RunArgs) -> Result<i32> {
    let view = fetch_view(client, &a.app, &a.env, !a.no_secrets).await?;
    let vars = env_vars(view.get("values").unwrap_or(&Value::Null));
    let Some((program, args)) = a.command.split_first() else {
        bail!("a command is required after --");
    };
    let status = tokio::process::Command::new(program)
        .args(args)
        .envs(vars)
        .env("CAIRN_REVISION", view["revision"].to_string())
        .status()
        .await
        .with_context(|| format!("starting {program}"))?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_naming_rule() {
        let v = json!({
            "database/pool": {"max": 10, "name": "main", "opts": {"ssl-mode": true}},
            "feature.list": [1, 2],
            "empty": null,
        });
        let vars = env_vars(&v);
        assert_eq!(vars["DATABASE_POOL_MAX"], "10");
        assert_eq!(vars["DATABASE_POOL_NAME"], "main");
        assert_eq!(vars["DATABASE_POOL_OPTS_SSL_MODE"], "true");
        assert_eq!(vars["FEATURE_LIST"], "[1,2]");
        assert_eq!(vars["EMPTY"], "");
        assert_eq!(vars.len(), 5);
    }

    #[test]
    fn atomic_write_replaces_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conf.json");
        write_atomic(&p, b"{\"a\":1}").unwrap();
        write_atomic(&p, b"{\"a\":2}").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":2}");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
