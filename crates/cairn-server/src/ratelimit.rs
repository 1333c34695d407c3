//! Token-bucket rate limits, keyed by client address or principal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens refill at `rate` per second up to `burst`. A rate of 0 disables the limit.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Limiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn disabled() -> Self {
        Self::new(0.0, 1.0)
    }

    /// Would a token be available for `key`? Takes nothing.
    pub fn peek(&self, key: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some((tokens, at)) = buckets.get(key) else {
            return Ok(());
        };
        let tokens = (tokens + at.elapsed().as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// Take one token for `key`, or say how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget full buckets: they behave exactly like new ones.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// The server's limits.
#[derive(Debug)]
pub struct Limits {
    /// Requests per client address.
    pub per_ip: Limiter,
    /// Requests per authenticated principal.
    pub per_principal: Limiter,
    /// Failed authentications per client address.
    pub auth_failures: Limiter,
    /// Failed logins per client address: spent only by failures, so a
    /// guessing client is slowed down while everyone else logs in as usual.
    pub login_failures: Limiter,
}

impl Limits {
    /// No limits except on failed authentication (tests, benchmarks, embedding).
    pub fn relaxed() -> Self {
        Limits {
            per_ip: Limiter::disabled(),
            per_principal: Limiter::disabled(),
            auth_failures: Limiter::new(10.0, 50.0),
            login_failures: Limiter::new(0.2, 5.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_drain_refill_and_are_per_key() {
        let l = Limiter::new(10.0, 3.0);
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        let wait = l.check("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(l.check("b").is_ok(), "other keys are not affected");
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.check("a").is_ok(), "refilled");
        assert!(Limiter::disabled().check("x").is_ok());
        let p = Limiter::new(1.0, 1.0);
        assert!(p.peek("k").is_ok());
        assert!(p.peek("k").is_ok(), "peeking takes nothing");
        assert!(p.check("k").is_ok());
        assert!(p.peek("k").is_err());
    }
}
