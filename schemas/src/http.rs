//! Bodies of the HTTP API under `/v1`. Requests reject unknown members, so a misspelt field
//! is an error rather than silently ignored; responses may grow new members.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::{Attachment, MessageType, Participant};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::timestamp::Timestamp;

/// `PUT /v1/jobs/{job_id}/conversation` (service role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenConversationRequest {
    pub client_id: UserId,
    pub worker_id: UserId,
    /// Display name of the client; defaults to the id.
    #[serde(default)]
    pub client_name: Option<String>,
    /// Display name of the worker; defaults to the id.
    #[serde(default)]
    pub worker_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Conversation {
    pub conversation_id: ConversationId,
    pub job_id: String,
    pub client: Participant,
    pub worker: Participant,
    pub created_at: Timestamp,
    /// A participant blocked it: the other side can send nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
    /// The caller, when it is the caller's block (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<UserId>,
}

/// `POST /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    #[serde(default)]
    pub text: String,
    #[serde(rename = "type", default)]
    pub message_type: MessageType,
    #[serde(default, deserialize_with = "crate::object::optional_object")]
    pub attachment: Option<Attachment>,
    /// Client-generated; a retry with the same key is the same message.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The answer to a send: the message is durable in the log under this id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SentMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sent_at: Timestamp,
    /// True when the idempotency key named an earlier send; nothing new was written.
    pub duplicate: bool,
}

/// `PATCH /v1/conversations/{id}/messages/{message_id}`: the message's new text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessageRequest {
    pub text: String,
}

/// The answer to an edit or a delete: the change is durable in the log at `position`
/// (ordered with message ids, like a receipt's position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageChangeAccepted {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub position: MessageId,
}

/// `POST /v1/conversations/{id}/messages/{message_id}/report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub reason: crate::events::ReportReason,
    /// What the reporter wants the moderators to know (at most 1,000 bytes).
    #[serde(default)]
    pub detail: Option<String>,
}

/// `POST /v1/conversations/{id}/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    pub up_to: MessageId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReadMark {
    pub conversation_id: ConversationId,
    pub reader_id: UserId,
    pub up_to: MessageId,
}

/// A message as history and the native WebSocket API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub sender_name: String,
    pub message_type: MessageType,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub sent_at: Timestamp,
    /// Whether every recipient has read it (as far as the projection knows).
    pub is_read: bool,
    /// When its sender last edited it; absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// True for a message deleted for everyone: a tombstone with no text and no attachment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// One conversation in a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InboxItem {
    pub conversation_id: ConversationId,
    pub job_id: String,
    pub client: Participant,
    pub worker: Participant,
    pub last_message_id: Option<MessageId>,
    /// A preview: the first 120 characters of the last message.
    pub last_message_text: Option<String>,
    pub last_message_at: Option<Timestamp>,
    pub last_message_sender_id: Option<UserId>,
    /// Last message time, or the start of the conversation before any message.
    pub last_activity_at: Timestamp,
    /// Messages from others after this user's read mark.
    pub unread_count: u64,
    pub last_read_id: MessageId,
    /// A participant blocked the conversation: the other side can send nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
    /// The caller, when it is the caller's block (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<UserId>,
    /// Grows with every change to this item; keep the item with the highest version.
    pub version: u64,
}

/// `GET /v1/conversations`: most recent activity first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/conversations/{id}/messages`: a page of history in log order (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Pass as `before` for the previous (older) page; absent when this page reaches the start.
    pub next_before: Option<MessageId>,
}

/// RFC 9457 problem details; every error of the HTTP API has this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:chat:problem:not-a-participant`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    pub status: String,
}

/// Who the caller is, as the server sees their token (`GET /v1/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Me {
    pub user_id: UserId,
    pub name: String,
    pub service: bool,
}

/// Query parameters of `GET /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only messages older than this id.
    pub before: Option<MessageId>,
    pub limit: Option<usize>,
}

/// Query parameters of `GET /v1/inbox`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// An [`InboxCursor`] as a previous page's `next_cursor` gave it.
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// Where an inbox page ends: the last item's activity time and conversation. Its text
/// form (`next_cursor`) is opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    pub last_activity_at: Timestamp,
    pub conversation_id: ConversationId,
}

impl InboxCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.last_activity_at.millis(), self.conversation_id)
    }

    /// `None` for any text [`Self::encode`] did not produce.
    pub fn decode(text: &str) -> Option<Self> {
        let (millis, conversation) = text.split_once('.')?;
        Some(Self {
            last_activity_at: Timestamp::from_millis(millis.parse().ok()?),
            conversation_id: conversation.parse().ok()?,
        })
    }
}

/// Query parameters of `POST /v1/conversations/{id}/attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The file's name as people should see it (a path is cut to its last segment).
    pub name: Option<String>,
}
