//! Keyed sends: exactly one message per idempotency key, at the cost of one append.
//!
//! Each log partition has one writer for keyed sends at a time: the node holding the
//! partition's lease ([`viewstore::WriterLeases`]). Ingest nodes share the partitions out
//! through a writer group of the log ([`eventlog::WriterAssignment`]) and take the leases of
//! the partitions they are assigned; other nodes (and fanout nodes, which never write keyed
//! sends themselves) forward to the holder. The holder's partition writer (`partition`) decides from
//! memory whether a key was used, asks the projections only about keys older than what it
//! remembers, and appends; no database round trip needs a consensus protocol, and none
//! happens between the decision and the append. `timing` holds the rules that make a
//! takeover safe; `keeper` takes, renews and hands over leases; `forward` carries sends
//! between nodes.

mod forward;
mod in_order;
mod keeper;
pub mod metrics;
mod partition;
pub mod timing;
mod window;

use std::sync::Arc;
use std::time::Duration;

use eventlog::{EventLog, NewRecord};
use parking_lot::RwLock;
use schemas::{ConversationId, MessageId, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use viewstore::{ReadModel, WriterLeases};

pub use forward::{ForwardKey, forward_router};
pub use timing::{TimingError, WriterTiming};

use self::forward::Forwarder;
use self::keeper::Keeper;
use self::partition::Reply;

/// A keyed send, ready to append: the record is the whole event, sent at `sent_at`.
#[derive(Debug, Clone)]
pub struct KeyedSend {
    pub conversation: ConversationId,
    pub key: String,
    pub sent_at: Timestamp,
    pub record: NewRecord,
}

/// Where a keyed send's message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// This send appended it.
    Appended(MessageId),
    /// An earlier send with the same key did: the writer remembers which and when, so a
    /// retry is answered without reading the store or the log.
    Earlier(Original),
}

impl Written {
    /// The key's message, whichever send appended it.
    pub fn id(&self) -> MessageId {
        match self {
            Self::Appended(id) => *id,
            Self::Earlier(original) => original.id,
        }
    }
}

/// The message a key produced, and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    pub id: MessageId,
    pub sent_at: Timestamp,
}

impl From<&viewstore::StoredMessage> for Original {
    fn from(message: &viewstore::StoredMessage) -> Self {
        Self { id: message.id, sent_at: message.sent_at }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This node does not (or no longer) write the partition; ask its writer.
    #[error("this node does not write the partition")]
    NotHere,
    #[error("{0}")]
    Unavailable(String),
}

/// How a node takes part in writing keyed sends.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// This node's name in the leases; unique per process.
    pub node: String,
    /// Where other nodes reach this one (`host:port` of its HTTP listener).
    pub address: String,
    /// The log's writer group this node joins; `None` for nodes that only forward.
    pub group: Option<String>,
    pub timing: WriterTiming,
    /// Signs forwarded sends; `None` where nothing is forwarded (a single process).
    pub forward_key: Option<ForwardKey>,
    /// How long a send waits for its partition to get a reachable writer.
    pub route_wait: Duration,
}

/// Where keyed sends of one partition go.
#[derive(Debug, Clone, Default)]
pub(crate) enum Route {
    Local(mpsc::Sender<(KeyedSend, Reply)>),
    Remote {
        address: String,
    },
    /// Nobody writes it right now (a handover or a takeover is under way).
    #[default]
    Nobody,
}

pub(crate) type Routes = Arc<RwLock<Vec<Route>>>;

/// What the write path needs of the writers: each keyed send written once, wherever its
/// partition's writer is. [`KeyedWriters`] is the real thing; a service can be tested with
/// a writer of its own.
pub trait WriteKeyed: Send + Sync {
    fn write_keyed(
        &self,
        send: KeyedSend,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Written, WriteError>> + Send + '_>>;
}

impl WriteKeyed for KeyedWriters {
    fn write_keyed(
        &self,
        send: KeyedSend,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Written, WriteError>> + Send + '_>> {
        Box::pin(self.write(send))
    }
}

/// Sends keyed messages to their partition's writer, here or on another node.
pub struct KeyedWriters {
    node: String,
    partitions: u32,
    routes: Routes,
    /// Tells the keeper a send found no writer (read the leases again now).
    lost_route: Arc<tokio::sync::Notify>,
    forwarder: Option<Forwarder>,
    route_wait: Duration,
    stopped: CancellationToken,
}

impl std::fmt::Debug for KeyedWriters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedWriters").field("partitions", &self.partitions).finish_non_exhaustive()
    }
}

/// How often a send that found no writer looks again.
const ROUTE_POLL: Duration = Duration::from_millis(50);

impl KeyedWriters {
    /// Starts this node's part: a member takes the leases of the partitions the writer
    /// group assigns it and runs their writers; a node without a group only learns where
    /// the writers are. The returned task ends after `shutdown`, once every lease this node
    /// held has been handed back.
    pub async fn start(
        log: Arc<dyn EventLog>,
        read_model: Arc<dyn ReadModel>,
        leases: Arc<dyn WriterLeases>,
        config: WriterConfig,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), eventlog::LogError> {
        let partitions = log.partitions();
        let routes: Routes = Arc::new(RwLock::new(vec![Route::Nobody; partitions as usize]));
        let assignment = match &config.group {
            Some(group) => Some(log.writer_assignment(group).await?),
            None => None,
        };
        let forward_timeout = config.timing.append_timeout + config.timing.margin;
        let forwarder = config
            .forward_key
            .clone()
            .map(|key| Forwarder::new(key, forward_timeout, Arc::clone(&read_model)));
        let stopped = CancellationToken::new();
        let lost_route = Arc::new(tokio::sync::Notify::new());
        let writers = Arc::new(Self {
            node: config.node.clone(),
            partitions,
            routes: Arc::clone(&routes),
            lost_route: Arc::clone(&lost_route),
            forwarder,
            route_wait: config.route_wait,
            stopped: stopped.clone(),
        });
        let keeper = Keeper::new(log, read_model, leases, config, assignment, routes, lost_route);
        let task = tokio::spawn(async move {
            keeper.run(shutdown).await;
            stopped.cancel();
        });
        Ok((writers, task))
    }

    /// Appends `send` unless its key was used before; either way answers where the key's
    /// message is.
    pub async fn write(&self, send: KeyedSend) -> Result<Written, WriteError> {
        let partition = send.conversation.partition(self.partitions);
        let deadline = tokio::time::Instant::now() + self.route_wait;
        let mut last_error = WriteError::Unavailable(format!(
            "no node writes partition {partition} right now; retry shortly"
        ));
        loop {
            if self.stopped.is_cancelled() {
                return Err(WriteError::Unavailable("this node is shutting down".into()));
            }
            let route = self.routes.read().get(partition as usize).cloned().unwrap_or_default();
            let outcome = match route {
                Route::Local(writer) => write_locally(&writer, send.clone()).await,
                Route::Remote { address } => match &self.forwarder {
                    Some(forwarder) => forwarder.forward(&address, partition, &send).await,
                    None => Err(WriteError::Unavailable(format!(
                        "partition {partition} is written by {address}, and this node \
                         cannot forward"
                    ))),
                },
                Route::Nobody => Err(WriteError::NotHere),
            };
            match outcome {
                Ok(written) => return Ok(written),
                Err(WriteError::NotHere) => self.lost_route.notify_one(),
                Err(error @ WriteError::Unavailable(_)) => last_error = error,
            }
            if tokio::time::Instant::now() + ROUTE_POLL > deadline {
                return Err(last_error);
            }
            tokio::time::sleep(ROUTE_POLL).await;
        }
    }

    /// Serves a send forwarded by another node: only the local writer may take it.
    pub(crate) async fn write_here(&self, send: KeyedSend) -> Result<Written, WriteError> {
        let partition = send.conversation.partition(self.partitions);
        let route = self.routes.read().get(partition as usize).cloned().unwrap_or_default();
        match route {
            Route::Local(writer) => write_locally(&writer, send).await,
            Route::Remote { .. } | Route::Nobody => Err(WriteError::NotHere),
        }
    }
}

async fn write_locally(
    writer: &mpsc::Sender<(KeyedSend, Reply)>,
    send: KeyedSend,
) -> Result<Written, WriteError> {
    let (reply, answer) = oneshot::channel();
    if writer.send((send, reply)).await.is_err() {
        return Err(WriteError::NotHere);
    }
    answer.await.unwrap_or_else(|_| {
        Err(WriteError::Unavailable("the partition's writer stopped mid-send".into()))
    })
}
