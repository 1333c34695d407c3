//! Reports from SDK instances (DESIGN.md §9 applied state, §4 evaluation
//! counts): which revision/checksum an instance applied, and how often it
//! evaluated each flag variant locally.
//!
//! Reports are telemetry, not mutations: frequent (every instance, every few
//! seconds), idempotent for the applied state (the last report wins) and
//! additive for counts. They do not allocate a revision and write no audit
//! record — like the evaluation counts of OFREP, which they join in
//! [`crate::flags::Stats`]. Access is still checked (`Resolve` at the view,
//! as for reading it) and every refusal is audited by the server as usual.

use cairn_model::{validate_key, Revision};
use cairn_store::AppliedState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::identity::policy::Action;
use crate::telemetry::Telemetry;
use crate::{Error, Principal, Result};

/// Most evaluation counts in one report.
pub const MAX_REPORT_COUNTS: usize = 1000;
/// Largest count of one (flag, variant) in one report.
pub const MAX_REPORT_COUNT: i64 = 1_000_000_000;

/// One (flag, variant) evaluation count, counted by the SDK since its last report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationCount {
    pub flag: String,
    /// The variant evaluated to; `""` or absent: no variant (the code default or an error).
    #[serde(default)]
    pub variant: String,
    /// At least 0.
    pub count: i64,
}

/// What an SDK instance reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The instance (stable for the life of a process): `[A-Za-z0-9._:@/-]`, at most 128 bytes.
    pub instance: String,
    /// Revision of the resolved view the instance applied.
    pub revision: Revision,
    /// Checksum of that view (`sha256:` and 64 hex digits).
    pub checksum: String,
    /// Evaluations since the last report.
    #[serde(default)]
    pub evaluations: Vec<EvaluationCount>,
}

/// What the server did with a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportAccepted {
    pub app: String,
    pub env: String,
    /// Evaluations added to the flags' counts.
    pub counted: u64,
    /// `flag` or `flag/variant` entries not counted: not a flag (or not a
    /// variant of it) in this view — typically deleted since the SDK evaluated.
    pub ignored: Vec<String>,
}

/// One instance's last report, compared with the view as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AppliedInstance {
    pub instance: String,
    pub revision: Revision,
    pub checksum: String,
    pub reported_at: DateTime<Utc>,
    /// Whether `checksum` is the checksum of the view's current values.
    pub current: bool,
}

fn is_checksum(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Check every field of a report; nothing is applied unless all of it is valid.
fn validate(r: &Report) -> Result<()> {
    let instance_ok = !r.instance.is_empty()
        && r.instance.len() <= 128
        && r.instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@/-".contains(&b));
    if !instance_ok {
        return Err(Error::invalid(
            "instance",
            "1 to 128 characters of A-Z a-z 0-9 . _ : @ / -",
        ));
    }
    if r.revision < 0 {
        return Err(Error::invalid("revision", "must be 0 or more"));
    }
    if !is_checksum(&r.checksum) {
        return Err(Error::invalid(
            "checksum",
            "must be `sha256:` followed by 64 lower-case hex digits",
        ));
    }
    if r.evaluations.len() > MAX_REPORT_COUNTS {
        return Err(Error::TooLarge {
            field: "evaluations".into(),
            message: format!("at most {MAX_REPORT_COUNTS} counts per report"),
        });
    }
    for (i, e) in r.evaluations.iter().enumerate() {
        validate_key(&e.flag)
            .map_err(|err| Error::invalid(format!("evaluations[{i}].flag"), err.to_string()))?;
        if e.variant.len() > 256 {
            return Err(Error::invalid(
                format!("evaluations[{i}].variant"),
                "at most 256 bytes",
            ));
        }
        if !(0..=MAX_REPORT_COUNT).contains(&e.count) {
            return Err(Error::invalid(
                format!("evaluations[{i}].count"),
                format!("must be between 0 and {MAX_REPORT_COUNT}"),
            ));
        }
    }
    Ok(())
}

fn hidden_view(app: &str, env: &str) -> Error {
    Error::Hidden {
        what: format!("view {app}/{env}"),
    }
}

impl Telemetry<'_> {
    /// Take an SDK instance's report for (app, env): store its applied state
    /// (replacing its previous one) and add its evaluation counts to the
    /// flags' counts. Needs `Resolve` at (app, env). Invalid input changes nothing.
    pub async fn report(
        &self,
        who: &Principal,
        app: &str,
        env: &str,
        report: &Report,
    ) -> Result<ReportAccepted> {
        if !who.can(Action::Resolve, Some(app), Some(env)) {
            return Err(hidden_view(app, env));
        }
        validate(report)?;
        let flags = self.kernel.read().flag_view(app, env)?;
        let now = self.kernel.now();
        self.kernel
            .store()
            .put_applied(&AppliedState {
                app: app.to_owned(),
                env: env.to_owned(),
                instance: report.instance.clone(),
                revision: report.revision,
                checksum: report.checksum.clone(),
                reported_at: now,
            })
            .await?;
        let mut counted = 0;
        let mut ignored = Vec::new();
        for e in report.evaluations.iter().filter(|e| e.count > 0) {
            let n = u64::try_from(e.count).unwrap_or(0);
            if flags.count_reported(&e.flag, &e.variant, n, now.timestamp()) {
                counted += n;
            } else if e.variant.is_empty() {
                ignored.push(e.flag.clone());
            } else {
                ignored.push(format!("{}/{}", e.flag, e.variant));
            }
        }
        Ok(ReportAccepted {
            app: app.to_owned(),
            env: env.to_owned(),
            counted,
            ignored,
        })
    }

    /// Forget instances that have not reported for `max_age`.
    pub async fn prune_applied(&self, max_age: std::time::Duration) -> Result<u64> {
        let age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::days(30));
        Ok(self
            .kernel
            .store()
            .prune_applied(self.kernel.now() - age)
            .await?)
    }

    /// The last report of every instance of (app, env) (readers of the view).
    pub async fn applied(
        &self,
        who: &Principal,
        app: &str,
        env: &str,
    ) -> Result<Vec<AppliedInstance>> {
        if !who.can(Action::Read, Some(app), Some(env)) {
            return Err(hidden_view(app, env));
        }
        let view = self.kernel.read().view(app, env)?;
        let states = self.kernel.store().applied(app, env).await?;
        Ok(states
            .into_iter()
            .map(|s| AppliedInstance {
                current: s.checksum == view.checksum,
                instance: s.instance,
                revision: s.revision,
                checksum: s.checksum,
                reported_at: s.reported_at,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            instance: "web-1:42".into(),
            revision: 3,
            checksum: format!("sha256:{}", "a".repeat(64)),
            evaluations: vec![EvaluationCount {
                flag: "new-ui".into(),
                variant: "on".into(),
                count: 2,
            }],
        }
    }

    #[test]
    fn reports_are_validated_field_by_field() {
        assert!(validate(&report()).is_ok());
        let field = |r: Report| validate(&r).unwrap_err().field().map(str::to_owned);
        let mut r = report();
        r.instance = String::new();
        assert_eq!(field(r).as_deref(), Some("instance"));
        let mut r = report();
        r.instance = "a b".into();
        assert_eq!(field(r).as_deref(), Some("instance"));
        let mut r = report();
        r.revision = -1;
        assert_eq!(field(r).as_deref(), Some("revision"));
        let mut r = report();
        r.checksum = "sha256:ABC".into();
        assert_eq!(field(r).as_deref(), Some("checksum"));
        let mut r = report();
        r.evaluations[0].count = -5;
        assert_eq!(field(r).as_deref(), Some("evaluations[0].count"));
        let mut r = report();
        r.evaluations[0].flag = "Bad Key".into();
        assert_eq!(field(r).as_deref(), Some("evaluations[0].flag"));
    }
}
