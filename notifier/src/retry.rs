//! When to try a delivery again: exponential backoff, or what the receiver's `Retry-After`
//! asks for, within a bounded time.

use std::time::{Duration, Instant};

use http::HeaderMap;

const FIRST: Duration = Duration::from_millis(500);
const LONGEST: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    until: Instant,
}

impl Backoff {
    /// Retries for at most `window` from now.
    pub(crate) fn within(window: Duration) -> Self {
        Self { next: FIRST, until: Instant::now() + window }
    }

    /// How long to wait before the next attempt, or `None` when it would fall past the
    /// window. `asked` is the receiver's `Retry-After`, honoured when longer than ours.
    pub(crate) fn wait(&mut self, asked: Option<Duration>) -> Option<Duration> {
        let wait = asked.map_or(self.next, |asked| asked.max(self.next));
        self.next = (self.next * 2).min(LONGEST);
        (Instant::now() + wait < self.until).then_some(wait)
    }

    /// What is left of the window.
    pub(crate) fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }
}

/// `Retry-After` in seconds (the form push services and most receivers send). An HTTP date
/// is read as "later", the backoff's own wait.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_honour_retry_after_and_stop_at_the_window() {
        let mut backoff = Backoff::within(Duration::from_secs(10));
        assert_eq!(backoff.wait(None), Some(Duration::from_millis(500)));
        assert_eq!(backoff.wait(None), Some(Duration::from_secs(1)));
        assert_eq!(backoff.wait(Some(Duration::from_secs(3))), Some(Duration::from_secs(3)));
        assert_eq!(backoff.wait(Some(Duration::from_secs(30))), None, "past the window");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
