//! Signals: what fanout nodes tell each other that is not history. Typing and presence
//! expire; inbox updates are re-derivable from the projections. None of them is durable,
//! and a lost signal costs freshness, never correctness.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::http::InboxItem;
use crate::ids::{ConversationId, UserId};
use crate::native::PresenceStatus;
use crate::timestamp::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signal {
    Typing {
        conversation_id: ConversationId,
        user_id: UserId,
        is_typing: bool,
        at: Timestamp,
    },
    Presence {
        conversation_id: ConversationId,
        user_id: UserId,
        status: PresenceStatus,
        at: Timestamp,
    },
    /// Written by the projector after it committed a change to this user's inbox item.
    InboxUpdated {
        user_id: UserId,
        item: Box<InboxItem>,
    },
}
