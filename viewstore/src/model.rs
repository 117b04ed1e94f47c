//! The store's data model: directory records and the projected views.

use schemas::http::{InboxItem, Message};
use schemas::native::MessageChange;
use schemas::{
    Attachment, ConversationId, MessageId, MessageType, Participant, Position, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

/// A conversation as the directory knows it (from the moment it is opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub conversation_id: ConversationId,
    pub job_id: String,
    pub client: Participant,
    pub worker: Participant,
    pub created_at: Timestamp,
    /// The `conversation.started` event is known to be in the log.
    pub started: bool,
}

impl ConversationRecord {
    pub fn is_participant(&self, user: &UserId) -> bool {
        self.client.id == *user || self.worker.id == *user
    }

    pub fn to_http(&self) -> schemas::http::Conversation {
        schemas::http::Conversation {
            conversation_id: self.conversation_id,
            job_id: self.job_id.clone(),
            client: self.client.clone(),
            worker: self.worker.clone(),
            created_at: self.created_at,
            blocked: false,
            blocked_by: None,
        }
    }
}

/// Who appends the keyed sends of a log partition, and where other nodes reach it.
///
/// `version` rises with every change of the lease (taken, renewed, released) and never
/// repeats, so an observer that sees the same version for a whole lease period knows its
/// holder stopped renewing. A released lease has an empty `node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterLease {
    pub partition: u32,
    pub node: String,
    pub address: String,
    pub version: u64,
}

impl WriterLease {
    pub fn is_free(&self) -> bool {
        self.node.is_empty()
    }
}

/// Which side of the conversation someone is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Client,
    Worker,
}

/// Messages in a conversation up to some point, in total and by who sent them. A SYSTEM
/// message counts in `total` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageCounts {
    pub total: u64,
    pub by_client: u64,
    pub by_worker: u64,
}

impl MessageCounts {
    fn sent_by(&self, role: Role) -> u64 {
        match role {
            Role::Client => self.by_client,
            Role::Worker => self.by_worker,
        }
    }

    /// Messages in these counts that `role` did not send.
    pub fn from_others_of(&self, role: Role) -> u64 {
        self.total - self.sent_by(role)
    }
}

/// How far one participant has read: the mark, and the counts through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadState {
    pub last_read: MessageId,
    pub counts_at_mark: MessageCounts,
    /// The `messages.read` event that set the mark: where it is in the log and when the
    /// reader read, so a resuming client can be handed the receipts it missed.
    #[serde(default)]
    pub receipt: Option<Receipt>,
}

/// Where and when a read mark was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub offset: u64,
    pub read_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    pub id: MessageId,
    pub preview: String,
    pub sent_at: Timestamp,
    pub sender_id: UserId,
}

/// The projected state of one conversation: summary, counts and both read marks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub conversation_id: ConversationId,
    pub job_id: String,
    pub client: Participant,
    pub worker: Participant,
    pub started_at: Timestamp,
    pub last_message: Option<LastMessage>,
    pub totals: MessageCounts,
    pub client_read: ReadState,
    pub worker_read: ReadState,
    /// Deleted messages that may still count as unread for someone: those after the lower
    /// of the two read marks (older ones are dropped; marks never move back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<DeletedMessage>,
    /// The participants whose block stands (none, one, or both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<UserId>,
    /// The partition the conversation lives in and the offset of the last event that
    /// changed this view: the view's version, and the guard against applying twice.
    pub partition: u32,
    pub applied_offset: u64,
}

impl ConversationView {
    pub fn role_of(&self, user: &UserId) -> Option<Role> {
        if self.client.id == *user {
            Some(Role::Client)
        } else if self.worker.id == *user {
            Some(Role::Worker)
        } else {
            None
        }
    }

    pub fn read_state(&self, role: Role) -> &ReadState {
        match role {
            Role::Client => &self.client_read,
            Role::Worker => &self.worker_read,
        }
    }

    pub fn read_state_mut(&mut self, role: Role) -> &mut ReadState {
        match role {
            Role::Client => &mut self.client_read,
            Role::Worker => &mut self.worker_read,
        }
    }

    /// Messages from others after `role`'s read mark, deleted ones left out.
    pub fn unread(&self, role: Role) -> u64 {
        let state = self.read_state(role);
        let mark = state.counts_at_mark;
        let deleted = self
            .deleted
            .iter()
            .filter(|gone| gone.id > state.last_read && gone.sender != Some(role))
            .count() as u64;
        (self.totals.from_others_of(role) - mark.from_others_of(role)).saturating_sub(deleted)
    }

    /// Whether `sender` may send here: not while the other participant's block stands.
    pub fn blocks(&self, sender: &UserId) -> bool {
        self.blocked_by.iter().any(|blocker| blocker != sender)
    }

    /// `conversation` as `user` sees it: blocked or not, and whether by them.
    pub fn blocked_for(&self, user: &UserId) -> (bool, Option<UserId>) {
        let mine = self.blocked_by.contains(user).then(|| user.clone());
        (!self.blocked_by.is_empty(), mine)
    }

    /// Keeps only the deleted messages that some read mark has not passed yet.
    pub fn forget_deleted_read_by_both(&mut self) {
        let floor = self.client_read.last_read.min(self.worker_read.last_read);
        self.deleted.retain(|gone| gone.id > floor);
    }

    /// The cursor of an inbox page that ends with this conversation.
    pub fn inbox_cursor(&self) -> InboxCursor {
        InboxCursor {
            last_activity_at: self.last_activity_at(),
            conversation_id: self.conversation_id,
        }
    }

    pub fn last_activity_at(&self) -> Timestamp {
        self.last_message.as_ref().map_or(self.started_at, |last| last.sent_at)
    }

    pub fn applied_position(&self) -> Position {
        Position { partition: self.partition, offset: self.applied_offset }
    }

    /// Whether every recipient of `message` has read it.
    pub fn is_read(&self, message: &StoredMessage) -> bool {
        let read_by = |role: Role| self.read_state(role).last_read >= message.id;
        match self.role_of(&message.sender.id) {
            Some(Role::Client) => read_by(Role::Worker),
            Some(Role::Worker) => read_by(Role::Client),
            None => read_by(Role::Client) && read_by(Role::Worker),
        }
    }

    /// This conversation as `user`'s inbox shows it; `None` if `user` is not in it.
    pub fn inbox_item(&self, user: &UserId) -> Option<InboxItem> {
        let role = self.role_of(user)?;
        let last = self.last_message.as_ref();
        let (blocked, blocked_by) = self.blocked_for(user);
        Some(InboxItem {
            conversation_id: self.conversation_id,
            job_id: self.job_id.clone(),
            client: self.client.clone(),
            worker: self.worker.clone(),
            last_message_id: last.map(|last| last.id),
            last_message_text: last.map(|last| last.preview.clone()),
            last_message_at: last.map(|last| last.sent_at),
            last_message_sender_id: last.map(|last| last.sender_id.clone()),
            last_activity_at: self.last_activity_at(),
            unread_count: self.unread(role),
            last_read_id: self.read_state(role).last_read,
            blocked,
            blocked_by,
            version: self.applied_offset,
        })
    }
}

/// A deleted message, as far as unread counts care: who sent it (`None` for the jobs system,
/// whose messages count for both sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedMessage {
    pub id: MessageId,
    pub sender: Option<Role>,
}

/// A message in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender: Participant,
    pub message_type: MessageType,
    pub text: String,
    pub attachment: Option<Attachment>,
    pub idempotency_key: Option<String>,
    pub sent_at: Timestamp,
    /// Counts through this message (it included).
    pub counts: MessageCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// The log offset of the last event that changed it (its own when unchanged): a
    /// stored message is replaced only by a higher revision.
    #[serde(default)]
    pub revision: u64,
}

impl StoredMessage {
    pub fn to_http(&self, is_read: bool) -> Message {
        Message {
            id: self.id,
            conversation_id: self.conversation_id,
            sender_id: self.sender.id.clone(),
            sender_name: self.sender.name.clone(),
            message_type: self.message_type,
            text: self.text.clone(),
            attachment: self.attachment.clone(),
            idempotency_key: self.idempotency_key.clone(),
            sent_at: self.sent_at,
            is_read,
            edited_at: self.edited_at,
            deleted: self.deleted_at.is_some(),
        }
    }
}

/// What one projector batch changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectionBatch {
    /// The state of every conversation the batch changed, after the batch.
    pub views: Vec<ConversationView>,
    pub messages: Vec<StoredMessage>,
    /// Changes to messages, for resuming clients.
    pub changes: Vec<StoredChange>,
    /// Per partition, the last offset the batch covered (applied or skipped).
    pub watermarks: Vec<Position>,
}

/// A change to a message, kept so that a client resuming after `position` is told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChange {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    /// Where the change is in the log, as an id (ordered with message ids).
    pub position: MessageId,
    pub change: MessageChange,
}

pub use schemas::http::InboxCursor;
