//! Who receives what on this node: the subscribers of each conversation, the connections
//! that want each user's inbox updates, and how many connections each user holds.
//!
//! Every queue is bounded and filled with `try_send`: a full queue never blocks the hub, it
//! flags its connection as too slow (closed with 4008, to resume later) and drops it here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use schemas::{ConversationId, UserId};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use crate::delivery::Outbound;
use crate::metrics;

/// A connection's end of a subscription.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub connection: u64,
    pub queue: mpsc::Sender<Outbound>,
    /// Cancelled when the queue is full: the connection must close (4008).
    pub too_slow: CancellationToken,
    /// The connection's protocol, for the metrics.
    pub protocol: &'static str,
}

impl Subscriber {
    /// Queues `item`; false when the connection is gone or, flagged, too slow.
    fn offer(&self, item: Outbound) -> bool {
        match self.queue.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.too_slow.cancel();
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// Queues `item` for each of `subscribers`, keeping those that took it; returns how many.
fn offer_to_all(subscribers: &mut Vec<Subscriber>, item: &Outbound) -> usize {
    subscribers.retain(|subscriber| {
        let taken = subscriber.offer(item.clone());
        if !taken {
            metrics::subscriptions_changed(subscriber.protocol, -1);
        }
        taken
    });
    metrics::queued(item, subscribers.len());
    subscribers.len()
}

/// A conversation watched on this node: its subscribers, and its two participants (whose
/// presence its subscribers are shown).
#[derive(Debug)]
struct Watched {
    subscribers: Vec<Subscriber>,
    participants: [UserId; 2],
}

/// Each conversation's subscribers on this node. Kept by the hub under one lock with the
/// conversations' backlog: see `resume.rs`.
#[derive(Debug, Default)]
pub(crate) struct ConversationSubscribers {
    by_conversation: HashMap<ConversationId, Watched>,
    /// Per user, the watched conversations they take part in: where their presence goes.
    by_participant: HashMap<UserId, HashSet<ConversationId>>,
}

impl ConversationSubscribers {
    /// Adds `subscriber` (once per connection) to `conversation`, between `participants`.
    pub(crate) fn add(
        &mut self,
        conversation: ConversationId,
        participants: [UserId; 2],
        subscriber: Subscriber,
    ) {
        let watched = self.by_conversation.entry(conversation).or_insert_with(|| {
            for user in &participants {
                self.by_participant.entry(user.clone()).or_default().insert(conversation);
            }
            Watched { subscribers: Vec::new(), participants }
        });
        let before = watched.subscribers.len();
        watched.subscribers.retain(|existing| existing.connection != subscriber.connection);
        if watched.subscribers.len() == before {
            metrics::subscriptions_changed(subscriber.protocol, 1);
        }
        watched.subscribers.push(subscriber);
    }

    /// Removes `connection`'s subscription; true when nobody here watches any more.
    pub(crate) fn remove(&mut self, conversation: ConversationId, connection: u64) -> bool {
        let Some(watched) = self.by_conversation.get_mut(&conversation) else {
            return false;
        };
        watched.subscribers.retain(|existing| {
            let leaving = existing.connection == connection;
            if leaving {
                metrics::subscriptions_changed(existing.protocol, -1);
            }
            !leaving
        });
        self.drop_if_empty(conversation)
    }

    /// Queues `item` for the conversation's subscribers. Returns how many took it, and
    /// whether the last one just went (too slow, or gone).
    pub(crate) fn offer(&mut self, conversation: ConversationId, item: &Outbound) -> (usize, bool) {
        let Some(watched) = self.by_conversation.get_mut(&conversation) else {
            return (0, false);
        };
        let queued = offer_to_all(&mut watched.subscribers, item);
        (queued, self.drop_if_empty(conversation))
    }

    pub(crate) fn is_watched(&self, conversation: ConversationId) -> bool {
        self.by_conversation.contains_key(&conversation)
    }

    /// The conversations watched here that `user` takes part in.
    pub(crate) fn watched_with(&self, user: &UserId) -> Vec<ConversationId> {
        self.by_participant.get(user).map(|set| set.iter().copied().collect()).unwrap_or_default()
    }

    fn drop_if_empty(&mut self, conversation: ConversationId) -> bool {
        let empty =
            self.by_conversation.get(&conversation).is_some_and(|w| w.subscribers.is_empty());
        if empty && let Some(watched) = self.by_conversation.remove(&conversation) {
            for user in &watched.participants {
                if let Some(set) = self.by_participant.get_mut(user) {
                    set.remove(&conversation);
                    if set.is_empty() {
                        self.by_participant.remove(user);
                    }
                }
            }
        }
        empty
    }
}

/// The connections that receive each user's inbox updates.
#[derive(Debug, Default)]
pub(crate) struct InboxListeners {
    by_user: Mutex<HashMap<UserId, Vec<Subscriber>>>,
}

impl InboxListeners {
    pub(crate) fn add(&self, user: &UserId, subscriber: Subscriber) {
        self.by_user.lock().entry(user.clone()).or_default().push(subscriber);
    }

    pub(crate) fn remove(&self, user: &UserId, connection: u64) {
        let mut by_user = self.by_user.lock();
        if let Some(subscribers) = by_user.get_mut(user) {
            subscribers.retain(|existing| existing.connection != connection);
            if subscribers.is_empty() {
                by_user.remove(user);
            }
        }
    }

    pub(crate) fn offer(&self, user: &UserId, item: &Outbound) {
        if let Some(subscribers) = self.by_user.lock().get_mut(user) {
            subscribers.retain(|subscriber| subscriber.offer(item.clone()));
            metrics::queued(item, subscribers.len());
        }
    }
}

/// Open connections per user on this node, at most `limit` each.
#[derive(Debug)]
pub(crate) struct Admission {
    open: Mutex<HashMap<UserId, usize>>,
    limit: usize,
}

/// One admitted connection of a user; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionTicket {
    admission: Arc<Admission>,
    user: UserId,
}

impl Admission {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { open: Mutex::new(HashMap::new()), limit })
    }

    /// A place for one more connection of `user`; `None` when the user holds `limit`.
    pub(crate) fn admit(self: &Arc<Self>, user: &UserId) -> Option<ConnectionTicket> {
        let mut open = self.open.lock();
        let count = open.entry(user.clone()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ConnectionTicket { admission: Arc::clone(self), user: user.clone() })
    }
}

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(connection: u64, room: usize) -> (Subscriber, mpsc::Receiver<Outbound>) {
        let (queue, receiver) = mpsc::channel(room);
        let too_slow = CancellationToken::new();
        (Subscriber { connection, queue, too_slow, protocol: "test" }, receiver)
    }

    fn pair() -> [UserId; 2] {
        [UserId::new("ana").unwrap(), UserId::new("bo").unwrap()]
    }

    fn item() -> Outbound {
        Outbound::Native(Arc::new("{}".into()))
    }

    #[test]
    fn a_full_queue_flags_its_connection_and_leaves_the_others() {
        let conversation = ConversationId::new(7).unwrap();
        let mut subscribers = ConversationSubscribers::default();
        let (slow, _slow_queue) = subscriber(1, 1);
        let (fast, mut fast_queue) = subscriber(2, 8);
        subscribers.add(conversation, pair(), slow.clone());
        subscribers.add(conversation, pair(), fast.clone());
        assert_eq!(subscribers.offer(conversation, &item()), (2, false));
        assert_eq!(subscribers.offer(conversation, &item()), (1, false), "the slow one is out");
        assert!(slow.too_slow.is_cancelled());
        assert!(!fast.too_slow.is_cancelled());
        assert!(fast_queue.try_recv().is_ok() && fast_queue.try_recv().is_ok());
        assert_eq!(subscribers.watched_with(&pair()[1]), [conversation]);
        assert!(subscribers.remove(conversation, 2), "the last subscriber left");
        assert!(!subscribers.is_watched(conversation));
        assert!(subscribers.watched_with(&pair()[1]).is_empty(), "no presence goes there now");
    }

    #[test]
    fn subscribing_twice_on_one_connection_delivers_once() {
        let conversation = ConversationId::new(7).unwrap();
        let mut subscribers = ConversationSubscribers::default();
        let (one, mut queue) = subscriber(1, 8);
        subscribers.add(conversation, pair(), one.clone());
        subscribers.add(conversation, pair(), one);
        assert_eq!(subscribers.offer(conversation, &item()).0, 1);
        assert!(queue.try_recv().is_ok() && queue.try_recv().is_err());
    }

    #[test]
    fn admission_counts_places_until_tickets_drop() {
        let admission = Admission::new(2);
        let ana = UserId::new("ana").unwrap();
        let first = admission.admit(&ana).unwrap();
        let _second = admission.admit(&ana).unwrap();
        assert!(admission.admit(&ana).is_none());
        assert!(admission.admit(&UserId::new("bo").unwrap()).is_some(), "per user");
        drop(first);
        assert!(admission.admit(&ana).is_some());
    }
}
