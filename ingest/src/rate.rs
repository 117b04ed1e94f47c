//! Per-user send rate: a token bucket per user, in this process. A user whose sends are
//! spread over several ingest nodes gets each node's allowance; balancing by user keeps
//! that close to one.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;
use schemas::UserId;

/// Sends per second a user may sustain, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendRate {
    pub per_second: f64,
    pub burst: u32,
}

/// Users whose buckets are remembered; a forgotten user starts with a full bucket, which
/// errs on the side of letting sends through.
const REMEMBERED_USERS: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: SendRate,
    buckets: Mutex<LruCache<UserId, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(rate: SendRate) -> Self {
        let capacity = NonZeroUsize::new(REMEMBERED_USERS).unwrap_or(NonZeroUsize::MIN);
        Self { rate, buckets: Mutex::new(LruCache::new(capacity)) }
    }

    /// Takes one send from `user`'s bucket; when empty, how long until one is available.
    pub(crate) fn take(&self, user: &UserId, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.rate.burst.max(1));
        let mut buckets = self.buckets.lock();
        let bucket =
            buckets.get_or_insert_mut(user.clone(), || Bucket { tokens: burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        // A configured rate is at least settings::MIN_RATE; saturate rather than panic anyway.
        let wait = missing / self.rate.per_second.max(f64::MIN_POSITIVE);
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_steady_rate() {
        let limiter = RateLimiter::new(SendRate { per_second: 2.0, burst: 3 });
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
