//! Changes to messages already sent: edits by their sender, deletions for everyone (by the
//! sender, or by the service role for moderation), and reports to the moderators. Each is
//! an event on the log; the projector folds edits and deletions into history and the inbox,
//! the fanout sends them after the message, the notifier tells the jobs system of reports.

use auth::Caller;
use schemas::http::{MessageChangeAccepted, ReportRequest};
use schemas::limits::{self, Invalid};
use schemas::{
    Attachment, ChatEvent, ConversationId, Envelope, MessageDeleted, MessageEdited, MessageId,
    MessageReported, MessageType, Timestamp, UserId,
};

use crate::error::IngestError;
use crate::service::Ingest;

/// What a change needs to know of the message it changes.
#[derive(Debug)]
struct Original {
    sender: UserId,
    message_type: MessageType,
    attachment: Option<Attachment>,
    sent_at: Timestamp,
    deleted: bool,
}

impl Ingest {
    /// `PATCH /v1/conversations/{id}/messages/{message_id}`: the sender replaces the text,
    /// within the edit window. The answer comes once the edit is durable in the log.
    pub async fn edit_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        message_id: MessageId,
        text: String,
    ) -> Result<MessageChangeAccepted, IngestError> {
        self.authorize(caller, conversation).await?;
        let original = self.original(conversation, message_id).await?;
        if original.sender != caller.user_id {
            return Err(IngestError::Forbidden("only its sender edits a message".into()));
        }
        if original.deleted {
            return Err(IngestError::Conflict(format!("message {message_id} was deleted")));
        }
        let window = self.config.edit_window;
        let age = Timestamp::now().millis().saturating_sub(original.sent_at.millis());
        if u128::try_from(age).unwrap_or(0) > window.as_millis() {
            return Err(IngestError::Forbidden(format!(
                "a message can be edited for {} s after it is sent",
                window.as_secs()
            )));
        }
        limits::message(original.message_type, &text, original.attachment.as_ref())?;
        let event = ChatEvent::MessageEdited(MessageEdited {
            conversation_id: conversation,
            message_id,
            editor_id: caller.user_id.clone(),
            text,
            edited_at: Timestamp::now(),
        });
        let position = self.publish(&event, None).await?.id();
        Ok(MessageChangeAccepted { conversation_id: conversation, message_id, position })
    }

    /// `DELETE /v1/conversations/{id}/messages/{message_id}`: deleted for everyone, by its
    /// sender or by the service role. Deleting a deleted message again changes nothing and
    /// succeeds. The message's uploaded files are removed once the deletion is durable.
    pub async fn delete_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        message_id: MessageId,
    ) -> Result<Option<MessageChangeAccepted>, IngestError> {
        if caller.service {
            self.conversation(conversation).await?;
        } else {
            self.authorize(caller, conversation).await?;
        }
        let original = self.original(conversation, message_id).await?;
        if !caller.service && original.sender != caller.user_id {
            return Err(IngestError::Forbidden(
                "only its sender (or the service role) deletes a message".into(),
            ));
        }
        if original.deleted {
            return Ok(None);
        }
        let event = ChatEvent::MessageDeleted(MessageDeleted {
            conversation_id: conversation,
            message_id,
            deleted_by: caller.user_id.clone(),
            moderation: caller.service,
            deleted_at: Timestamp::now(),
        });
        let position = self.publish(&event, None).await?.id();
        if let Some(upload_id) = original.attachment.and_then(|attachment| attachment.upload_id)
            && let Ok(store) = self.attachments()
            && let Err(error) = store.delete_upload(conversation, &upload_id).await
        {
            // The message is a tombstone already, and nobody is served its file through
            // the API (its description is what goes first); the object store's own
            // lifecycle rules are the backstop for what is left.
            tracing::warn!(%error, %conversation, upload_id, "a deleted message's file stays");
        }
        Ok(Some(MessageChangeAccepted { conversation_id: conversation, message_id, position }))
    }

    /// `POST /v1/conversations/{id}/messages/{message_id}/report`: a participant reports a
    /// message of the other side (or of the jobs system) to the moderators. The answer
    /// comes once the report is durable in the log.
    pub async fn report_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        message_id: MessageId,
        request: ReportRequest,
    ) -> Result<MessageChangeAccepted, IngestError> {
        self.authorize(caller, conversation).await?;
        if let Some(detail) = &request.detail {
            limits::report_detail(detail)?;
        }
        let original = self.original(conversation, message_id).await?;
        if original.sender == caller.user_id {
            return Err(Invalid::new("message_id", "names the caller's own message").into());
        }
        let event = ChatEvent::MessageReported(MessageReported {
            conversation_id: conversation,
            message_id,
            reporter_id: caller.user_id.clone(),
            sender_id: original.sender,
            reason: request.reason,
            detail: request.detail,
            reported_at: Timestamp::now(),
        });
        let position = self.publish(&event, None).await?.id();
        Ok(MessageChangeAccepted { conversation_id: conversation, message_id, position })
    }

    /// Message `id` of `conversation`: from the projections, or, for a message sent a
    /// moment ago that they do not show yet, from the log itself. To anyone it does not
    /// exist for, the same 404 whichever reason.
    async fn original(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Original, IngestError> {
        let missing = || IngestError::NotFound(format!("no message {id} in this conversation"));
        let partition = conversation.partition(self.log.partitions());
        let position = id.position().filter(|p| p.partition == partition).ok_or_else(missing)?;
        if let Some(stored) = self.read_model.message(conversation, id).await? {
            return Ok(Original {
                sender: stored.sender.id,
                message_type: stored.message_type,
                attachment: stored.attachment,
                sent_at: stored.sent_at,
                deleted: stored.deleted_at.is_some(),
            });
        }
        if position.offset >= self.log.end_offset(partition).await? {
            return Err(missing());
        }
        let records = self.log.read(partition, position.offset, 1).await?;
        let record = records.into_iter().find(|r| r.position == position).ok_or_else(missing)?;
        match Envelope::decode(&record.value) {
            Ok((_, Some(ChatEvent::MessageSent(sent)))) if sent.conversation_id == conversation => {
                Ok(Original {
                    sender: sent.sender.id,
                    message_type: sent.message_type,
                    attachment: sent.attachment,
                    sent_at: sent.sent_at,
                    deleted: false,
                })
            }
            _ => Err(missing()),
        }
    }
}
