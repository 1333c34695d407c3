//! `cairn secret …` and `cairn admin rekey`: secrets are shown as metadata;
//! `secret get` prints the plaintext to a principal allowed to read it.

use std::io::Read;

use anyhow::{anyhow, Result};
use cairn_client::cairn_api::{CreateSecretBody, RekeyBody, RotateSecretBody};
use clap::Subcommand;
use serde_json::Value;

use super::{cell_str, Ctx, ScopeArgs};
use crate::output::table;

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Create a secret from VALUE, - (stdin), or its --generator.
    Create {
        name: String,
        /// The value, or - to read it from stdin (preferred: a command line is visible to others).
        value: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
        /// The server's scheduler rotates it every N days (with a --generator or --hook).
        #[arg(long = "rotation-days", conflicts_with = "rotation_interval")]
        rotation_days: Option<i32>,
        /// Rotate at another interval: 12h, 90m, 45s, 2d.
        #[arg(long = "rotation-interval")]
        rotation_interval: Option<String>,
        /// Keep the previous version readable for N days after a rotation.
        #[arg(long = "grace-days", default_value_t = 0)]
        grace_days: i32,
        /// `random:LEN:CHARSET` (alnum, alpha, numeric, hex, base64url).
        #[arg(long, conflicts_with = "hook")]
        generator: Option<String>,
        /// Rotations POST to this URL, which changes the credential where it is
        /// used and answers `{"value": "…"}` with the new value.
        #[arg(long, requires = "hook_secret")]
        hook: Option<String>,
        /// The secret whose value signs the hook's requests (`Cairn-Signature`).
        #[arg(long = "hook-secret", requires = "hook")]
        hook_secret: Option<String>,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
    },
    /// Print a secret's plaintext (admins only; audited).
    Get {
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Secrets you can see (metadata only).
    List,
    /// A secret's versions and their state (current / previous in grace / retired).
    Versions {
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Rotate now: a new version from the generator (or VALUE / - for stdin).
    Rotate {
        name: String,
        value: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Rotate even if not due (rotation is always immediate from the CLI).
        #[arg(long)]
        force: bool,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
    },
    /// Delete a secret; refused while configuration references it, unless --force.
    Delete {
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short = 'm', long = "message")]
        message: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Re-wrap every secret's data key under the server's current master key.
    Rekey {
        /// File holding the master key being retired (unless the server has it configured).
        #[arg(long = "old-key-file")]
        old_key_file: Option<std::path::PathBuf>,
        #[arg(short = 'm', long = "message", default_value = "rekey")]
        message: String,
    },
}

/// A value from the command line, or from stdin for `-`.
fn secret_value(value: Option<String>) -> Result<Option<String>> {
    match value.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| anyhow!("reading the value from stdin: {e}"))?;
            Ok(Some(s.trim_end_matches(['\r', '\n']).to_owned()))
        }
        _ => Ok(value),
    }
}

impl Ctx {
    pub(super) async fn secret(&self, cmd: SecretCmd) -> Result<()> {
        match cmd {
            SecretCmd::Create {
                name,
                value,
                scope,
                rotation_days,
                rotation_interval,
                grace_days,
                generator,
                hook,
                hook_secret,
                message,
            } => {
                let rotation_seconds = rotation_interval
                    .map(|i| super::parse_age(&i).map(|d| d.num_seconds()))
                    .transpose()?;
                let generator = generator.or(hook.map(|url| format!("hook:{url}")));
                let body = CreateSecretBody {
                    name: name.clone(),
                    app: scope.app,
                    env: scope.env,
                    value: secret_value(value)?,
                    rotation_days,
                    rotation_seconds,
                    grace_days,
                    generator,
                    hook_secret,
                    message,
                };
                let r = self.client.create_secret(&body).await?;
                self.print(&r, |r| {
                    println!(
                        "secret {name}: version {} (revision {})",
                        r["version"], r["revision"]
                    )
                });
            }
            SecretCmd::Get {
                name,
                scope,
                version,
            } => {
                let r = self
                    .client
                    .reveal_secret(scope.at(), &name, version)
                    .await?;
                self.show(&r, |r| println!("{}", r.value));
            }
            SecretCmd::List => {
                let r = self.client.secrets().await?;
                self.print(&r, |r| {
                    let rows: Vec<Value> = r
                        .as_array()
                        .map(|a| a.iter().map(flatten).collect())
                        .unwrap_or_default();
                    table(
                        &Value::Array(rows),
                        &[
                            ("NAME", "name"),
                            ("APP", "app"),
                            ("ENV", "env"),
                            ("VERSION", "current_version"),
                            ("CREATED", "created_at"),
                            ("ROTATED", "rotated_at"),
                            ("NEXT ROTATION", "next_rotation"),
                            ("GENERATOR", "generator"),
                        ],
                    )
                });
            }
            SecretCmd::Versions { name, scope } => {
                let r = self.client.secret(scope.at(), &name).await?;
                self.print(&r, |r| {
                    table(
                        &r["versions"],
                        &[
                            ("VERSION", "version"),
                            ("STATE", "state"),
                            ("CREATED", "created_at"),
                            ("GRACE UNTIL", "grace_until"),
                            ("BY", "actor"),
                            ("KEK", "kek_id"),
                        ],
                    )
                });
            }
            SecretCmd::Rotate {
                name,
                value,
                scope,
                force: _,
                message,
            } => {
                let body = RotateSecretBody {
                    value: secret_value(value)?,
                    message,
                };
                let r = self.client.rotate_secret(scope.at(), &name, &body).await?;
                self.print(&r, |r| {
                    println!(
                        "secret {name}: version {} (revision {})",
                        r["version"], r["revision"]
                    )
                });
            }
            SecretCmd::Delete {
                name,
                scope,
                message,
                force,
            } => {
                let r = self
                    .client
                    .delete_secret(scope.at(), &name, &message, force)
                    .await?;
                self.show(&r, |r| {
                    println!("secret {name} deleted (revision {})", r.revision)
                });
            }
        }
        Ok(())
    }

    pub(super) async fn admin(&self, cmd: AdminCmd) -> Result<()> {
        match cmd {
            AdminCmd::Rekey {
                old_key_file,
                message,
            } => {
                let old_key = old_key_file
                    .map(|p| {
                        std::fs::read_to_string(&p)
                            .map(|s| s.trim().to_owned())
                            .map_err(|e| anyhow!("reading {}: {e}", p.display()))
                    })
                    .transpose()?;
                let body = RekeyBody { old_key, message };
                let r = self.client.rekey(&body).await?;
                self.print(&r, |r| {
                    println!(
                        "re-wrapped {} version(s) under {} ({} already were)",
                        r["rewrapped"],
                        cell_str(&r["kek_id"]),
                        r["unchanged"]
                    )
                });
            }
        }
        Ok(())
    }
}

/// A list row with the policy's fields at the top level.
fn flatten(s: &Value) -> Value {
    let mut row = s.clone();
    if let (Some(obj), Some(policy)) = (row.as_object_mut(), s["policy"].as_object()) {
        for (k, v) in policy {
            obj.insert(k.clone(), v.clone());
        }
    }
    row
}
