//! `cairn get|set|delete|list|resolve|versions|diff|rollback`: entries at one
//! scope, their history, and the resolved configuration of (app, env).

use anyhow::{bail, Result};
use cairn_client::cairn_api::{RollbackBody, SetEntryBody, WriteResult};
use cairn_client::key_path;
use cairn_model::{EntryKind, MergeMode};
use clap::Subcommand;

use super::{cell_str, Ctx, GateArgs, ScopeArgs};
use crate::input::read_value;
use crate::output::{self, table};

#[derive(Debug, Subcommand)]
pub enum EntryCmd {
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
        #[command(flatten)]
        gate: GateArgs,
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
        #[command(flatten)]
        gate: GateArgs,
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
        #[command(flatten)]
        gate: GateArgs,
    },
}

/// The new version of a one-entry write.
fn version(r: &WriteResult) -> i64 {
    r.changes.first().map_or(0, |c| c.version)
}

impl Ctx {
    pub(super) async fn entry(&self, cmd: EntryCmd) -> Result<()> {
        match cmd {
            EntryCmd::Get {
                key,
                scope,
                version,
                revision,
            } => {
                let e = self
                    .client
                    .entry(scope.at(), &key, version, revision)
                    .await?;
                self.show(&e, |e| {
                    output::json(e.value.as_ref().unwrap_or(&serde_json::Value::Null))
                });
            }
            EntryCmd::Set {
                key,
                file,
                value,
                scope,
                message,
                expect_version,
                kind,
                replace,
                gate,
            } => {
                let value = read_value(value.as_deref(), file.as_deref())?;
                let Some(kind) = EntryKind::parse(&kind) else {
                    bail!("--kind must be config, flag or segment (got {kind:?})");
                };
                let body = SetEntryBody {
                    value,
                    kind,
                    merge: if replace {
                        MergeMode::Replace
                    } else {
                        MergeMode::Merge
                    },
                    message,
                    expected_version: expect_version,
                    apply_at: gate.apply_at,
                };
                let r = self.client.put_entry(scope.at(), &key, &body).await?;
                self.written(r, &gate, |r| {
                    println!("{key}: version {} (revision {})", version(r), r.revision)
                })
                .await?;
            }
            EntryCmd::Delete {
                key,
                scope,
                message,
                expect_version,
                gate,
            } => {
                let r = self
                    .client
                    .delete_entry_at(scope.at(), &key, &message, expect_version, gate.apply_at)
                    .await?;
                self.written(r, &gate, |r| {
                    println!(
                        "{key}: deleted as version {} (revision {})",
                        version(r),
                        r.revision
                    )
                })
                .await?;
            }
            EntryCmd::List {
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
            EntryCmd::Resolve {
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
            EntryCmd::Versions { key, scope } => {
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
            EntryCmd::Diff {
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
            EntryCmd::Rollback {
                key,
                version,
                scope,
                message,
                expect_version,
                gate,
            } => {
                let body = RollbackBody {
                    version,
                    message,
                    expected_version: expect_version,
                    apply_at: gate.apply_at,
                };
                let r = self.client.rollback(scope.at(), &key, &body).await?;
                self.written(r, &gate, |r| {
                    println!(
                        "{key}: rolled back to the value of version {} as version {} (revision {})",
                        body.version,
                        self::version(r),
                        r.revision
                    )
                })
                .await?;
            }
        }
        Ok(())
    }
}
