//! viewstore: what the chat knows besides the log.
//!
//! Two kinds of state, behind three traits so each role gets only what it may touch:
//! - [`ConversationDirectory`] (written by ingest): which conversation belongs to which
//!   job, and the claims that make idempotency keys exact. Written with compare-and-set,
//!   before the events they guard are appended.
//! - [`ProjectionStore`] (written only by the projector): conversation summaries, inboxes
//!   with unread counts, message history and per-partition watermarks. Derived from the
//!   log; every write is idempotent, so redelivery and replay never double-count.
//! - [`ReadModel`] (read by everyone): queries over the projections.
//!
//! [`embedded::EmbeddedStore`] keeps it all in SQLite; the CQL implementation lives beside it.

#[cfg(feature = "cql")]
pub mod cql;
pub mod embedded;
pub mod model;

use std::time::Duration;

use async_trait::async_trait;
use schemas::{ConversationId, MessageId, Participant, Timestamp, UserId};

pub use model::{
    ConversationRecord, ConversationView, InboxCursor, KeyClaim, LastMessage, MessageCounts,
    ProjectionBatch, ReadState, Receipt, Role, StoredMessage,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not serve the request now; retrying is safe.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store configuration: {0}")]
    Config(String),
}

/// Conversations by job, and idempotency-key claims. Written by ingest.
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

    /// Claims `key` for `owner`, or reports who has it. A pending claim older than
    /// `stale_after` is reported as stale; only [`Self::take_over_key`] replaces it.
    async fn claim_key(
        &self,
        conversation: ConversationId,
        key: &str,
        owner: &str,
        now: Timestamp,
        stale_after: Duration,
    ) -> Result<KeyClaim, StoreError>;

    /// Replaces `stale_owner`'s pending claim with one for `owner`, if it is still there.
    async fn take_over_key(
        &self,
        conversation: ConversationId,
        key: &str,
        stale_owner: &str,
        owner: &str,
        now: Timestamp,
    ) -> Result<KeyClaim, StoreError>;

    /// Records the message a key produced. If another id was recorded first, the smaller
    /// (earlier in the log, the one projections keep) wins; returns the id that stands.
    async fn complete_key(
        &self,
        conversation: ConversationId,
        key: &str,
        message: MessageId,
    ) -> Result<MessageId, StoreError>;
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

    /// The first message (in log order) that carried `key`.
    async fn message_with_key(
        &self,
        conversation: ConversationId,
        key: &str,
    ) -> Result<Option<MessageId>, StoreError>;

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
    /// (higher applied offset), messages are inserted if absent, watermarks only rise.
    async fn apply(&self, batch: &ProjectionBatch) -> Result<(), StoreError>;
}
