//! What the hub puts in a connection's queue.
//!
//! A message is rendered to JSON at most once per protocol, however many connections it goes
//! to: the rendered frames are cached in the shared [`MessageDelivery`].

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use schemas::http::Message;
use schemas::native::ServerFrame;
use schemas::seed::{SeedMessage, SeedMessageFrame};
use schemas::{ConversationId, MessageId};

#[derive(Debug)]
pub struct MessageDelivery {
    pub message: Message,
    seed: OnceLock<Utf8Bytes>,
    native: OnceLock<Utf8Bytes>,
}

impl MessageDelivery {
    pub fn new(message: Message) -> Arc<Self> {
        Arc::new(Self { message, seed: OnceLock::new(), native: OnceLock::new() })
    }

    pub fn id(&self) -> MessageId {
        self.message.id
    }

    pub fn conversation(&self) -> ConversationId {
        self.message.conversation_id
    }

    /// The seed's `{"type":"message","message":{...}}`.
    pub fn seed_frame(&self) -> Utf8Bytes {
        self.seed.get_or_init(|| render(&seed_frame(&self.message))).clone()
    }

    /// The native `{"type":"message","conversation_id":..,"message":{...}}`.
    pub fn native_frame(&self) -> Utf8Bytes {
        self.native
            .get_or_init(|| {
                render(&ServerFrame::Message {
                    conversation_id: self.message.conversation_id,
                    message: self.message.clone(),
                })
            })
            .clone()
    }
}

fn seed_frame(message: &Message) -> SeedMessageFrame {
    SeedMessageFrame {
        frame_type: "message".into(),
        message: SeedMessage {
            id: message.id.get(),
            conversation_id: message.conversation_id.to_string(),
            sender_id: message.sender_id.to_string(),
            sender_name: message.sender_name.clone(),
            message_text: message.text.clone(),
            message_type: message.message_type,
            timestamp: message.sent_at.to_rfc3339(),
            is_read: message.is_read,
            file_url: message.attachment.as_ref().map(|attachment| attachment.url.clone()),
        },
    }
}

/// The native frame of a change to a message.
pub(crate) fn change_frame(change: &viewstore::StoredChange) -> Utf8Bytes {
    render(&ServerFrame::MessageChanged {
        conversation_id: change.conversation_id,
        message_id: change.message_id,
        position: change.position,
        change: change.change.clone(),
    })
}

pub(crate) fn render<T: serde::Serialize>(frame: &T) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

/// One item of a connection's queue. Every variant is a pointer: the queue's slots are
/// allocated per connection, so they stay small.
#[derive(Debug, Clone)]
pub enum Outbound {
    Message(Arc<MessageDelivery>),
    /// A native-protocol frame that is not history: read receipts and inbox updates.
    Native(Arc<Utf8Bytes>),
    /// Typing or presence of a user: not echoed to that user's own connections.
    About(Arc<(schemas::UserId, Utf8Bytes)>),
}
