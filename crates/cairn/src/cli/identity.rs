//! `cairn audit|login|token|user`: the audit log, tokens and users.

use anyhow::{bail, Result};
use cairn_client::{ClientError, HttpMethod as Method};
use chrono::Utc;
use clap::Subcommand;
use serde_json::{json, Value};

use super::{cell_str, parse_age, parse_time, rejected, Ctx};
use crate::output::table;

/// Records per `GET /v1/audit` page the CLI asks for.
const AUDIT_PAGE: i64 = 1000;

#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
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

impl Ctx {
    pub(super) async fn identity(&self, cmd: IdentityCmd) -> Result<()> {
        match cmd {
            IdentityCmd::Audit {
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
            IdentityCmd::Audit {
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
                // Every matching record (or the first `--limit`), page after
                // page: the server pages by sequence number (`after`).
                let mut records: Vec<Value> = Vec::new();
                let mut after: Option<i64> = None;
                loop {
                    let want = match limit {
                        Some(l) => (l - records.len() as i64).min(AUDIT_PAGE),
                        None => AUDIT_PAGE,
                    };
                    if want <= 0 {
                        break;
                    }
                    let q = [
                        ("key", key.clone()),
                        ("actor", actor.clone()),
                        ("action", action.clone()),
                        ("app", app.clone()),
                        ("env", env.clone()),
                        ("since", since.map(|t| t.to_rfc3339())),
                        ("until", until.map(|t| t.to_rfc3339())),
                        ("limit", Some(want.to_string())),
                        ("after", after.map(|s| s.to_string())),
                    ];
                    let page = self.get("/v1/audit", &q).await?;
                    let page = page.as_array().cloned().unwrap_or_default();
                    let full = page.len() as i64 == want;
                    after = page.last().and_then(|r| r["seq"].as_i64());
                    records.extend(page);
                    if !full || after.is_none() {
                        break;
                    }
                }
                let r = Value::Array(records);
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
            IdentityCmd::Login { name, ttl } => {
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
        }
        Ok(())
    }

    pub(super) async fn token(&self, cmd: TokenCmd) -> Result<()> {
        match cmd {
            TokenCmd::Create {
                name,
                role,
                sdk,
                app,
                env,
                ttl,
            } => {
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
            TokenCmd::List => {
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
            TokenCmd::Revoke { id } => {
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
    pub(super) async fn user(&self, cmd: UserCmd) -> Result<()> {
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
                let r = self.patch_user(&name, &body).await?;
                self.print(&r, |r| {
                    println!(
                        "user {name}: granted {role} on {app}/{env} (revision {})",
                        r["revision"]
                    )
                });
            }
            UserCmd::Passwd { name } => {
                let body = json!({"password": read_password()?});
                let r = self.patch_user(&name, &body).await?;
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

    async fn patch_user(&self, name: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        self.send(Method::PATCH, &format!("/v1/users/{name}"), &[], Some(body))
            .await
    }

    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let body = json!({"disabled": disabled});
        let r = self.patch_user(name, &body).await?;
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
