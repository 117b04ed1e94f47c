//! ingest: the write path.
//!
//! [`Ingest`] validates a request, checks who may make it, and appends the event, answering
//! only once the log holds it durably. It is the only code that appends chat events; the
//! HTTP API ([`router`]) and the WebSocket endpoints (in `fanout`) both call it. The HTTP
//! API also serves the read side (inbox, history) from the projections, and takes and
//! serves attachments (`uploads`, kept by the `attachments` crate).

mod block_cache;
mod blocking;
mod changes;
mod error;
mod extract;
pub mod files;
pub mod metrics;
pub mod openapi;
mod publish;
mod push;
mod rate;
mod routes;
mod service;
mod state;
mod trace;
mod uploads;

pub use error::{IngestError, problem_response};
pub use files::{DEFAULT_MAX_UPLOAD_BYTES, FileGate, FileLimits, sweep_unsent};
/// Keyed sends, written by their partition's one writer (the `keyed-writer` crate).
pub use keyed_writer as writer;
pub use push::SUBSCRIPTIONS_PER_USER;
pub use rate::{Rate, TokenBucket};
pub use routes::{MAX_BODY_BYTES, not_found, router};
pub use service::{Ingest, IngestConfig, MessageDraft};
pub use state::{IngestState, PushRegistry};
