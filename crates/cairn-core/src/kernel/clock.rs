//! The one clock of the kernel. Everything in `cairn-core` that asks "what time
//! is it" — token and login expiry, rotation due dates and backoff, webhook
//! retries and pruning, applied-state silence, stale flags, `$flagd.timestamp`
//! — asks [`Service::now`](crate::Service::now), which reads the [`Clock`] in
//! [`Options`](crate::Options). Tests give a [`ManualClock`] and move it
//! instead of sleeping. (Commit timestamps and PostgreSQL leases come from the
//! store, by design: the database orders what replicas write.)

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    at: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock { at: Mutex::new(at) })
    }

    /// Starting at the current wall-clock time.
    pub fn starting_now() -> Arc<Self> {
        Self::new(Utc::now())
    }

    pub fn advance(&self, by: Duration) {
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        *at += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.at.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::days(2));
        assert_eq!(c.now(), t0 + Duration::days(2));
        c.set(t0);
        assert_eq!(c.now(), t0);
    }
}
