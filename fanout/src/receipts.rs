//! Read receipts a resuming client missed. Receipts are state, not history: only each
//! reader's latest one matters, so a resume hands over the latest receipt of each reader
//! set after the client's position, from the store for the part of the gap the hub no
//! longer remembers and from the hub for the rest.

use axum::extract::ws::Utf8Bytes;
use schemas::MessageId;
use schemas::native::ServerFrame;
use viewstore::{ConversationView, Role};

use crate::delivery::render;
use crate::resume::StoreRange;

/// What a catch-up wrote, and the receipts it found for protocols that carry them.
#[derive(Debug)]
pub(crate) struct CaughtUp {
    /// The last message written (the resume position, if none).
    pub last: MessageId,
    /// Native `message_changed` frames after the position, in log order: written after the
    /// messages, so each follows the message it changes.
    pub changes: Vec<Utf8Bytes>,
    /// Native `read` frames, oldest first.
    pub receipts: Vec<Utf8Bytes>,
}

/// Receipts in `view` set inside the store's part of the gap.
pub(crate) fn stored_receipts(view: &ConversationView, range: &StoreRange) -> Vec<Utf8Bytes> {
    let mut found: Vec<_> = [(Role::Client, &view.client.id), (Role::Worker, &view.worker.id)]
        .into_iter()
        .filter_map(|(role, reader)| {
            let state = view.read_state(role);
            let receipt = state.receipt?;
            let position = schemas::Position { partition: range.partition, offset: receipt.offset };
            let position = MessageId::from_position(position);
            let inside = position > range.after && receipt.offset <= range.through_offset;
            inside.then_some((position, reader, state.last_read, receipt.read_at))
        })
        .collect();
    found.sort_by_key(|(position, ..)| *position);
    found
        .into_iter()
        .map(|(position, reader, up_to, read_at)| {
            render(&ServerFrame::Read {
                conversation_id: view.conversation_id,
                reader_id: reader.clone(),
                up_to,
                read_at,
                position,
            })
        })
        .collect()
}
