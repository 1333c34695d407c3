//! Change requests (DESIGN.md §7): `cairn pending|approve|reject` and
//! `cairn change show|cancel|rebase|edit`. A write to a protected environment
//! becomes one of these; it applies after its approvals.

use anyhow::{bail, Context, Result};
use cairn_client::cairn_api::{
    ApplyCheck, ApproveBody, ChangeEntryBody, ChangeRecord, ChangeShown, ChangeState, ChangesQuery,
    EditChangeBody, EnvChangePreview, RejectBody,
};
use cairn_model::{EntryKind, MergeMode};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::{json, Value};

use super::{change_line, refusal, rejected, Ctx};
use crate::input::read_input;
use crate::output::table;

#[derive(Debug, Subcommand)]
pub enum ApprovalCmd {
    /// Change requests waiting for approval or for their time (pending and scheduled): id,
    /// requester, age, approvals n/N, environments whose approval they need.
    Pending {
        /// Only requests that need this environment's approval.
        #[arg(long)]
        env: Option<String>,
        /// Only requests that change an entry of this app (or of a scope reaching it).
        #[arg(long)]
        app: Option<String>,
        /// Requests in this state instead (pending, scheduled, applied, rejected, cancelled,
        /// conflicted, expired).
        #[arg(long, value_parser = parse_state)]
        state: Option<ChangeState>,
        /// At most this many (newest first).
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Approve a change request (never your own; once per principal). After the last
    /// approval it applies, as one revision (exit 4 if it conflicts instead: an entry moved
    /// since the request; rebase it).
    Approve {
        /// The change request (`chg_…`).
        id: String,
        #[arg(short = 'm', long = "message", default_value = "")]
        note: String,
        /// Admins: apply it now, past the approvals still missing (needs --reason; flagged in
        /// the audit log).
        #[arg(long, requires = "reason")]
        force: bool,
        /// Why the approval is forced.
        #[arg(long, requires = "force")]
        reason: Option<String>,
    },
    /// Reject a change request, with the reason.
    Reject {
        /// The change request (`chg_…`).
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChangeCmd {
    /// Show a change request: each entry's before/after and diff, the resolved view of every
    /// affected (app, env) before and after, and its approvals.
    Show {
        /// The change request (`chg_…`).
        id: String,
    },
    /// Cancel a change request (its requester or an admin).
    Cancel { id: String },
    /// Re-base a conflicted or pending request on the entries' current versions (its
    /// approvals are reset).
    Rebase { id: String },
    /// Replace the content of a pending request (its approvals are reset): --value for a
    /// single-entry request, or --file with a change set (JSON/YAML `{"message", "entries"}`
    /// or an array of entries, - for standard input).
    Edit {
        id: String,
        /// The entry's new value (JSON), for a request of one entry.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        value: Option<String>,
        /// With --value: write this key instead of the request's.
        #[arg(long, conflicts_with = "file")]
        key: Option<String>,
        /// With --value: at this app instead of the request's (`global`: the global scope).
        #[arg(long, conflicts_with = "file")]
        app: Option<String>,
        /// With --value: at this environment instead of the request's (`all`: every one).
        #[arg(long, conflicts_with = "file")]
        env: Option<String>,
        /// A change set: JSON/YAML FILE, or - for standard input.
        #[arg(long)]
        file: Option<String>,
        /// The request's new message.
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
    },
}

fn parse_state(s: &str) -> Result<ChangeState> {
    ChangeState::parse(s).with_context(|| {
        format!(
            "unknown state {s:?}: one of {}",
            ChangeState::ALL.map(ChangeState::as_str).join(", ")
        )
    })
}

/// `45s`, `12m`, `3h`, `5d`.
pub(super) fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - since).num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The rows `cairn pending` prints.
pub(super) fn pending_rows(records: &[ChangeRecord], now: DateTime<Utc>) -> Value {
    Value::Array(
        records
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "state": r.state.as_str(),
                    "requester": r.requester,
                    "age": age(r.created_at, now),
                    "approvals": format!("{}/{}", r.valid_approvals(), r.required_approvals),
                    "environments": r.environments.join(","),
                    "message": r.message,
                })
            })
            .collect(),
    )
}

const PENDING_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("STATE", "state"),
    ("REQUESTER", "requester"),
    ("AGE", "age"),
    ("APPROVALS", "approvals"),
    ("ENVIRONMENTS", "environments"),
    ("MESSAGE", "message"),
];

fn compact(v: Option<&Value>) -> String {
    v.map_or_else(|| "(absent)".to_owned(), Value::to_string)
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}\n"))
        .collect::<String>()
}

/// `check: applies now`, or why it would not, with each schema violation.
fn check_text(check: &ApplyCheck) -> String {
    if check.applies {
        return "check: applies now (planned against today's schemas, references and versions)\n"
            .to_owned();
    }
    let problem = check.problem.as_ref();
    let field = |name: &str| {
        problem
            .and_then(|p| p[name].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut out = format!(
        "check: would NOT apply now: {} ({})\n",
        field("message"),
        field("code")
    );
    let violations = problem
        .and_then(|p| p["violations"].as_array())
        .cloned()
        .unwrap_or_default();
    for v in violations {
        out.push_str(&format!(
            "  {} {}: {} ({})\n",
            v["entry"].as_str().unwrap_or_default(),
            v["pointer"].as_str().unwrap_or_default(),
            v["message"].as_str().unwrap_or_default(),
            v["schema"].as_str().unwrap_or_default()
        ));
    }
    out
}

/// `cairn change show` as text.
pub(super) fn show_text(s: &ChangeShown) -> String {
    let r = &s.change;
    let mut out = format!("{}\n", change_line(r));
    out.push_str(&format!(
        "requested by {} at {}\n",
        r.requester,
        r.created_at.to_rfc3339()
    ));
    if !r.message.is_empty() {
        out.push_str(&format!("message: {}\n", r.message));
    }
    out.push_str(&format!("environments: {}\n", r.environments.join(", ")));
    if let Some(t) = r.apply_at {
        out.push_str(&format!("apply at: {}\n", t.to_rfc3339()));
    }
    if r.state == ChangeState::Pending {
        out.push_str(&format!("expires: {}\n", r.expires_at.to_rfc3339()));
    }
    if let Some(reason) = &r.reason {
        out.push_str(&format!("reason: {reason}\n"));
    }
    if let Some(c) = &r.conflict {
        out.push_str(&format!("conflict: {c}\n"));
    }
    if let Some(check) = &s.preview.check {
        out.push_str(&check_text(check));
    }
    out.push_str("approvals:\n");
    if r.approvals.is_empty() {
        out.push_str("  (none)\n");
    }
    for a in &r.approvals {
        let stale = if a.content_hash != r.content_hash {
            " (of an earlier content: does not count)"
        } else {
            ""
        };
        let note = if a.note.is_empty() {
            String::new()
        } else {
            format!(": {}", a.note)
        };
        out.push_str(&format!(
            "  {} at {}{note}{stale}\n",
            a.principal,
            a.at.to_rfc3339()
        ));
    }
    if let Some(env) = &s.preview.environment {
        // A change of an environment's settings has no entries and no views.
        out.push_str(&env_section(env));
        return out;
    }
    out.push_str("entries:\n");
    for e in &s.preview.entries {
        let moved = if e.base_version != e.current_version {
            format!(
                " — moved since (now version {}): applying conflicts, rebase it",
                e.current_version
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  {} {} ({}), based on version {}{moved}\n",
            e.scope,
            e.key,
            e.kind.as_str(),
            e.base_version
        ));
        out.push_str(&format!("    before: {}\n", compact(e.before.as_ref())));
        out.push_str(&format!("    after:  {}\n", compact(e.after.as_ref())));
        out.push_str(&indent(&e.diff, "    "));
    }
    out.push_str("resolved views (what applications read):\n");
    for v in &s.preview.views {
        let before = Value::Object(v.before.clone().into_iter().collect());
        let after = Value::Object(v.after.clone().into_iter().collect());
        out.push_str(&format!("  {}/{}\n", v.app, v.env));
        out.push_str(&format!("    before: {before}\n"));
        out.push_str(&format!("    after:  {after}\n"));
        let diff = cairn_model::diff_values(&before, &after, "before", "after");
        out.push_str(&indent(&diff.text, "    "));
    }
    out
}

/// A change of an environment's settings: each setting it moves, before
/// and after.
fn env_section(env: &EnvChangePreview) -> String {
    let moved = match env.current_revision {
        Some(now) if now != env.base_revision => {
            format!(" — moved since (now revision {now}): applying conflicts, rebase it")
        }
        None => " — the environment no longer exists".to_owned(),
        _ => String::new(),
    };
    let mut out = format!(
        "environment {} settings, based on revision {}{moved}:\n",
        env.name, env.base_revision
    );
    let (Some(before), Some(after)) = (&env.before, &env.after) else {
        return out;
    };
    let (before, after) = (json!(before), json!(after));
    for name in &env.changed {
        out.push_str(&format!(
            "  {name}: {} -> {}\n",
            before[name.as_str()],
            after[name.as_str()]
        ));
    }
    if env.changed.is_empty() {
        out.push_str("  (no setting changes)\n");
    }
    out
}

/// The body of `change edit --value` for a request of one entry: its key,
/// scope, kind and merge mode unless overridden.
pub(super) fn single_entry_edit(
    record: &ChangeRecord,
    value: Value,
    key: Option<String>,
    app: Option<String>,
    env: Option<String>,
) -> Result<ChangeEntryBody> {
    let entries = record.content["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let [entry] = entries.as_slice() else {
        bail!(
            "change {} has {} entries: give the whole change set with --file",
            record.id,
            entries.len()
        );
    };
    let field = |v: &Value| v.as_str().map(str::to_owned);
    let kind = entry["kind"]
        .as_str()
        .and_then(EntryKind::parse)
        .unwrap_or_default();
    let merge: MergeMode = serde_json::from_value(entry["merge"].clone()).unwrap_or_default();
    Ok(ChangeEntryBody {
        app: app.or_else(|| field(&entry["scope"]["app"])),
        env: env.or_else(|| field(&entry["scope"]["env"])),
        key: key
            .or_else(|| field(&entry["key"]))
            .context("the request's entry has no key: give --key")?,
        value: Some(value),
        delete: false,
        kind,
        merge,
        expected_version: None,
    })
}

/// A change set from a file: `{"message", "entries"}` or an array of entries.
pub(super) fn change_set_file(doc: Value) -> Result<(Option<String>, Vec<ChangeEntryBody>)> {
    let (message, entries) = match doc {
        Value::Array(_) => (None, doc),
        Value::Object(mut o) => (
            o.remove("message")
                .and_then(|m| m.as_str().map(str::to_owned)),
            o.remove("entries")
                .context("the change set has no \"entries\"")?,
        ),
        _ => bail!("a change set is an object with \"entries\" or an array of entries"),
    };
    let entries: Vec<ChangeEntryBody> =
        serde_json::from_value(entries).context("the change set's entries")?;
    Ok((message, entries))
}

impl Ctx {
    pub(super) async fn approval(&self, cmd: ApprovalCmd) -> Result<()> {
        match cmd {
            ApprovalCmd::Pending {
                env,
                app,
                state,
                limit,
            } => {
                let states = match state {
                    Some(s) => vec![s],
                    None => vec![ChangeState::Pending, ChangeState::Scheduled],
                };
                let mut records = Vec::new();
                for s in states {
                    let q = ChangesQuery {
                        state: Some(s),
                        env: env.clone(),
                        app: app.clone(),
                        limit,
                    };
                    records.extend(self.client.changes(&q).await?);
                }
                records.sort_by_key(|r| std::cmp::Reverse(r.created_at));
                if let Some(n) = limit {
                    records.truncate(usize::try_from(n).unwrap_or(usize::MAX));
                }
                self.show(&records, |r| {
                    table(&pending_rows(r, Utc::now()), PENDING_COLUMNS)
                });
            }
            ApprovalCmd::Approve {
                id,
                note,
                force,
                reason,
            } => {
                let body = ApproveBody {
                    note,
                    force,
                    reason,
                };
                let r = self.client.approve_change(&id, &body).await?;
                self.show(&r, |r| println!("{}", change_line(r)));
                if r.state == ChangeState::Conflicted {
                    // Approved, but nothing was written: an entry moved
                    // since the request (or no longer validates).
                    return Err(rejected(format!(
                        "{}: rebase it (cairn change rebase {id})",
                        refusal(&r)
                    )));
                }
            }
            ApprovalCmd::Reject { id, reason } => {
                let r = self
                    .client
                    .reject_change(&id, &RejectBody { reason })
                    .await?;
                self.show(&r, |r| println!("{}", change_line(r)));
            }
        }
        Ok(())
    }

    pub(super) async fn change(&self, cmd: ChangeCmd) -> Result<()> {
        match cmd {
            ChangeCmd::Show { id } => {
                let s = self.client.change(&id).await?;
                self.show(&s, |s| print!("{}", show_text(s)));
            }
            ChangeCmd::Cancel { id } => {
                let r = self.client.cancel_change(&id).await?;
                self.show(&r, |r| println!("{}", change_line(r)));
            }
            ChangeCmd::Rebase { id } => {
                let r = self.client.rebase_change(&id).await?;
                self.show(&r, |r| println!("{}", change_line(r)));
            }
            ChangeCmd::Edit {
                id,
                value,
                key,
                app,
                env,
                file,
                message,
            } => {
                let body = match (value, file) {
                    (_, Some(file)) => {
                        let (from_file, entries) = change_set_file(read_input(&file)?)?;
                        EditChangeBody {
                            message: message.or(from_file),
                            entries,
                        }
                    }
                    (Some(value), None) => {
                        let value: Value =
                            serde_json::from_str(&value).context("--value is not valid JSON")?;
                        let current = self.client.change(&id).await?.change;
                        let entry = single_entry_edit(&current, value, key, app, env)?;
                        EditChangeBody {
                            message,
                            entries: vec![entry],
                        }
                    }
                    (None, None) => bail!("give --value JSON or --file FILE"),
                };
                let r = self.client.edit_change(&id, &body).await?;
                self.show(&r, |r| println!("{}", change_line(r)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;
    use cairn_client::cairn_api::EnvPolicy;

    #[test]
    fn an_environment_change_shows_the_settings_it_moves() {
        let before = EnvPolicy {
            description: "Production".into(),
            protected: true,
            required_approvals: 2,
            auto_approve: false,
            strict_flags: false,
            approvers: vec!["role:admin".into()],
        };
        let after = EnvPolicy {
            protected: false,
            approvers: vec![],
            ..before.clone()
        };
        let env = EnvChangePreview {
            name: "prod".into(),
            base_revision: 7,
            current_revision: Some(9),
            changed: vec!["protected".into(), "approvers".into()],
            before: Some(before),
            after: Some(after),
        };
        assert_eq!(
            env_section(&env),
            "environment prod settings, based on revision 7 — moved since (now revision 9): \
             applying conflicts, rebase it:\n  protected: true -> false\n  approvers: \
             [\"role:admin\"] -> []\n"
        );
    }
}
