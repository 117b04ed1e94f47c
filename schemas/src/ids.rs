//! Identifiers and log positions.
//!
//! Message ids are not allocated by anyone: they are derived from the log position the
//! message was appended at, so the log is the only sequencer. Within a conversation (which
//! lives in exactly one partition) a later append has a larger offset and therefore a larger
//! id, which is what lets a client resume from "the last id I saw".

use std::fmt;
use std::str::FromStr;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The largest integer a JavaScript number holds exactly (2^53 - 1). Every id we hand out
/// stays at or below it so browsers never round one.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Partitions the message-id encoding can address. The topic's partition count must stay
/// below this and must never change once messages exist (the key-to-partition mapping and
/// every message id depend on it).
pub const MAX_PARTITIONS: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be a positive integer below 2^53")]
    OutOfRange,
    #[error("must be a decimal integer")]
    NotANumber,
    #[error("must be 1 to {max} characters of letters, digits, '.', '_', ':', '@' or '-'")]
    BadUserId { max: usize },
}

/// A conversation, one per job. Positive and below 2^53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ConversationId(u64);

impl ConversationId {
    pub fn new(value: u64) -> Result<Self, IdError> {
        if value == 0 || value > MAX_SAFE_INTEGER {
            return Err(IdError::OutOfRange);
        }
        Ok(Self(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The partition this conversation's events go to. A stable mix of the id so that
    /// sequential ids spread evenly; every backend uses this same function so the embedded
    /// log and Kafka place a conversation identically.
    pub fn partition(self, partitions: u32) -> u32 {
        debug_assert!(partitions > 0 && partitions <= MAX_PARTITIONS);
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % u64::from(partitions)) as u32
    }
}

impl TryFrom<u64> for ConversationId {
    type Error = IdError;
    fn try_from(value: u64) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<ConversationId> for u64 {
    fn from(id: ConversationId) -> u64 {
        id.0
    }
}

impl FromStr for ConversationId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        let value: u64 = text.parse().map_err(|_| IdError::NotANumber)?;
        Self::new(value)
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a record sits in the log: its partition and its offset within that partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// A message, named by the log position it was appended at:
/// `id = (offset + 1) * 1024 + partition`. Ids are positive, below 2^53, and increase in log
/// order within a conversation. `0` is never a message; clients use it as "before the first".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u64", into = "u64")]
pub struct MessageId(u64);

impl MessageId {
    /// "Before every message": resuming from it replays the whole conversation.
    pub const ZERO: MessageId = MessageId(0);

    pub fn new(value: u64) -> Result<Self, IdError> {
        if value > MAX_SAFE_INTEGER {
            return Err(IdError::OutOfRange);
        }
        Ok(Self(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn from_position(position: Position) -> Self {
        debug_assert!(position.partition < MAX_PARTITIONS);
        Self((position.offset + 1) * u64::from(MAX_PARTITIONS) + u64::from(position.partition))
    }

    /// The position this id was derived from; `None` for [`MessageId::ZERO`] and other values
    /// below the first possible message.
    pub fn position(self) -> Option<Position> {
        let slot = self.0 / u64::from(MAX_PARTITIONS);
        if slot == 0 {
            return None;
        }
        Some(Position { partition: (self.0 % u64::from(MAX_PARTITIONS)) as u32, offset: slot - 1 })
    }

    /// The smallest id a message at `offset` or later in `partition` can have. Used to turn
    /// "everything before this offset" into an id bound.
    pub fn first_at(partition: u32, offset: u64) -> Self {
        Self::from_position(Position { partition, offset })
    }
}

impl TryFrom<u64> for MessageId {
    type Error = IdError;
    fn try_from(value: u64) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<MessageId> for u64 {
    fn from(id: MessageId) -> u64 {
        id.0
    }
}

impl FromStr for MessageId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        let value: u64 = text.parse().map_err(|_| IdError::NotANumber)?;
        Self::new(value)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A user, as named by the `sub` claim of their token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
        if value.is_empty() || value.len() > Self::MAX_LEN || !value.chars().all(allowed) {
            return Err(IdError::BadUserId { max: Self::MAX_LEN });
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for ConversationId {
    fn schema_name() -> Cow<'static, str> {
        "ConversationId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_SAFE_INTEGER,
            "description": "A conversation; one per job"
        })
    }
}

impl JsonSchema for MessageId {
    fn schema_name() -> Cow<'static, str> {
        "MessageId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_SAFE_INTEGER,
            "description": "(offset + 1) * 1024 + partition of the message's log record; \
                            increases in log order within a conversation"
        })
    }
}

impl JsonSchema for UserId {
    fn schema_name() -> Cow<'static, str> {
        "UserId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": UserId::MAX_LEN,
            "pattern": "^[A-Za-z0-9._:@-]+$",
            "description": "The `sub` claim of the user's token"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_through_positions() {
        for (partition, offset) in [(0, 0), (1023, 0), (7, 42), (0, (1 << 42) - 2)] {
            let position = Position { partition, offset };
            let id = MessageId::from_position(position);
            assert!(id.get() <= MAX_SAFE_INTEGER && id.get() > 0);
            assert_eq!(id.position(), Some(position));
        }
        assert_eq!(MessageId::ZERO.position(), None);
    }

    #[test]
    fn ids_increase_with_offset_within_a_partition() {
        let earlier = MessageId::from_position(Position { partition: 5, offset: 9 });
        let later = MessageId::from_position(Position { partition: 5, offset: 10 });
        assert!(earlier < later);
    }

    #[test]
    fn conversation_ids_reject_zero_and_unsafe_integers() {
        assert_eq!(ConversationId::new(0), Err(IdError::OutOfRange));
        assert_eq!(ConversationId::new(MAX_SAFE_INTEGER + 1), Err(IdError::OutOfRange));
        assert!(ConversationId::new(MAX_SAFE_INTEGER).is_ok());
        assert_eq!("12x".parse::<ConversationId>(), Err(IdError::NotANumber));
        assert!(serde_json::from_str::<ConversationId>("0").is_err());
    }

    #[test]
    fn partitioning_is_stable_and_spreads_sequential_ids() {
        let mut counts = [0_u32; 8];
        for id in 1..=8000 {
            let conversation = ConversationId::new(id).unwrap();
            counts[conversation.partition(8) as usize] += 1;
        }
        assert!(counts.iter().all(|&count| (800..1200).contains(&count)), "{counts:?}");
        let conversation = ConversationId::new(42).unwrap();
        assert_eq!(conversation.partition(16), conversation.partition(16));
    }

    #[test]
    fn user_ids_are_bounded_and_plain() {
        assert!(UserId::new("worker-17@example.com").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a b").is_err());
        assert!(UserId::new("x".repeat(129)).is_err());
    }
}
