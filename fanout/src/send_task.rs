//! A connection's send task: appends the sends and reads its client makes, one at a time
//! and in order, so that a client's own messages keep their order and a slow append never
//! stalls delivery on the connection. Each is traced as a request in its own right.

use std::sync::Arc;

use auth::Caller;
use ingest::{Ingest, IngestError, MessageDraft};
use schemas::http::{ReadMark, SentMessage};
use schemas::{ConversationId, MessageId};
use tokio::sync::mpsc;
use tracing::Instrument;

/// A send or read the client asked for.
#[derive(Debug)]
pub(crate) enum Submission {
    Send { reference: Option<String>, conversation: ConversationId, draft: MessageDraft },
    Read { reference: Option<String>, conversation: ConversationId, up_to: MessageId },
}

/// How a submission went.
#[derive(Debug)]
pub(crate) enum Submitted {
    Sent { reference: Option<String>, result: Result<SentMessage, IngestError> },
    Read { reference: Option<String>, result: Result<ReadMark, IngestError> },
}

/// The task and its two bounded queues.
#[derive(Debug)]
pub(crate) struct SendTask {
    submissions: mpsc::Sender<Box<Submission>>,
    outcomes: mpsc::Receiver<Box<Submitted>>,
    task: tokio::task::JoinHandle<()>,
}

impl SendTask {
    /// Starts the task for `caller`, with room for `pending` submissions either way.
    pub(crate) fn start(ingest: Arc<Ingest>, caller: Caller, pending: usize) -> Self {
        let (submissions, queued) = mpsc::channel(pending.max(1));
        let (done, outcomes) = mpsc::channel(pending.max(1));
        let task = tokio::spawn(run(ingest, caller, queued, done));
        Self { submissions, outcomes, task }
    }

    /// Queues `submission`; false when too many are waiting.
    pub(crate) fn submit(&self, submission: Submission) -> bool {
        self.submissions.try_send(Box::new(submission)).is_ok()
    }

    /// The next finished submission.
    pub(crate) async fn next(&mut self) -> Option<Box<Submitted>> {
        self.outcomes.recv().await
    }

    pub(crate) fn abort(&self) {
        self.task.abort();
    }
}

async fn run(
    ingest: Arc<Ingest>,
    caller: Caller,
    mut submissions: mpsc::Receiver<Box<Submission>>,
    outcomes: mpsc::Sender<Box<Submitted>>,
) {
    while let Some(submission) = submissions.recv().await {
        let outcome = match *submission {
            Submission::Send { reference, conversation, draft } => {
                let sent = ingest.send_message(&caller, conversation, draft);
                Submitted::Sent { reference, result: traced("send", conversation, sent).await }
            }
            Submission::Read { reference, conversation, up_to } => {
                let read = ingest.mark_read(&caller, conversation, up_to);
                Submitted::Read { reference, result: traced("read", conversation, read).await }
            }
        };
        if outcomes.send(Box::new(outcome)).await.is_err() {
            return;
        }
    }
}

/// Runs `work` under a server span of its own (a frame is the root of the trace of what it
/// appends); a failure marks the span and, when internal, is logged.
async fn traced<T>(
    operation: &'static str,
    conversation: ConversationId,
    work: impl Future<Output = Result<T, IngestError>>,
) -> Result<T, IngestError> {
    let span = tracing::debug_span!(
        "frame",
        otel.name = format!("WebSocket {operation}"),
        otel.kind = "server",
        chat.operation = operation,
        chat.conversation.id = conversation.get(),
    );
    let result = work.instrument(span.clone()).await;
    if let Err(error) = &result {
        eventlog::trace::set_error(&span, error);
        error.log_if_internal();
    }
    result
}
