//! A world for the keyed-send protocol, in one process: the embedded log and store in a
//! temporary directory, wrapped so a test decides which node the writer group assigns which
//! partitions to, can make appends fail (written or not), and can make lease renewals fail.
//! Nodes are real `KeyedWriters`, each with its forwarding route on a real listener.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventlog::embedded::EmbeddedLog;
use eventlog::{
    EventLog, Header, LogError, NewRecord, Record, SubscribeSpec, Subscription, WriterAssignment,
};
use keyed_writer::{
    ForwardKey, KeyedSend, KeyedWriters, Original, WriterConfig, WriterTiming, Written,
};
use parking_lot::Mutex;
use schemas::{
    ChatEvent, ConversationId, Envelope, MessageSent, MessageType, Participant, Position,
    Timestamp, UserId,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use viewstore::embedded::EmbeddedStore;
use viewstore::{StoreError, WriterLease, WriterLeases};

pub(crate) const PARTITIONS: u32 = 2;

/// Short enough for tests, and valid by the protocol's own rules.
pub(crate) fn timing() -> WriterTiming {
    WriterTiming {
        append_timeout: Duration::from_millis(300),
        lease: Duration::from_millis(1200),
        renew_every: Duration::from_millis(200),
        margin: Duration::from_millis(100),
    }
}

/// A conversation in `partition`.
pub(crate) fn conversation_in(partition: u32, nth: u64) -> ConversationId {
    (1..)
        .filter_map(|id| ConversationId::new(id).ok())
        .filter(|id| id.partition(PARTITIONS) == partition)
        .nth(nth as usize)
        .expect("ids exist in every partition")
}

/// Each send's time is its own (a retry answered with its own time would be caught).
static SENT: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn keyed(conversation: ConversationId, key: &str, text: &str) -> KeyedSend {
    let sent_at =
        Timestamp::from_millis(1_700_000_000_000 + SENT.fetch_add(1, Ordering::Relaxed) as i64);
    let event = ChatEvent::MessageSent(MessageSent {
        conversation_id: conversation,
        sender: Participant { id: UserId::new("ana").expect("valid"), name: "Ana".into() },
        message_type: MessageType::Text,
        text: text.into(),
        attachment: None,
        idempotency_key: Some(key.into()),
        sent_at,
    });
    let record = NewRecord {
        key: conversation,
        value: Envelope::wrap(&event, "/test").to_bytes(),
        headers: Vec::new(),
    };
    KeyedSend { conversation, key: key.into(), sent_at, record }
}

/// The message id of a written send, whichever send wrote it.
pub(crate) fn id_of(written: &Written) -> u64 {
    written.id().get()
}

/// The answer to a retry of `first`, which `written` wrote: its message, at its time.
pub(crate) fn earlier(written: &Written, first: &KeyedSend) -> Written {
    Written::Earlier(Original { id: written.id(), sent_at: first.sent_at })
}

/// The embedded log, with scripted writer groups and appends that fail on demand.
pub(crate) struct ScriptedLog {
    inner: EmbeddedLog,
    groups: Mutex<HashMap<String, watch::Sender<Vec<u32>>>>,
    /// Appends to report as failed although they were written.
    lie_about: AtomicUsize,
}

impl ScriptedLog {
    /// Assigns `partitions` to the member that joined as `group` (one group name per node).
    pub(crate) fn assign(&self, group: &str, partitions: Vec<u32>) {
        let sender = self
            .groups
            .lock()
            .entry(group.into())
            .or_insert_with(|| watch::channel(Vec::new()).0)
            .clone();
        sender.send_replace(partitions);
    }

    /// The next `count` records are written but reported as failed.
    pub(crate) fn write_but_report_failure(&self, count: usize) {
        self.lie_about.store(count, Ordering::SeqCst);
    }

    /// Every record of `partition` carrying `key`.
    pub(crate) async fn records_with_key(&self, partition: u32, key: &str) -> Vec<Position> {
        let records = self.inner.read(partition, 0, 100_000).await.expect("read the log");
        records
            .iter()
            .filter(|record| match Envelope::decode(&record.value) {
                Ok((_, Some(ChatEvent::MessageSent(sent)))) => {
                    sent.idempotency_key.as_deref() == Some(key)
                }
                _ => false,
            })
            .map(|record| record.position)
            .collect()
    }
}

struct ScriptedAssignment {
    receiver: watch::Receiver<Vec<u32>>,
}

#[async_trait]
impl WriterAssignment for ScriptedAssignment {
    fn current(&self) -> Vec<u32> {
        self.receiver.borrow().clone()
    }

    async fn changed(&mut self) -> Result<Vec<u32>, LogError> {
        self.receiver.changed().await.map_err(|_| LogError::Closed)?;
        Ok(self.receiver.borrow_and_update().clone())
    }
}

#[async_trait]
impl EventLog for ScriptedLog {
    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }

    fn delivery_timeout(&self) -> Duration {
        Duration::ZERO
    }

    fn destination(&self) -> eventlog::Destination<'_> {
        self.inner.destination()
    }

    async fn append(
        &self,
        key: ConversationId,
        value: Vec<u8>,
        headers: Vec<Header>,
    ) -> Result<Position, LogError> {
        self.inner.append(key, value, headers).await
    }

    async fn append_batch(&self, records: Vec<NewRecord>) -> Vec<Result<Position, LogError>> {
        let results = self.inner.append_batch(records).await;
        results
            .into_iter()
            .map(|result| {
                let lie = self
                    .lie_about
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                match result {
                    Ok(_) if lie => Err(LogError::Unavailable("delivery report lost".into())),
                    other => other,
                }
            })
            .collect()
    }

    async fn end_offsets(&self) -> Result<Vec<u64>, LogError> {
        self.inner.end_offsets().await
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        self.inner.end_offset(partition).await
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        self.inner.read(partition, from, max).await
    }

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Box<dyn Subscription>, LogError> {
        self.inner.subscribe(spec).await
    }

    async fn writer_assignment(&self, group: &str) -> Result<Box<dyn WriterAssignment>, LogError> {
        let receiver = self
            .groups
            .lock()
            .entry(group.into())
            .or_insert_with(|| watch::channel(Vec::new()).0)
            .subscribe();
        Ok(Box::new(ScriptedAssignment { receiver }))
    }
}

/// The embedded store's leases, with renewals that fail on demand.
pub(crate) struct ScriptedLeases {
    inner: EmbeddedStore,
    pub(crate) refuse_renewals: AtomicBool,
}

#[async_trait]
impl WriterLeases for ScriptedLeases {
    async fn writer_leases(&self) -> Result<Vec<WriterLease>, StoreError> {
        self.inner.writer_leases().await
    }

    async fn replace_writer_lease(
        &self,
        seen: Option<&WriterLease>,
        next: WriterLease,
    ) -> Result<Option<WriterLease>, StoreError> {
        self.inner.replace_writer_lease(seen, next).await
    }

    async fn renew_writer_lease(
        &self,
        lease: &WriterLease,
    ) -> Result<Option<WriterLease>, StoreError> {
        if self.refuse_renewals.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("renewals refused by the test".into()));
        }
        self.inner.renew_writer_lease(lease).await
    }
}

/// A log, a store, and the nodes a test starts on them.
pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub(crate) log: Arc<ScriptedLog>,
    pub(crate) store: Arc<EmbeddedStore>,
    pub(crate) leases: Arc<ScriptedLeases>,
}

/// One node: its writers, and the listener its forwarding route is served on.
pub(crate) struct Node {
    pub(crate) address: String,
    pub(crate) writers: Arc<KeyedWriters>,
    shutdown: CancellationToken,
    keeper: Option<JoinHandle<()>>,
    server: JoinHandle<()>,
}

fn forward_key() -> ForwardKey {
    ForwardKey::new(&[42; 32]).expect("long enough")
}

impl World {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let inner =
            EmbeddedLog::open(&dir.path().join("log.db"), PARTITIONS).expect("open the log");
        let store = EmbeddedStore::open(&dir.path().join("store.db")).expect("open the store");
        let log = Arc::new(ScriptedLog {
            inner,
            groups: Mutex::new(HashMap::new()),
            lie_about: AtomicUsize::new(0),
        });
        let leases = Arc::new(ScriptedLeases {
            inner: store.clone(),
            refuse_renewals: AtomicBool::new(false),
        });
        Self { _dir: dir, log, store: Arc::new(store), leases }
    }

    /// Starts a node that joins the writer group as `name`, assigned `partitions`.
    pub(crate) async fn node(&self, name: &str, partitions: Vec<u32>) -> Node {
        self.node_with(name, partitions, Duration::from_secs(3), timing()).await
    }

    /// A node whose sends wait at most `route_wait` for a writer, with its own timing.
    pub(crate) async fn node_with(
        &self,
        name: &str,
        partitions: Vec<u32>,
        route_wait: Duration,
        timing: WriterTiming,
    ) -> Node {
        self.log.assign(name, partitions);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let advertised = address.clone();
        let shutdown = CancellationToken::new();
        let config = WriterConfig {
            node: name.into(),
            address: advertised,
            group: Some(name.into()),
            timing,
            forward_key: Some(forward_key()),
            route_wait,
        };
        let log: Arc<dyn EventLog> = self.log.clone();
        let (writers, keeper) = KeyedWriters::start(
            log,
            self.store.clone(),
            self.leases.clone(),
            config,
            shutdown.clone(),
        )
        .await
        .expect("writers start");
        let router = keyed_writer::forward_router(Arc::clone(&writers), forward_key());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Node { address, writers, shutdown, keeper: Some(keeper), server }
    }
}

impl Node {
    /// Shuts down gracefully: drains, hands the leases back, then stops serving.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(keeper) = self.keeper.take() {
            tokio::time::timeout(Duration::from_secs(5), keeper)
                .await
                .expect("leases handed back")
                .expect("keeper");
        }
        self.server.abort();
    }

    /// Dies at once: no drain, no release, and its address stops answering.
    pub(crate) fn kill(mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        self.server.abort();
    }
}

/// A lease long enough that waiting it out is told apart from finding its holder gone,
/// however busy the machine.
pub(crate) fn long_lease() -> WriterTiming {
    WriterTiming { lease: Duration::from_secs(6), margin: Duration::from_millis(300), ..timing() }
}

/// Appends `conversation.started` for `conversation`, as ingest does before its messages.
pub(crate) async fn start_conversation(world: &World, conversation: ConversationId) {
    let person = |id: &str| Participant { id: UserId::new(id).expect("valid"), name: id.into() };
    let event = ChatEvent::ConversationStarted(schemas::ConversationStarted {
        conversation_id: conversation,
        job_id: format!("job-{conversation}"),
        client: person("ana"),
        worker: person("bo"),
        started_at: Timestamp::now(),
    });
    let value = Envelope::wrap(&event, "/test").to_bytes();
    world.log.append(conversation, value, Vec::new()).await.expect("append the start");
}

/// Polls `condition` until it holds or `within` passes.
pub(crate) async fn eventually(
    within: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
