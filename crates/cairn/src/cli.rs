//! The command set (DESIGN.md §13) and its exit codes:
//! 0 ok, 1 error, 2 usage, 3 not found, 4 conflict or rejected, 5 permission denied.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use cairn_client::{key_path, Client, ClientError, HttpMethod as Method};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::input::{read_input, read_value};
use crate::output::{self, table, Format};
use crate::serve::ServeArgs;

mod flag;
mod secret;
mod webhook;
pub use flag::FlagCmd;
pub use secret::{AdminCmd, SecretCmd};
pub use webhook::WebhookCmd;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Configuration, feature flags and secrets, versioned and audited."
)]
pub struct Cli {
    /// Server address.
    #[arg(
        long,
        global = true,
        env = "CAIRN_ADDR",
        default_value = "http://127.0.0.1:8700"
    )]
    pub addr: String,
    /// Bearer token.
    #[arg(long, global = true, env = "CAIRN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificate of a CA to trust for an https:// server (e.g. a self-signed one).
    #[arg(long, global = true, env = "CAIRN_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "text")]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// Scope flags shared by entry commands.
#[derive(Debug, Clone, clap::Args)]
pub struct ScopeArgs {
    /// App (absent or `global`: the global scope).
    #[arg(long)]
    pub app: Option<String>,
    /// Environment (absent or `all`: every environment).
    #[arg(long)]
    pub env: Option<String>,
}

impl ScopeArgs {
    fn query(&self) -> Vec<(&'static str, Option<String>)> {
        vec![("app", self.app.clone()), ("env", self.env.clone())]
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Read an entry (current, a version, or as of a revision).
    Get {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        version: Option<i64>,
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Write a new version of an entry from --value, a JSON/YAML FILE, or - (stdin).
    Set {
        key: String,
        file: Option<String>,
        #[arg(long)]
        value: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
        /// Compare-and-set: fail unless the current version is N (0: must not exist).
        #[arg(long = "expect-version")]
        expect_version: Option<i64>,
        /// config, flag or segment.
        #[arg(long, default_value = "config")]
        kind: String,
        /// Replace the less specific scopes' value instead of merging into it.
        #[arg(long)]
        replace: bool,
    },
    /// Delete an entry (a tombstone version; history stays).
    Delete {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short = 'm', long = "message")]
        message: String,
        #[arg(long = "expect-version")]
        expect_version: Option<i64>,
    },
    /// List entries at one scope.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Key glob (`*` within a segment, `**` across).
        #[arg(long)]
        filter: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Print the resolved configuration of (app, env).
    Resolve {
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        revision: Option<i64>,
        /// Substitute secret references with plaintext (where you may read them; audited).
        #[arg(long, conflicts_with = "revision")]
        secrets: bool,
    },
    /// Print the changes of the resolved configuration of (app, env) as they happen.
    Watch(crate::realtime::WatchArgs),
    /// Keep a file equal to the resolved configuration (or its flags as a flagd document); run a
    /// command or signal a process on change.
    Agent(crate::realtime::AgentArgs),
    /// Start a command with the resolved configuration as environment variables
    /// (`database/pool` member `max` → `DATABASE_POOL_MAX`; see docs/cli.md).
    Run(crate::realtime::RunArgs),
    /// Version history of an entry.
    Versions {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Difference between two versions of an entry.
    Diff {
        key: String,
        from: i64,
        to: i64,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Write a new version equal to an older one.
    Rollback {
        key: String,
        version: i64,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short = 'm', long = "message")]
        message: String,
        #[arg(long = "expect-version")]
        expect_version: Option<i64>,
    },
    /// Apps.
    #[command(subcommand)]
    App(AppCmd),
    /// Environments.
    #[command(subcommand)]
    Env(EnvCmd),
    /// JSON Schemas.
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// Audit records (`--output jsonl` exports), or `audit verify`.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(subcommand)]
        sub: Option<AuditCmd>,
        key: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        env: Option<String>,
        /// RFC 3339 time or an age like 30d, 12h, 15m.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Feature flags (flagd definitions) and their evaluation.
    #[command(subcommand)]
    Flag(FlagCmd),
    /// Secrets: envelope-encrypted, versioned, referenced from configuration as {"$secret": NAME}.
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Webhooks: signed event deliveries with retries and a delivery log (admins).
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Server administration.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Users who log in with a password.
    #[command(subcommand)]
    User(UserCmd),
    /// Exchange a user name and password (from stdin or CAIRN_PASSWORD) for a short-lived token.
    Login {
        name: String,
        /// Token lifetime, e.g. 12h (at most 7d).
        #[arg(long)]
        ttl: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Walk the tamper-evident chain; exit 4 naming the first bad record.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user with one binding; the password comes from stdin or CAIRN_PASSWORD.
    Create {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "*")]
        app: String,
        #[arg(long, default_value = "*")]
        env: String,
    },
    /// Add a binding (role at app × env patterns).
    Grant {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "*")]
        app: String,
        #[arg(long, default_value = "*")]
        env: String,
    },
    /// Set a new password (from stdin or CAIRN_PASSWORD).
    Passwd {
        name: String,
    },
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum AppCmd {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EnvFlags {
    #[arg(long)]
    pub description: Option<String>,
    /// Changes need approval.
    #[arg(long)]
    pub protected: Option<bool>,
    #[arg(long)]
    pub required_approvals: Option<i32>,
    #[arg(long)]
    pub auto_approve: Option<bool>,
    /// Flag-lint warnings refuse flag writes reaching this environment.
    #[arg(long)]
    pub strict_flags: Option<bool>,
}

impl EnvFlags {
    fn body(&self, name: Option<&str>) -> Value {
        let mut b = json!({});
        if let Some(n) = name {
            b["name"] = json!(n);
        }
        if let Some(v) = &self.description {
            b["description"] = json!(v);
        }
        if let Some(v) = self.protected {
            b["protected"] = json!(v);
        }
        if let Some(v) = self.required_approvals {
            b["required_approvals"] = json!(v);
        }
        if let Some(v) = self.auto_approve {
            b["auto_approve"] = json!(v);
        }
        if let Some(v) = self.strict_flags {
            b["strict_flags"] = json!(v);
        }
        b
    }
}

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    Create {
        name: String,
        #[command(flatten)]
        flags: EnvFlags,
    },
    List,
    /// Change an environment's settings.
    Set {
        name: String,
        #[command(flatten)]
        flags: EnvFlags,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCmd {
    /// Register (the next version of) a schema for keys matching PATTERN, from a JSON/YAML
    /// FILE or - (stdin).
    Register {
        pattern: String,
        file: String,
        #[arg(long)]
        app: Option<String>,
        /// Activate even if stored values violate it.
        #[arg(long)]
        force: bool,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
    },
    /// Active schemas.
    List {
        /// Every version, not only the active ones.
        #[arg(long)]
        all: bool,
    },
    /// Check a JSON/YAML FILE (or - for stdin) against the schemas governing KEY, writing
    /// nothing.
    Validate {
        key: String,
        file: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token; it is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// viewer, operator, admin or sdk.
        #[arg(long, required_unless_present = "sdk")]
        role: Option<String>,
        /// An SDK token bound to one --app and --env.
        #[arg(long, conflicts_with = "role", requires_all = ["app", "env"])]
        sdk: bool,
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        env: Option<String>,
        /// Lifetime like 30d, 12h.
        #[arg(long)]
        ttl: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
}

/// Run a parsed command line; never panics on user error.
pub async fn run(cli: Cli) -> ExitCode {
    let Cli {
        addr,
        token,
        ca_cert,
        output,
        command,
    } = cli;
    if let Command::Serve(args) = command {
        init_tracing();
        return match crate::serve::run(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                output::error_line(&format!("{e:#}"));
                ExitCode::from(1)
            }
        };
    }
    let ca = match ca_cert
        .map(|p| std::fs::read(&p).map_err(|e| anyhow!("reading {}: {e}", p.display())))
    {
        Some(Ok(pem)) => Some(pem),
        Some(Err(e)) => return report(&e, output),
        None => None,
    };
    let result = match Client::with_ca(&addr, token, ca.as_deref()) {
        Ok(client) => Ctx { client, output }.dispatch(command).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, output),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Print an error and choose the exit code.
fn report(e: &anyhow::Error, format: Format) -> ExitCode {
    let Some(ClientError::Api { status, problem }) = e.downcast_ref::<ClientError>() else {
        output::error_line(&format!("{e:#}"));
        return ExitCode::from(1);
    };
    if format == Format::Json {
        eprintln!(
            "{}",
            serde_json::to_string_pretty(problem).unwrap_or_default()
        );
    } else {
        output::error_line(&problem.detail);
        if let Some(f) = &problem.field {
            eprintln!("  field: {f}");
        }
        for v in &problem.errors {
            let entry = v
                .get("entry")
                .and_then(Value::as_str)
                .map(|e| format!("{e} "))
                .unwrap_or_default();
            eprintln!(
                "  {entry}{}: {} ({})",
                v.get("pointer")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                    .unwrap_or("/"),
                v.get("message").and_then(Value::as_str).unwrap_or(""),
                v.get("schema").and_then(Value::as_str).unwrap_or("")
            );
        }
    }
    ExitCode::from(match status {
        404 => 3,
        409 | 412 | 422 => 4,
        401 | 403 => 5,
        _ => 1,
    })
}

/// Parse `30d`/`12h`/`15m`/`45s`/`2w` into a duration.
pub fn parse_age(s: &str) -> Result<chrono::Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow!("bad duration {s:?}: use e.g. 30d, 12h, 15m"))?;
    Ok(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" | "" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "w" => chrono::Duration::weeks(n),
        _ => bail!("bad duration {s:?}: use e.g. 30d, 12h, 15m"),
    })
}

/// RFC 3339 or an age before now.
fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    Ok(Utc::now() - parse_age(s)?)
}

struct Ctx {
    client: Client,
    output: Format,
}

impl Ctx {
    fn print(&self, v: &Value, text: impl FnOnce(&Value)) {
        match self.output {
            Format::Json => output::json(v),
            Format::Jsonl => output::jsonl(v),
            Format::Text => text(v),
        }
    }

    async fn get(&self, path: &str, q: &[(&str, Option<String>)]) -> Result<Value> {
        Ok(self.client.get(path, q).await?)
    }

    async fn send(
        &self,
        m: Method,
        path: &str,
        q: &[(&str, Option<String>)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let r: Value = self.client.send_json(m, path, q, body).await?;
        // Writes of flags and segments report rules that can never work.
        for w in r["warnings"].as_array().into_iter().flatten() {
            eprintln!(
                "warning[{}]: {} {}: {}",
                cell_str(&w["code"]),
                cell_str(&w["entry"]),
                cell_str(&w["pointer"]),
                cell_str(&w["message"])
            );
        }
        Ok(r)
    }

    async fn dispatch(&self, command: Command) -> Result<()> {
        match command {
            Command::Serve(_) => unreachable!("handled before"),
            Command::Get {
                key,
                scope,
                version,
                revision,
            } => {
                let mut q = scope.query();
                q.push(("version", version.map(|v| v.to_string())));
                q.push(("revision", revision.map(|v| v.to_string())));
                let e = self
                    .get(&format!("/v1/entries/{}", key_path(&key)), &q)
                    .await?;
                self.print(&e, |e| output::json(&e["value"]));
            }
            Command::Set {
                key,
                file,
                value,
                scope,
                message,
                expect_version,
                kind,
                replace,
            } => {
                let value = read_value(value.as_deref(), file.as_deref())?;
                let mut body = json!({"value": value, "message": message, "kind": kind});
                if replace {
                    body["merge"] = json!("replace");
                }
                if let Some(v) = expect_version {
                    body["expected_version"] = json!(v);
                }
                let r = self
                    .send(
                        Method::PUT,
                        &format!("/v1/entries/{}", key_path(&key)),
                        &scope.query(),
                        Some(&body),
                    )
                    .await?;
                self.print(&r, |r| {
                    println!(
                        "{key}: version {} (revision {})",
                        r["changes"][0]["version"], r["revision"]
                    )
                });
            }
            Command::Delete {
                key,
                scope,
                message,
                expect_version,
            } => {
                let mut q = scope.query();
                q.push(("message", Some(message)));
                q.push(("expected_version", expect_version.map(|v| v.to_string())));
                let r = self
                    .send(
                        Method::DELETE,
                        &format!("/v1/entries/{}", key_path(&key)),
                        &q,
                        None,
                    )
                    .await?;
                self.print(&r, |r| {
                    println!(
                        "{key}: deleted as version {} (revision {})",
                        r["changes"][0]["version"], r["revision"]
                    )
                });
            }
            Command::List {
                scope,
                filter,
                kind,
                revision,
            } => {
                let mut q = scope.query();
                q.push(("filter", filter));
                q.push(("kind", kind));
                q.push(("revision", revision.map(|v| v.to_string())));
                let r = self.get("/v1/entries", &q).await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("KEY", "key"),
                            ("KIND", "kind"),
                            ("VERSION", "version"),
                            ("REVISION", "revision"),
                            ("UPDATED", "created_at"),
                            ("BY", "actor"),
                        ],
                    )
                });
            }
            Command::Resolve {
                app,
                env,
                revision,
                secrets,
            } => {
                let r = self
                    .get(
                        &format!("/v1/apps/{app}/envs/{env}/config"),
                        &[
                            ("revision", revision.map(|v| v.to_string())),
                            ("secrets", secrets.then(|| "true".to_owned())),
                        ],
                    )
                    .await?;
                self.print(&r, |r| {
                    if secrets {
                        println!("# {app}/{env} at revision {} with secrets", r["revision"]);
                    } else {
                        println!(
                            "# {app}/{env} at revision {} checksum {}",
                            r["revision"],
                            cell_str(&r["checksum"])
                        );
                    }
                    output::json(&r["values"]);
                });
            }
            Command::Versions { key, scope } => {
                let r = self
                    .get(&format!("/v1/history/{}", key_path(&key)), &scope.query())
                    .await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("VERSION", "version"),
                            ("REVISION", "revision"),
                            ("TIME", "created_at"),
                            ("ACTOR", "actor"),
                            ("CHECKSUM", "checksum"),
                            ("MESSAGE", "message"),
                        ],
                    )
                });
            }
            Command::Diff {
                key,
                from,
                to,
                scope,
            } => {
                let mut q = scope.query();
                q.push(("from", Some(from.to_string())));
                q.push(("to", Some(to.to_string())));
                let r = self
                    .get(&format!("/v1/diff/{}", key_path(&key)), &q)
                    .await?;
                self.print(&r, |r| {
                    println!("JSON Patch (RFC 6902): {}", r["patch"]);
                    print!("{}", r["text"].as_str().unwrap_or(""));
                });
            }
            Command::Rollback {
                key,
                version,
                scope,
                message,
                expect_version,
            } => {
                let mut body = json!({"version": version, "message": message});
                if let Some(v) = expect_version {
                    body["expected_version"] = json!(v);
                }
                let r = self
                    .send(
                        Method::POST,
                        &format!("/v1/rollback/{}", key_path(&key)),
                        &scope.query(),
                        Some(&body),
                    )
                    .await?;
                self.print(&r, |r| {
                    println!(
                        "{key}: rolled back to the value of version {version} as version {} (revision {})",
                        r["changes"][0]["version"], r["revision"]
                    )
                });
            }
            Command::App(AppCmd::Create { name, description }) => {
                let r = self
                    .send(
                        Method::POST,
                        "/v1/apps",
                        &[],
                        Some(&json!({"name": name, "description": description})),
                    )
                    .await?;
                self.print(&r, |r| {
                    println!("app {name} created (revision {})", r["revision"])
                });
            }
            Command::App(AppCmd::List) => {
                let r = self.get("/v1/apps", &[]).await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("NAME", "name"),
                            ("CREATED", "created_at"),
                            ("DESCRIPTION", "description"),
                        ],
                    )
                });
            }
            Command::Env(EnvCmd::Create { name, flags }) => {
                let r = self
                    .send(
                        Method::POST,
                        "/v1/envs",
                        &[],
                        Some(&flags.body(Some(&name))),
                    )
                    .await?;
                self.print(&r, |r| {
                    println!("environment {name} created (revision {})", r["revision"])
                });
            }
            Command::Env(EnvCmd::Set { name, flags }) => {
                let r = self
                    .send(
                        Method::PATCH,
                        &format!("/v1/envs/{name}"),
                        &[],
                        Some(&flags.body(None)),
                    )
                    .await?;
                self.print(&r, |r| {
                    println!("environment {name} updated (revision {})", r["revision"])
                });
            }
            Command::Env(EnvCmd::List) => {
                let r = self.get("/v1/envs", &[]).await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("NAME", "name"),
                            ("PROTECTED", "protected"),
                            ("APPROVALS", "required_approvals"),
                            ("AUTO_APPROVE", "auto_approve"),
                            ("STRICT_FLAGS", "strict_flags"),
                            ("DESCRIPTION", "description"),
                        ],
                    )
                });
            }
            Command::Schema(SchemaCmd::Register {
                pattern,
                file,
                app,
                force,
                message,
            }) => {
                let schema = read_input(&file)?;
                let body = json!({"app": app, "pattern": pattern, "schema": schema, "force": force, "message": message});
                let r = self
                    .send(Method::POST, "/v1/schemas", &[], Some(&body))
                    .await?;
                self.print(&r, |r| {
                    println!(
                        "schema {pattern} version {} active (revision {})",
                        r["version"], r["revision"]
                    );
                    for v in r["drift"].as_array().into_iter().flatten() {
                        println!(
                            "  forced past: {} {}: {}",
                            cell_str(&v["entry"]),
                            cell_str(&v["pointer"]),
                            cell_str(&v["message"])
                        );
                    }
                });
            }
            Command::Schema(SchemaCmd::List { all }) => {
                let path = if all {
                    "/v1/schemas/history"
                } else {
                    "/v1/schemas"
                };
                let r = self.get(path, &[]).await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("APP", "app"),
                            ("PATTERN", "pattern"),
                            ("VERSION", "version"),
                            ("REVISION", "revision"),
                            ("BY", "actor"),
                        ],
                    )
                });
            }
            Command::Schema(SchemaCmd::Validate { key, file, scope }) => {
                let value = read_input(&file)?;
                let body = json!({"app": scope.app, "env": scope.env, "key": key, "value": value});
                let r = self
                    .send(Method::POST, "/v1/schemas/validate", &[], Some(&body))
                    .await?;
                let valid = r["valid"].as_bool().unwrap_or(false);
                self.print(&r, |r| {
                    if valid {
                        println!("{file}: valid for {key}");
                    } else {
                        println!("{file}: INVALID for {key}");
                        for v in r["violations"].as_array().into_iter().flatten() {
                            println!(
                                "  {}: {} ({})",
                                cell_str(&v["pointer"]),
                                cell_str(&v["message"]),
                                cell_str(&v["schema"])
                            );
                        }
                    }
                });
                if !valid {
                    return Err(rejected(format!("{file} violates the schemas for {key}")));
                }
            }
            Command::Audit {
                sub: Some(AuditCmd::Verify),
                ..
            } => {
                let r = self.get("/v1/audit/verify", &[]).await?;
                let ok = r["ok"].as_bool().unwrap_or(false);
                self.print(&r, |r| {
                    if ok {
                        println!(
                            "audit log OK: {} records, chain and head verified",
                            r["records"]
                        );
                    } else {
                        println!(
                            "audit log TAMPERED at record {}: {}",
                            r["first_bad"]["seq"],
                            cell_str(&r["first_bad"]["reason"])
                        );
                    }
                });
                if !ok {
                    return Err(rejected(format!(
                        "audit chain broken at record {}",
                        r["first_bad"]["seq"]
                    )));
                }
            }
            Command::Audit {
                sub: None,
                key,
                actor,
                action,
                app,
                env,
                since,
                until,
                limit,
            } => {
                let since = since.as_deref().map(parse_time).transpose()?;
                let until = until.as_deref().map(parse_time).transpose()?;
                let q = [
                    ("key", key),
                    ("actor", actor),
                    ("action", action),
                    ("app", app),
                    ("env", env),
                    ("since", since.map(|t| t.to_rfc3339())),
                    ("until", until.map(|t| t.to_rfc3339())),
                    ("limit", limit.map(|l| l.to_string())),
                ];
                let r = self.get("/v1/audit", &q).await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("SEQ", "seq"),
                            ("TIME", "at"),
                            ("ACTOR", "actor"),
                            ("ACTION", "action"),
                            ("APP", "app"),
                            ("ENV", "env"),
                            ("KEY", "key"),
                            ("FROM", "from_version"),
                            ("TO", "to_version"),
                            ("IP", "client_ip"),
                            ("MESSAGE", "message"),
                        ],
                    )
                });
            }
            Command::Token(TokenCmd::Create {
                name,
                role,
                sdk,
                app,
                env,
                ttl,
            }) => {
                let expires_at = ttl
                    .as_deref()
                    .map(parse_age)
                    .transpose()?
                    .map(|d| (Utc::now() + d).to_rfc3339());
                let role = if sdk { Some("sdk".to_owned()) } else { role };
                let body = json!({"name": name, "role": role, "app": app, "env": env, "expires_at": expires_at});
                let r = self
                    .send(Method::POST, "/v1/tokens", &[], Some(&body))
                    .await?;
                self.print(&r, |r| {
                    println!(
                        "token {} created; it is shown only this once:\n\n    {}\n",
                        cell_str(&r["id"]),
                        cell_str(&r["token"])
                    )
                });
            }
            Command::Token(TokenCmd::List) => {
                let r = self.get("/v1/tokens", &[]).await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("ID", "id"),
                            ("NAME", "name"),
                            ("ROLE", "role"),
                            ("APP", "app"),
                            ("ENV", "env"),
                            ("EXPIRES", "expires_at"),
                            ("REVOKED", "revoked_at"),
                        ],
                    )
                });
            }
            Command::User(cmd) => self.user(cmd).await?,
            Command::Flag(cmd) => self.flag(cmd).await?,
            Command::Secret(cmd) => self.secret(cmd).await?,
            Command::Webhook(cmd) => self.webhook(cmd).await?,
            Command::Admin(cmd) => self.admin(cmd).await?,
            Command::Watch(a) => crate::realtime::watch(&self.client, self.output, a).await?,
            Command::Agent(a) => crate::realtime::agent(&self.client, a).await?,
            Command::Run(a) => {
                let code = crate::realtime::run(&self.client, a).await?;
                std::process::exit(code);
            }
            Command::Login { name, ttl } => {
                let password = read_password()?;
                let ttl_seconds = ttl
                    .as_deref()
                    .map(parse_age)
                    .transpose()?
                    .map(|d| d.num_seconds());
                let body = json!({"name": name, "password": password, "ttl_seconds": ttl_seconds});
                let r = self
                    .send(Method::POST, "/v1/login", &[], Some(&body))
                    .await?;
                self.print(&r, |r| println!("{}", cell_str(&r["token"])));
            }
            Command::Token(TokenCmd::Revoke { id }) => {
                let r = self
                    .send(Method::DELETE, &format!("/v1/tokens/{id}"), &[], None)
                    .await?;
                self.print(&r, |r| {
                    println!("token {id} revoked (revision {})", r["revision"])
                });
            }
        }
        Ok(())
    }
}

impl Ctx {
    async fn user(&self, cmd: UserCmd) -> Result<()> {
        match cmd {
            UserCmd::Create {
                name,
                role,
                app,
                env,
            } => {
                let password = read_password()?;
                let body = json!({"name": name, "password": password,
                    "bindings": [{"role": role, "app": app, "env": env}]});
                let r = self
                    .send(Method::POST, "/v1/users", &[], Some(&body))
                    .await?;
                self.print(&r, |r| {
                    println!("user {name} created (revision {})", r["revision"])
                });
            }
            UserCmd::Grant {
                name,
                role,
                app,
                env,
            } => {
                let users = self.get("/v1/users", &[]).await?;
                let user = users
                    .as_array()
                    .and_then(|a| a.iter().find(|u| u["name"] == name.as_str()))
                    .ok_or_else(|| ClientError::Api {
                        status: 404,
                        problem: Box::new(cairn_client::Problem {
                            detail: format!("user {name} not found"),
                            ..Default::default()
                        }),
                    })?;
                let mut bindings = user["bindings"].as_array().cloned().unwrap_or_default();
                bindings.push(json!({"role": role, "app": app, "env": env}));
                let body = json!({"bindings": bindings});
                let r = self
                    .send(
                        Method::PATCH,
                        &format!("/v1/users/{name}"),
                        &[],
                        Some(&body),
                    )
                    .await?;
                self.print(&r, |r| {
                    println!(
                        "user {name}: granted {role} on {app}/{env} (revision {})",
                        r["revision"]
                    )
                });
            }
            UserCmd::Passwd { name } => {
                let body = json!({"password": read_password()?});
                let r = self
                    .send(
                        Method::PATCH,
                        &format!("/v1/users/{name}"),
                        &[],
                        Some(&body),
                    )
                    .await?;
                self.print(&r, |r| {
                    println!("user {name}: password changed (revision {})", r["revision"])
                });
            }
            UserCmd::Disable { name } => self.set_disabled(&name, true).await?,
            UserCmd::Enable { name } => self.set_disabled(&name, false).await?,
            UserCmd::List => {
                let r = self.get("/v1/users", &[]).await?;
                self.print(&r, |r| {
                    table(
                        r,
                        &[
                            ("NAME", "name"),
                            ("BINDINGS", "bindings"),
                            ("DISABLED", "disabled"),
                            ("CREATED", "created_at"),
                        ],
                    )
                });
            }
        }
        Ok(())
    }

    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let body = json!({"disabled": disabled});
        let r = self
            .send(
                Method::PATCH,
                &format!("/v1/users/{name}"),
                &[],
                Some(&body),
            )
            .await?;
        self.print(&r, |r| {
            println!(
                "user {name} {} (revision {})",
                if disabled { "disabled" } else { "enabled" },
                r["revision"]
            )
        });
        Ok(())
    }
}

/// A password from CAIRN_PASSWORD or the first line of standard input.
fn read_password() -> Result<String> {
    if let Ok(p) = std::env::var("CAIRN_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let p = line.trim_end_matches(['\r', '\n']).to_owned();
    if p.is_empty() {
        bail!("give the password on standard input or in CAIRN_PASSWORD");
    }
    Ok(p)
}

/// An error the CLI reports with exit code 4 (rejected).
fn rejected(detail: String) -> anyhow::Error {
    ClientError::Api {
        status: 422,
        problem: Box::new(cairn_client::Problem {
            detail,
            ..Default::default()
        }),
    }
    .into()
}

fn cell_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The CLI reference (`docs/cli.md`), generated from the clap definitions.
#[cfg(test)]
pub fn reference_markdown() -> String {
    use clap::CommandFactory;
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let name = if path.is_empty() {
            cmd.get_name().to_owned()
        } else {
            format!("{path} {}", cmd.get_name())
        };
        out.push_str(&format!("## `{name}`\n\n```text\n"));
        out.push_str(cmd.render_long_help().to_string().trim_end());
        out.push_str("\n```\n\n");
        let mut subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
        for sub in &mut subs {
            if sub.get_name() != "help" {
                walk(sub, &name, out);
            }
        }
    }
    let mut out = String::from(
        "# CLI reference\n\nGenerated from the clap definitions; `cargo test -p cairn` fails when it is stale \
         (regenerate with `UPDATE_DOCS=1 cargo test -p cairn cli_reference`).\n\n\
         Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict or rejected, 5 permission denied.\n\n",
    );
    let mut cmd = Cli::command().term_width(100);
    walk(&mut cmd, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_reference_is_current() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
        let current = reference_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &current).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/cli.md is stale: run UPDATE_DOCS=1 cargo test -p cairn cli_reference"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_age("15m").unwrap(), chrono::Duration::minutes(15));
        assert!(parse_age("x").is_err());
        assert!(parse_age("3y").is_err());
        assert!(parse_time("2026-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
