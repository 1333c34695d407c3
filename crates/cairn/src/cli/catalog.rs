//! `cairn app|env|schema`: the catalog — apps, environments and their
//! policies, JSON Schemas.

use anyhow::Result;
use cairn_client::cairn_api::{CreateAppBody, EnvBody, RegisterSchemaBody, ValidateBody};
use cairn_client::WriteOutcome;
use clap::Subcommand;

use super::{cell_str, rejected, Ctx, GateArgs, ScopeArgs};
use crate::input::read_input;
use crate::output::table;

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
    /// Who may approve its changes, comma-separated: role:admin, role:operator, role:viewer
    /// (that role or higher in this environment) or user:NAME; "" for anyone who may write
    /// there (the default).
    #[arg(long, value_name = "LIST")]
    pub approvers: Option<String>,
}

impl EnvFlags {
    fn body(&self, name: Option<&str>) -> EnvBody {
        EnvBody {
            name: name.map(str::to_owned),
            description: self.description.clone(),
            protected: self.protected,
            required_approvals: self.required_approvals,
            auto_approve: self.auto_approve,
            strict_flags: self.strict_flags,
            approvers: self.approvers.as_deref().map(approver_list),
            apply_at: None,
        }
    }
}

/// `role:admin, user:ann` → `["role:admin", "user:ann"]`; `""` → `[]`.
fn approver_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    Create {
        name: String,
        #[command(flatten)]
        flags: EnvFlags,
    },
    List,
    /// Change an environment's settings. On a protected environment (not auto-approved) a
    /// change of its policy (anything but --description) needs its approval: it becomes a
    /// change request, printed as `change chg_… pending (0/2 approvals)`, approved by admins
    /// its approvers name.
    Set {
        name: String,
        #[command(flatten)]
        flags: EnvFlags,
        #[command(flatten)]
        gate: GateArgs,
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

impl Ctx {
    pub(super) async fn app(&self, cmd: AppCmd) -> Result<()> {
        match cmd {
            AppCmd::Create { name, description } => {
                let body = CreateAppBody {
                    name: name.clone(),
                    description,
                };
                let r = self.client.create_app(&body).await?;
                self.revised(&r, |r| {
                    println!("app {name} created (revision {})", r.revision)
                });
            }
            AppCmd::List => {
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
        }
        Ok(())
    }

    pub(super) async fn env(&self, cmd: EnvCmd) -> Result<()> {
        match cmd {
            EnvCmd::Create { name, flags } => {
                let r = self.client.create_env(&flags.body(Some(&name))).await?;
                self.revised(&r, |r| {
                    println!("environment {name} created (revision {})", r.revision)
                });
            }
            EnvCmd::Set { name, flags, gate } => {
                let body = EnvBody {
                    apply_at: gate.apply_at,
                    ..flags.body(None)
                };
                match self.client.update_env(&name, &body).await? {
                    WriteOutcome::Written(r) => self.revised(&r, |r| {
                        println!("environment {name} updated (revision {})", r.revision)
                    }),
                    WriteOutcome::Requested(c) => self.requested(&c, &gate).await?,
                }
            }
            EnvCmd::List => {
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
                            ("APPROVERS", "approvers"),
                            ("DESCRIPTION", "description"),
                        ],
                    )
                });
            }
        }
        Ok(())
    }

    pub(super) async fn schema(&self, cmd: SchemaCmd) -> Result<()> {
        match cmd {
            SchemaCmd::Register {
                pattern,
                file,
                app,
                force,
                message,
            } => {
                let schema = read_input(&file)?;
                let body = RegisterSchemaBody {
                    app,
                    pattern: pattern.clone(),
                    schema,
                    force,
                    message,
                };
                let r = self.client.register_schema(&body).await?;
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
            SchemaCmd::List { all } => {
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
            SchemaCmd::Validate { key, file, scope } => {
                let value = read_input(&file)?;
                let body = ValidateBody {
                    app: scope.app,
                    env: scope.env,
                    key: key.clone(),
                    value,
                };
                let r = self.client.validate(&body).await?;
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
        }
        Ok(())
    }
}
