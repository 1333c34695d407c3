//! The secret-rotation scheduler.
//!
//! Every tick, the replica that holds the [`LEASE`] (one at a time across
//! every process sharing the database, see `Store::try_lease`) rotates the
//! secrets that are due: `rotated_at + interval + spread`, where `spread` is
//! a per-secret offset (a hash of its scope and name) within a tenth of the
//! interval, at most an hour, so secrets created together on the same
//! schedule do not rotate in the same instant. Rotations run one after the
//! other; each is a compare-and-set against the version the scheduler saw,
//! so even two schedulers (a lease lost mid-tick) cannot rotate one secret
//! twice.
//!
//! A failed rotation (a hook that errs, a refused target, a generator that
//! fails) is reported loudly — an audit record `secret.rotation_failed`, the
//! metric `cairn_secret_rotation_failures_total`, an error log line — and
//! retried with exponential backoff (`retry_base` × 2ⁿ, at most an hour).
//! Due secrets without a generator cannot rotate by themselves: they are
//! counted as overdue (`cairn_secrets_rotation_overdue`) and listed by the
//! run, for a person to rotate with a value.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use cairn_model::Scope;
use cairn_store::{AuditEvent, SecretRecord};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::identity::auth::{Origin, Principal};
use crate::secrets::{NewValue, NextVersion, Plaintext, Secrets};
use crate::{Error, Result};
use cairn_store::AuditAction;

/// The lease the rotating replica holds.
pub const LEASE: &str = "secret-rotation";

/// Longest retry delay after repeated failures.
const MAX_BACKOFF: StdDuration = StdDuration::from_secs(3600);

/// The per-secret offset added to its due time (see the module docs).
pub fn spread(scope: &Scope, name: &str, interval: Duration) -> Duration {
    let window = (interval / 10).min(Duration::hours(1));
    let window_ms = window.num_milliseconds();
    if window_ms <= 0 {
        return Duration::zero();
    }
    let digest = Sha256::new()
        .chain_update(scope.app_str())
        .chain_update([0])
        .chain_update(scope.env_str())
        .chain_update([0])
        .chain_update(name)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let offset = u64::from_be_bytes(first) % window_ms.unsigned_abs();
    Duration::milliseconds(i64::try_from(offset).unwrap_or(0))
}

/// When the scheduler rotates `record` next, if it rotates automatically.
pub fn next_rotation(record: &SecretRecord) -> Option<DateTime<Utc>> {
    let interval = record.policy.rotation_interval()?;
    record
        .updated_at
        .checked_add_signed(interval)?
        .checked_add_signed(spread(&record.scope, &record.name, interval))
}

/// Delay before retry number `failures` (1 = after the first failure).
pub fn backoff(base: StdDuration, failures: u32) -> StdDuration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// One secret, as a run reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RotationItem {
    pub name: String,
    pub app: Option<String>,
    pub env: Option<String>,
    /// The new version (rotated), or the version that is overdue.
    pub version: i64,
    /// Why it failed (failed items only). Never carries a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failures in a row so far (failed items only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// When it is tried again (failed items only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

impl RotationItem {
    fn of(record: &SecretRecord, version: i64) -> Self {
        RotationItem {
            name: record.name.clone(),
            app: record.scope.app.clone(),
            env: record.scope.env.clone(),
            version,
            error: None,
            attempts: None,
            retry_at: None,
        }
    }
}

/// What one scheduler run did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RotationRun {
    pub rotated: Vec<RotationItem>,
    pub failed: Vec<RotationItem>,
    /// Due, but without a generator: a person must rotate them with a value.
    pub overdue: Vec<RotationItem>,
}

#[derive(Debug, Clone)]
struct Failure {
    attempts: u32,
    retry_at: DateTime<Utc>,
}

/// The scheduler's state in one process: who it is (lease holder id) and the
/// failures it is backing off from.
#[derive(Debug)]
pub struct Scheduler {
    holder: String,
    retry_base: StdDuration,
    failures: Mutex<HashMap<(Scope, String), Failure>>,
}

impl Scheduler {
    /// `replica` names this process in audit records; the holder id adds a
    /// random suffix, so two processes with one replica name stay distinct.
    pub fn new(replica: &str, retry_base: StdDuration) -> Self {
        Scheduler {
            holder: format!("{replica}/{:016x}", rand::random::<u64>()),
            retry_base,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// This process's lease holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn backing_off(&self, scope: &Scope, name: &str, now: DateTime<Utc>) -> bool {
        self.lock()
            .get(&(scope.clone(), name.to_owned()))
            .is_some_and(|f| f.retry_at > now)
    }

    fn failed(&self, scope: &Scope, name: &str, now: DateTime<Utc>) -> Failure {
        let mut map = self.lock();
        let entry = map
            .entry((scope.clone(), name.to_owned()))
            .or_insert(Failure {
                attempts: 0,
                retry_at: now,
            });
        entry.attempts += 1;
        let delay = backoff(self.retry_base, entry.attempts);
        entry.retry_at = now + Duration::from_std(delay).unwrap_or(Duration::hours(1));
        entry.clone()
    }

    fn succeeded(&self, scope: &Scope, name: &str) {
        self.lock().remove(&(scope.clone(), name.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Scope, String), Failure>> {
        // A panic while holding this lock leaves consistent data (plain
        // inserts and removes): keep using it.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Names one rotation: the same for every attempt at making `new_version`
/// (a retry after a failure, a second replica), so a hook can answer a
/// repeated request with the value it made the first time.
pub fn idempotency_key(scope: &Scope, name: &str, new_version: i64) -> String {
    format!(
        "{}/{}/{name}/v{new_version}",
        scope.app.as_deref().unwrap_or("*"),
        scope.env.as_deref().unwrap_or("*")
    )
}

/// The principal scheduled rotations act as.
fn scheduler_principal() -> Principal {
    Principal {
        actor: "system:rotation".into(),
        name: "rotation scheduler".into(),
        ..Principal::system()
    }
}

impl Secrets<'_> {
    /// Take (or renew) the rotation lease and, if this process holds it,
    /// rotate what is due now. `None`: another replica holds the lease.
    pub async fn rotation_tick(&self, lease_ttl: StdDuration) -> Result<Option<RotationRun>> {
        let holder = self.scheduler.holder();
        if !self
            .kernel
            .store()
            .try_lease(LEASE, holder, lease_ttl)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(
            self.rotate_due_leased(self.kernel.now(), Some(lease_ttl))
                .await?,
        ))
    }

    /// Rotate every secret due at `now` (the scheduler's work, without the
    /// lease; `now` is a parameter so tests can look ahead).
    pub async fn rotate_due(&self, now: DateTime<Utc>) -> Result<RotationRun> {
        self.rotate_due_leased(now, None).await
    }

    /// [`Secrets::rotate_due`], renewing the lease before each secret (a run
    /// of slow hooks may outlast one lease period) and stopping as soon as
    /// another replica holds it.
    async fn rotate_due_leased(
        &self,
        now: DateTime<Utc>,
        lease: Option<StdDuration>,
    ) -> Result<RotationRun> {
        let mut due: Vec<(DateTime<Utc>, SecretRecord)> = self
            .kernel
            .store()
            .secrets()
            .await?
            .into_iter()
            .filter_map(|r| next_rotation(&r).map(|at| (at, r)))
            .filter(|(at, _)| *at <= now)
            .collect();
        due.sort_by_key(|d| d.0);
        let mut run = RotationRun::default();
        let who = scheduler_principal();
        let origin = Origin::default();
        let mut renewed = std::time::Instant::now();
        for (_, record) in due {
            if record.policy.generator.is_none() {
                run.overdue
                    .push(RotationItem::of(&record, record.current_version));
                continue;
            }
            if self.scheduler.backing_off(&record.scope, &record.name, now) {
                continue;
            }
            // Renewed well before it lapses (a run of slow hooks may outlast
            // one lease period); stop as soon as another replica holds it.
            if let Some(ttl) = lease.filter(|ttl| renewed.elapsed() >= *ttl / 3) {
                if !self
                    .kernel
                    .store()
                    .try_lease(LEASE, self.scheduler.holder(), ttl)
                    .await?
                {
                    tracing::info!(
                        "the rotation lease moved to another replica; stopping this run"
                    );
                    break;
                }
                renewed = std::time::Instant::now();
            }
            let hooked = record
                .policy
                .generator
                .as_deref()
                .and_then(crate::secrets::hook_url)
                .is_some();
            // A hook changes a credential outside: read the secret again just
            // before, as a person may have rotated (or deleted) it since the
            // list. (A generated value has no effect outside; the
            // compare-and-set settles that race.)
            let record = if hooked {
                match self
                    .kernel
                    .store()
                    .secret(&record.scope, &record.name)
                    .await?
                {
                    Some((fresh, false))
                        if fresh.current_version == record.current_version
                            && next_rotation(&fresh).is_some_and(|at| at <= now) =>
                    {
                        fresh
                    }
                    _ => continue,
                }
            } else {
                record
            };
            match self
                .rotate_record(
                    &who,
                    &origin,
                    &record,
                    NewValue::Generate,
                    "scheduled rotation",
                )
                .await
            {
                Ok(written) => {
                    self.scheduler.succeeded(&record.scope, &record.name);
                    self.kernel.metrics().rotation_succeeded();
                    tracing::info!(secret = %record.name, scope = %record.scope, version = written.version, "rotated secret");
                    run.rotated.push(RotationItem::of(&record, written.version));
                }
                // Someone rotated it meanwhile (a person, another replica):
                // it is no longer due as we saw it. With a hook that already
                // changed the credential, say so loudly: only a hook that
                // honours the idempotency key keeps the two in step.
                Err(Error::Conflict { .. }) if !hooked => {}
                Err(e) => {
                    let error = match e {
                        Error::Conflict { .. } => "the secret was rotated meanwhile, after the \
                            hook answered: the hook must return the same value for the same \
                            Idempotency-Key"
                            .to_owned(),
                        e => e.to_string(),
                    };
                    let failure = self.scheduler.failed(&record.scope, &record.name, now);
                    let item = RotationItem {
                        error: Some(error),
                        attempts: Some(failure.attempts),
                        retry_at: Some(failure.retry_at),
                        ..RotationItem::of(&record, record.current_version)
                    };
                    self.report_rotation_failure(&who, &record, &item).await;
                    run.failed.push(item);
                }
            }
        }
        self.kernel
            .metrics()
            .set_rotation_overdue(run.overdue.len());
        Ok(run)
    }

    /// A failed rotation: error log, metric, and an audit record (the
    /// webhook dispatcher turns it into a `secret.rotation_failed` event).
    async fn report_rotation_failure(
        &self,
        who: &Principal,
        record: &SecretRecord,
        item: &RotationItem,
    ) {
        let error = item.error.as_deref().unwrap_or("");
        tracing::error!(secret = %record.name, scope = %record.scope, attempts = item.attempts, error, "secret rotation failed");
        self.kernel.metrics().rotation_failed();
        let event = AuditEvent {
            action: AuditAction::SecretRotationFailed,
            app: Some(record.scope.app_str().to_owned()),
            env: Some(record.scope.env_str().to_owned()),
            key: Some(record.name.clone()),
            detail: json!({
                "version": record.current_version,
                "error": error,
                "attempts": item.attempts,
                "retry_at": item.retry_at,
            }),
        };
        let message = "scheduled rotation failed".to_owned();
        if let Err(e) = self
            .kernel
            .append_event(who.actor(), &Origin::default(), message, event)
            .await
        {
            tracing::error!(error = %e, secret = %record.name, "could not audit a failed rotation");
        }
    }

    /// Ask a rotation hook for the next value: POST `{event, name, app, env,
    /// current_version, new_version}`, signed like webhooks (`Cairn-Signature:
    /// t=<unix>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`) with the value of
    /// the policy's `hook_secret`; a 2xx answer `{"value": "…"}` is the new
    /// value (the hook is where, say, a database password is changed).
    pub(crate) async fn call_rotation_hook(
        &self,
        url: &str,
        next: &NextVersion<'_>,
    ) -> Result<Plaintext> {
        let (scope, name) = (next.scope, next.name);
        let (current_version, new_version) = (next.current_version, next.new_version);
        let signer =
            next.policy.hook_secret.as_deref().ok_or_else(|| {
                Error::invalid("hook_secret", "a hook generator needs a hook_secret")
            })?;
        let signer_scope = self.signing_secret(scope, signer).await?.ok_or_else(|| {
            Error::Unavailable(format!(
                "the hook's signing secret {signer} no longer exists at a scope visible from {scope}"
            ))
        })?;
        let (key_version, key) = self.open_version(&signer_scope, signer, None).await?;
        // Audited as whoever caused the rotation (a person, or the scheduler).
        self.record_read(
            next.who,
            &Origin::default(),
            &signer_scope,
            signer,
            key_version,
            &key,
            "hook-signature",
        )
        .await?;
        let idempotency = idempotency_key(scope, name, new_version);
        let body = serde_json::to_vec(&json!({
            "event": "secret.rotate",
            "name": name,
            "app": scope.app,
            "env": scope.env,
            "current_version": current_version,
            "new_version": new_version,
            "idempotency_key": idempotency,
        }))
        .map_err(|e| Error::Internal(format!("hook body: {e}")))?;
        let signature =
            crate::webhooks::signature(key.as_bytes(), self.kernel.now().timestamp(), &body);
        let response = self
            .outbound
            .post_json(
                url,
                &[
                    ("Cairn-Event", "secret.rotate"),
                    ("Cairn-Signature", &signature),
                    ("Idempotency-Key", &idempotency),
                ],
                &body,
            )
            .await
            .map_err(|e| Error::Unavailable(format!("rotation hook: {e}")))?;
        if !response.is_success() {
            return Err(Error::Unavailable(format!(
                "rotation hook answered HTTP {}",
                response.status
            )));
        }
        // Never echo the body in an error: it carries the new value.
        #[derive(serde::Deserialize)]
        struct HookAnswer {
            value: String,
        }
        let answer: HookAnswer = serde_json::from_slice(&response.body).map_err(|_| {
            Error::Unavailable(
                "rotation hook answered without a JSON object {\"value\": \"…\"}".into(),
            )
        })?;
        Ok(Plaintext::new(answer.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_stable_within_a_tenth_and_differs_by_secret() {
        let interval = Duration::days(30);
        let a = spread(&Scope::global(), "db/a", interval);
        assert_eq!(a, spread(&Scope::global(), "db/a", interval));
        assert!(a >= Duration::zero() && a < Duration::hours(1));
        let offsets: std::collections::BTreeSet<_> = (0..50)
            .map(|i| spread(&Scope::global(), &format!("db/{i}"), interval))
            .collect();
        assert!(offsets.len() >= 49, "offsets collide: {}", offsets.len());
        let short = Duration::seconds(20);
        for i in 0..50 {
            let s = spread(&Scope::new(Some("shop"), None), &format!("k{i}"), short);
            assert!(s >= Duration::zero() && s < Duration::seconds(2), "{s}");
        }
        assert_ne!(
            spread(&Scope::global(), "db/a", interval),
            spread(&Scope::new(Some("shop"), None), "db/a", interval)
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = StdDuration::from_secs(30);
        assert_eq!(backoff(base, 1), StdDuration::from_secs(30));
        assert_eq!(backoff(base, 2), StdDuration::from_secs(60));
        assert_eq!(backoff(base, 4), StdDuration::from_secs(240));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }

    #[test]
    fn failures_back_off_then_clear() {
        let s = Scheduler::new("r", StdDuration::from_secs(10));
        let now = Utc::now();
        let g = Scope::global();
        assert!(!s.backing_off(&g, "a", now));
        assert_eq!(s.failed(&g, "a", now).attempts, 1);
        assert!(s.backing_off(&g, "a", now + Duration::seconds(9)));
        assert!(!s.backing_off(&g, "a", now + Duration::seconds(11)));
        let second = s.failed(&g, "a", now);
        assert_eq!(second.attempts, 2);
        assert_eq!(second.retry_at, now + Duration::seconds(20));
        assert!(!s.backing_off(&g, "b", now));
        s.succeeded(&g, "a");
        assert!(!s.backing_off(&g, "a", now));
        assert_ne!(
            Scheduler::new("r", StdDuration::ZERO).holder(),
            s.holder(),
            "two processes with one replica name are distinct holders"
        );
    }
}
