//! Signals: what fanout nodes tell each other that is not history. Typing and presence
//! expire; inbox updates are re-derivable from the projections. None of them is durable,
//! and a lost signal costs freshness, never correctness.
//!
//! A record of the signals topic holds one [`Signal`] or one [`SignalBatch`]; both are
//! published (`schemas/generated/signals/`, and the AsyncAPI document's signals channel).

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
    /// `user_id` has a connection on fanout node `node` (online), or no longer has one
    /// there (offline). A user is online while any live node says so.
    Presence {
        user_id: UserId,
        status: PresenceStatus,
        at: Timestamp,
        #[serde(default)]
        node: String,
        /// The announcing node's count of its presence announcements: a later one of the same
        /// node has a higher `seq`. Signals may arrive out of order (the bus has several
        /// partitions), so receivers ignore an announcement older than one they applied.
        /// 0 from nodes that do not count, which receivers always apply.
        #[serde(default)]
        seq: u64,
    },
    /// A fanout node is alive; its presence sightings expire when it stops saying so.
    NodeAlive {
        node: String,
        at: Timestamp,
    },
    /// A node wants to know whether these users are connected (a client subscribed to a
    /// conversation with them, and the node has heard nothing of them since it started);
    /// every node holding a connection of one of them answers with `presence` online.
    PresenceQuery {
        user_ids: Vec<UserId>,
        node: String,
    },
    /// Written by the projector after it committed a change to this user's inbox item.
    InboxUpdated {
        user_id: UserId,
        item: Box<InboxItem>,
    },
}

/// Several signals in one record, in the order they were said: what a projector batch's
/// inbox updates travel as, so that a batch is one record rather than one per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignalBatch {
    pub signals: Vec<Signal>,
}
