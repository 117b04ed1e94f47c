//! What the notifier does with each event it reads: messages join their recipients' bursts,
//! reads and deletions take messages out, edits change what a burst will show, and started
//! conversations and reports become webhook events.

use eventlog::Record;
use schemas::notify::{ConversationStartedData, MessageReportedData, WebhookData, WebhookEvent};
use schemas::{ChatEvent, ConversationId, Envelope, MessageId, Position, Timestamp, UserId};

use super::Notifier;
use crate::ledger::Unseen;
use crate::metrics;

impl Notifier {
    pub(super) async fn take(&mut self, records: &[Record]) {
        for record in records {
            if let Ok((_, Some(event))) = Envelope::decode(&record.value) {
                self.take_event(record.position, event).await;
            }
            self.ledger.taken(record.position);
        }
        metrics::waiting(self.ledger.waiting());
    }

    /// Whether something that happened `at` is too old to tell anyone about now.
    fn stale(&self, at: Timestamp) -> bool {
        let horizon = i64::try_from(self.horizon.as_millis()).unwrap_or(i64::MAX);
        Timestamp::now().millis().saturating_sub(at.millis()) > horizon
    }

    async fn take_event(&mut self, position: Position, event: ChatEvent) {
        let at = match &event {
            ChatEvent::ConversationStarted(started) => Some(started.started_at),
            ChatEvent::MessageSent(sent) => Some(sent.sent_at),
            // A report is never too old: a moderator must see it, and its id (the record's
            // position) lets the receiver drop one it had.
            ChatEvent::MessagesRead(_)
            | ChatEvent::MessageEdited(_)
            | ChatEvent::MessageDeleted(_)
            | ChatEvent::MessageReported(_)
            | ChatEvent::ConversationBlocked(_)
            | ChatEvent::ConversationUnblocked(_) => None,
        };
        if at.is_some_and(|at| self.stale(at)) {
            if let ChatEvent::ConversationStarted(started) = event {
                let people = [started.client.id, started.worker.id];
                self.participants.insert(started.conversation_id, people);
            }
            return;
        }
        match event {
            ChatEvent::ConversationStarted(started) => {
                let people = [started.client.id.clone(), started.worker.id.clone()];
                self.participants.insert(started.conversation_id, people);
                let data = WebhookData::ConversationStarted(ConversationStartedData {
                    conversation_id: started.conversation_id,
                    job_id: started.job_id,
                    client_id: started.client.id,
                    worker_id: started.worker.id,
                });
                // A retried creation repeats the event: the id names the conversation, so
                // the receiver drops the repeat.
                let id = format!("{}-started", started.conversation_id.get());
                self.post(position, id, "conversation.started", started.started_at, data);
            }
            ChatEvent::MessageSent(sent) => {
                let Some(people) = self.participants_of(sent.conversation_id).await else {
                    return;
                };
                let message = Unseen {
                    id: MessageId::from_position(position),
                    position,
                    sender_id: sent.sender.id.clone(),
                    sender_name: sent.sender.name,
                    text: sent.text,
                    sent_at: sent.sent_at,
                };
                for recipient in people.into_iter().filter(|person| *person != sent.sender.id) {
                    self.deliveries.presence.ask_if_unheard(&recipient).await;
                    self.ledger.message(sent.conversation_id, recipient, message.clone());
                }
            }
            ChatEvent::MessagesRead(read) => {
                self.ledger.read(read.conversation_id, read.reader_id, read.up_to);
            }
            ChatEvent::MessageEdited(edited) => {
                self.ledger.changed(edited.conversation_id, edited.message_id, Some(&edited.text));
            }
            ChatEvent::MessageDeleted(deleted) => {
                self.ledger.changed(deleted.conversation_id, deleted.message_id, None);
            }
            // A blocked sender's messages are refused, so there is nothing to notify.
            ChatEvent::ConversationBlocked(_) | ChatEvent::ConversationUnblocked(_) => {}
            ChatEvent::MessageReported(report) => {
                let position_id = MessageId::from_position(position);
                let id = format!("{}-report-{position_id}", report.conversation_id.get());
                let data = WebhookData::MessageReported(MessageReportedData {
                    conversation_id: report.conversation_id,
                    message_id: report.message_id,
                    reporter_id: report.reporter_id,
                    sender_id: report.sender_id,
                    reason: report.reason,
                    detail: report.detail,
                });
                self.post(position, id, "message.reported", report.reported_at, data);
            }
        }
    }

    async fn participants_of(&mut self, conversation: ConversationId) -> Option<[UserId; 2]> {
        if let Some(people) = self.participants.get(&conversation) {
            return Some(people.clone());
        }
        match self.deliveries.stores.directory.conversation(conversation).await {
            Ok(Some(record)) => {
                let people = [record.client.id, record.worker.id];
                self.participants.insert(conversation, people.clone());
                Some(people)
            }
            Ok(None) => None,
            Err(error) => {
                // Rare, and the message is then not notified: a later one will be.
                tracing::warn!(%error, "cannot look up a conversation's participants");
                None
            }
        }
    }

    /// Posts a webhook event of the record at `position`, where webhooks are set up.
    fn post(
        &mut self,
        position: Position,
        id: String,
        kind: &str,
        timestamp: Timestamp,
        data: WebhookData,
    ) {
        if self.deliveries.webhook.is_some() {
            let event = WebhookEvent { kind: kind.to_owned(), timestamp, data };
            self.spawn_task(position, id, event);
        }
    }
}
