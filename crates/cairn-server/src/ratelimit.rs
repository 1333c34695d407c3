//! Rate limits: keyed GCRA limiters from `governor` over its sharded
//! `DashMap` store, so a check is O(1) and takes no global lock. Client
//! addresses are keyed by [`client_key`] (IPv4 by address, IPv6 by /64), so a
//! client cannot mint fresh budgets from its own prefix. Keys whose state is
//! indistinguishable from a fresh one are dropped by [`Limits::retain_recent`],
//! which the router runs periodically off the request path.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// The budget key of a client address: an IPv4 address (IPv4-mapped IPv6
/// addresses included, as dual-stack listeners report them), or the /64
/// prefix of an IPv6 address — one host commonly holds a whole /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    V6Prefix64(u64),
}

/// The budget key of `ip` (see [`ClientKey`]).
pub fn client_key(ip: IpAddr) -> ClientKey {
    match ip {
        IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ClientKey::V4(u32::from(v4)),
            None => ClientKey::V6Prefix64((u128::from(v6) >> 64) as u64),
        },
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// A keyed limiter: each key gets `burst` cells, refilled at `rate` per
/// second. A rate of 0 (or less, or not a number) disables the limit.
pub struct Limiter<K: Hash + Eq + Clone = String> {
    inner: Option<Keyed<K>>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Limiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Limiter(disabled)"),
            Some(l) => write!(f, "Limiter({} keys)", l.len()),
        }
    }
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `rate` cells per second, `burst` at most (at least 1). Periods are
    /// kept between 1 ns and one day.
    pub fn new(rate: f64, burst: f64) -> Self {
        if !(rate.is_finite() && rate > 0.0) {
            return Self::disabled();
        }
        const DAY: Duration = Duration::from_secs(86_400);
        let period = Duration::try_from_secs_f64(1.0 / rate)
            .unwrap_or(DAY)
            .clamp(Duration::from_nanos(1), DAY);
        // `as` saturates (NaN → 0); 0 becomes the minimum burst of 1.
        let burst = NonZeroU32::new(burst.round() as u32).unwrap_or(NonZeroU32::MIN);
        let inner = Quota::with_period(period).map(|q| RateLimiter::keyed(q.allow_burst(burst)));
        Limiter { inner }
    }

    pub fn disabled() -> Self {
        Limiter { inner: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Take one cell for `key`, or say how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(l) = &self.inner else {
            return Ok(());
        };
        l.check_key(key)
            .map_err(|not_until| not_until.wait_time_from(l.clock().now()))
    }

    /// Forget keys whose budget is full again (they behave like new ones).
    pub fn retain_recent(&self) {
        if let Some(l) = &self.inner {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The server's limits, by route class (see [`crate::access::Class`]).
///
/// Requests without a known client address (in-process use without
/// `ConnectInfo`) skip the per-address limits; the real listener always
/// knows the peer.
#[derive(Debug)]
pub struct Limits {
    /// Every authenticated-route request per client address, counted before
    /// authentication (off by default: a fleet behind one NAT is one address).
    pub per_ip: Limiter<ClientKey>,
    /// Reads per principal: GET/HEAD, OFREP evaluations, watch, schema
    /// validation (off by default, DESIGN §10).
    pub reads: Limiter,
    /// Writes per principal: every other authenticated route (SDK reports included).
    pub writes: Limiter,
    /// Failed authentications per client address. Spent only by failures and
    /// consulted only for them: a valid credential is never refused by it.
    pub auth_failures: Limiter<ClientKey>,
    /// Password login attempts per client address, spent before hashing.
    pub login_per_ip: Limiter<ClientKey>,
    /// Password login attempts per user name, spent before hashing.
    pub login_per_user: Limiter,
}

/// How often the router forgets idle keys.
pub const RETAIN_EVERY: Duration = Duration::from_secs(60);

impl Limits {
    /// The defaults of `cairn serve`: writes 1000/s per principal (burst
    /// 2000), reads and per-address traffic unlimited, failed authentications
    /// 10/s per address (burst 50), logins 5 per address and 10 per user in a
    /// burst, then one per 5 s.
    pub fn defaults() -> Self {
        Limits {
            writes: Limiter::new(1000.0, 2000.0),
            ..Self::relaxed()
        }
    }

    /// No per-principal or per-address request limits; failed authentication
    /// and logins keep theirs (tests, benchmarks, embedding).
    pub fn relaxed() -> Self {
        Limits {
            per_ip: Limiter::disabled(),
            reads: Limiter::disabled(),
            writes: Limiter::disabled(),
            auth_failures: Limiter::new(10.0, 50.0),
            login_per_ip: Limiter::new(0.2, 5.0),
            login_per_user: Limiter::new(0.2, 10.0),
        }
    }

    /// Forget every key whose budget is full again.
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.reads.retain_recent();
        self.writes.retain_recent();
        self.auth_failures.retain_recent();
        self.login_per_ip.retain_recent();
        self.login_per_user.retain_recent();
    }

    /// Run [`Limits::retain_recent`] every `every` on the current Tokio
    /// runtime (none: nothing is spawned) until `limits` is dropped.
    pub fn spawn_cleanup(limits: &Arc<Limits>, every: Duration) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Limits> = Arc::downgrade(limits);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { break };
                limits.retain_recent();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_is_keyed_by_address_and_ipv6_by_its_64_prefix() {
        assert_eq!(
            client_key(ip("192.0.2.7")),
            ClientKey::V4(u32::from(Ipv4Addr::new(192, 0, 2, 7)))
        );
        assert_ne!(client_key(ip("192.0.2.7")), client_key(ip("192.0.2.8")));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(
            client_key(ip("2001:db8:1:2::1")),
            ClientKey::V6Prefix64(0x2001_0db8_0001_0002)
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        // Dual-stack listeners report IPv4 clients as ::ffff:a.b.c.d: they stay
        // keyed by their IPv4 address, not lumped into one ::ffff:0:0/64.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(client_key(mapped), client_key(ip("192.0.2.7")));
        let other = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 8).to_ipv6_mapped());
        assert_ne!(client_key(mapped), client_key(other));
        assert_ne!(
            client_key(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            client_key(ip("127.0.0.1"))
        );
    }

    #[test]
    fn addresses_in_one_64_share_a_budget_and_other_64s_do_not() {
        // One cell a day: a second check of a key can only fail.
        let l: Limiter<ClientKey> = Limiter::new(1.0 / 86_400.0, 1.0);
        assert!(l.check(&client_key(ip("2001:db8:0:1::1"))).is_ok());
        let wait = l
            .check(&client_key(ip("2001:db8:0:1:dead:beef:0:2")))
            .expect_err("same /64: the budget is spent");
        assert!(wait > Duration::from_secs(3600), "{wait:?}");
        assert!(l.check(&client_key(ip("2001:db8:0:2::1"))).is_ok());
        assert!(l.check(&client_key(ip("192.0.2.1"))).is_ok());
        assert!(l.check(&client_key(ip("192.0.2.2"))).is_ok());
        assert!(l.check(&client_key(ip("192.0.2.1"))).is_err());
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn a_burst_is_spent_then_refused_per_key() {
        let l: Limiter = Limiter::new(1.0 / 86_400.0, 3.0);
        for _ in 0..3 {
            assert!(l.check(&"a".to_owned()).is_ok());
        }
        assert!(l.check(&"a".to_owned()).is_err());
        assert!(
            l.check(&"b".to_owned()).is_ok(),
            "other keys are not affected"
        );
        let off: Limiter = Limiter::new(0.0, 1.0);
        assert!(!off.is_enabled());
        for _ in 0..10 {
            assert!(off.check(&"x".to_owned()).is_ok());
        }
        assert!(!Limiter::<String>::new(f64::NAN, 1.0).is_enabled());
        // Extreme rates do not panic.
        assert!(Limiter::<String>::new(1e-300, 1.0)
            .check(&"k".into())
            .is_ok());
        assert!(Limiter::<String>::new(1e300, 1e300)
            .check(&"k".into())
            .is_ok());
    }

    #[test]
    fn retain_recent_forgets_full_buckets_and_keeps_spent_ones() {
        // A fast refill: a spent cell is back within microseconds...
        let fast: Limiter = Limiter::new(1e9, 1.0);
        let slow: Limiter = Limiter::new(1.0 / 86_400.0, 2.0);
        for k in 0..100 {
            fast.check(&format!("k{k}")).unwrap();
            slow.check(&format!("k{k}")).unwrap();
        }
        assert_eq!(fast.len(), 100);
        // ...so once any time has passed every key is like new again.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_micros(10) {
            std::hint::spin_loop();
        }
        fast.retain_recent();
        slow.retain_recent();
        assert_eq!(fast.len(), 0, "full again: forgotten");
        assert_eq!(slow.len(), 100, "still spent: kept");
    }
}
