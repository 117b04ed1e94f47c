//! The seed's WebSocket protocol, `GET /ws/chat/{conversation_id}/`, kept exactly: existing
//! front ends speak it. Note the seed's JSON types: `conversation_id` and `sender_id` are
//! strings, `id` is a number.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::MessageType;

/// What a seed client sends: `{"message": "...", "type": "TEXT"}`. Unknown members are
/// ignored, as the seed did. `file_url` is the seed's sketch for IMAGE and FILE messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SeedInbound {
    pub message: String,
    #[serde(rename = "type", default)]
    pub message_type: MessageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
}

/// What every participant receives for every message, the sender included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SeedMessageFrame {
    /// Always `message`.
    #[serde(rename = "type")]
    pub frame_type: String,
    pub message: SeedMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SeedMessage {
    pub id: u64,
    pub conversation_id: String,
    pub sender_id: String,
    pub sender_name: String,
    pub message_text: String,
    pub message_type: MessageType,
    pub timestamp: String,
    pub is_read: bool,
    /// Present on IMAGE and FILE messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
}

/// Our one addition: bad input on an open connection is answered with this frame instead
/// of silence. Seed front ends ignore frames whose `type` is not `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SeedErrorFrame {
    /// Always `error`.
    #[serde(rename = "type")]
    pub frame_type: String,
    pub code: String,
    pub detail: String,
}
