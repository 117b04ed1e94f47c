//! The write operations: open a conversation, send a message, mark read.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use attachments::Attachments;
use auth::Caller;
use eventlog::EventLog;
use lru::LruCache;
use parking_lot::Mutex;
use schemas::http::{OpenConversationRequest, ReadMark, SentMessage};
use schemas::limits::{self, Invalid};
use schemas::{
    Attachment, ChatEvent, ConversationId, ConversationStarted, MessageId, MessageSent,
    MessageType, MessagesRead, Participant, Timestamp,
};
use viewstore::{ConversationDirectory, ConversationRecord, ReadModel};

use crate::error::IngestError;
use crate::rate::{Rate, RateLimiter};
use keyed_writer::{WriteKeyed, WriterTiming, Written};

#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// CloudEvents `source` of what this node writes.
    pub source: String,
    /// An append that has not been acknowledged by then is reported as failed (the keyed
    /// writers' [`WriterTiming::append_timeout`], so one value rules both paths).
    pub append_timeout: Duration,
    /// Per-user send rate (the service role is exempt); `None` for no limit.
    pub send_rate: Option<Rate>,
    /// How long after sending a message its sender may edit it.
    pub edit_window: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            source: "/chat/ingest".into(),
            append_timeout: WriterTiming::default().append_timeout,
            send_rate: Some(Rate { per_second: 10.0, burst: 30 }),
            edit_window: Duration::from_secs(15 * 60),
        }
    }
}

/// A message as a client asks to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDraft {
    pub text: String,
    pub message_type: MessageType,
    pub attachment: Option<Attachment>,
    pub idempotency_key: Option<String>,
}

/// Conversations whose participants are fixed and whose start is in the log: immutable, so
/// cached without invalidation.
const CONVERSATION_CACHE: usize = 100_000;

pub struct Ingest {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) directory: Arc<dyn ConversationDirectory>,
    pub(crate) read_model: Arc<dyn ReadModel>,
    pub(crate) writers: Arc<dyn WriteKeyed>,
    pub(crate) config: IngestConfig,
    started: Mutex<LruCache<ConversationId, ConversationRecord>>,
    limiter: Option<RateLimiter>,
    attachments: Option<Attachments>,
    pub(crate) blocks: crate::block_cache::BlockCache,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Ingest {
    pub fn new(
        log: Arc<dyn EventLog>,
        directory: Arc<dyn ConversationDirectory>,
        read_model: Arc<dyn ReadModel>,
        writers: Arc<dyn WriteKeyed>,
        config: IngestConfig,
    ) -> Self {
        let capacity = NonZeroUsize::new(CONVERSATION_CACHE).unwrap_or(NonZeroUsize::MIN);
        let limiter = config.send_rate.map(RateLimiter::new);
        Self {
            log,
            directory,
            read_model,
            writers,
            config,
            started: Mutex::new(LruCache::new(capacity)),
            limiter,
            attachments: None,
            blocks: crate::block_cache::BlockCache::default(),
        }
    }

    /// Keeps uploads in `attachments` (without, uploads are refused as unavailable).
    pub fn with_attachments(mut self, attachments: Attachments) -> Self {
        self.attachments = Some(attachments);
        self
    }

    /// Where uploads are kept, if anywhere.
    pub fn attachments(&self) -> Result<&Attachments, IngestError> {
        self.attachments.as_ref().ok_or_else(|| {
            IngestError::Unavailable("no object store is configured (CHAT_OBJECT_STORE)".into())
        })
    }

    pub fn read_model(&self) -> &Arc<dyn ReadModel> {
        &self.read_model
    }

    pub fn partitions(&self) -> u32 {
        self.log.partitions()
    }

    /// `PUT /v1/jobs/{job_id}/conversation`: the job's conversation, created if needed.
    /// Returns it and whether this call created it.
    pub async fn open_conversation(
        &self,
        caller: &Caller,
        job_id: &str,
        request: OpenConversationRequest,
    ) -> Result<(ConversationRecord, bool), IngestError> {
        if !caller.service {
            return Err(IngestError::Forbidden("only the service role opens conversations".into()));
        }
        limits::job_id(job_id)?;
        if request.client_id == request.worker_id {
            return Err(Invalid::new("worker_id", "must differ from client_id").into());
        }
        let name_of = |field, name: Option<String>, id: &schemas::UserId| match name {
            Some(name) => limits::display_name(field, &name).map(|()| name),
            None => Ok(id.to_string()),
        };
        let client = Participant {
            name: name_of("client_name", request.client_name, &request.client_id)?,
            id: request.client_id,
        };
        let worker = Participant {
            name: name_of("worker_name", request.worker_name, &request.worker_id)?,
            id: request.worker_id,
        };
        let (record, created) = self
            .directory
            .open_conversation(job_id, client.clone(), worker.clone(), Timestamp::now())
            .await?;
        if record.client.id != client.id || record.worker.id != worker.id {
            return Err(IngestError::Conflict(format!(
                "job {job_id} already has conversation {} between other participants",
                record.conversation_id
            )));
        }
        let record = self.ensure_started(record).await?;
        Ok((record, created))
    }

    /// The conversation, if `caller` may read and write in it. To anyone else it does not
    /// exist: the answer is the one for a missing conversation, word for word, so that
    /// probing ids reveals neither which conversations exist nor who is in them.
    pub async fn authorize(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<ConversationRecord, IngestError> {
        match self.conversation(conversation).await {
            Ok(record) if record.is_participant(&caller.user_id) => Ok(record),
            Ok(_) | Err(IngestError::NotFound(_)) => Err(missing(conversation)),
            Err(other) => Err(other),
        }
    }

    /// The conversation, for the service role (which is in every conversation).
    pub(crate) async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<ConversationRecord, IngestError> {
        if let Some(record) = self.started.lock().get(&id) {
            return Ok(record.clone());
        }
        let record = self.directory.conversation(id).await?.ok_or_else(|| missing(id))?;
        self.ensure_started(record).await
    }

    /// Makes sure the conversation's `started` event is in the log before anything else of
    /// it is appended (it is missing only if a creator crashed between the directory write
    /// and the append; appending it again is harmless).
    async fn ensure_started(
        &self,
        mut record: ConversationRecord,
    ) -> Result<ConversationRecord, IngestError> {
        if !record.started {
            let event = ChatEvent::ConversationStarted(ConversationStarted {
                conversation_id: record.conversation_id,
                job_id: record.job_id.clone(),
                client: record.client.clone(),
                worker: record.worker.clone(),
                started_at: record.created_at,
            });
            self.publish(&event, None).await?;
            self.directory.mark_started(record.conversation_id).await?;
            record.started = true;
        }
        self.started.lock().put(record.conversation_id, record.clone());
        Ok(record)
    }

    /// Sends a message. The answer comes once the message is durable in the log.
    pub async fn send_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        draft: MessageDraft,
    ) -> Result<SentMessage, IngestError> {
        limits::message(draft.message_type, &draft.text, draft.attachment.as_ref())?;
        if let Some(key) = &draft.idempotency_key {
            limits::idempotency_key(key)?;
        }
        if let Some(limiter) = &self.limiter
            && !caller.service
        {
            limiter.take(&caller.user_id, std::time::Instant::now()).map_err(|wait| {
                crate::metrics::refused(crate::metrics::Limit::SendRate);
                IngestError::RateLimited("sends", wait)
            })?;
        }
        let record = if caller.service {
            if draft.message_type != MessageType::System {
                return Err(IngestError::Forbidden(
                    "the service role sends SYSTEM messages only".into(),
                ));
            }
            self.conversation(conversation).await?
        } else {
            if draft.message_type == MessageType::System {
                return Err(
                    Invalid::new("type", "SYSTEM messages come from the service role").into()
                );
            }
            let record = self.authorize(caller, conversation).await?;
            self.check_not_blocked(caller, conversation).await?;
            record
        };
        let attachment = match draft.attachment {
            Some(attachment) if attachment.upload_id.is_some() => {
                let stored = self.resolve(record.conversation_id, attachment).await?;
                // The stored description replaced the one checked above: check it too
                // (an IMAGE message must carry an image).
                limits::message(draft.message_type, &draft.text, Some(&stored))?;
                Some(stored)
            }
            other => other,
        };
        let sent_at = Timestamp::now();
        let event = ChatEvent::MessageSent(MessageSent {
            conversation_id: record.conversation_id,
            sender: Participant { id: caller.user_id.clone(), name: caller.name.clone() },
            message_type: draft.message_type,
            text: draft.text,
            attachment,
            idempotency_key: draft.idempotency_key.clone(),
            sent_at,
        });
        let published = self.publish(&event, draft.idempotency_key).await?;
        let (id, sent_at, duplicate) = match published {
            Written::Appended(id) => (id, sent_at, false),
            Written::Earlier(original) => (original.id, original.sent_at, true),
        };
        crate::metrics::message_sent(duplicate);
        Ok(SentMessage { id, conversation_id: record.conversation_id, sent_at, duplicate })
    }

    /// An attachment as the message will carry it: an upload is described from what was
    /// stored for this conversation (what the client said about it is replaced), a link
    /// elsewhere is kept as sent.
    async fn resolve(
        &self,
        conversation: ConversationId,
        attachment: Attachment,
    ) -> Result<Attachment, IngestError> {
        let Some(upload_id) = &attachment.upload_id else { return Ok(attachment) };
        let store = self.attachments()?;
        let unavailable =
            |error: attachments::StoreError| IngestError::Unavailable(error.to_string());
        let Some(stored) = store.describe(conversation, upload_id).await.map_err(unavailable)?
        else {
            return Err(Invalid::new(
                "attachment.upload_id",
                "no upload to this conversation has this id (or it was not sent in time)",
            )
            .into());
        };
        // Kept from now on, before the message exists: the sweeper never takes a file a
        // message carries.
        store.mark_sent(conversation, upload_id).await.map_err(unavailable)?;
        Ok(stored)
    }

    /// Marks everything up to `up_to` read for `caller`. `up_to` must be a position the log
    /// already has in the conversation's partition, so a receipt never covers a message
    /// that does not exist yet. The answer carries the mark in force afterwards (which is
    /// higher than `up_to` if the caller had already read further).
    pub async fn mark_read(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        up_to: MessageId,
    ) -> Result<ReadMark, IngestError> {
        let record = self.authorize(caller, conversation).await?;
        let partitions = self.log.partitions();
        let Some(position) = up_to.position() else {
            return Err(Invalid::new("up_to", "must name a message").into());
        };
        let partition = conversation.partition(partitions);
        let end = self.log.end_offset(partition).await?;
        if position.partition != partition || position.offset >= end {
            return Err(Invalid::new("up_to", "names no message of this conversation").into());
        }
        let mark = |up_to| ReadMark {
            conversation_id: record.conversation_id,
            reader_id: caller.user_id.clone(),
            up_to,
        };
        // Marks only move forward; skip the append when the projection is already past it.
        if let Some(view) = self.read_model.view(conversation).await?
            && let Some(role) = view.role_of(&caller.user_id)
            && view.read_state(role).last_read >= up_to
        {
            return Ok(mark(view.read_state(role).last_read));
        }
        let event = ChatEvent::MessagesRead(MessagesRead {
            conversation_id: record.conversation_id,
            reader_id: caller.user_id.clone(),
            up_to,
            read_at: Timestamp::now(),
        });
        self.publish(&event, None).await?;
        Ok(mark(up_to))
    }
}

fn missing(conversation: ConversationId) -> IngestError {
    IngestError::NotFound(format!("no conversation {conversation}"))
}
