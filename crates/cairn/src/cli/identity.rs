//! `cairn audit|login|token|user`: the audit log, tokens and users.

use anyhow::{bail, Result};
use cairn_client::cairn_api::{
    AuditQuery, AuditRecord, Binding, CreateTokenBody, CreateUserBody, LoginBody, Role,
    UpdateUserBody,
};
use cairn_client::ClientError;
use chrono::Utc;
use clap::Subcommand;

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
                let r = self.client.verify_audit().await?;
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
                let mut q = AuditQuery {
                    key,
                    actor,
                    action,
                    app,
                    env,
                    since: since.as_deref().map(parse_time).transpose()?,
                    until: until.as_deref().map(parse_time).transpose()?,
                    after: None,
                    limit: None,
                };
                // Every matching record (or the first `--limit`), page after
                // page, as long as the server says another follows.
                let mut records: Vec<AuditRecord> = Vec::new();
                loop {
                    let want = match limit {
                        Some(l) => (l - records.len() as i64).min(AUDIT_PAGE),
                        None => AUDIT_PAGE,
                    };
                    if want <= 0 {
                        break;
                    }
                    q.limit = Some(want);
                    let page = self.client.audit(&q).await?;
                    records.extend(page.records);
                    match page.next {
                        Some(after) => q.after = Some(after),
                        None => break,
                    }
                }
                self.show(&records, |r| {
                    table(
                        &serde_json::to_value(r).unwrap_or_default(),
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
                let body = LoginBody {
                    name,
                    password,
                    ttl_seconds,
                };
                let r = self.client.login(&body).await?;
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
                    .map(|d| Utc::now() + d);
                let role = match (sdk, role) {
                    (true, _) => Role::Sdk,
                    (false, Some(role)) => parse_role(&role)?,
                    (false, None) => bail!("give --role or --sdk"),
                };
                let body = CreateTokenBody {
                    name,
                    role,
                    app,
                    env,
                    expires_at,
                };
                let r = self.client.create_token(&body).await?;
                self.print(&r, |r| {
                    println!(
                        "token {} created; it is shown only this once:\n\n    {}\n",
                        cell_str(&r["id"]),
                        cell_str(&r["token"])
                    )
                });
            }
            TokenCmd::List => {
                let r = self.client.tokens().await?;
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
                let r = self.client.revoke_token(&id).await?;
                self.revised(&r, |r| {
                    println!("token {id} revoked (revision {})", r.revision)
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
                let role = parse_role(&role)?;
                let password = read_password()?;
                let body = CreateUserBody {
                    name: name.clone(),
                    password,
                    bindings: vec![Binding { role, app, env }],
                };
                let r = self.client.create_user(&body).await?;
                self.revised(&r, |r| {
                    println!("user {name} created (revision {})", r.revision)
                });
            }
            UserCmd::Grant {
                name,
                role,
                app,
                env,
            } => {
                let binding = Binding {
                    role: parse_role(&role)?,
                    app,
                    env,
                };
                let users = self.client.users().await?;
                let user =
                    users
                        .into_iter()
                        .find(|u| u.name == name)
                        .ok_or_else(|| ClientError::Api {
                            status: 404,
                            problem: Box::new(cairn_client::Problem {
                                detail: format!("user {name} not found"),
                                ..Default::default()
                            }),
                        })?;
                let mut bindings = user.bindings;
                bindings.push(binding.clone());
                let body = UpdateUserBody {
                    bindings: Some(bindings),
                    ..UpdateUserBody::default()
                };
                let r = self.client.update_user(&name, &body).await?;
                self.revised(&r, |r| {
                    println!(
                        "user {name}: granted {} on {}/{} (revision {})",
                        binding.role.as_str(),
                        binding.app,
                        binding.env,
                        r.revision
                    )
                });
            }
            UserCmd::Passwd { name } => {
                let body = UpdateUserBody {
                    password: Some(read_password()?),
                    ..UpdateUserBody::default()
                };
                let r = self.client.update_user(&name, &body).await?;
                self.revised(&r, |r| {
                    println!("user {name}: password changed (revision {})", r.revision)
                });
            }
            UserCmd::Disable { name } => self.set_disabled(&name, true).await?,
            UserCmd::Enable { name } => self.set_disabled(&name, false).await?,
            UserCmd::List => {
                let users = self.client.users().await?;
                self.show(&users, |r| {
                    table(
                        &serde_json::to_value(r).unwrap_or_default(),
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
        let body = UpdateUserBody {
            disabled: Some(disabled),
            ..UpdateUserBody::default()
        };
        let r = self.client.update_user(name, &body).await?;
        self.revised(&r, |r| {
            println!(
                "user {name} {} (revision {})",
                if disabled { "disabled" } else { "enabled" },
                r.revision
            )
        });
        Ok(())
    }
}

/// `--role`: viewer, operator, admin or sdk.
fn parse_role(role: &str) -> Result<Role> {
    match Role::parse(role) {
        Some(r) => Ok(r),
        None => bail!("--role must be viewer, operator, admin or sdk (got {role:?})"),
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
