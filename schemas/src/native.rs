//! The native WebSocket API at `/v1/ws`: one connection carries many conversations and the
//! user's inbox. Client frames are requests (some with a `ref` the answer echoes); server
//! frames are answers, events and pushes. Every frame is a JSON object tagged by `type`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::{Attachment, MessageType};
use crate::http::{InboxItem, Message};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::timestamp::Timestamp;

/// Frames a client sends. Unknown members are refused so a typo is an error frame, not a
/// silently ignored option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Start receiving a conversation's events. With `since` (the greatest message id or
    /// receipt position the client has seen), first replays every later message in order
    /// and each participant's latest later read receipt, then continues live with no gap
    /// and no duplicate.
    Subscribe {
        conversation_id: ConversationId,
        #[serde(default)]
        since: Option<MessageId>,
    },
    Unsubscribe {
        conversation_id: ConversationId,
    },
    /// Send a message; answered by `ack` (with the message id) or `error`, both echoing `ref`.
    Send {
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        conversation_id: ConversationId,
        #[serde(default)]
        text: String,
        #[serde(default)]
        message_type: MessageType,
        #[serde(default, deserialize_with = "crate::object::optional_object")]
        attachment: Option<Attachment>,
        #[serde(default)]
        idempotency_key: Option<String>,
    },
    /// Mark every message up to and including `up_to` as read.
    Read {
        #[serde(rename = "ref", default)]
        reference: Option<String>,
        conversation_id: ConversationId,
        up_to: MessageId,
    },
    /// Typing indicator; expires on its own after a few seconds without a repeat.
    Typing {
        conversation_id: ConversationId,
        is_typing: bool,
    },
    /// A heartbeat: answered at once with `pong`, so a client notices a network that has
    /// stalled without closing (browsers cannot see WebSocket pings).
    Ping {
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Offline,
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every connection.
    Ready {
        user_id: UserId,
        name: String,
    },
    /// The subscription is live; replayed messages (if `since` was given) have been sent.
    Subscribed {
        conversation_id: ConversationId,
    },
    Unsubscribed {
        conversation_id: ConversationId,
    },
    /// A message, in log order. `message.id` is the position to resume from.
    Message {
        conversation_id: ConversationId,
        message: Message,
    },
    /// A message already sent changed (edited, deleted). It comes after the message in the
    /// same order as the log, and applying it twice leaves the same state. `position` is
    /// its place in the conversation, like a receipt's.
    MessageChanged {
        conversation_id: ConversationId,
        message_id: MessageId,
        position: MessageId,
        change: MessageChange,
    },
    /// A read receipt: `reader_id` has read everything up to `up_to`.
    Read {
        conversation_id: ConversationId,
        reader_id: UserId,
        up_to: MessageId,
        read_at: Timestamp,
        /// The receipt's place in the conversation, in the same order as message ids: a
        /// client resumes with `since` = the greatest message id or receipt position seen.
        position: MessageId,
    },
    Typing {
        conversation_id: ConversationId,
        user_id: UserId,
        is_typing: bool,
    },
    /// Whether a participant of the conversation is connected to the chat (on any device,
    /// whatever they are looking at); `at` is when that became so, so an `offline` one says
    /// when they were last seen. Sent after `subscribed` for what the server knows, then on
    /// every change. It is a state, not an event: a change that races the subscription may
    /// be both in the snapshot and sent live, so the same status can come twice.
    Presence {
        conversation_id: ConversationId,
        user_id: UserId,
        status: PresenceStatus,
        at: Timestamp,
    },
    /// The user's inbox item changed (new message, read mark, unread count).
    Inbox {
        item: InboxItem,
    },
    /// A request succeeded. `message_id` answers `send`, `up_to` answers `read`.
    Ack {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<MessageId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        up_to: Option<MessageId>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    /// The answer to a `ping`.
    Pong {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A request failed; nothing it asked for happened.
    Error {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        code: ErrorCode,
        detail: String,
    },
}

/// What changed in a message: the new state of what the change touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessageChange {
    /// The message's text is now `text`.
    Edited { text: String, edited_at: Timestamp },
    /// The message is a tombstone now: no text, no attachment.
    Deleted { deleted_at: Timestamp },
}

impl MessageChange {
    /// `message` after this change: what a client holding it shows once told of it.
    /// Applying a change twice, or an edit to a deleted message, changes nothing more.
    pub fn apply_to(&self, message: &mut Message) {
        match self {
            Self::Edited { .. } if message.deleted => {}
            Self::Edited { text, edited_at } => {
                text.clone_into(&mut message.text);
                message.edited_at = Some(*edited_at);
            }
            Self::Deleted { .. } => {
                message.text.clear();
                message.attachment = None;
                message.edited_at = None;
                message.deleted = true;
            }
        }
    }
}

/// Why a request failed; shared by HTTP problem types (`urn:chat:problem:<code>`), native
/// error frames and seed error frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON or a value of the wrong type.
    InvalidJson,
    /// Well-formed but not acceptable (blank text, text over the limit, bad attachment...).
    InvalidInput,
    /// No token, or a token that fails verification.
    Unauthenticated,
    /// Authenticated, but not allowed (not a participant, not the service role).
    Forbidden,
    NotFound,
    /// The job already has a conversation with other participants.
    Conflict,
    /// A frame or body over its size limit.
    TooLarge,
    /// An upload of a type that cannot be sent (decided from its bytes).
    UnsupportedType,
    /// Too many requests or subscriptions.
    RateLimited,
    /// A storage quota (a conversation's or a user's files) is full.
    QuotaExceeded,
    /// The other participant blocked the conversation: nothing can be sent to them.
    Blocked,
    /// The backend could not take the request right now; retrying is safe.
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidInput => "invalid_input",
            Self::UnsupportedType => "unsupported_type",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Blocked => "blocked",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// WebSocket close codes the chat uses, with the reason text carried beside them.
pub mod close {
    /// Server going away for a restart or drain: reconnect (elsewhere) and resume.
    pub const RESTART: u16 = 1012;
    /// A frame larger than the limit.
    pub const TOO_BIG: u16 = 1009;
    /// Unexpected server failure.
    pub const INTERNAL: u16 = 1011;
    /// Resume could not be served right now (the store lags); retry shortly.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The handshake's parameters are malformed (e.g. a non-numeric `since`).
    pub const BAD_REQUEST: u16 = 4400;
    /// No valid token.
    pub const UNAUTHENTICATED: u16 = 4401;
    /// Not a participant of the conversation, or a cookie handshake from a foreign origin.
    pub const FORBIDDEN: u16 = 4403;
    /// No such conversation.
    pub const NOT_FOUND: u16 = 4404;
    /// The client did not read fast enough; its queue filled. Reconnect and resume.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Too many subscriptions, connections or sends.
    pub const RATE_LIMITED: u16 = 4429;

    /// A close frame's payload is at most 125 bytes (RFC 6455, 5.5): 2 for the code, the
    /// rest for the reason. Browsers fail a connection whose close frame is longer (1006),
    /// losing the code.
    pub const MAX_REASON_BYTES: usize = 123;

    /// `reason` cut to [`MAX_REASON_BYTES`] on a character boundary.
    pub fn fit_reason(reason: &str) -> &str {
        if reason.len() <= MAX_REASON_BYTES {
            return reason;
        }
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        &reason[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame_on_a_character_boundary() {
        assert_eq!(close::fit_reason("short"), "short");
        let ascii = "x".repeat(200);
        assert_eq!(close::fit_reason(&ascii).len(), close::MAX_REASON_BYTES);
        // 41 three-byte characters are 123 bytes; 42 would split the last one.
        let wide = "中".repeat(60);
        assert_eq!(close::fit_reason(&wide), "中".repeat(41));
        let mixed = format!("{}é", "x".repeat(122));
        assert_eq!(close::fit_reason(&mixed), "x".repeat(122));
    }

    #[test]
    fn client_frames_parse_and_reject_typos() {
        let frame: ClientFrame =
            serde_json::from_str(r#"{"type":"send","ref":"r1","conversation_id":3,"text":"hi"}"#)
                .unwrap();
        assert!(matches!(frame, ClientFrame::Send { reference: Some(ref r), .. } if r == "r1"));
        let typo = r#"{"type":"send","conversation_id":3,"txt":"hi"}"#;
        assert!(serde_json::from_str::<ClientFrame>(typo).is_err());
        let wrong_type = r#"{"type":"subscribe","conversation_id":"three"}"#;
        assert!(serde_json::from_str::<ClientFrame>(wrong_type).is_err());
    }

    #[test]
    fn acks_omit_what_they_do_not_answer() {
        let ack = ServerFrame::Ack {
            reference: Some("r".into()),
            message_id: None,
            up_to: Some(MessageId::new(2048).unwrap()),
            duplicate: false,
        };
        let json = serde_json::to_value(&ack).unwrap();
        assert_eq!(json, serde_json::json!({"type":"ack","ref":"r","up_to":2048}));
    }
}
