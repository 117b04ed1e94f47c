//! The hub: one per fanout process. It tails every partition of the log and the signal bus
//! (`loops.rs`), remembers the recent events of each conversation (`resume.rs`), and hands
//! every event to the queues of the connections subscribed to it (`subscribers.rs`).
//!
//! Its state is split by concern, each part under its own lock: the conversations (their
//! backlog and subscribers, together, for gapless resume), inbox listeners, admission, this
//! node's presence, what other nodes announced, and typing. What comes from the log is in
//! `log.rs`, what comes from other nodes in `signals.rs`.

mod log;
mod signals;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eventlog::{EventLog, Record, SignalBus};
use parking_lot::Mutex;
use schemas::signals::Signal;
use schemas::{ConversationId, MessageId, UserId};

use crate::config::FanoutConfig;
use crate::delivery::Outbound;
use crate::local_presence::LocalPresence;
use crate::presence::PresenceBook;
use crate::resume::{Backlog, ResumePlan};
use crate::subscribers::{
    Admission, ConnectionTicket, ConversationSubscribers, InboxListeners, Subscriber,
};
use crate::typing::TypingBoard;

/// The conversations' backlog and subscribers, under one lock: a subscription registers
/// and snapshots the backlog in one step, so every later event reaches its queue.
#[derive(Debug)]
struct Conversations {
    backlog: Backlog,
    subscribers: ConversationSubscribers,
}

impl Conversations {
    /// Queues `item` for the conversation's subscribers; returns how many took it. A
    /// conversation nobody here watches (any more) joins the idle ones.
    fn offer(&mut self, conversation: ConversationId, item: &Outbound) -> usize {
        if !self.subscribers.is_watched(conversation) {
            self.backlog.unwatch(conversation);
            return 0;
        }
        let (queued, emptied) = self.subscribers.offer(conversation, item);
        if emptied {
            self.backlog.unwatch(conversation);
        }
        queued
    }
}

pub struct Hub {
    conversations: Mutex<Conversations>,
    inbox: InboxListeners,
    admission: Arc<Admission>,
    local_presence: Mutex<LocalPresence>,
    presence: Mutex<PresenceBook>,
    typing: Mutex<TypingBoard>,
    partitions: u32,
    config: FanoutConfig,
    next_connection: AtomicU64,
    /// This node's name in presence announcements.
    node: String,
    signals: Arc<dyn SignalBus>,
    /// Per partition, the offset after the last record the hub has read: its position in
    /// the log, for the lag metric.
    positions: Vec<AtomicU64>,
    /// The log's messaging system and topic, for the hub's spans.
    destination: (&'static str, String),
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub whose position in `log` is `start_offsets`, one per partition; `loops.rs`
    /// starts it.
    pub(crate) fn new(
        log: &dyn EventLog,
        start_offsets: Vec<u64>,
        signals: Arc<dyn SignalBus>,
        config: FanoutConfig,
    ) -> Self {
        let backlog = Backlog::new(
            start_offsets.clone(),
            config.recent_per_conversation,
            config.idle_conversations,
        );
        Hub {
            conversations: Mutex::new(Conversations {
                backlog,
                subscribers: ConversationSubscribers::default(),
            }),
            inbox: InboxListeners::default(),
            admission: Admission::new(config.max_connections_per_user),
            local_presence: Mutex::new(LocalPresence::default()),
            presence: Mutex::new(PresenceBook::new(config.presence_ttl)),
            typing: Mutex::new(TypingBoard::default()),
            partitions: log.partitions(),
            config,
            next_connection: AtomicU64::new(1),
            node: uuid::Uuid::new_v4().simple().to_string(),
            signals,
            positions: start_offsets.into_iter().map(AtomicU64::new).collect(),
            destination: (log.destination().system, log.destination().name.to_owned()),
        }
    }

    /// Takes in a record of the log's tail and moves this node's position past it.
    pub(crate) fn take(&self, record: &Record) {
        self.on_record(record);
        if let Some(position) = self.positions.get(record.position.partition as usize) {
            position.store(record.position.offset + 1, Ordering::Relaxed);
        }
    }

    /// Publishes `signal` to every node.
    pub(crate) async fn publish(&self, signal: Signal) {
        self.signals.publish(signal).await;
    }

    pub fn config(&self) -> &FanoutConfig {
        &self.config
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Per partition, the offset of the next record the hub will read.
    pub fn positions(&self) -> Vec<u64> {
        self.positions.iter().map(|position| position.load(Ordering::Relaxed)).collect()
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// This node's name in presence announcements.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Registers `subscriber` for `conversation` and says how to catch it up from `since`
    /// (nothing to catch up without `since`: it just goes live).
    pub fn subscribe(
        &self,
        conversation: ConversationId,
        participants: [UserId; 2],
        subscriber: Subscriber,
        since: Option<MessageId>,
    ) -> ResumePlan {
        let mut conversations = self.conversations.lock();
        conversations.subscribers.add(conversation, participants, subscriber);
        conversations.backlog.watch(conversation, since)
    }

    pub fn unsubscribe(&self, conversation: ConversationId, connection: u64) {
        let mut conversations = self.conversations.lock();
        if conversations.subscribers.remove(conversation, connection) {
            conversations.backlog.unwatch(conversation);
        }
    }

    /// Counts a new connection of `user`; `None` when the user already holds as many as a
    /// node allows. The connection is counted until the ticket is dropped.
    pub fn admit(&self, user: &UserId) -> Option<ConnectionTicket> {
        self.admission.admit(user)
    }

    /// Inbox updates for `user` go to `subscriber` until [`Hub::unregister_user`].
    pub fn register_user(&self, user: &UserId, subscriber: Subscriber) {
        self.inbox.add(user, subscriber);
    }

    pub fn unregister_user(&self, user: &UserId, connection: u64) {
        self.inbox.remove(user, connection);
    }

    /// Notes `connection` of `user`; when it is the user's first on this node (they just
    /// came online here), the number to announce it with.
    pub fn join(&self, user: &UserId, connection: u64) -> Option<u64> {
        self.local_presence.lock().join(user, connection)
    }

    /// Undoes [`Hub::join`]; when it was the user's last connection here, the number to
    /// announce that with.
    pub fn leave(&self, user: &UserId, connection: u64) -> Option<u64> {
        self.local_presence.lock().leave(user, connection)
    }

    fn offer(&self, conversation: ConversationId, item: &Outbound) -> usize {
        self.conversations.lock().offer(conversation, item)
    }
}
