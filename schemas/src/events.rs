//! The events on the log: the durable facts every projection and every subscriber folds.
//!
//! Each event type carries its version in its name (`chat.message.sent.v1`). A change that
//! old readers cannot ignore gets a new name; readers skip types they do not know and
//! ignore members they do not know, so producers may add optional members freely.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, MessageId, UserId};
use crate::timestamp::Timestamp;

/// A person in a conversation, with the display name they had when the event was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Participant {
    pub id: UserId,
    pub name: String,
}

/// What kind of message it is; IMAGE and FILE carry an attachment, SYSTEM comes from the
/// jobs system (service role) rather than from a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum MessageType {
    #[default]
    Text,
    Image,
    File,
    System,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::Image => "IMAGE",
            Self::File => "FILE",
            Self::System => "SYSTEM",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "TEXT" => Some(Self::Text),
            "IMAGE" => Some(Self::Image),
            "FILE" => Some(Self::File),
            "SYSTEM" => Some(Self::System),
            _ => None,
        }
    }
}

/// A file that lives in object storage; the chat carries its description, not its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attachment {
    /// Where the file is: an http(s) URL, or for a file uploaded to this server its path
    /// here (`/v1/conversations/{id}/attachments/{upload_id}`, participants only).
    pub url: String,
    /// File name shown to people.
    pub name: String,
    /// MIME type, e.g. `image/png`; for an upload, sniffed from its bytes.
    pub mime_type: String,
    /// Size in bytes, when the uploader knew it (always, for an upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The id an upload to this server answered with. When set, the server describes the
    /// file from what it stored (every other field here is replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Pixel dimensions of an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// A small rendition of an image (at most 320 pixels on its longer side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

/// `chat.conversation.started.v1`: the job's conversation exists, between these two people.
/// May appear more than once for the same conversation (a retried creation); readers treat
/// every repetition after the first as a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationStarted {
    pub conversation_id: ConversationId,
    pub job_id: String,
    /// Who posted the job.
    pub client: Participant,
    /// Who was hired for it.
    pub worker: Participant,
    pub started_at: Timestamp,
}

/// `chat.message.sent.v1`: a message was accepted. Its id is not in the payload: it is
/// derived from the record's log position, `(offset + 1) * 1024 + partition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageSent {
    pub conversation_id: ConversationId,
    pub sender: Participant,
    pub message_type: MessageType,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// The client's idempotency key. A later `message.sent` in the same conversation with
    /// the same key is a duplicate and is not a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub sent_at: Timestamp,
}

/// `chat.message.edited.v1`: the sender replaced the text of message `message_id`. Applies
/// only to a message of the same conversation, sent by `editor_id` and not deleted; a later
/// edit wins over an earlier one (log order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageEdited {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub editor_id: UserId,
    /// The whole new text.
    pub text: String,
    pub edited_at: Timestamp,
}

/// `chat.message.deleted.v1`: message `message_id` is deleted for everyone. It stays in
/// history as a tombstone (no text, no attachment); it no longer counts as unread, and its
/// attachment's files are removed. Deleted by its sender, or by the jobs system's
/// moderators (`moderation`, the service role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageDeleted {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub deleted_by: UserId,
    /// Deleted by the service role rather than by the sender.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moderation: bool,
    pub deleted_at: Timestamp,
}

/// `chat.messages.read.v1`: the reader has seen every message up to and including `up_to`.
/// Reads never go backwards: an `up_to` below the reader's current mark changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessagesRead {
    pub conversation_id: ConversationId,
    pub reader_id: UserId,
    pub up_to: MessageId,
    pub read_at: Timestamp,
}

/// `chat.conversation.blocked.v1`: a participant blocked the conversation. While any
/// participant's block stands, the other one's messages are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationBlocked {
    pub conversation_id: ConversationId,
    pub blocker_id: UserId,
    pub blocked_at: Timestamp,
}

/// `chat.conversation.unblocked.v1`: the participant who blocked the conversation lifted
/// their block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationUnblocked {
    pub conversation_id: ConversationId,
    pub unblocker_id: UserId,
    pub unblocked_at: Timestamp,
}

/// Why a participant reports a message to the jobs system's moderators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    Spam,
    Harassment,
    /// Asking to pay or talk outside the marketplace.
    OffPlatform,
    Other,
}

impl ReportReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::Harassment => "harassment",
            Self::OffPlatform => "off_platform",
            Self::Other => "other",
        }
    }
}

/// `chat.message.reported.v1`: a participant reported message `message_id` of the other
/// side to the moderators. Changes nothing in the conversation; the jobs system acts on it
/// (a `message.reported` webhook where webhooks are set up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageReported {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub reporter_id: UserId,
    /// Who sent the reported message.
    pub sender_id: UserId,
    pub reason: ReportReason,
    /// The reporter's words, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub reported_at: Timestamp,
}

/// Every event the chat writes to its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    ConversationStarted(ConversationStarted),
    MessageSent(MessageSent),
    MessagesRead(MessagesRead),
    MessageEdited(MessageEdited),
    MessageDeleted(MessageDeleted),
    MessageReported(MessageReported),
    ConversationBlocked(ConversationBlocked),
    ConversationUnblocked(ConversationUnblocked),
}

impl ChatEvent {
    pub const CONVERSATION_STARTED: &'static str = "chat.conversation.started.v1";
    pub const MESSAGE_SENT: &'static str = "chat.message.sent.v1";
    pub const MESSAGES_READ: &'static str = "chat.messages.read.v1";
    pub const MESSAGE_EDITED: &'static str = "chat.message.edited.v1";
    pub const MESSAGE_DELETED: &'static str = "chat.message.deleted.v1";
    pub const MESSAGE_REPORTED: &'static str = "chat.message.reported.v1";
    pub const CONVERSATION_BLOCKED: &'static str = "chat.conversation.blocked.v1";
    pub const CONVERSATION_UNBLOCKED: &'static str = "chat.conversation.unblocked.v1";

    /// Every event type this build writes, for documentation and schema generation.
    pub const TYPES: [&'static str; 8] = [
        Self::CONVERSATION_STARTED,
        Self::MESSAGE_SENT,
        Self::MESSAGES_READ,
        Self::MESSAGE_EDITED,
        Self::MESSAGE_DELETED,
        Self::MESSAGE_REPORTED,
        Self::CONVERSATION_BLOCKED,
        Self::CONVERSATION_UNBLOCKED,
    ];

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ConversationStarted(_) => Self::CONVERSATION_STARTED,
            Self::MessageSent(_) => Self::MESSAGE_SENT,
            Self::MessagesRead(_) => Self::MESSAGES_READ,
            Self::MessageEdited(_) => Self::MESSAGE_EDITED,
            Self::MessageDeleted(_) => Self::MESSAGE_DELETED,
            Self::MessageReported(_) => Self::MESSAGE_REPORTED,
            Self::ConversationBlocked(_) => Self::CONVERSATION_BLOCKED,
            Self::ConversationUnblocked(_) => Self::CONVERSATION_UNBLOCKED,
        }
    }

    pub fn conversation_id(&self) -> ConversationId {
        match self {
            Self::ConversationStarted(event) => event.conversation_id,
            Self::MessageSent(event) => event.conversation_id,
            Self::MessagesRead(event) => event.conversation_id,
            Self::MessageEdited(event) => event.conversation_id,
            Self::MessageDeleted(event) => event.conversation_id,
            Self::MessageReported(event) => event.conversation_id,
            Self::ConversationBlocked(event) => event.conversation_id,
            Self::ConversationUnblocked(event) => event.conversation_id,
        }
    }

    pub fn time(&self) -> Timestamp {
        match self {
            Self::ConversationStarted(event) => event.started_at,
            Self::MessageSent(event) => event.sent_at,
            Self::MessagesRead(event) => event.read_at,
            Self::MessageEdited(event) => event.edited_at,
            Self::MessageDeleted(event) => event.deleted_at,
            Self::MessageReported(event) => event.reported_at,
            Self::ConversationBlocked(event) => event.blocked_at,
            Self::ConversationUnblocked(event) => event.unblocked_at,
        }
    }

    /// The message an event changes, for events that change one.
    pub fn changed_message(&self) -> Option<MessageId> {
        match self {
            Self::MessageEdited(event) => Some(event.message_id),
            Self::MessageDeleted(event) => Some(event.message_id),
            _ => None,
        }
    }
}
