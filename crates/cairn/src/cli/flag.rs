//! `cairn flag …`: feature flags (flagd definitions stored as entries of kind
//! `flag`, segments as kind `segment`), evaluated through OFREP.

use anyhow::{bail, Result};
use cairn_client::{ClientError, HttpMethod as Method};
use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::{cell_str, Ctx, ScopeArgs};
use crate::input::{read_file, read_value};
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
    /// Import a whole flagd document as one change set: its flags, and its `$evaluators` as
    /// segments (document metadata is copied into each flag's metadata).
    Import {
        file: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
    },
    /// Print the flagd document of (app, env) (what flagd syncs from the server).
    Export {
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
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

/// A flagd document's flags and `$evaluators` as change-set entries at one scope.
fn import_entries(doc: &Value, scope: &ScopeArgs) -> Result<Vec<Value>> {
    let Some(obj) = doc.as_object() else {
        bail!("a flagd document must be a JSON object");
    };
    let Some(flags) = obj.get("flags").and_then(Value::as_object) else {
        bail!("a flagd document needs `flags`, an object of flag key to definition");
    };
    let set_meta = obj
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let entry = |key: &str, kind: &str, value: Value| json!({"app": scope.app, "env": scope.env, "key": key, "kind": kind, "value": value});
    let mut out = Vec::new();
    if let Some(evaluators) = obj.get("$evaluators").and_then(Value::as_object) {
        for (name, rule) in evaluators {
            out.push(entry(name, "segment", rule.clone()));
        }
    }
    for (key, def) in flags {
        let mut def = def.clone();
        if let (false, Some(d)) = (set_meta.is_empty(), def.as_object_mut()) {
            // flagd: flags inherit the document's metadata; their own keys win.
            let mut meta: Map<String, Value> = set_meta.clone();
            if let Some(own) = d.get("metadata").and_then(Value::as_object) {
                meta.extend(own.clone());
            }
            d.insert("metadata".into(), Value::Object(meta));
        }
        out.push(entry(key, "flag", def));
    }
    Ok(out)
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
            } => {
                let value = read_value(value.as_deref(), file.as_deref())?;
                self.put_flag(&key, &scope, value, &message, expect_version)
                    .await?;
            }
            FlagCmd::Get { key, scope } => {
                let e = self
                    .get(&format!("/v1/entries/{key}"), &scope.query())
                    .await?;
                if e["kind"] != "flag" {
                    return Err(not_found(format!(
                        "{key} is not a flag (kind {})",
                        e["kind"]
                    )));
                }
                self.print(&e, |e| output::json(&e["value"]));
            }
            FlagCmd::List { app, env } => {
                let r = self.get("/v1/flags", &[("app", app), ("env", env)]).await?;
                self.print(&r, |r| table(r, LIST_COLUMNS));
            }
            FlagCmd::Enable {
                key,
                app,
                env,
                message,
            } => self.set_state(&key, &app, &env, "ENABLED", message).await?,
            FlagCmd::Disable {
                key,
                app,
                env,
                message,
            } => {
                self.set_state(&key, &app, &env, "DISABLED", message)
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
                let r = self
                    .send(
                        Method::POST,
                        &format!("/v1/apps/{app}/envs/{env}/ofrep/v1/evaluate/flags/{key}"),
                        &[],
                        Some(&json!({ "context": context })),
                    )
                    .await?;
                self.print(&r, |r| {
                    let value = r
                        .get("value")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "(none: the caller's default)".into());
                    println!("value:   {value}");
                    println!("variant: {}", cell_str(&r["variant"]));
                    println!("reason:  {}", cell_str(&r["reason"]));
                });
            }
            FlagCmd::Import {
                file,
                scope,
                message,
            } => {
                let doc = read_file(std::path::Path::new(&file))?;
                let entries = import_entries(&doc, &scope)?;
                let n = entries.len();
                let message = if message.is_empty() {
                    format!("import flagd document {file}")
                } else {
                    message
                };
                let body = json!({"message": message, "entries": entries});
                let r = self
                    .send(Method::POST, "/v1/changes", &[], Some(&body))
                    .await?;
                self.print(&r, |r| {
                    println!("imported {n} entries (revision {})", r["revision"])
                });
            }
            FlagCmd::Export { app, env } => {
                let r = self
                    .get(&format!("/v1/apps/{app}/envs/{env}/flagd.json"), &[])
                    .await?;
                // The document is the output, in every format.
                output::json(&r);
            }
            FlagCmd::Stale { days, app, env } => {
                let r = self
                    .get(
                        "/v1/flags/stale",
                        &[("app", app), ("env", env), ("days", Some(days.to_string()))],
                    )
                    .await?;
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
    ) -> Result<()> {
        let mut body =
            json!({"value": value, "message": message, "kind": "flag", "merge": "replace"});
        if let Some(v) = expect_version {
            body["expected_version"] = json!(v);
        }
        let r = self
            .send(
                Method::PUT,
                &format!("/v1/entries/{key}"),
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
        Ok(())
    }

    /// Write the flag as (app, env) resolves it, with `state` changed, at (app, env).
    async fn set_state(
        &self,
        key: &str,
        app: &str,
        env: &str,
        state: &str,
        message: String,
    ) -> Result<()> {
        let doc = self
            .get(&format!("/v1/apps/{app}/envs/{env}/flagd.json"), &[])
            .await?;
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
        let current = match self
            .get(&format!("/v1/entries/{key}"), &scope.query())
            .await
        {
            Ok(e) => e["version"].as_i64().unwrap_or(0),
            Err(e)
                if e.downcast_ref::<ClientError>()
                    .and_then(ClientError::status)
                    == Some(404) =>
            {
                0
            }
            Err(e) => return Err(e),
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
        self.put_flag(key, &scope, def, &message, Some(current))
            .await
    }
}
