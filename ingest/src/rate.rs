//! Token buckets: the per-user send rate (a bucket per user, in this process; a user whose
//! sends are spread over several ingest nodes gets each node's allowance, and balancing by
//! user keeps that close to one), and the bucket itself for other per-connection limits
//! (the fanout's subscription changes).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;
use schemas::UserId;

/// Events per second that may be sustained, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// Users whose buckets are remembered; a forgotten user starts with a full bucket, which
/// errs on the side of letting sends through.
const REMEMBERED_USERS: usize = 100_000;

/// One bucket: starts full (`burst` tokens), refills at the rate, each event takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self { tokens: f64::from(rate.burst.max(1)), updated: now }
    }

    /// Takes one token; when none is left, how long until one is.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(rate.burst.max(1));
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        // A configured rate is at least settings::MIN_RATE; saturate rather than panic anyway.
        let wait = missing / rate.per_second.max(f64::MIN_POSITIVE);
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: Rate,
    buckets: Mutex<LruCache<UserId, TokenBucket>>,
}

impl RateLimiter {
    pub(crate) fn new(rate: Rate) -> Self {
        let capacity = NonZeroUsize::new(REMEMBERED_USERS).unwrap_or(NonZeroUsize::MIN);
        Self { rate, buckets: Mutex::new(LruCache::new(capacity)) }
    }

    /// Takes one send from `user`'s bucket; when empty, how long until one is available.
    pub(crate) fn take(&self, user: &UserId, now: Instant) -> Result<(), Duration> {
        let rate = self.rate;
        let mut buckets = self.buckets.lock();
        buckets.get_or_insert_mut(user.clone(), || TokenBucket::full(rate, now)).take(rate, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_steady_rate() {
        let limiter = RateLimiter::new(Rate { per_second: 2.0, burst: 3 });
        let user = UserId::new("carla").unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(&user, start).is_ok());
        }
        let wait = limiter.take(&user, start).unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(limiter.take(&user, start + Duration::from_millis(500)).is_ok());
        assert!(limiter.take(&user, start + Duration::from_millis(500)).is_err());
        let other = UserId::new("wei").unwrap();
        assert!(limiter.take(&other, start).is_ok(), "buckets are per user");
    }
}
