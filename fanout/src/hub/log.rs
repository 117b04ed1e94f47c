//! What the hub does with each record of the log: messages and receipts are remembered for
//! resumes and queued for the conversation's subscribers, in one critical section with
//! [`Hub::subscribe`]'s snapshot, so a resuming client gets each exactly once.

use std::sync::Arc;
use std::time::Duration;

use eventlog::trace::{self, TraceParent};
use eventlog::{Destination, Record};
use schemas::http::Message;
use schemas::native::{MessageChange, ServerFrame};
use schemas::{ChatEvent, ConversationId, Envelope, MessageId, Position, Timestamp};

use super::Hub;
use crate::delivery::{MessageDelivery, Outbound, render};
use crate::metrics;

impl Hub {
    pub(super) fn on_record(&self, record: &Record) {
        let (envelope, event) = match Envelope::decode(&record.value) {
            Ok((envelope, Some(event))) => (envelope, event),
            Ok((_, None)) => return,
            Err(error) => {
                tracing::warn!(%error, offset = record.position.offset, "fanout skips undecodable record");
                return;
            }
        };
        match event {
            ChatEvent::MessageSent(sent) => {
                let after = Timestamp::now().millis().saturating_sub(sent.sent_at.millis());
                let trace = envelope.traceparent.as_deref().and_then(TraceParent::parse);
                metrics::message_arrived(
                    Duration::from_millis(u64::try_from(after).unwrap_or(0)),
                    trace.as_ref().map(TraceParent::trace_id),
                );
                // One span for the hub taking the message in, with the number of connections
                // it was queued for (not one per socket).
                let span = trace.as_ref().filter(|trace| trace.sampled()).map(|trace| {
                    let (system, topic) = &self.destination;
                    let destination = Destination { system, name: topic };
                    trace::consumer_span(destination, record, trace)
                });
                let message = Message {
                    id: MessageId::from_position(record.position),
                    conversation_id: sent.conversation_id,
                    sender_id: sent.sender.id,
                    sender_name: sent.sender.name,
                    message_type: sent.message_type,
                    text: sent.text,
                    attachment: sent.attachment,
                    idempotency_key: sent.idempotency_key,
                    sent_at: sent.sent_at,
                    is_read: false,
                    edited_at: None,
                    deleted: false,
                };
                let _entered = span.as_ref().map(tracing::Span::enter);
                let delivered =
                    self.deliver_message(record.position.offset, MessageDelivery::new(message));
                if let Some(span) = &span {
                    span.record("chat.deliveries", delivered);
                }
            }
            ChatEvent::MessagesRead(read) => self.deliver_receipt(record.position, read),
            ChatEvent::MessageEdited(edited) => {
                let change =
                    MessageChange::Edited { text: edited.text, edited_at: edited.edited_at };
                self.deliver_change(
                    record.position,
                    edited.conversation_id,
                    edited.message_id,
                    &change,
                );
            }
            ChatEvent::MessageDeleted(deleted) => {
                let change = MessageChange::Deleted { deleted_at: deleted.deleted_at };
                self.deliver_change(
                    record.position,
                    deleted.conversation_id,
                    deleted.message_id,
                    &change,
                );
            }
            // The inbox items say a conversation is blocked (the projector's inbox signals).
            ChatEvent::ConversationStarted(_)
            | ChatEvent::MessageReported(_)
            | ChatEvent::ConversationBlocked(_)
            | ChatEvent::ConversationUnblocked(_) => {}
        }
    }

    /// Delivers a change to a message to the native subscribers (in log order, so after
    /// the message) and keeps it for resumes. Ingest appends only changes it allowed; what
    /// may still come twice is a deletion (two racing ones), which the hub passes on once.
    fn deliver_change(
        &self,
        at: Position,
        conversation: ConversationId,
        message_id: MessageId,
        change: &MessageChange,
    ) {
        let frame = render(&ServerFrame::MessageChanged {
            conversation_id: conversation,
            message_id,
            position: MessageId::from_position(at),
            change: change.clone(),
        });
        let mut conversations = self.conversations.lock();
        if conversations.backlog.change(conversation, at, message_id, change, frame.clone()) {
            conversations.offer(conversation, &Outbound::Native(Arc::new(frame)));
        }
    }

    /// Queues the message for its subscribers; returns how many connections took it.
    fn deliver_message(&self, offset: u64, delivery: Arc<MessageDelivery>) -> usize {
        let conversation = delivery.conversation();
        let mut conversations = self.conversations.lock();
        if !conversations.backlog.message(offset, &delivery) {
            tracing::info!(%conversation, id = %delivery.id(), "fanout drops a duplicate send");
            return 0;
        }
        conversations.offer(conversation, &Outbound::Message(delivery))
    }

    /// Delivers a receipt and keeps it as its reader's latest.
    fn deliver_receipt(&self, at: Position, read: schemas::events::MessagesRead) {
        let conversation = read.conversation_id;
        let reader = read.reader_id.clone();
        let frame = render(&ServerFrame::Read {
            conversation_id: conversation,
            reader_id: read.reader_id,
            up_to: read.up_to,
            read_at: read.read_at,
            position: MessageId::from_position(at),
        });
        let mut conversations = self.conversations.lock();
        conversations.backlog.receipt(conversation, at, reader, frame.clone());
        conversations.offer(conversation, &Outbound::Native(Arc::new(frame)));
    }
}
