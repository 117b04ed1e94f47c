//! viewstore: what the chat knows besides the log.
//!
//! Three kinds of state, behind five traits so each role gets only what it may touch:
//! - [`ConversationDirectory`] (written by ingest): which conversation belongs to which
//!   job. Written with compare-and-set, before the events it guards are appended.
//! - [`WriterLeases`] (written by ingest nodes): which node appends the keyed sends of each
//!   log partition. Compare-and-set on a version that only rises.
//! - [`ProjectionStore`] (written only by the projector): conversation summaries, inboxes
//!   with unread counts, message history and per-partition watermarks. Derived from the
//!   log; every write is idempotent, so redelivery and replay never double-count.
//! - [`ReadModel`] (read by everyone): queries over the projections.
//! - [`PushSubscriptions`] (written by ingest and the notifier): browsers to push to.
//!
//! [`embedded::EmbeddedStore`] keeps it all in SQLite; the CQL implementation lives beside it.

#[cfg(feature = "cql")]
pub mod cql;
pub mod embedded;
pub mod model;
mod push;

use async_trait::async_trait;
use schemas::{ConversationId, MessageId, Participant, Timestamp, UserId};

pub use model::{
    ConversationRecord, ConversationView, DeletedMessage, InboxCursor, LastMessage, MessageCounts,
    ProjectionBatch, ReadState, Receipt, Role, StoredChange, StoredMessage, WriterLease,
};
pub use push::{PushSubscriptions, StoredPushSubscription};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not serve the request now; retrying is safe.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store configuration: {0}")]
    Config(String),
    /// The database refused this process (its login, its certificate, a permission): asking
    /// again cannot help until a setting changes. The text names the setting.
    #[error("{0}")]
    Refused(String),
}

/// Conversations by job. Written by ingest.
#[async_trait]
pub trait ConversationDirectory: Send + Sync + 'static {
    /// Returns the job's conversation, creating it with these participants if the job has
    /// none. The flag is true when this call created it. Concurrent calls for one job agree
    /// on one conversation.
    async fn open_conversation(
        &self,
        job_id: &str,
        client: Participant,
        worker: Participant,
        now: Timestamp,
    ) -> Result<(ConversationRecord, bool), StoreError>;

    /// Notes that the conversation's `started` event is in the log.
    async fn mark_started(&self, conversation: ConversationId) -> Result<(), StoreError>;

    async fn conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationRecord>, StoreError>;
}

/// Leases on the right to append keyed sends, one per log partition. Every change is a
/// compare-and-set against the lease as the caller last saw it, so two nodes never both
/// think they took the same lease.
#[async_trait]
pub trait WriterLeases: Send + Sync + 'static {
    /// Every lease there is (partitions nobody ever took have none).
    async fn writer_leases(&self) -> Result<Vec<WriterLease>, StoreError>;

    /// Replaces the lease of `next.partition` with `next` if it is still exactly `seen`
    /// (`None`: there is no lease yet), in one compare-and-set. Returns `next`, or `None`
    /// when the lease had changed. Every change of a lease is one of these.
    async fn replace_writer_lease(
        &self,
        seen: Option<&WriterLease>,
        next: WriterLease,
    ) -> Result<Option<WriterLease>, StoreError>;

    /// Takes `partition` for `node`, if its lease is still `seen` (`None`: there is no lease
    /// yet). Returns the new lease, or `None` when the lease had changed.
    async fn take_writer_lease(
        &self,
        partition: u32,
        node: &str,
        address: &str,
        seen: Option<&WriterLease>,
    ) -> Result<Option<WriterLease>, StoreError> {
        let next = WriterLease {
            partition,
            node: node.to_owned(),
            address: address.to_owned(),
            version: seen.map_or(1, |lease| lease.version + 1),
        };
        self.replace_writer_lease(seen, next).await
    }

    /// Renews `lease` if it is still current; `None` when someone took it meanwhile.
    async fn renew_writer_lease(
        &self,
        lease: &WriterLease,
    ) -> Result<Option<WriterLease>, StoreError> {
        let next = WriterLease { version: lease.version + 1, ..lease.clone() };
        self.replace_writer_lease(Some(lease), next).await
    }

    /// Frees `lease` if it is still current, so another node can take it at once.
    async fn release_writer_lease(&self, lease: &WriterLease) -> Result<(), StoreError> {
        let next = WriterLease {
            partition: lease.partition,
            node: String::new(),
            address: String::new(),
            version: lease.version + 1,
        };
        self.replace_writer_lease(Some(lease), next).await.map(drop)
    }
}

/// Queries over the projections.
#[async_trait]
pub trait ReadModel: Send + Sync + 'static {
    async fn view(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationView>, StoreError>;

    /// `user`'s conversations, most recent activity first, after `cursor`.
    async fn inbox(
        &self,
        user: &UserId,
        cursor: Option<InboxCursor>,
        limit: usize,
    ) -> Result<Vec<ConversationView>, StoreError>;

    /// Up to `limit` messages with ids in `(after, before)`, oldest first when `newest` is
    /// false, or the newest ones of that range (still returned oldest first) when true.
    async fn messages(
        &self,
        conversation: ConversationId,
        after: MessageId,
        before: Option<MessageId>,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// One message, as history shows it now.
    async fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let after = MessageId::new(id.get().saturating_sub(1)).unwrap_or(MessageId::ZERO);
        let before = MessageId::new(id.get() + 1).ok();
        let found = self.messages(conversation, after, before, 1, false).await?;
        Ok(found.into_iter().find(|message| message.id == id))
    }

    /// Changes to the conversation's messages at positions in `(after, before)`, in log
    /// order.
    async fn changes(
        &self,
        conversation: ConversationId,
        after: MessageId,
        before: MessageId,
    ) -> Result<Vec<StoredChange>, StoreError>;

    /// The first message (in log order) that carried `key`.
    async fn message_with_key(
        &self,
        conversation: ConversationId,
        key: &str,
    ) -> Result<Option<StoredMessage>, StoreError>;

    /// [`Self::message_with_key`] for several keys of one conversation at once; keys with
    /// no message are left out. A store may answer them in one request.
    async fn messages_with_keys(
        &self,
        conversation: ConversationId,
        keys: &[String],
    ) -> Result<Vec<(String, MessageId)>, StoreError> {
        let mut found = Vec::new();
        for key in keys {
            if let Some(message) = self.message_with_key(conversation, key).await? {
                found.push((key.clone(), message.id));
            }
        }
        Ok(found)
    }

    /// Per partition, the last offset whose event is reflected in the projections.
    async fn watermarks(&self, partitions: u32) -> Result<Vec<Option<u64>>, StoreError>;
}

/// Writes to the projections. Only the projector holds one.
#[async_trait]
pub trait ProjectionStore: ReadModel {
    async fn load_views(
        &self,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationView>, StoreError>;

    /// The last message at or before `up_to`, with the cumulative counts through it.
    async fn counts_at(
        &self,
        conversation: ConversationId,
        up_to: MessageId,
    ) -> Result<Option<(MessageId, MessageCounts)>, StoreError>;

    /// Applies a batch idempotently: a view replaces the stored one only if it is newer
    /// (higher applied offset), a message only a lower revision of itself, changes are
    /// kept by position, watermarks only rise.
    async fn apply(&self, batch: &ProjectionBatch) -> Result<(), StoreError>;
}
