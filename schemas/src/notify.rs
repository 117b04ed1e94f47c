//! What the chat says to people who are not looking: the Web Push subscription a browser
//! registers, the payload a push carries, and the events posted to the jobs system's
//! webhook (the Standard Webhooks shape: `type`, `timestamp`, `data`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, MessageId, UserId};
use crate::timestamp::Timestamp;

/// `PUT /v1/push/subscriptions`: the browser's `PushSubscription.toJSON()`. Members the
/// browser adds (`expirationTime`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PushSubscription {
    /// The push service's URL for this browser; the server POSTs to it.
    pub endpoint: String,
    pub keys: PushKeys,
}

/// The browser's keys for RFC 8291 payload encryption, base64url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PushKeys {
    /// Its P-256 public key, an uncompressed point (65 bytes).
    pub p256dh: String,
    /// Its authentication secret (16 bytes).
    pub auth: String,
}

/// `DELETE /v1/push/subscriptions`: which of the caller's subscriptions to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovePushSubscription {
    pub endpoint: String,
}

/// `GET /v1/push/vapid-public-key`: the key browsers pass to `pushManager.subscribe` as
/// `applicationServerKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VapidPublicKey {
    /// Base64url (no padding) of the uncompressed P-256 point.
    pub vapid_public_key: String,
}

/// The JSON a push carries once the browser has decrypted it: one notification for a burst
/// of messages in one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PushPayload {
    /// The notification's id; a repeated delivery carries the same one.
    pub id: String,
    /// `"message"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub conversation_id: ConversationId,
    /// The latest message this notification covers.
    pub message_id: MessageId,
    pub sender_name: String,
    /// The latest message's text, cut to fit a push (about 4 KB encrypted).
    pub text: String,
    /// How many messages this notification covers.
    pub count: u32,
    /// The recipient's unread messages in the conversation.
    pub unread_count: u64,
}

/// A webhook event (Standard Webhooks): posted with headers `webhook-id` (the event's id,
/// the same on every attempt), `webhook-timestamp` and `webhook-signature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookEvent {
    /// `conversation.started`, `message.unread` or `message.reported`; more may follow.
    #[serde(rename = "type")]
    pub kind: String,
    /// When what the event reports happened.
    pub timestamp: Timestamp,
    pub data: WebhookData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WebhookData {
    ConversationStarted(ConversationStartedData),
    MessageUnread(MessageUnreadData),
    MessageReported(MessageReportedData),
}

/// `conversation.started`: a job's conversation exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationStartedData {
    pub conversation_id: ConversationId,
    pub job_id: String,
    pub client_id: UserId,
    pub worker_id: UserId,
}

/// `message.unread`: `recipient_id` has not seen these messages in time (not connected, not
/// read within the notification delay). The same rule as a push, for email or SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageUnreadData {
    pub conversation_id: ConversationId,
    /// The latest message not seen.
    pub message_id: MessageId,
    pub recipient_id: UserId,
    pub sender_id: UserId,
    pub sender_name: String,
    pub text: String,
    /// How many messages this event covers.
    pub count: u32,
    pub unread_count: u64,
}

/// `message.reported`: a participant reported a message of the other side. The moderators
/// read it (and what surrounds it) with the service role's token, and may delete it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageReportedData {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub reporter_id: UserId,
    pub sender_id: UserId,
    pub reason: crate::events::ReportReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A record of the `<events topic>.dead-letters` topic, keyed by conversation id. The topic
/// is append-only: a redelivery is a second record naming the parked event, and what is
/// still parked is every `parked` without a later `redelivered` of the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadLetter {
    /// The receiver did not take the webhook event within the retry window.
    Parked {
        /// The event's `webhook-id`.
        id: String,
        parked_at: Timestamp,
        /// The receiver's last answer.
        reason: String,
        event: WebhookEvent,
    },
    /// An operator redelivered the event parked under `id`.
    Redelivered { id: String, at: Timestamp },
}
