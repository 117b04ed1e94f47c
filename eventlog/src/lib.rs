//! eventlog: the append-only log of chat events, and the bus for ephemeral signals.
//!
//! The log has Kafka's shape on every backend: a fixed number of partitions, each an ordered
//! sequence of records with dense offsets; a record's partition is chosen from its key (the
//! conversation id), so order holds per conversation and never globally. Consumers either
//! join a group (each partition read by one member, progress committed explicitly, delivery
//! at least once) or tail every partition under their own identity (fanout nodes).
//!
//! [`embedded::EmbeddedLog`] keeps the log in SQLite under the data directory and answers an
//! append only after it is fsynced; the Kafka implementation lives beside it behind the same
//! traits. `tests/suite` holds the scenarios every implementation must pass.
//!
//! This crate moves bytes; it does not interpret events (that is `schemas`' job).

pub mod embedded;
mod group;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
mod kafka_config;
#[cfg(feature = "kafka")]
mod kafka_records;
#[cfg(feature = "kafka")]
mod kafka_refusal;
#[cfg(feature = "kafka")]
pub mod kafka_security;
#[cfg(feature = "kafka")]
pub mod kafka_signals;
#[cfg(feature = "kafka")]
mod kafka_subscription;
#[cfg(feature = "kafka")]
mod kafka_topics;
#[cfg(feature = "kafka")]
mod kafka_writers;
pub mod signals;
pub mod trace;

use std::time::Duration;

use async_trait::async_trait;
use schemas::{ConversationId, Position, Timestamp};

pub use group::join_group;
pub use signals::{MemorySignalBus, SignalBus, SignalStream};

/// Where appends go, in the words of OpenTelemetry's messaging conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination<'a> {
    /// `messaging.system`: `kafka`, or `chat-embedded` for the embedded log.
    pub system: &'static str,
    /// `messaging.destination.name`: the topic.
    pub name: &'a str,
}

/// A record header (W3C `traceparent`, CloudEvents `content-type`...).
pub type Header = (String, String);

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub key: ConversationId,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
}

/// One record of the log, as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub position: Position,
    pub key: ConversationId,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
    /// When the log accepted the record.
    pub timestamp: Timestamp,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log could not take or serve the request now; retrying is safe.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    #[error("consumer group {0:?} already has a member in this process")]
    GroupTaken(String),
    #[error("event log configuration: {0}")]
    Config(String),
    /// The cluster refused this process (its login, its certificate, its protocol): asking
    /// again cannot help until a setting changes. The text names the setting.
    #[error("{0}")]
    Refused(String),
    #[error("event log is shut down")]
    Closed,
    /// The subscription can deliver nothing more (e.g. a fenced group member); subscribe
    /// again. Nothing is lost: a group resumes after its last commit, a tail where told.
    #[error("subscription lost: {0}")]
    SubscriptionLost(String),
}

/// How a consumer reads the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeSpec {
    /// Join consumer group `group`: start at its committed offsets (or the beginning), and
    /// count nothing as consumed until [`Subscription::commit`] says so.
    Group(String),
    /// Read every partition under an identity of one's own, starting at the current end.
    /// Nothing is committed: a restarted tail starts at the then-current end.
    Tail,
    /// A tail starting at these offsets (one per partition): how a tail that lost its
    /// subscription carries on exactly where it was.
    TailFrom(Vec<u64>),
}

/// The append-only, partitioned log.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Fixed for the life of the log: keys map to partitions through it.
    fn partitions(&self) -> u32;

    /// How long after `append` was called the log may still write the record. An append
    /// reports failure no later than this, and a record whose append failed is either
    /// written by then or never (what exactly-once sends are timed against).
    fn delivery_timeout(&self) -> Duration;

    /// What traces call the log: the messaging system and the destination (the topic).
    fn destination(&self) -> Destination<'_>;

    /// Appends a record to the key's partition. Returns once the record is durable (Kafka:
    /// acknowledged by all in-sync replicas; embedded: fsynced).
    async fn append(
        &self,
        key: ConversationId,
        value: Vec<u8>,
        headers: Vec<Header>,
    ) -> Result<Position, LogError>;

    /// Appends `records` in the order given: within a partition their offsets increase in
    /// that order. Each has its own outcome (durable as for [`Self::append`]); a failed
    /// record may still have been written, so callers treat a failure as "unknown", not
    /// "absent", until the log shows otherwise.
    async fn append_batch(&self, records: Vec<NewRecord>) -> Vec<Result<Position, LogError>>;

    /// The next offset each partition will assign (one past the last record).
    async fn end_offsets(&self) -> Result<Vec<u64>, LogError>;

    /// The next offset `partition` will assign.
    async fn end_offset(&self, partition: u32) -> Result<u64, LogError>;

    /// Up to `max` records of `partition` from offset `from` on, in offset order.
    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<Record>, LogError>;

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Box<dyn Subscription>, LogError>;

    /// Joins writer group `group`, which shares the partitions out among its members, one
    /// member per partition, rebalancing as members come and go. It reads nothing: it only
    /// says which partitions this member should write.
    async fn writer_assignment(&self, group: &str) -> Result<Box<dyn WriterAssignment>, LogError>;
}

/// A member's share of the partitions in a writer group. Advisory: two members may both
/// believe they have a partition for a moment during a rebalance, so whatever must be
/// exclusive is guarded by other means (ingest's writer leases).
#[async_trait]
pub trait WriterAssignment: Send {
    /// The partitions assigned to this member now.
    fn current(&self) -> Vec<u32>;
    /// True when no other member can exist (the log is open in this process only), so any
    /// writer lease held by another node belongs to a process that is gone.
    fn exclusive(&self) -> bool {
        false
    }
    /// Waits for the assignment to change and returns the new one.
    async fn changed(&mut self) -> Result<Vec<u32>, LogError>;
}

/// A consumer's view of the log.
#[async_trait]
pub trait Subscription: Send {
    /// The next records after the ones already returned, at most `max`, in offset order per
    /// partition. Waits up to `wait` for one to arrive and returns an empty batch if none did.
    /// Cancel-safe: dropping the future loses no record.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, LogError>;

    /// Records every record up to and including each position as consumed by the group, so
    /// a restarted member resumes after them. A no-op for [`SubscribeSpec::Tail`].
    async fn commit(&mut self, through: &[Position]) -> Result<(), LogError>;

    /// The offset each partition was first read from by this subscription.
    fn start_offsets(&self) -> Vec<u64>;
}
