//! Putting an event on the log, the one way every event of ingest takes: its producer span
//! (OpenTelemetry's messaging conventions), the record naming that span as the parent of
//! whatever consumes it, and the append, directly or, for a send with an idempotency key,
//! through its partition's writer. Both paths are traced alike; each records its appends in
//! `keyed_writer::metrics` where the append happens.

use eventlog::trace::{producer_span, record_offset, set_error};
use eventlog::{Header, NewRecord};
use keyed_writer::metrics::Appender;
use keyed_writer::{KeyedSend, Written};
use schemas::envelope::CONTENT_TYPE;
use schemas::{ChatEvent, Envelope, MessageId};
use tracing::Instrument;

use crate::error::IngestError;
use crate::service::Ingest;
use crate::trace;

impl Ingest {
    /// Appends `event` once it is durable; with `key`, only if no earlier send had the key
    /// (then the answer is that send's message).
    pub(crate) async fn publish(
        &self,
        event: &ChatEvent,
        key: Option<String>,
    ) -> Result<Written, IngestError> {
        let conversation = event.conversation_id();
        let partition = conversation.partition(self.log.partitions());
        let span =
            producer_span(self.log.destination(), partition, conversation.get(), event.type_name());
        let record = self.record_of(event, &span);
        let written = match key {
            None => self.append(record).instrument(span.clone()).await,
            Some(key) => {
                let send = KeyedSend { conversation, key, sent_at: event.time(), record };
                let written = self.writers.write_keyed(send).instrument(span.clone()).await;
                written.map_err(IngestError::from)
            }
        };
        match &written {
            Ok(written) => {
                if let Some(position) = written.id().position() {
                    record_offset(&span, position.offset);
                }
            }
            Err(error) => set_error(&span, error),
        }
        written
    }

    /// The event as a log record: its envelope, naming `span` (the producer span) as the
    /// parent of whatever consumes it.
    fn record_of(&self, event: &ChatEvent, span: &tracing::Span) -> NewRecord {
        let mut envelope = Envelope::wrap(event, &self.config.source);
        let traceparent = trace::record_header(span);
        envelope.traceparent = Some(traceparent.clone());
        let headers: Vec<Header> =
            vec![("content-type".into(), CONTENT_TYPE.into()), ("traceparent".into(), traceparent)];
        NewRecord { key: event.conversation_id(), value: envelope.to_bytes(), headers }
    }

    /// A record without a key goes straight to the log, within the append timeout the
    /// writers keep too.
    async fn append(&self, record: NewRecord) -> Result<Written, IngestError> {
        let NewRecord { key, value, headers } = record;
        let started = std::time::Instant::now();
        let append = self.log.append(key, value, headers);
        let result = match tokio::time::timeout(self.config.append_timeout, append).await {
            Ok(result) => result.map_err(IngestError::from),
            Err(_) => Err(IngestError::Unavailable("append timed out".into())),
        };
        keyed_writer::metrics::appended(Appender::Direct, 1, result.is_ok(), started.elapsed());
        result.map(|position| Written::Appended(MessageId::from_position(position)))
    }
}
