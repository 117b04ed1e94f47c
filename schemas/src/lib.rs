//! schemas: the contracts the chat shares with outside code.
//!
//! Every type that crosses a process boundary lives here: the CloudEvents envelope and the
//! events it carries on the log, the ephemeral signals (typing, presence, inbox updates),
//! the seed-compatible and native WebSocket frames, and the HTTP bodies. The generated
//! JSON Schema, OpenAPI and AsyncAPI files are derived from these types (see [`generate`]).
//!
//! This crate does no I/O and knows nothing of tokio, Kafka or any database: it is the
//! vocabulary, not the machinery.

pub mod compatibility;
pub mod envelope;
pub mod events;
pub mod generate;
pub mod handshake;
pub mod http;
pub mod ids;
pub mod limits;
pub mod native;
pub mod notify;
pub mod object;
pub mod seed;
pub mod signals;
pub mod timestamp;
pub mod traceparent;

pub use envelope::{DecodeError, Envelope};
pub use events::{
    Attachment, ChatEvent, ConversationBlocked, ConversationStarted, ConversationUnblocked,
    MessageDeleted, MessageEdited, MessageReported, MessageSent, MessageType, MessagesRead,
    Participant, ReportReason,
};
pub use ids::{ConversationId, IdError, MessageId, Position, UserId};
pub use timestamp::Timestamp;
