//! The command set (DESIGN.md §13) and its exit codes:
//! 0 ok, 1 error, 2 usage, 3 not found, 4 conflict or rejected, 5 permission denied.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use cairn_client::cairn_api::{
    ApproveBody, ChangeRecord, ChangeRequested, ChangeState, FlagWarning, Revised, WriteResult,
};
use cairn_client::{Client, ClientError, WriteOutcome};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::output::{self, Format};
use crate::serve::ServeArgs;

mod catalog;
mod change;
mod entry;
mod flag;
mod identity;
mod secret;
mod webhook;
pub use catalog::{AppCmd, EnvCmd, SchemaCmd};
pub use change::ChangeCmd;
pub use flag::FlagCmd;
pub use identity::{TokenCmd, UserCmd};
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

    fn at(&self) -> cairn_client::At<'_> {
        cairn_client::At {
            app: self.app.as_deref(),
            env: self.env.as_deref(),
        }
    }
}

/// What a write does when it needs approval (a protected environment): it
/// becomes a change request, printed as `change chg_… pending (0/2 approvals)`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GateArgs {
    /// If the write becomes a change request, wait for its outcome: applied (exit 0), or
    /// rejected, cancelled, conflicted or expired (exit 4).
    #[arg(long)]
    pub wait: bool,
    /// If the write becomes a change request, apply it at this time once approved (RFC 3339,
    /// e.g. 2026-12-24T06:00:00Z); until then it waits as `scheduled`.
    #[arg(long = "apply-at", value_name = "TIME", value_parser = parse_rfc3339)]
    pub apply_at: Option<DateTime<Utc>>,
    /// Admins: if the write becomes a change request, apply it at once past its approvals
    /// (needs --reason; the request is recorded `forced` in the audit log). Exit 4 if it
    /// conflicts, 5 if you may not force.
    #[arg(
        long = "force-approval",
        requires = "reason",
        conflicts_with = "apply_at"
    )]
    pub force_approval: bool,
    /// Why --force-approval is used (e.g. "incident 4711").
    #[arg(long, requires = "force_approval")]
    pub reason: Option<String>,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| anyhow!("not an RFC 3339 time (e.g. 2026-12-24T06:00:00Z): {e}"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    // (Entry commands: get, set, delete, list, resolve, versions, diff, rollback.)
    #[command(flatten)]
    Entry(entry::EntryCmd),
    // (Change-request commands: pending, approve, reject.)
    #[command(flatten)]
    Approval(change::ApprovalCmd),
    /// Change requests: show, cancel, rebase, edit (writes to a protected environment).
    #[command(subcommand)]
    Change(ChangeCmd),
    /// Print the changes of the resolved configuration of (app, env) as they happen.
    Watch(crate::realtime::WatchArgs),
    /// Keep a file equal to the resolved configuration (or its flags as a flagd document); run a
    /// command or signal a process on change.
    Agent(crate::realtime::AgentArgs),
    /// Start a command with the resolved configuration as environment variables
    /// (`database/pool` member `max` → `DATABASE_POOL_MAX`; see docs/cli.md).
    Run(crate::realtime::RunArgs),
    /// Apps.
    #[command(subcommand)]
    App(AppCmd),
    /// Environments.
    #[command(subcommand)]
    Env(EnvCmd),
    /// JSON Schemas.
    #[command(subcommand)]
    Schema(SchemaCmd),
    #[command(flatten)]
    Identity(identity::IdentityCmd),
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

    /// Print a typed answer (as JSON, or `text`).
    fn show<T: serde::Serialize>(&self, r: &T, text: impl FnOnce(&T)) {
        let v = serde_json::to_value(r).unwrap_or_default();
        self.print(&v, |_| text(r));
    }

    /// Print a catalog change's result (JSON, or `text`).
    fn revised(&self, r: &Revised, text: impl FnOnce(&Revised)) {
        self.show(r, text);
    }

    /// Print what a typed write answered: its warnings on stderr, then the
    /// result (JSON, or `text`); or, when it became a change request, its
    /// line (`change chg_… pending (0/2 approvals)`), and with `--wait` its
    /// outcome.
    async fn written(
        &self,
        r: WriteOutcome,
        gate: &GateArgs,
        text: impl FnOnce(&WriteResult),
    ) -> Result<()> {
        match r {
            WriteOutcome::Written(r) => {
                print_warnings(&r.warnings);
                self.show(&r, text);
                Ok(())
            }
            WriteOutcome::Requested(c) => self.requested(&c, gate).await,
        }
    }

    /// A write that became a change request: its line, then, as `gate`
    /// asks, forced at once or waited for.
    async fn requested(&self, c: &ChangeRequested, gate: &GateArgs) -> Result<()> {
        self.show(c, |c| println!("{}", requested_line(c)));
        if let (true, Some(reason)) = (gate.force_approval, &gate.reason) {
            return self.force_change(&c.change_id, reason).await;
        }
        if gate.wait {
            self.wait_change(&c.change_id).await?;
        }
        Ok(())
    }

    /// `--force-approval`: apply the request now as an admin, with the
    /// reason (the server answers 403 to anyone else), and print the outcome;
    /// a request that conflicts instead exits 4.
    async fn force_change(&self, id: &str, reason: &str) -> Result<()> {
        let body = ApproveBody {
            note: String::new(),
            force: true,
            reason: Some(reason.to_owned()),
        };
        let r = self.client.approve_change(id, &body).await?;
        self.show(&r, |r| println!("{}", change_line(r)));
        match r.state {
            ChangeState::Applied => Ok(()),
            _ => Err(rejected(refusal(&r))),
        }
    }

    /// Poll a change request until it is applied (Ok) or refused (exit 4).
    async fn wait_change(&self, id: &str) -> Result<()> {
        let mut last = None;
        loop {
            let shown = self.client.change(id).await?;
            let r = shown.change;
            if r.state.is_open() {
                if last != Some((r.state, r.version)) {
                    if last.is_some() && self.output == Format::Text {
                        eprintln!("{}", change_line(&r));
                    }
                    last = Some((r.state, r.version));
                }
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                continue;
            }
            self.show(&r, |r| println!("{}", change_line(r)));
            return match r.state {
                ChangeState::Applied => Ok(()),
                _ => Err(rejected(refusal(&r))),
            };
        }
    }

    async fn dispatch(&self, command: Command) -> Result<()> {
        match command {
            Command::Serve(_) => unreachable!("handled before"),
            Command::Entry(cmd) => self.entry(cmd).await?,
            Command::Approval(cmd) => self.approval(cmd).await?,
            Command::Change(cmd) => self.change(cmd).await?,
            Command::Identity(cmd) => self.identity(cmd).await?,
            Command::Token(cmd) => self.token(cmd).await?,
            Command::App(cmd) => self.app(cmd).await?,
            Command::Env(cmd) => self.env(cmd).await?,
            Command::Schema(cmd) => self.schema(cmd).await?,
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
        }
        Ok(())
    }
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

/// The line of a write that became a change request.
pub(crate) fn requested_line(c: &ChangeRequested) -> String {
    format!(
        "change {} {} ({}/{} approvals)",
        c.change_id,
        c.state.as_str(),
        c.approvals,
        c.required
    )
}

/// `change chg_… pending (1/2 approvals)`, `change chg_… applied (revision 7)`.
pub(crate) fn change_line(r: &ChangeRecord) -> String {
    let n = r.valid_approvals();
    let detail = match (r.state, r.applied_revision) {
        (ChangeState::Applied, Some(rev)) => format!("revision {rev}"),
        (ChangeState::Scheduled, _) => match r.apply_at {
            Some(t) => format!(
                "{n}/{} approvals, applies at {}",
                r.required_approvals,
                t.to_rfc3339()
            ),
            None => format!("{n}/{} approvals", r.required_approvals),
        },
        _ => format!("{n}/{} approvals", r.required_approvals),
    };
    let forced = if r.forced { ", forced" } else { "" };
    format!("change {} {} ({detail}{forced})", r.id, r.state.as_str())
}

/// Why a change request ended without being applied.
fn refusal(r: &ChangeRecord) -> String {
    let mut s = format!("change {} {}", r.id, r.state.as_str());
    if let Some(reason) = r.reason.as_deref().filter(|x| !x.is_empty()) {
        s.push_str(&format!(": {reason}"));
    }
    if let Some(c) = &r.conflict {
        s.push_str(&format!(" ({})", cell_str(c)));
    }
    s
}

/// Writes of flags and segments report rules that can never work.
fn print_warnings(warnings: &[FlagWarning]) {
    for w in warnings {
        eprintln!(
            "warning[{}]: {} {}: {}",
            w.code, w.entry, w.pointer, w.message
        );
    }
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
