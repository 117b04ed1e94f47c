//! One WebSocket connection's services: what a protocol may do while handling a frame
//! (write, subscribe and resume, send, typing, presence), and the run of a connection from
//! its admission to its cleanup. The loop itself is `connection.rs`; catching up a
//! subscription is `catch_up.rs`; sends and reads go through the send task (`send_task.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use auth::Caller;
use axum::extract::ws::{Utf8Bytes, WebSocket};
use eventlog::SignalBus;
use futures_util::StreamExt;
use ingest::Ingest;
use schemas::native::{PresenceStatus, close};
use schemas::signals::Signal;
use schemas::{ConversationId, Timestamp, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use viewstore::ReadModel;

pub(crate) use crate::connection::Close;
use crate::connection::{self, Ending, FrameStream, Handler, Timers, Writer};
use crate::delivery::Outbound;
use crate::hub::Hub;
use crate::metrics::{self, ClosedBy};
use crate::send_task::{SendTask, Submission, Submitted};
use crate::subscribers::{ConnectionTicket, Subscriber};

/// What a protocol does with the connection's events.
pub(crate) trait Protocol: Send {
    /// The protocol's name in metrics.
    const NAME: &'static str;
    /// A text frame from the client.
    fn on_text(
        &mut self,
        session: &mut Session,
        text: &str,
    ) -> impl Future<Output = Result<(), Close>> + Send;
    /// Renders a queued item; `None` skips it.
    fn render(&mut self, item: &Outbound) -> Option<Utf8Bytes>;
    /// Renders the outcome of a send or read.
    fn on_outcome(&mut self, outcome: Submitted) -> Option<Utf8Bytes>;
    /// Conversations this connection is subscribed to, for cleanup.
    fn subscriptions(&self) -> Vec<ConversationId>;
}

/// Everything a protocol may use while handling a frame.
pub(crate) struct Session {
    pub hub: Arc<Hub>,
    pub ingest: Arc<Ingest>,
    pub(crate) read_model: Arc<dyn ReadModel>,
    pub signals: Arc<dyn SignalBus>,
    pub caller: Caller,
    pub subscriber: Subscriber,
    writer: Writer,
    /// The send task, started with the first send (most connections never send).
    send_task: Option<SendTask>,
    max_pending_sends: usize,
    /// Conversations this connection last said it is typing in, to withdraw on leaving;
    /// lapsed indicators are withdrawn by every hub on its own.
    typing: HashSet<ConversationId>,
}

impl Session {
    pub(crate) async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), Close> {
        self.writer.text(text).await
    }

    /// Queues a send or read for the send task; false when too many are waiting.
    pub(crate) fn submit(&mut self, submission: Submission) -> bool {
        let (ingest, caller, pending) = (&self.ingest, &self.caller, self.max_pending_sends);
        let task = self
            .send_task
            .get_or_insert_with(|| SendTask::start(Arc::clone(ingest), caller.clone(), pending));
        task.submit(submission)
    }

    /// The next finished send or read; never resolves before the first send.
    async fn next_outcome(&mut self) -> Option<Box<Submitted>> {
        match &mut self.send_task {
            Some(task) => task.next().await,
            None => std::future::pending().await,
        }
    }

    /// Ends a subscription: no more deliveries, and typing withdrawn.
    pub(crate) async fn unsubscribe(&mut self, conversation: ConversationId) {
        self.hub.unsubscribe(conversation, self.subscriber.connection);
        if self.typing.contains(&conversation) {
            self.set_typing(conversation, false).await;
        }
    }

    /// Asks the other nodes about those of `users` this node has heard nothing of: it
    /// started after they connected, so only the nodes holding them can say.
    pub(crate) async fn ask_presence(&mut self, users: &[&UserId]) {
        let unheard = self.hub.unheard_of(users);
        if !unheard.is_empty() {
            let query =
                Signal::PresenceQuery { user_ids: unheard, node: self.hub.node().to_owned() };
            self.signals.publish(query).await;
        }
    }

    // `&mut self`, as in every async method here: a shared borrow held across an await would
    // need the socket's writer to be `Sync`.
    async fn announce_presence(&mut self, status: PresenceStatus, seq: u64) {
        let signal = Signal::Presence {
            user_id: self.caller.user_id.clone(),
            status,
            at: Timestamp::now(),
            node: self.hub.node().to_owned(),
            seq,
        };
        self.signals.publish(signal).await;
    }

    pub(crate) async fn set_typing(&mut self, conversation: ConversationId, is_typing: bool) {
        if is_typing {
            self.typing.insert(conversation);
        } else {
            self.typing.remove(&conversation);
        }
        let signal = Signal::Typing {
            conversation_id: conversation,
            user_id: self.caller.user_id.clone(),
            is_typing,
            at: Timestamp::now(),
        };
        self.signals.publish(signal).await;
    }
}

/// A protocol and its session, as the connection loop sees them.
struct Live<'a, P> {
    protocol: &'a mut P,
    session: &'a mut Session,
}

impl<P: Protocol> Handler for Live<'_, P> {
    fn writer(&mut self) -> &mut Writer {
        &mut self.session.writer
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Close> {
        self.protocol.on_text(self.session, text).await
    }

    fn render(&mut self, item: &Outbound) -> Option<Utf8Bytes> {
        self.protocol.render(item)
    }

    async fn next_reply(&mut self) -> Option<Utf8Bytes> {
        let outcome = self.session.next_outcome().await?;
        self.protocol.on_outcome(*outcome)
    }
}

/// Everything a connection needs from the server.
#[derive(Clone)]
pub(crate) struct Services {
    pub hub: Arc<Hub>,
    /// Sends, and authorization (which conversation has whom).
    pub ingest: Arc<Ingest>,
    /// Resume from the store: history, receipts, watermarks.
    pub read_model: Arc<dyn ReadModel>,
    pub signals: Arc<dyn SignalBus>,
    pub shutdown: CancellationToken,
    /// Counts live connections, so shutdown can wait for them to drain.
    pub connections: TaskTracker,
}

/// A connection's queue, made before the WebSocket upgrade so that a subscription can be
/// registered before the client sees the connection open.
pub(crate) struct Mailbox {
    pub subscriber: Subscriber,
    queue: mpsc::Receiver<Outbound>,
    /// Holds the user's place among their connections on this node.
    _ticket: ConnectionTicket,
}

impl Mailbox {
    /// Admits one more connection of `user`, or says why not.
    pub(crate) fn admit(
        hub: &Arc<Hub>,
        user: &UserId,
        protocol: &'static str,
    ) -> Result<Self, Close> {
        let Some(ticket) = hub.admit(user) else {
            metrics::limit_reached(metrics::Limit::ConnectionsPerUser);
            let limit = hub.config().max_connections_per_user;
            return Err(Close::new(
                close::RATE_LIMITED,
                format!("too many connections for this user on this server (at most {limit})"),
            ));
        };
        let (queue_tx, queue) = mpsc::channel(hub.config().queue_per_connection.max(1));
        let subscriber = Subscriber {
            connection: hub.next_connection_id(),
            queue: queue_tx,
            too_slow: CancellationToken::new(),
            protocol,
        };
        Ok(Self { subscriber, queue, _ticket: ticket })
    }
}

/// Runs a connection until it ends. `start` runs first (authorization, initial
/// subscription); an error from it closes the connection with its code and reason.
pub(crate) async fn run<P: Protocol>(
    socket: WebSocket,
    services: Services,
    caller: Caller,
    mailbox: Mailbox,
    mut protocol: P,
    start: impl AsyncFnOnce(&mut P, &mut Session) -> Result<(), Close>,
) {
    let _live = services.connections.token();
    let config = services.hub.config().clone();
    let Mailbox { subscriber, mut queue, _ticket } = mailbox;
    let (sink, stream) = socket.split();
    let mut stream: FrameStream = Box::pin(stream);
    let too_slow = subscriber.too_slow.clone();
    let timers = Timers {
        ping_interval: config.ping_interval,
        idle_timeout: config.idle_timeout,
        drain_delay: Timers::drain_share(subscriber.connection, config.drain_period),
        max_frame_bytes: config.max_frame_bytes,
    };
    let mut session = Session {
        hub: services.hub,
        ingest: services.ingest,
        read_model: services.read_model,
        signals: services.signals,
        caller,
        subscriber,
        writer: Writer::new(Box::pin(sink), config.write_timeout, too_slow.clone()),
        send_task: None,
        max_pending_sends: config.max_pending_sends,
        typing: HashSet::new(),
    };
    metrics::connected(P::NAME);
    // Presence means connected: every connection counts, whatever it watches.
    let connection = session.subscriber.connection;
    if let Some(seq) = session.hub.join(&session.caller.user_id, connection) {
        session.announce_presence(PresenceStatus::Online, seq).await;
    }
    let ended = match start(&mut protocol, &mut session).await {
        Ok(()) => {
            let mut live = Live { protocol: &mut protocol, session: &mut session };
            let shutdown = &services.shutdown;
            connection::serve(&mut live, &mut stream, &mut queue, timers, &too_slow, shutdown).await
        }
        Err(close) => Ending::Close(close),
    };
    // Nothing more is queued once the queue is closed; what is left in it is dropped.
    queue.close();
    metrics::dequeued(std::iter::from_fn(|| queue.try_recv().ok()).count());
    let closed_by = match ended {
        Ending::Close(reason) => {
            tracing::debug!(code = reason.code, reason = reason.reason, "closing connection");
            let code = reason.code;
            session.writer.close(reason).await;
            ClosedBy::Server(code)
        }
        Ending::ByClient(code) => ClosedBy::Client(code),
        Ending::Broken => ClosedBy::Network,
    };
    metrics::disconnected(P::NAME, closed_by);
    for conversation in protocol.subscriptions() {
        session.unsubscribe(conversation).await;
    }
    session.hub.unregister_user(&session.caller.user_id, connection);
    if let Some(seq) = session.hub.leave(&session.caller.user_id, connection) {
        session.announce_presence(PresenceStatus::Offline, seq).await;
    }
    if let Some(task) = session.send_task.take() {
        task.abort();
    }
}
