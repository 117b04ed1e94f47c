//! The timing rules exactly-once sends rest on, as one value checked at start-up.
//!
//! A node may append a partition's keyed sends only while it holds the partition's lease.
//! Other nodes consider a lease gone once its version has not changed for `lease` by their
//! own clocks; then one of them takes it over and reads the partition to learn every key the
//! old holder wrote. That is safe only if the old holder's last append is in the log (or
//! can never be) by then. So the holder stops *starting* appends at
//! `renewal sent + lease - append_timeout - margin`, every append ends (written or failed
//! for good) within `append_timeout`, and `margin` covers clocks that run at slightly
//! different rates and a scheduler that is late.

use std::time::{Duration, Instant};

/// The durations the writer protocol depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterTiming {
    /// The longest an append may take, after which its record is never written (the log's
    /// delivery timeout must not exceed it).
    pub append_timeout: Duration,
    /// How long a lease lasts without renewal, as the other nodes see it.
    pub lease: Duration,
    /// How often a holder renews its leases.
    pub renew_every: Duration,
    /// Slack for clock rates and scheduling.
    pub margin: Duration,
}

impl Default for WriterTiming {
    fn default() -> Self {
        Self::for_lease(Duration::from_secs(10), Duration::from_secs(20))
    }
}

impl WriterTiming {
    /// The timing for an append timeout and a lease: renewals six times a lease, a
    /// twentieth of it as the margin (the least allowed). The one place these are derived,
    /// for the defaults and for the command line alike.
    pub fn for_lease(append_timeout: Duration, lease: Duration) -> Self {
        Self {
            append_timeout,
            lease,
            renew_every: lease / 6,
            margin: (lease / 20).max(Duration::from_millis(100)),
        }
    }
}

/// A timing configuration that would let a retry become a second message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("writer timing: {0}")]
pub struct TimingError(String);

impl WriterTiming {
    /// The smallest margin allowed: a twentieth of the lease (clock rates differ by far
    /// less), and never under 100 ms.
    fn least_margin(&self) -> Duration {
        (self.lease / 20).max(Duration::from_millis(100))
    }

    /// Checks the rules against the log's own delivery timeout.
    pub fn check(&self, log_delivery_timeout: Duration) -> Result<(), TimingError> {
        let fail = |rule: String| Err(TimingError(rule));
        if self.renew_every.is_zero() || self.append_timeout.is_zero() {
            return fail("the append timeout and the renewal period must be positive".into());
        }
        if log_delivery_timeout > self.append_timeout {
            return fail(format!(
                "the log may deliver a record up to {log_delivery_timeout:?} after it was \
                 handed over, longer than the append timeout {:?}",
                self.append_timeout
            ));
        }
        if self.margin < self.least_margin() {
            return fail(format!(
                "the margin {:?} must be at least {:?} (a twentieth of the lease, 100 ms at least)",
                self.margin,
                self.least_margin()
            ));
        }
        let needed = self.append_timeout + self.margin + 2 * self.renew_every;
        if self.lease < needed {
            return fail(format!(
                "the lease {:?} must be at least the append timeout + margin + two renewal \
                 periods ({needed:?}), so that one late renewal does not stop appends",
                self.lease
            ));
        }
        Ok(())
    }

    /// Until when a holder may start appends, given that its last successful renewal (or the
    /// take) was sent at `renewal_sent`.
    pub fn appends_until(&self, renewal_sent: Instant) -> Instant {
        renewal_sent + self.lease - self.append_timeout - self.margin
    }

    /// Whether a lease seen unchanged since `first_seen` (when a read first returned its
    /// version) has lapsed: its holder has stopped appending and every append it made is
    /// settled.
    pub fn has_lapsed(&self, first_seen: Instant, now: Instant) -> bool {
        now.saturating_duration_since(first_seen) >= self.lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_hold_with_the_logs_default_delivery_timeout() {
        let timing = WriterTiming::default();
        assert_eq!(timing.check(timing.append_timeout), Ok(()));
    }

    #[test]
    fn a_log_that_delivers_later_than_ingest_waits_is_refused() {
        let timing = WriterTiming::default();
        let error = timing.check(timing.append_timeout + Duration::from_millis(1));
        assert!(error.is_err_and(|e| e.to_string().contains("may deliver a record")));
    }

    #[test]
    fn a_lease_too_short_for_the_append_timeout_is_refused() {
        let timing = WriterTiming { lease: Duration::from_secs(16), ..WriterTiming::default() };
        let error = timing.check(timing.append_timeout);
        assert!(error.is_err_and(|e| e.to_string().contains("two renewal periods")));
    }

    #[test]
    fn a_margin_too_thin_for_clock_drift_is_refused() {
        let timing = WriterTiming { margin: Duration::from_millis(999), ..WriterTiming::default() };
        assert!(timing.check(timing.append_timeout).is_err());
    }

    #[test]
    fn appends_stop_before_anyone_may_take_the_lease_over() {
        let timing = WriterTiming::default();
        let renewed = Instant::now();
        // Another node read the renewed version no earlier than the renewal was sent.
        let seen = renewed;
        let takeover = seen + timing.lease;
        let last_append_settled = timing.appends_until(renewed) + timing.append_timeout;
        assert!(last_append_settled + timing.margin <= takeover);
        assert!(!timing.has_lapsed(seen, takeover - Duration::from_millis(1)));
        assert!(timing.has_lapsed(seen, takeover));
    }
}
