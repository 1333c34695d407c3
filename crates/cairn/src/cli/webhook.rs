//! `cairn webhook …`: subscriptions (admins) and their delivery log.

use std::io::Read;

use anyhow::{anyhow, Result};
use cairn_client::cairn_api::{DeliveriesQuery, DeliveryAttempt, DeliveryRecord};
use clap::Subcommand;
use serde_json::{json, Value};

use super::{cell_str, Ctx};
use crate::output::table;

#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Subscribe URL to event types; deliveries are signed with the secret
    /// (`Cairn-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`).
    Create {
        #[arg(long)]
        url: String,
        /// Comma-separated event types (config.changed, flag.changed, segment.changed,
        /// schema.changed, secret.created, secret.rotated, secret.deleted,
        /// secret.rotation_failed, app.created, env.changed, change.requested, change.approved,
        /// change.rejected, change.applied, change.conflicted, change.expired), or `*` for all.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Only events affecting this app (global changes included).
        #[arg(long)]
        app: Option<String>,
        /// Only events affecting this environment (all-environment changes included).
        #[arg(long)]
        env: Option<String>,
        /// The signing secret (at least 16 characters), or - to read it from
        /// stdin (preferred: a command line is visible to others). Never shown again.
        #[arg(long)]
        secret: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every subscription.
    List,
    /// Unsubscribe (pending deliveries are cancelled; the log stays).
    Delete { id: String },
    /// The delivery log of a subscription, newest first, with every attempt.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

fn read_secret(secret: String) -> Result<String> {
    if secret != "-" {
        return Ok(secret);
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| anyhow!("reading the secret from stdin: {e}"))?;
    Ok(s.trim_end_matches(['\r', '\n']).to_owned())
}

/// One line per attempt: `500 HTTP 500`, `- target … refused`.
fn attempts(log: &[DeliveryAttempt]) -> String {
    log.iter()
        .map(|x| match (x.status, x.error.as_deref()) {
            (Some(n), None) => n.to_string(),
            (Some(n), Some(e)) if e == format!("HTTP {n}") => n.to_string(),
            (Some(n), Some(e)) => format!("{n} {e}"),
            (None, Some(e)) => e.to_owned(),
            (None, None) => "?".into(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A delivery as a table row, its attempts in `tries`.
fn row(d: &DeliveryRecord) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["tries"] = json!(attempts(&d.attempt_log));
    v
}

impl Ctx {
    pub(super) async fn webhook(&self, cmd: WebhookCmd) -> Result<()> {
        match cmd {
            WebhookCmd::Create {
                url,
                events,
                app,
                env,
                secret,
                description,
            } => {
                let body = json!({
                    "url": url, "events": events, "app": app, "env": env,
                    "secret": read_secret(secret)?, "description": description,
                });
                let r = self.client.create_webhook(&body).await?;
                self.print(&r, |r| {
                    println!("webhook {} created", cell_str(&r["id"]));
                });
            }
            WebhookCmd::List => {
                let r = self.client.webhooks().await?;
                self.print(&r, |r| {
                    let rows: Vec<Value> = r
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|w| {
                                    let mut w = w.clone();
                                    w["events"] = json!(w["events"]
                                        .as_array()
                                        .map(|e| e.iter().map(cell_str).collect::<Vec<_>>())
                                        .unwrap_or_default()
                                        .join(","));
                                    w
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    table(
                        &Value::Array(rows),
                        &[
                            ("ID", "id"),
                            ("URL", "url"),
                            ("EVENTS", "events"),
                            ("APP", "app"),
                            ("ENV", "env"),
                            ("CREATED", "created_at"),
                        ],
                    )
                });
            }
            WebhookCmd::Delete { id } => {
                let r = self.client.delete_webhook(&id).await?;
                self.show(&r, |_| println!("webhook {id} deleted"));
            }
            WebhookCmd::Deliveries { id, limit } => {
                let q = DeliveriesQuery { limit: Some(limit) };
                let r = self.client.deliveries(&id, &q).await?;
                self.show(&r, |r| {
                    let rows: Vec<Value> = r.iter().map(row).collect();
                    table(
                        &Value::Array(rows),
                        &[
                            ("ID", "id"),
                            ("EVENT", "event"),
                            ("SEQ", "audit_seq"),
                            ("STATUS", "status"),
                            ("ATTEMPTS", "attempts"),
                            ("LAST", "last_attempt_at"),
                            ("NEXT", "next_attempt_at"),
                            ("RESULTS", "tries"),
                        ],
                    )
                });
            }
        }
        Ok(())
    }
}
