//! The CloudEvents 1.0 envelope (JSON event format) every log record carries as its value.
//!
//! Structured mode: the whole envelope is the record value, so a consumer that knows nothing
//! of Kafka headers still sees `type`, `time` and `subject`. `subject` is the conversation id
//! in decimal, which is also the record key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{
    ChatEvent, ConversationBlocked, ConversationStarted, ConversationUnblocked, MessageDeleted,
    MessageEdited, MessageReported, MessageSent, MessagesRead,
};
use crate::timestamp::Timestamp;

pub const SPEC_VERSION: &str = "1.0";
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
pub const DATA_CONTENT_TYPE: &str = "application/json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique per event (a UUID); a redelivered record keeps its id.
    pub id: String,
    /// The writer, e.g. `/chat/ingest`.
    pub source: String,
    /// The event type, versioned: `chat.message.sent.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub time: Timestamp,
    /// The conversation id, in decimal.
    pub subject: String,
    /// Always `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// W3C trace context of the request that wrote the event (CloudEvents distributed
    /// tracing extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record value is not a CloudEvents JSON envelope: {0}")]
    Envelope(serde_json::Error),
    #[error("unsupported specversion {0:?}")]
    SpecVersion(String),
    #[error("{event_type} data does not match its schema: {source}")]
    Data { event_type: String, source: serde_json::Error },
    #[error("subject {subject:?} does not name conversation {conversation}")]
    Subject { subject: String, conversation: u64 },
}

impl Envelope {
    pub fn wrap(event: &ChatEvent, source: &str) -> Self {
        let data = match event {
            ChatEvent::ConversationStarted(inner) => serde_json::to_value(inner),
            ChatEvent::MessageSent(inner) => serde_json::to_value(inner),
            ChatEvent::MessagesRead(inner) => serde_json::to_value(inner),
            ChatEvent::MessageEdited(inner) => serde_json::to_value(inner),
            ChatEvent::MessageDeleted(inner) => serde_json::to_value(inner),
            ChatEvent::MessageReported(inner) => serde_json::to_value(inner),
            ChatEvent::ConversationBlocked(inner) => serde_json::to_value(inner),
            ChatEvent::ConversationUnblocked(inner) => serde_json::to_value(inner),
        };
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: Uuid::new_v4().to_string(),
            source: source.to_owned(),
            event_type: event.type_name().to_owned(),
            time: event.time(),
            subject: event.conversation_id().to_string(),
            datacontenttype: Some(DATA_CONTENT_TYPE.to_owned()),
            traceparent: None,
            // Serializing these plain structs cannot fail; a Null here would be caught by
            // every reader's schema check rather than crash the writer.
            data: data.unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a record value. `Ok(None)` means a well-formed envelope of a type this build
    /// does not know, which readers skip.
    pub fn decode(bytes: &[u8]) -> Result<(Envelope, Option<ChatEvent>), DecodeError> {
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(DecodeError::Envelope)?;
        let event = envelope.event()?;
        Ok((envelope, event))
    }

    pub fn event(&self) -> Result<Option<ChatEvent>, DecodeError> {
        if self.specversion != SPEC_VERSION {
            return Err(DecodeError::SpecVersion(self.specversion.clone()));
        }
        let data = self.data.clone();
        let wrong = |source| DecodeError::Data { event_type: self.event_type.clone(), source };
        let event = match self.event_type.as_str() {
            ChatEvent::CONVERSATION_STARTED => ChatEvent::ConversationStarted(
                serde_json::from_value::<ConversationStarted>(data).map_err(wrong)?,
            ),
            ChatEvent::MESSAGE_SENT => {
                ChatEvent::MessageSent(serde_json::from_value::<MessageSent>(data).map_err(wrong)?)
            }
            ChatEvent::MESSAGES_READ => ChatEvent::MessagesRead(
                serde_json::from_value::<MessagesRead>(data).map_err(wrong)?,
            ),
            ChatEvent::MESSAGE_EDITED => ChatEvent::MessageEdited(
                serde_json::from_value::<MessageEdited>(data).map_err(wrong)?,
            ),
            ChatEvent::MESSAGE_DELETED => ChatEvent::MessageDeleted(
                serde_json::from_value::<MessageDeleted>(data).map_err(wrong)?,
            ),
            ChatEvent::MESSAGE_REPORTED => ChatEvent::MessageReported(
                serde_json::from_value::<MessageReported>(data).map_err(wrong)?,
            ),
            ChatEvent::CONVERSATION_BLOCKED => ChatEvent::ConversationBlocked(
                serde_json::from_value::<ConversationBlocked>(data).map_err(wrong)?,
            ),
            ChatEvent::CONVERSATION_UNBLOCKED => ChatEvent::ConversationUnblocked(
                serde_json::from_value::<ConversationUnblocked>(data).map_err(wrong)?,
            ),
            _ => return Ok(None),
        };
        let conversation = event.conversation_id().get();
        if self.subject != conversation.to_string() {
            return Err(DecodeError::Subject { subject: self.subject.clone(), conversation });
        }
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{MessageType, Participant};
    use crate::ids::{ConversationId, UserId};

    fn sent() -> ChatEvent {
        ChatEvent::MessageSent(MessageSent {
            conversation_id: ConversationId::new(7).unwrap(),
            sender: Participant { id: UserId::new("alice").unwrap(), name: "Alice".into() },
            message_type: MessageType::Text,
            text: "hello".into(),
            attachment: None,
            idempotency_key: Some("k1".into()),
            sent_at: Timestamp::from_millis(1_000),
        })
    }

    #[test]
    fn round_trips_and_carries_cloudevents_attributes() {
        let envelope = Envelope::wrap(&sent(), "/chat/ingest");
        let json: serde_json::Value = serde_json::from_slice(&envelope.to_bytes()).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "chat.message.sent.v1");
        assert_eq!(json["subject"], "7");
        assert_eq!(json["data"]["text"], "hello");
        let (_, event) = Envelope::decode(&envelope.to_bytes()).unwrap();
        assert_eq!(event, Some(sent()));
    }

    #[test]
    fn readers_pass_over_unknown_types_and_tolerate_unknown_members() {
        let mut envelope = Envelope::wrap(&sent(), "/chat/ingest");
        envelope.data["mood"] = "cheerful".into();
        assert!(matches!(Envelope::decode(&envelope.to_bytes()), Ok((_, Some(_)))));
        envelope.event_type = "chat.message.sent.v9".into();
        assert!(matches!(Envelope::decode(&envelope.to_bytes()), Ok((_, None))));
    }

    #[test]
    fn mismatched_subject_and_bad_data_are_errors() {
        let mut envelope = Envelope::wrap(&sent(), "/chat/ingest");
        envelope.subject = "8".into();
        assert!(matches!(envelope.event(), Err(DecodeError::Subject { .. })));
        let mut envelope = Envelope::wrap(&sent(), "/chat/ingest");
        envelope.data["text"] = 5.into();
        assert!(matches!(envelope.event(), Err(DecodeError::Data { .. })));
        assert!(Envelope::decode(b"not json").is_err());
    }
}
