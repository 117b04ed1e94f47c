//! The hub: one per fanout process. It tails every partition of the log and the signal bus,
//! keeps the recent messages of each conversation, and hands every event to the queues of
//! the connections subscribed to it.
//!
//! Gapless resume rests on one invariant, kept under the hub's lock: for each conversation
//! the hub knows an offset `known_from` such that it holds every message of the conversation
//! at or after that offset. A subscription registers and snapshots the recent messages in
//! one critical section, so every later message reaches its queue, and everything before
//! `known_from` comes from the store, once the store's watermark shows it has it.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use eventlog::trace::{self, TraceParent};
use eventlog::{EventLog, LogError, Record, SignalBus, SubscribeSpec};
use lru::LruCache;
use parking_lot::Mutex;
use schemas::http::Message;
use schemas::native::{PresenceStatus, ServerFrame};
use schemas::signals::Signal;
use schemas::{ChatEvent, ConversationId, Envelope, MessageId, Timestamp, UserId};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::FanoutConfig;
use crate::delivery::{MessageDelivery, Outbound, render};
use crate::presence::{Announcement, Change, PresenceBook};
use crate::{loops, metrics};

/// Presence entries remembered before offline ones are forgotten.
const PRESENCE_MEMORY: usize = 100_000;

/// One admitted connection of a user; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionTicket {
    hub: Arc<Hub>,
    user: UserId,
}

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        let mut state = self.hub.state.lock();
        if let Some(open) = state.connections.get_mut(&self.user) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                state.connections.remove(&self.user);
            }
        }
    }
}

/// A connection's end of a subscription.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub connection: u64,
    pub queue: mpsc::Sender<Outbound>,
    /// Cancelled by the hub when the queue is full: the connection must close (4008).
    pub too_slow: CancellationToken,
    /// The connection's protocol, for the metrics.
    pub protocol: &'static str,
}

/// Messages the store must supply before the in-memory ones: ids in `(after, before)`,
/// readable once the store's watermark for `partition` reaches `through_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreRange {
    pub after: MessageId,
    pub before: MessageId,
    pub partition: u32,
    pub through_offset: u64,
}

/// How to bring a resuming subscriber up to date: the store range first, then `recent`,
/// then the read receipts it missed that the hub holds.
#[derive(Debug)]
pub struct ResumePlan {
    pub from_store: Option<StoreRange>,
    pub recent: Vec<Arc<MessageDelivery>>,
    /// Native `read` frames: each reader's latest receipt after `since`, if the hub has it.
    pub receipts: Vec<Utf8Bytes>,
}

/// A reader's latest receipt in a conversation, as the hub saw it in the log.
#[derive(Debug)]
struct HeldReceipt {
    reader: UserId,
    /// The receipt's place among the conversation's message ids.
    position: MessageId,
    frame: Utf8Bytes,
}

#[derive(Debug)]
struct Entry {
    recent: VecDeque<Arc<MessageDelivery>>,
    /// Every message of the conversation at this offset or later is in `recent` (or newer
    /// than anything seen yet), and so is every reader's latest receipt in `receipts`.
    known_from: u64,
    /// Offset of the newest event of the conversation the hub has seen, if any.
    newest: Option<u64>,
    receipts: Vec<HeldReceipt>,
    subscribers: Vec<Subscriber>,
}

impl Entry {
    fn new(known_from: u64) -> Self {
        Self {
            recent: VecDeque::new(),
            known_from,
            newest: None,
            receipts: Vec::new(),
            subscribers: Vec::new(),
        }
    }
}

impl State {
    /// The entry of `conversation`, made from its partition's floor if the hub has none.
    fn entry(&mut self, conversation: ConversationId, partitions: u32) -> &mut Entry {
        let floor = self.floors[conversation.partition(partitions) as usize];
        self.entries.entry(conversation).or_insert_with(|| Entry::new(floor))
    }
}

#[derive(Debug)]
struct State {
    entries: HashMap<ConversationId, Entry>,
    /// Conversations with an entry but no subscribers, least recently active first.
    idle: LruCache<ConversationId, ()>,
    /// Per partition: for a conversation without an entry, the offset from which the hub
    /// has seen all of its messages (none).
    floors: Vec<u64>,
    users: HashMap<UserId, Vec<Subscriber>>,
    /// Connections of this node per (conversation, user), for online/offline edges.
    local_presence: HashMap<(ConversationId, UserId), Vec<u64>>,
    /// This node's last presence announcement number, advanced under the lock together
    /// with `local_presence`, so numbers follow the order of the changes they announce.
    presence_seq: u64,
    /// Open connections per user on this node.
    connections: HashMap<UserId, usize>,
    presence: PresenceBook,
    /// Typing indicators shown to this node's connections, with the time they lapse unless
    /// repeated. Every hub withdraws lapsed ones itself, so an indicator stops even when
    /// the typer's connection or node is gone without a word.
    typing: HashMap<(ConversationId, UserId), Instant>,
}

pub struct Hub {
    state: Mutex<State>,
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

/// Queues `item` for each of `subscribers`, keeping those still there (a full queue flags
/// its connection as too slow and drops it from the list); returns how many took it.
fn send_to_all(subscribers: &mut Vec<Subscriber>, item: &Outbound) -> usize {
    let mut queued = 0;
    subscribers.retain(|subscriber| {
        let sent = send_or_flag(subscriber, item.clone());
        queued += usize::from(sent);
        if !sent {
            metrics::subscriptions_changed(subscriber.protocol, -1);
        }
        sent
    });
    metrics::queued(item, queued);
    queued
}

/// The span of the hub taking a message in: a child of the span that appended it, with
/// the number of connections it was queued for (one span, not one per socket).
fn consumer_span(record: &Record, (system, topic): &(&'static str, String)) -> tracing::Span {
    tracing::debug_span!(
        "deliver",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        messaging.system = *system,
        messaging.destination.name = topic.as_str(),
        messaging.operation.type = "process",
        messaging.destination.partition.id = record.position.partition,
        messaging.kafka.offset = record.position.offset,
        chat.deliveries = tracing::field::Empty,
    )
}

fn send_or_flag(subscriber: &Subscriber, item: Outbound) -> bool {
    match subscriber.queue.try_send(item) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            subscriber.too_slow.cancel();
            false
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

impl Hub {
    /// Starts tailing `log` and `signals`; the returned task ends when `shutdown` fires.
    pub async fn start(
        log: Arc<dyn EventLog>,
        signals: Arc<dyn SignalBus>,
        config: FanoutConfig,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Hub>, JoinHandle<()>), LogError> {
        let tail = log.subscribe(SubscribeSpec::Tail).await?;
        let idle = NonZeroUsize::new(config.idle_conversations.max(1)).unwrap_or(NonZeroUsize::MIN);
        let presence_ttl = config.presence_ttl;
        let hub = Arc::new(Hub {
            state: Mutex::new(State {
                entries: HashMap::new(),
                idle: LruCache::new(idle),
                floors: tail.start_offsets(),
                users: HashMap::new(),
                local_presence: HashMap::new(),
                presence_seq: 0,
                connections: HashMap::new(),
                presence: PresenceBook::new(presence_ttl),
                typing: HashMap::new(),
            }),
            partitions: log.partitions(),
            config,
            next_connection: AtomicU64::new(1),
            node: uuid::Uuid::new_v4().simple().to_string(),
            signals: Arc::clone(&signals),
            positions: tail.start_offsets().into_iter().map(AtomicU64::new).collect(),
            destination: (log.destination().system, log.destination().name.to_owned()),
        });
        let signal_stream = signals.subscribe().await?;
        let task = loops::spawn(&hub, log, tail, signal_stream, &shutdown);
        Ok((hub, task))
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

    /// Registers `subscriber` for `conversation` and says how to catch it up from `since`
    /// (nothing to catch up without `since`: it just goes live).
    pub fn subscribe(
        &self,
        conversation: ConversationId,
        subscriber: Subscriber,
        since: Option<MessageId>,
    ) -> ResumePlan {
        let partition = conversation.partition(self.partitions);
        let mut state = self.state.lock();
        state.idle.pop(&conversation);
        let entry = state.entry(conversation, self.partitions);
        let (before, protocol) = (entry.subscribers.len(), subscriber.protocol);
        entry.subscribers.retain(|existing| existing.connection != subscriber.connection);
        entry.subscribers.push(subscriber);
        if entry.subscribers.len() > before {
            metrics::subscriptions_changed(protocol, 1);
        }
        let Some(since) = since else {
            return ResumePlan { from_store: None, recent: Vec::new(), receipts: Vec::new() };
        };
        let recent = entry.recent.iter().filter(|m| m.id() > since).cloned().collect();
        let receipts = entry
            .receipts
            .iter()
            .filter(|held| held.position > since)
            .map(|held| held.frame.clone())
            .collect();
        let boundary = MessageId::first_at(partition, entry.known_from);
        let from_store =
            (entry.known_from > 0 && since.get() + 1 < boundary.get()).then(|| StoreRange {
                after: since,
                before: boundary,
                partition,
                through_offset: entry.known_from - 1,
            });
        ResumePlan { from_store, recent, receipts }
    }

    pub fn unsubscribe(&self, conversation: ConversationId, connection: u64) {
        let mut state = self.state.lock();
        let Some(entry) = state.entries.get_mut(&conversation) else {
            return;
        };
        entry.subscribers.retain(|existing| {
            let leaving = existing.connection == connection;
            if leaving {
                metrics::subscriptions_changed(existing.protocol, -1);
            }
            !leaving
        });
        self.park_if_unwatched(&mut state, conversation);
    }

    /// Counts a new connection of `user`; `None` when the user already holds as many as a
    /// node allows. The connection is counted until the ticket is dropped.
    pub fn admit(self: &Arc<Self>, user: &UserId) -> Option<ConnectionTicket> {
        let mut state = self.state.lock();
        let open = state.connections.entry(user.clone()).or_default();
        if *open >= self.config.max_connections_per_user {
            return None;
        }
        *open += 1;
        Some(ConnectionTicket { hub: Arc::clone(self), user: user.clone() })
    }

    /// Inbox updates for `user` go to `subscriber` until [`Hub::unregister_user`].
    pub fn register_user(&self, user: &UserId, subscriber: Subscriber) {
        self.state.lock().users.entry(user.clone()).or_default().push(subscriber);
    }

    pub fn unregister_user(&self, user: &UserId, connection: u64) {
        let mut state = self.state.lock();
        if let Some(subscribers) = state.users.get_mut(user) {
            subscribers.retain(|existing| existing.connection != connection);
            if subscribers.is_empty() {
                state.users.remove(user);
            }
        }
    }

    /// Notes that `connection` shows `user` in `conversation`; when it is the first
    /// connection of this node to do so (the user just came online here), the number to
    /// announce it with.
    pub fn join(
        &self,
        conversation: ConversationId,
        user: &UserId,
        connection: u64,
    ) -> Option<u64> {
        let mut state = self.state.lock();
        let connections = state.local_presence.entry((conversation, user.clone())).or_default();
        if connections.contains(&connection) {
            return None;
        }
        connections.push(connection);
        let first = connections.len() == 1;
        first.then(|| next_presence_seq(&mut state))
    }

    /// Undoes [`Hub::join`]; when it was the user's last connection here, the number to
    /// announce that with.
    pub fn leave(
        &self,
        conversation: ConversationId,
        user: &UserId,
        connection: u64,
    ) -> Option<u64> {
        let mut state = self.state.lock();
        let key = (conversation, user.clone());
        let connections = state.local_presence.get_mut(&key)?;
        let before = connections.len();
        connections.retain(|existing| *existing != connection);
        let left = connections.len() < before;
        if connections.is_empty() {
            state.local_presence.remove(&key);
        }
        (left && !state.local_presence.contains_key(&key)).then(|| next_presence_seq(&mut state))
    }

    /// This node's name in presence announcements.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The last known presence of each participant of `conversation`, as native frames.
    pub fn presence_of(&self, conversation: ConversationId, users: &[&UserId]) -> Vec<Utf8Bytes> {
        let state = self.state.lock();
        users
            .iter()
            .filter_map(|user| {
                let (status, at) = state.presence.snapshot(&(conversation, (*user).clone()))?;
                Some(render(&ServerFrame::Presence {
                    conversation_id: conversation,
                    user_id: (*user).clone(),
                    status,
                    at,
                }))
            })
            .collect()
    }

    fn deliver_presence(&self, change: Change) {
        let frame = render(&ServerFrame::Presence {
            conversation_id: change.conversation,
            user_id: change.user.clone(),
            status: change.status,
            at: change.at,
        });
        let item = Outbound::About(Arc::new((change.user, frame)));
        self.deliver_to_conversation(change.conversation, &item);
    }

    pub(crate) fn expire_presence(&self) {
        let changes = {
            let mut state = self.state.lock();
            let changes = state.presence.expire(Instant::now(), Timestamp::now());
            state.presence.forget_offline(PRESENCE_MEMORY);
            changes
        };
        for change in changes {
            self.deliver_presence(change);
        }
    }

    fn deliver_typing(&self, conversation: ConversationId, user: UserId, is_typing: bool) {
        let frame = render(&ServerFrame::Typing {
            conversation_id: conversation,
            user_id: user.clone(),
            is_typing,
        });
        self.deliver_to_conversation(conversation, &Outbound::About(Arc::new((user, frame))));
    }

    /// Withdraws indicators not repeated within `typing_ttl`.
    pub(crate) fn expire_typing(&self) {
        let now = Instant::now();
        let lapsed: Vec<_> = {
            let mut state = self.state.lock();
            let lapsed = state
                .typing
                .iter()
                .filter(|(_, until)| **until <= now)
                .map(|(key, _)| key.clone())
                .collect::<Vec<_>>();
            for key in &lapsed {
                state.typing.remove(key);
            }
            lapsed
        };
        for (conversation, user) in lapsed {
            self.deliver_typing(conversation, user, false);
        }
    }

    fn evict_idle(&self, state: &mut State) {
        while state.idle.len() > self.config.idle_conversations {
            let Some((conversation, ())) = state.idle.pop_lru() else {
                return;
            };
            let Some(entry) = state.entries.remove(&conversation) else {
                continue;
            };
            let partition = conversation.partition(self.partitions) as usize;
            let forgotten_through = entry.newest.map_or(entry.known_from, |newest| newest + 1);
            state.floors[partition] = state.floors[partition].max(forgotten_through);
        }
    }

    fn on_record(&self, record: &Record) {
        let (envelope, event) = match Envelope::decode(&record.value) {
            Ok((envelope, Some(event))) => (envelope, event),
            Ok((_, None)) => return,
            Err(error) => {
                tracing::warn!(%error, offset = record.position.offset, "fanout skips undecodable record");
                return;
            }
        };
        match event {
            ChatEvent::MessageSent(sent) => {
                let after = Timestamp::now().millis().saturating_sub(sent.sent_at.millis());
                let trace = envelope.traceparent.as_deref().and_then(TraceParent::parse);
                metrics::message_arrived(
                    Duration::from_millis(u64::try_from(after).unwrap_or(0)),
                    trace.as_ref().map(TraceParent::trace_id),
                );
                let span = trace.as_ref().filter(|trace| trace.sampled()).map(|trace| {
                    let span = consumer_span(record, &self.destination);
                    trace::set_remote_parent(&span, trace);
                    span
                });
                let message = Message {
                    id: MessageId::from_position(record.position),
                    conversation_id: sent.conversation_id,
                    sender_id: sent.sender.id,
                    sender_name: sent.sender.name,
                    message_type: sent.message_type,
                    text: sent.text,
                    attachment: sent.attachment,
                    idempotency_key: sent.idempotency_key,
                    sent_at: sent.sent_at,
                    is_read: false,
                };
                let _entered = span.as_ref().map(tracing::Span::enter);
                let delivered =
                    self.deliver_message(record.position.offset, MessageDelivery::new(message));
                if let Some(span) = &span {
                    span.record("chat.deliveries", delivered);
                }
            }
            ChatEvent::MessagesRead(read) => self.deliver_receipt(record.position, read),
            ChatEvent::ConversationStarted(_) => {}
        }
    }

    /// Queues the message for its subscribers; returns how many connections took it.
    fn deliver_message(&self, offset: u64, delivery: Arc<MessageDelivery>) -> usize {
        let conversation = delivery.conversation();
        let mut state = self.state.lock();
        let entry = state.entry(conversation, self.partitions);
        entry.newest = Some(offset);
        if let Some(key) = &delivery.message.idempotency_key
            && entry.recent.iter().any(|m| m.message.idempotency_key.as_ref() == Some(key))
        {
            tracing::info!(%conversation, id = %delivery.id(), "fanout drops a duplicate send");
            return 0;
        }
        entry.recent.push_back(Arc::clone(&delivery));
        while entry.recent.len() > self.config.recent_per_conversation {
            if let Some(evicted) = entry.recent.pop_front() {
                let next = evicted.id().position().map_or(offset, |position| position.offset + 1);
                entry.known_from = entry.known_from.max(next);
            }
        }
        self.dispatch(&mut state, conversation, &Outbound::Message(delivery))
    }

    /// Delivers a receipt and keeps it as its reader's latest, in one critical section with
    /// [`Hub::subscribe`]'s snapshot, so a resuming client gets it exactly once.
    fn deliver_receipt(&self, at: schemas::Position, read: schemas::events::MessagesRead) {
        let conversation = read.conversation_id;
        let position = MessageId::from_position(at);
        let reader = read.reader_id.clone();
        let frame = render(&ServerFrame::Read {
            conversation_id: conversation,
            reader_id: read.reader_id,
            up_to: read.up_to,
            read_at: read.read_at,
            position,
        });
        let mut state = self.state.lock();
        let entry = state.entry(conversation, self.partitions);
        entry.newest = Some(at.offset);
        entry.receipts.retain(|held| held.reader != reader);
        entry.receipts.push(HeldReceipt { reader, position, frame: frame.clone() });
        self.dispatch(&mut state, conversation, &Outbound::Native(Arc::new(frame)));
    }

    fn deliver_to_conversation(&self, conversation: ConversationId, item: &Outbound) {
        self.dispatch(&mut self.state.lock(), conversation, item);
    }

    /// Queues `item` for the conversation's subscribers, dropping those that are gone;
    /// returns how many took it.
    fn dispatch(&self, state: &mut State, conversation: ConversationId, item: &Outbound) -> usize {
        let Some(entry) = state.entries.get_mut(&conversation) else {
            return 0;
        };
        let queued = send_to_all(&mut entry.subscribers, item);
        self.park_if_unwatched(state, conversation);
        queued
    }

    /// A conversation nobody here watches any more joins the idle ones, the least recently
    /// active of which are forgotten.
    fn park_if_unwatched(&self, state: &mut State, conversation: ConversationId) {
        if state.entries.get(&conversation).is_some_and(|entry| entry.subscribers.is_empty()) {
            state.idle.put(conversation, ());
            self.evict_idle(state);
        }
    }

    /// Applies a signal from any node; returns the signals this node must publish in
    /// answer (presence queries are answered with this node's sightings).
    pub(crate) fn on_signal(&self, signal: Signal) -> Vec<Signal> {
        metrics::signal_received(match &signal {
            Signal::Typing { .. } => "typing",
            Signal::Presence { .. } => "presence",
            Signal::NodeAlive { .. } => "node_alive",
            Signal::PresenceQuery { .. } => "presence_query",
            Signal::InboxUpdated { .. } => "inbox",
        });
        match signal {
            Signal::Typing { conversation_id, user_id, is_typing, .. } => {
                let key = (conversation_id, user_id.clone());
                {
                    let mut state = self.state.lock();
                    if is_typing {
                        state.typing.insert(key, Instant::now() + self.config.typing_ttl);
                    } else {
                        state.typing.remove(&key);
                    }
                }
                self.deliver_typing(conversation_id, user_id, is_typing);
            }
            Signal::Presence { conversation_id, user_id, status, at, node, seq } => {
                let change = self.state.lock().presence.observe(
                    (conversation_id, user_id),
                    Announcement { node: &node, seq, status, at },
                    Instant::now(),
                );
                if let Some(change) = change {
                    self.deliver_presence(change);
                }
            }
            Signal::NodeAlive { node, .. } => {
                self.state.lock().presence.node_alive(&node, Instant::now());
            }
            Signal::PresenceQuery { conversation_id, .. } => {
                let mut state = self.state.lock();
                let here: Vec<UserId> = state
                    .local_presence
                    .keys()
                    .filter(|(conversation, _)| *conversation == conversation_id)
                    .map(|(_, user)| user.clone())
                    .collect();
                return here
                    .into_iter()
                    .map(|user_id| Signal::Presence {
                        conversation_id,
                        user_id,
                        status: PresenceStatus::Online,
                        at: Timestamp::now(),
                        node: self.node.clone(),
                        seq: next_presence_seq(&mut state),
                    })
                    .collect();
            }
            Signal::InboxUpdated { user_id, item } => {
                let frame = Outbound::Native(Arc::new(render(&ServerFrame::Inbox { item: *item })));
                let mut state = self.state.lock();
                if let Some(subscribers) = state.users.get_mut(&user_id) {
                    subscribers.retain(|subscriber| send_or_flag(subscriber, frame.clone()));
                    metrics::queued(&frame, subscribers.len());
                }
            }
        }
        Vec::new()
    }
}

fn next_presence_seq(state: &mut State) -> u64 {
    state.presence_seq += 1;
    state.presence_seq
}
