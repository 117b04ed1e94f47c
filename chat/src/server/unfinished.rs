//! Connections that have not yet sent their first request head: the slowloris guard.
//!
//! A client that connects and then sends nothing, or a request head it never finishes,
//! holds a socket and a connection task for as long as it likes unless something closes
//! it. Each such connection gets a [`Ticket`]: it is closed when its first head is late
//! (the read timeout), and when more of them wait than the limit allows, the oldest is
//! closed to make room, so a flood of unfinished connections costs a bounded number of
//! sockets and never keeps a prompt client out. Once the first head has arrived, hyper's
//! own header timer covers the connection (later heads and idle keep-alive).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::metrics::{self, Dropped};

#[derive(Debug)]
pub(crate) struct Unfinished {
    limit: usize,
    next_id: AtomicU64,
    /// Waiting connections by arrival; the first is the oldest.
    waiting: parking_lot::Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Unfinished {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            next_id: AtomicU64::new(0),
            waiting: parking_lot::Mutex::new(BTreeMap::new()),
        })
    }

    /// Registers a new connection, evicting the oldest waiting one when full.
    pub(crate) fn admit(self: &Arc<Self>) -> Ticket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut waiting = self.waiting.lock();
        let mut change = 1;
        while waiting.len() >= self.limit {
            let Some((_, oldest)) = waiting.pop_first() else { break };
            oldest.cancel();
            change -= 1;
        }
        waiting.insert(id, evicted.clone());
        drop(waiting);
        metrics::count_waiting(change);
        Ticket {
            id,
            evicted,
            finished: Arc::new(AtomicBool::new(false)),
            registry: Arc::clone(self),
        }
    }

    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.lock().len()
    }

    fn remove(&self, id: u64) {
        if self.waiting.lock().remove(&id).is_some() {
            metrics::count_waiting(-1);
        }
    }
}

/// One connection's place among the unfinished ones.
#[derive(Debug)]
pub(crate) struct Ticket {
    id: u64,
    evicted: CancellationToken,
    finished: Arc<AtomicBool>,
    registry: Arc<Unfinished>,
}

impl Ticket {
    /// What the connection's service calls on every request: the first one finishes it.
    pub(crate) fn finisher(&self) -> Finisher {
        Finisher {
            id: self.id,
            finished: Arc::clone(&self.finished),
            registry: Arc::clone(&self.registry),
        }
    }

    /// Resolves when the connection must be closed: evicted, or no whole head within
    /// `read_timeout`. Never resolves once the first head has arrived.
    pub(crate) async fn abandoned(&self, read_timeout: Duration) -> Dropped {
        let why = tokio::select! {
            () = self.evicted.cancelled() => Dropped::Crowded,
            () = tokio::time::sleep(read_timeout) => Dropped::Late,
        };
        if self.finished.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        why
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// Marks the connection's first request head as arrived.
#[derive(Debug, Clone)]
pub(crate) struct Finisher {
    id: u64,
    finished: Arc<AtomicBool>,
    registry: Arc<Unfinished>,
}

impl Finisher {
    pub(crate) fn finish(&self) {
        if !self.finished.swap(true, Ordering::AcqRel) {
            self.registry.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_late_first_head_is_dropped_and_a_finished_one_never_is() {
        let registry = Unfinished::new(8);
        let late = registry.admit();
        assert_eq!(late.abandoned(Duration::from_secs(10)).await, Dropped::Late);

        let prompt = registry.admit();
        prompt.finisher().finish();
        assert_eq!(registry.waiting(), 1, "only the late one still waits");
        let outcome = tokio::time::timeout(
            Duration::from_secs(3600),
            prompt.abandoned(Duration::from_secs(10)),
        )
        .await;
        assert!(outcome.is_err(), "a connection past its first head is not abandoned");
        drop(late);
        assert_eq!(registry.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_waiting_connection_makes_room_for_a_new_one() {
        let registry = Unfinished::new(2);
        let first = registry.admit();
        let second = registry.admit();
        second.finisher().finish();
        let third = registry.admit();
        // One finished, so two wait and nobody was evicted yet.
        assert_eq!(registry.waiting(), 2);
        let fourth = registry.admit();
        assert_eq!(registry.waiting(), 2);
        let why = tokio::time::timeout(
            Duration::from_millis(1),
            first.abandoned(Duration::from_secs(10)),
        )
        .await
        .expect("the oldest is evicted at once");
        assert_eq!(why, Dropped::Crowded);
        for survivor in [&third, &fourth] {
            let waited = tokio::time::timeout(
                Duration::from_millis(1),
                survivor.abandoned(Duration::from_secs(10)),
            )
            .await;
            assert!(waited.is_err(), "newer connections keep waiting");
        }
    }
}
