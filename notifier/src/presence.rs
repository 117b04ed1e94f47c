//! Who is connected, as the fanout nodes say on the signal bus: the notifier keeps the same
//! book a fanout node does (`fanout::presence`), and asks about recipients it has not heard
//! of (it started after they connected).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlog::{LogError, SignalBus};
use fanout::presence::{Announcement, PresenceBook};
use parking_lot::Mutex;
use schemas::signals::Signal;
use schemas::{Timestamp, UserId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) struct Presence {
    book: Mutex<PresenceBook>,
    /// When each recipient nobody answered for was last asked about: a recipient who never
    /// connects is asked once per TTL, not on every message to them.
    asked: Mutex<HashMap<UserId, Instant>>,
    ttl: Duration,
    signals: Arc<dyn SignalBus>,
    node: String,
}

/// Recipients remembered as asked before the oldest are forgotten.
const ASKED_MEMORY: usize = 10_000;

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Presence {
    /// Follows the bus until `shutdown`.
    pub(crate) async fn start(
        signals: Arc<dyn SignalBus>,
        ttl: Duration,
        node: String,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Self>, JoinHandle<()>), LogError> {
        let mut stream = signals.subscribe().await?;
        let presence = Arc::new(Self {
            book: Mutex::new(PresenceBook::new(ttl)),
            asked: Mutex::new(HashMap::new()),
            ttl,
            signals,
            node,
        });
        let follower = Arc::clone(&presence);
        let task = tokio::spawn(async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = sweep.tick() => {
                        follower.book.lock().expire(Instant::now(), Timestamp::now());
                    }
                    signal = stream.next() => match signal {
                        Some(signal) => follower.observe(signal),
                        None => break,
                    },
                }
            }
        });
        Ok((presence, task))
    }

    fn observe(&self, signal: Signal) {
        let mut book = self.book.lock();
        match signal {
            Signal::Presence { user_id, status, at, node, seq } => {
                book.observe(
                    user_id,
                    Announcement { node: &node, seq, status, at },
                    Instant::now(),
                );
            }
            Signal::NodeAlive { node, .. } => book.node_alive(&node, Instant::now()),
            _ => {}
        }
    }

    pub(crate) fn is_online(&self, user: &UserId) -> bool {
        self.book.lock().is_online(user, Instant::now())
    }

    /// Asks the fanout nodes about `user` if nothing was heard of them yet; the answer
    /// arrives long before a decision is due.
    pub(crate) async fn ask_if_unheard(&self, user: &UserId) {
        if self.book.lock().snapshot(user).is_some() {
            return;
        }
        let now = Instant::now();
        {
            let mut asked = self.asked.lock();
            if asked.get(user).is_some_and(|at| now.duration_since(*at) < self.ttl) {
                return;
            }
            if asked.len() >= ASKED_MEMORY {
                asked.retain(|_, at| now.duration_since(*at) < self.ttl);
            }
            asked.insert(user.clone(), now);
        }
        let query = Signal::PresenceQuery { user_ids: vec![user.clone()], node: self.node.clone() };
        self.signals.publish(query).await;
    }
}
