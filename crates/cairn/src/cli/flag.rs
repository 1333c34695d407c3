//! `cairn flag …`: feature flags (flagd definitions stored as entries of kind
//! `flag`, segments as kind `segment`), evaluated through OFREP.

use anyhow::{bail, Result};
use cairn_client::cairn_api::{
    ChangeEntryBody, ChangeSetBody, FlagsQuery, OfrepRequest, SetEntryBody, StaleQuery,
};
use cairn_client::ClientError;
use cairn_model::{EntryKind, MergeMode, FLAG_SET_KEY};
use clap::Subcommand;
use serde_json::{json, Value};

use super::{cell_str, Ctx, GateArgs, ScopeArgs};
use crate::input::{read_input, read_value};
use crate::output::{self, table};

#[derive(Debug, Subcommand)]
pub enum FlagCmd {
    /// Write a flag definition (flagd format) from --value, a JSON/YAML FILE, or - (stdin).
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
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Read a flag definition at one scope.
    Get {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Flags of (app, env), or of every (app, env) you can read: where each is set, owner,
    /// created, last evaluated, evaluation counts.
    List {
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        env: Option<String>,
    },
    /// Enable a flag in (app, env): a new version at that scope.
    Enable {
        key: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Disable a flag in (app, env): a new version at that scope.
    Disable {
        key: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Evaluate a flag in (app, env) (through OFREP); prints value, variant and reason.
    Eval {
        key: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
        /// The evaluation context, a JSON object (`targetingKey` optional).
        #[arg(long, default_value = "{}")]
        context: String,
    },
    /// Import a whole flagd document (a FILE, or - for standard input) as one change set:
    /// its flags, its `$evaluators` as segments, and its `metadata` as the scope's flag-set
    /// metadata (which every flag inherits; a flag's own keys win). `flag export` gives the
    /// same document back.
    Import {
        file: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Print the flagd document of (app, env) (what flagd syncs from the server).
    Export {
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
    },
    /// Report rules that can only ever yield null or an error (wrong argument counts, unknown
    /// operators, `$ref`s to missing segments, zero weights): of a flagd FILE (or - for
    /// standard input), checked offline, or of the flags the server serves to (app, env) —
    /// or every (app, env) you can read. Exit 0: clean; 2: warnings; 1: errors.
    Lint {
        file: Option<String>,
        #[arg(long, conflicts_with = "file")]
        app: Option<String>,
        #[arg(long, conflicts_with = "file")]
        env: Option<String>,
    },
    /// Flags not evaluated for N days.
    Stale {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        env: Option<String>,
    },
}

fn not_found(detail: String) -> anyhow::Error {
    ClientError::Api {
        status: 404,
        problem: Box::new(cairn_client::Problem {
            detail,
            ..Default::default()
        }),
    }
    .into()
}

const LIST_COLUMNS: &[(&str, &str)] = &[
    ("APP", "app"),
    ("ENV", "env"),
    ("KEY", "key"),
    ("STATE", "state"),
    ("SET AT", "scope"),
    ("VERSION", "version"),
    ("OWNER", "owner"),
    ("CREATED", "created_at"),
    ("LAST EVALUATED", "last_evaluated"),
    ("EVALUATIONS", "evaluations"),
];

/// A flagd document's flags, `$evaluators` and `metadata` as change-set entries
/// at one scope: kinds `flag`, `segment` and `flagset` (at the empty key).
fn import_entries(doc: &Value, scope: &ScopeArgs) -> Result<Vec<ChangeEntryBody>> {
    let Some(obj) = doc.as_object() else {
        bail!("a flagd document must be a JSON object");
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["$schema", "flags", "$evaluators", "metadata"].contains(&k.as_str()))
    {
        bail!("a flagd document has no member `{unknown}` (flags, $evaluators, metadata)");
    }
    let Some(flags) = obj.get("flags").and_then(Value::as_object) else {
        bail!("a flagd document needs `flags`, an object of flag key to definition");
    };
    let entry = |key: &str, kind: EntryKind, value: Value| ChangeEntryBody {
        app: scope.app.clone(),
        env: scope.env.clone(),
        key: key.to_owned(),
        value: Some(value),
        delete: false,
        kind,
        merge: MergeMode::Merge,
        expected_version: None,
    };
    let mut out = Vec::new();
    match obj.get("$evaluators") {
        None | Some(Value::Null) => {}
        Some(Value::Object(evaluators)) => {
            for (name, rule) in evaluators {
                out.push(entry(name, EntryKind::Segment, rule.clone()));
            }
        }
        Some(_) => bail!("`$evaluators` must be an object of name to rule"),
    }
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(meta) => out.push(entry(FLAG_SET_KEY, EntryKind::FlagSet, meta.clone())),
    }
    for (key, def) in flags {
        out.push(entry(key, EntryKind::Flag, def.clone()));
    }
    Ok(out)
}

/// Print lint findings; the exit code they call for (0 clean, 2 warnings, 1 errors).
fn lint_exit(warnings: &[(String, String, String, String)], errors: &[(String, String)]) -> i32 {
    for (entry, pointer, code, message) in warnings {
        eprintln!("warning[{code}]: {entry} {pointer}: {message}");
    }
    for (entry, message) in errors {
        eprintln!("error: {entry}: {message}");
    }
    match (errors.is_empty(), warnings.is_empty()) {
        (false, _) => 1,
        (true, false) => 2,
        (true, true) => 0,
    }
}

impl Ctx {
    pub(super) async fn flag(&self, cmd: FlagCmd) -> Result<()> {
        match cmd {
            FlagCmd::Set {
                key,
                file,
                value,
                scope,
                message,
                expect_version,
                gate,
            } => {
                let value = read_value(value.as_deref(), file.as_deref())?;
                self.put_flag(&key, &scope, value, &message, expect_version, &gate)
                    .await?;
            }
            FlagCmd::Get { key, scope } => {
                let e = self.client.entry(scope.at(), &key, None, None).await?;
                if e.kind != EntryKind::Flag {
                    return Err(not_found(format!(
                        "{key} is not a flag (kind \"{}\")",
                        e.kind.as_str()
                    )));
                }
                self.show(&e, |e| {
                    output::json(e.value.as_ref().unwrap_or(&Value::Null))
                });
            }
            FlagCmd::List { app, env } => {
                let r = self.client.flags(&FlagsQuery { app, env }).await?;
                self.print(&r, |r| table(r, LIST_COLUMNS));
            }
            FlagCmd::Enable {
                key,
                app,
                env,
                message,
                gate,
            } => {
                self.set_state(&key, &app, &env, "ENABLED", message, &gate)
                    .await?
            }
            FlagCmd::Disable {
                key,
                app,
                env,
                message,
                gate,
            } => {
                self.set_state(&key, &app, &env, "DISABLED", message, &gate)
                    .await?
            }
            FlagCmd::Eval {
                key,
                app,
                env,
                context,
            } => {
                let context: Value = serde_json::from_str(&context)
                    .map_err(|e| anyhow::anyhow!("--context is not valid JSON: {e}"))?;
                let request = OfrepRequest {
                    context: Some(context),
                };
                let r = self
                    .client
                    .evaluate_flag(&app, &env, &key, &request)
                    .await?;
                self.show(&r, |r| {
                    let value = r
                        .value
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "(none: the caller's default)".into());
                    println!("value:   {value}");
                    println!("variant: {}", r.variant.as_deref().unwrap_or(""));
                    println!("reason:  {}", r.reason);
                });
            }
            FlagCmd::Import {
                file,
                scope,
                message,
                gate,
            } => {
                let doc = read_input(&file)?;
                let entries = import_entries(&doc, &scope)?;
                let n = entries.len();
                let message = if message.is_empty() {
                    format!("import flagd document {file}")
                } else {
                    message
                };
                let body = ChangeSetBody {
                    message,
                    entries,
                    apply_at: gate.apply_at,
                };
                let r = self.client.change_set(&body).await?;
                self.written(r, &gate, |r| {
                    println!("imported {n} entries (revision {})", r.revision)
                })
                .await?;
            }
            FlagCmd::Lint {
                file: Some(file), ..
            } => {
                let doc = read_input(&file)?;
                let (warnings, errors) = match cairn_eval::lint_document(&doc) {
                    Ok(ws) => {
                        let ws = ws
                            .into_iter()
                            .map(|w| (file.clone(), w.path, w.code.as_str().to_owned(), w.message));
                        (ws.collect::<Vec<_>>(), vec![])
                    }
                    Err(e) => (vec![], vec![(file.clone(), e.to_string())]),
                };
                let report = json!({
                    "warnings": warnings.iter().map(|(_, p, c, m)| json!({"pointer": p, "code": c, "message": m})).collect::<Vec<_>>(),
                    "errors": errors.iter().map(|(_, m)| json!({"message": m})).collect::<Vec<_>>(),
                });
                let code = lint_exit(&warnings, &errors);
                self.print(&report, |_| {
                    if code == 0 {
                        println!("{file}: no warnings")
                    }
                });
                std::process::exit(code);
            }
            FlagCmd::Lint { app, env, .. } => {
                let r = self.client.lint_flags(&FlagsQuery { app, env }).await?;
                let mut warnings = Vec::new();
                let mut errors = Vec::new();
                for view in r.as_array().into_iter().flatten() {
                    for w in view["warnings"].as_array().into_iter().flatten() {
                        warnings.push((
                            format!(
                                "{}/{} {}",
                                view["app"].as_str().unwrap_or(""),
                                view["env"].as_str().unwrap_or(""),
                                cell_str(&w["entry"])
                            ),
                            cell_str(&w["pointer"]),
                            cell_str(&w["code"]),
                            cell_str(&w["message"]),
                        ));
                    }
                    for e in view["errors"].as_array().into_iter().flatten() {
                        errors.push((
                            format!(
                                "{}/{} {}",
                                view["app"].as_str().unwrap_or(""),
                                view["env"].as_str().unwrap_or(""),
                                cell_str(&e["key"])
                            ),
                            cell_str(&e["message"]),
                        ));
                    }
                }
                let code = lint_exit(&warnings, &errors);
                self.print(&r, |_| {
                    if code == 0 {
                        println!("no warnings")
                    }
                });
                std::process::exit(code);
            }
            FlagCmd::Export { app, env } => {
                let r = self.client.flagd_document(&app, &env).await?;
                // The document is the output, in every format.
                output::json(&r);
            }
            FlagCmd::Stale { days, app, env } => {
                let q = StaleQuery {
                    app,
                    env,
                    days: Some(days),
                };
                let r = self.client.stale_flags(&q).await?;
                self.print(&r, |r| table(r, LIST_COLUMNS));
            }
        }
        Ok(())
    }

    async fn put_flag(
        &self,
        key: &str,
        scope: &ScopeArgs,
        value: Value,
        message: &str,
        expect_version: Option<i64>,
        gate: &GateArgs,
    ) -> Result<()> {
        let body = SetEntryBody {
            value,
            kind: EntryKind::Flag,
            merge: MergeMode::Replace,
            message: message.to_owned(),
            expected_version: expect_version,
            apply_at: gate.apply_at,
        };
        let r = self.client.put_entry(scope.at(), key, &body).await?;
        self.written(r, gate, |r| {
            let version = r.changes.first().map_or(0, |c| c.version);
            println!("{key}: version {version} (revision {})", r.revision)
        })
        .await
    }

    /// Write the flag as (app, env) resolves it, with `state` changed, at (app, env).
    async fn set_state(
        &self,
        key: &str,
        app: &str,
        env: &str,
        state: &str,
        message: String,
        gate: &GateArgs,
    ) -> Result<()> {
        let doc = self.client.flagd_document(app, env).await?;
        let Some(mut def) = doc["flags"].get(key).cloned() else {
            return Err(not_found(format!("flag {key} not found in {app}/{env}")));
        };
        if def["state"] == state {
            self.print(
                &json!({"key": key, "state": state, "changed": false}),
                |_| println!("{key} is already {state} in {app}/{env}"),
            );
            return Ok(());
        }
        def["state"] = json!(state);
        let scope = ScopeArgs {
            app: Some(app.to_owned()),
            env: Some(env.to_owned()),
        };
        // Compare-and-set against the version at (app, env), if there is one.
        let current = match self.client.entry(scope.at(), key, None, None).await {
            Ok(e) => e.version,
            Err(e) if e.status() == Some(404) => 0,
            Err(e) => return Err(e.into()),
        };
        let message = if message.is_empty() {
            let verb = if state == "ENABLED" {
                "enable"
            } else {
                "disable"
            };
            format!("{verb} {key}")
        } else {
            message
        };
        self.put_flag(key, &scope, def, &message, Some(current), gate)
            .await
    }
}
