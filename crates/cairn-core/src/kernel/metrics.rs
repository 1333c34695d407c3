//! Prometheus metrics (`/metrics`, text exposition format), one registry per
//! process. Metrics never carry values, secret names of values, or tokens:
//! only counts, routes (as declared, not as requested) and status codes.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric Cairn exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rotations: Counter,
    rotation_failures: Counter,
    rotation_overdue: Gauge,
    revision: Gauge,
    http_requests: Family<Labels, Counter>,
    http_seconds: Family<Labels, Histogram>,
    webhook_attempts: Family<Labels, Counter>,
    plan_retries: Counter,
    changes_open: Family<Labels, Gauge>,
    change_approval_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let rotations = Counter::default();
        registry.register(
            "secret_rotations",
            "Secret rotations done by the scheduler",
            rotations.clone(),
        );
        let rotation_failures = Counter::default();
        registry.register(
            "secret_rotation_failures",
            "Scheduled secret rotations that failed (retried with backoff)",
            rotation_failures.clone(),
        );
        let rotation_overdue = Gauge::default();
        registry.register(
            "secrets_rotation_overdue",
            "Secrets past their rotation time that have no generator (rotate them by hand)",
            rotation_overdue.clone(),
        );
        let revision = Gauge::default();
        registry.register(
            "revision",
            "The latest revision this replica has applied",
            revision.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        let http_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 4.0, 9))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            http_seconds.clone(),
        );
        let webhook_attempts = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_delivery_attempts",
            "Webhook delivery attempts by outcome (delivered, retry, failed)",
            webhook_attempts.clone(),
        );
        let plan_retries = Counter::default();
        registry.register(
            "write_replans",
            "Writes planned and validated again because a concurrent change touched what their plan read",
            plan_retries.clone(),
        );
        let changes_open = Family::<Labels, Gauge>::default();
        registry.register(
            "changes_open",
            "Change requests waiting, by environment whose approval they need and state (pending, scheduled)",
            changes_open.clone(),
        );
        // 1 s to about 12 days (requests expire after 14 days by default).
        let change_approval_seconds = Histogram::new(exponential_buckets(1.0, 4.0, 11));
        registry.register(
            "change_approval_seconds",
            "Time from a change request to its applying (approved or forced), as applied by this replica",
            change_approval_seconds.clone(),
        );
        Metrics {
            registry,
            changes_open,
            change_approval_seconds,
            plan_retries,
            webhook_attempts,
            rotations,
            rotation_failures,
            rotation_overdue,
            revision,
            http_requests,
            http_seconds,
        }
    }
}

impl Metrics {
    pub fn plan_retried(&self) {
        self.plan_retries.inc();
    }

    /// How many writes were planned again (see `Kernel::retrying`).
    pub fn plan_retries(&self) -> u64 {
        self.plan_retries.get()
    }

    pub fn rotation_succeeded(&self) {
        self.rotations.inc();
    }

    pub fn rotation_failed(&self) {
        self.rotation_failures.inc();
    }

    pub fn set_rotation_overdue(&self, n: usize) {
        self.rotation_overdue
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One webhook delivery attempt: `delivered`, `retry` or `failed` (given up).
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.webhook_attempts
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// The open change requests: `(env, state) → count`, every known
    /// environment listed (with 0 when none waits).
    pub fn set_open_changes<'a>(
        &self,
        counts: impl IntoIterator<Item = (&'a str, &'a str, usize)>,
    ) {
        self.changes_open.clear();
        for (env, state, n) in counts {
            self.changes_open
                .get_or_create(&vec![("env", env.to_owned()), ("state", state.to_owned())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A change request applied `seconds` after it was requested.
    pub fn change_applied(&self, seconds: f64) {
        self.change_approval_seconds.observe(seconds.max(0.0));
    }

    /// One answered request; `route` is the declared route pattern.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let route_labels = vec![("method", method.to_owned()), ("route", route.to_owned())];
        self.http_seconds
            .get_or_create(&route_labels)
            .observe(seconds);
        let mut labels = route_labels;
        labels.push(("status", status.to_string()));
        self.http_requests.get_or_create(&labels).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self, revision: i64) -> String {
        self.revision.set(revision);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_requests() {
        let m = Metrics::default();
        m.rotation_succeeded();
        m.rotation_failed();
        m.rotation_failed();
        m.set_rotation_overdue(3);
        m.http_request("GET", "/v1/apps", 200, 0.001);
        m.webhook_attempt("retry");
        m.webhook_attempt("delivered");
        m.set_open_changes([("prod", "pending", 2), ("prod", "scheduled", 0)]);
        m.change_applied(3.0);
        m.change_applied(100.0);
        let text = m.render(42);
        assert!(text.contains("cairn_secret_rotations_total 1"), "{text}");
        assert!(
            text.contains("cairn_secret_rotation_failures_total 2"),
            "{text}"
        );
        assert!(text.contains("cairn_secrets_rotation_overdue 3"), "{text}");
        assert!(text.contains("cairn_revision 42"), "{text}");
        assert!(
            text.contains(
                r#"cairn_http_requests_total{method="GET",route="/v1/apps",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"cairn_webhook_delivery_attempts_total{outcome="retry"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cairn_changes_open{env="prod",state="pending"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cairn_changes_open{env="prod",state="scheduled"} 0"#),
            "{text}"
        );
        // 3 s falls in the 4 s bucket, 100 s in the 256 s one.
        assert!(
            text.contains(r#"cairn_change_approval_seconds_bucket{le="4.0"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cairn_change_approval_seconds_bucket{le="256.0"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("cairn_change_approval_seconds_count 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
