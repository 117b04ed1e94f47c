//! One WebSocket connection: the loop both protocols share.
//!
//! The loop owns the socket. It reads client frames (handing them to the protocol), drains
//! the connection's bounded queue (filled by the hub), writes the answers of the send task,
//! pings, and closes with a documented code when the client is too slow, idle, or the
//! server is draining. Sends and reads are appended by the connection's send task
//! (`send_task.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use auth::Caller;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use eventlog::SignalBus;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use ingest::Ingest;
use schemas::native::{PresenceStatus, close};
use schemas::signals::Signal;
use schemas::{ConversationId, MessageId, Timestamp, UserId};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use viewstore::ReadModel;

use crate::delivery::{MessageDelivery, Outbound};
use crate::hub::{ConnectionTicket, Hub, ResumePlan, Subscriber};
use crate::metrics::{self, ClosedBy};
use crate::receipts::{CaughtUp, stored_receipts};
use crate::send_task::{SendTask, Submission, Submitted};

/// Why and how a connection ends.
#[derive(Debug, Clone)]
pub(crate) struct Close {
    pub code: u16,
    /// At most [`close::MAX_REASON_BYTES`]: a longer close frame is a protocol error that
    /// browsers report as 1006, losing the code.
    pub reason: String,
}

impl Close {
    pub(crate) fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        let fitted = close::fit_reason(&reason).len();
        if fitted < reason.len() {
            tracing::debug!(code, reason, "close reason cut to fit the close frame");
            reason.truncate(fitted);
        }
        Self { code, reason }
    }
}

/// How a connection's loop ended.
enum Ending {
    /// The server closes it, with this frame.
    Close(Close),
    /// The client sent a close frame with this code.
    ByClient(u16),
    /// The connection broke, or the client left without a close frame.
    Broken,
}

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
    read_model: Arc<dyn ReadModel>,
    pub signals: Arc<dyn SignalBus>,
    pub caller: Caller,
    pub subscriber: Subscriber,
    sink: SplitSink<WebSocket, Message>,
    /// The send task, started with the first send (most connections never send).
    send_task: Option<SendTask>,
    max_pending_sends: usize,
    /// Conversations this connection last said it is typing in, to withdraw on leaving;
    /// lapsed indicators are withdrawn by every hub on its own.
    typing: HashSet<ConversationId>,
}

impl Session {
    pub(crate) fn read_model(&self) -> &Arc<dyn ReadModel> {
        &self.read_model
    }

    pub(crate) async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), Close> {
        self.write(Message::Text(text)).await
    }

    /// Writes frames with a single flush, under the same deadline as [`Session::write`].
    async fn write_all(&mut self, frames: Vec<Utf8Bytes>) -> Result<(), Close> {
        if frames.is_empty() {
            return Ok(());
        }
        let deadline = self.hub.config().write_timeout;
        let too_slow = self.subscriber.too_slow.clone();
        let sink = &mut self.sink;
        let written = async move {
            for frame in frames {
                sink.feed(Message::Text(frame)).await?;
            }
            sink.flush().await
        };
        tokio::select! {
            written = tokio::time::timeout(deadline, written) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Close::new(close::INTERNAL, "write failed")),
                Err(_) => Err(slow_consumer()),
            },
            () = too_slow.cancelled() => Err(slow_consumer()),
        }
    }

    /// Writes a frame, giving up when the client does not take it within the write
    /// timeout or when the hub has found the client too slow: a peer that stopped reading
    /// must not hold the connection (and its buffers) forever.
    async fn write(&mut self, message: Message) -> Result<(), Close> {
        let deadline = self.hub.config().write_timeout;
        let too_slow = self.subscriber.too_slow.clone();
        tokio::select! {
            written = tokio::time::timeout(deadline, self.sink.send(message)) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Close::new(close::INTERNAL, "write failed")),
                Err(_) => Err(slow_consumer()),
            },
            () = too_slow.cancelled() => Err(slow_consumer()),
        }
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

    /// Registers the subscription and writes every message after `since` that the client
    /// missed, in order: first what only the store has, then what the hub remembers.
    pub(crate) async fn subscribe(
        &mut self,
        conversation: ConversationId,
        since: Option<MessageId>,
        render: impl Fn(&MessageDelivery) -> Utf8Bytes,
    ) -> Result<CaughtUp, Close> {
        let plan = self.hub.subscribe(conversation, self.subscriber.clone(), since);
        self.catch_up(conversation, since, plan, render).await
    }

    /// Writes what `plan` says the client missed since `since`, for a subscription already
    /// registered, and announces the user online in the conversation.
    pub(crate) async fn catch_up(
        &mut self,
        conversation: ConversationId,
        since: Option<MessageId>,
        plan: ResumePlan,
        render: impl Fn(&MessageDelivery) -> Utf8Bytes,
    ) -> Result<CaughtUp, Close> {
        let mut last = since.unwrap_or(MessageId::ZERO);
        let mut receipts = Vec::new();
        let mut missed = 0;
        let from_store = plan.from_store.is_some();
        if let Some(range) = plan.from_store {
            self.wait_for_store(range.partition, range.through_offset).await?;
            let read_model = Arc::clone(self.read_model());
            let view = read_model.view(conversation).await.map_err(|_| unavailable())?;
            if let Some(view) = &view {
                receipts.extend(stored_receipts(view, &range));
            }
            let page = self.hub.config().resume_page;
            loop {
                let messages = read_model
                    .messages(conversation, last, Some(range.before), page, false)
                    .await
                    .map_err(|_| unavailable())?;
                for message in &messages {
                    let is_read = view.as_ref().is_some_and(|view| view.is_read(message));
                    let delivery = MessageDelivery::new(message.to_http(is_read));
                    self.send_text(render(&delivery)).await?;
                    last = message.id;
                    missed += 1;
                }
                if messages.len() < page {
                    break;
                }
            }
        }
        for delivery in plan.recent {
            if delivery.id() > last {
                self.send_text(render(&delivery)).await?;
                last = delivery.id();
                missed += 1;
            }
        }
        if since.is_some() {
            metrics::resumed(from_store, missed);
        }
        if let Some(seq) =
            self.hub.join(conversation, &self.caller.user_id, self.subscriber.connection)
        {
            self.announce_presence(conversation, PresenceStatus::Online, seq).await;
        }
        // Nodes that started after the others announced their users learn them now.
        let query = Signal::PresenceQuery {
            conversation_id: conversation,
            node: self.hub.node().to_owned(),
        };
        self.signals.publish(query).await;
        receipts.extend(plan.receipts);
        Ok(CaughtUp { last, receipts })
    }

    async fn wait_for_store(&self, partition: u32, through_offset: u64) -> Result<(), Close> {
        let deadline = Instant::now() + self.hub.config().resume_wait;
        loop {
            let marks = self
                .read_model()
                .watermarks(self.hub.partitions())
                .await
                .map_err(|_| unavailable())?;
            if marks
                .get(partition as usize)
                .copied()
                .flatten()
                .is_some_and(|mark| mark >= through_offset)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Close::new(
                    close::TRY_AGAIN_LATER,
                    "history is catching up; retry shortly",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends a subscription: no more deliveries, typing withdrawn, and offline announced
    /// if this was the user's last connection to the conversation on this node.
    pub(crate) async fn unsubscribe(&mut self, conversation: ConversationId) {
        let connection = self.subscriber.connection;
        self.hub.unsubscribe(conversation, connection);
        if self.typing.contains(&conversation) {
            self.set_typing(conversation, false).await;
        }
        if let Some(seq) = self.hub.leave(conversation, &self.caller.user_id, connection) {
            self.announce_presence(conversation, PresenceStatus::Offline, seq).await;
        }
    }

    async fn announce_presence(
        &self,
        conversation: ConversationId,
        status: PresenceStatus,
        seq: u64,
    ) {
        let signal = Signal::Presence {
            conversation_id: conversation,
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

    /// Sends the close frame if the client takes it promptly; either way the socket is
    /// dropped afterwards.
    async fn close(&mut self, reason: Close) {
        let frame = CloseFrame { code: reason.code, reason: Utf8Bytes::from(reason.reason) };
        let goodbye = async {
            let _ = self.sink.send(Message::Close(Some(frame))).await;
            let _ = self.sink.close().await;
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    }
}

/// Queued frames written with one flush at most.
const WRITE_BATCH: usize = 64;

/// How long a closing connection waits for the client to take its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How to end a connection whose read failed: a frame too large for the socket's buffer
/// (before the limit check can see it) or a protocol violation is answered with a close
/// frame saying so; a broken connection just ends.
fn read_failure(error: axum::Error, max_frame_bytes: usize) -> Option<Close> {
    match *error.into_inner().downcast::<tungstenite::Error>().ok()? {
        tungstenite::Error::Capacity(_) => {
            Some(Close::new(close::TOO_BIG, format!("frame over {max_frame_bytes} bytes")))
        }
        // The peer went away without a close frame: nobody to tell.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => None,
        tungstenite::Error::Protocol(violation) => {
            Some(Close::new(1002, format!("WebSocket protocol error: {violation}")))
        }
        _ => None,
    }
}

fn slow_consumer() -> Close {
    Close::new(close::SLOW_CONSUMER, "too slow to keep up; reconnect and resume")
}

fn unavailable() -> Close {
    Close::new(close::TRY_AGAIN_LATER, "the chat backend is unavailable; retry shortly")
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
            ingest::metrics::refused(ingest::metrics::Limit::ConnectionsPerUser);
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
    let (sink, mut stream) = socket.split();
    let mut session = Session {
        hub: services.hub,
        ingest: services.ingest,
        read_model: services.read_model,
        signals: services.signals,
        caller,
        subscriber,
        sink,
        send_task: None,
        max_pending_sends: config.max_pending_sends,
        typing: HashSet::new(),
    };
    metrics::connected(P::NAME);
    let ended = match start(&mut protocol, &mut session).await {
        Ok(()) => {
            serve(&mut protocol, &mut session, &mut stream, &mut queue, &services.shutdown).await
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
            session.close(reason).await;
            ClosedBy::Server(code)
        }
        Ending::ByClient(code) => ClosedBy::Client(code),
        Ending::Broken => ClosedBy::Network,
    };
    metrics::disconnected(P::NAME, closed_by);
    for conversation in protocol.subscriptions() {
        session.unsubscribe(conversation).await;
    }
    session.hub.unregister_user(&session.caller.user_id, session.subscriber.connection);
    if let Some(task) = session.send_task.take() {
        task.abort();
    }
}

async fn serve<P: Protocol>(
    protocol: &mut P,
    session: &mut Session,
    stream: &mut SplitStream<WebSocket>,
    queue: &mut mpsc::Receiver<Outbound>,
    shutdown: &CancellationToken,
) -> Ending {
    let config = session.hub.config().clone();
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let too_slow = session.subscriber.too_slow.clone();
    // On shutdown each connection keeps working for its share of the drain period, then
    // closes; the shares spread the reconnections out.
    let share = (session.subscriber.connection.wrapping_mul(2_654_435_761) % 1000) as u32;
    let delay = config.drain_period.mul_f64(f64::from(share) / 1000.0);
    let drain = async move {
        shutdown.cancelled().await;
        tokio::time::sleep(delay).await;
    };
    tokio::pin!(drain);
    // Armed once: a fresh `cancelled()` per turn of the loop takes the token's lock each time.
    let too_slow = too_slow.cancelled();
    tokio::pin!(too_slow);
    loop {
        let result = tokio::select! {
            biased;
            () = &mut drain => {
                return Ending::Close(Close::new(close::RESTART, "server restarting; reconnect and resume"));
            }
            () = &mut too_slow => return Ending::Close(slow_consumer()),
            frame = stream.next() => match frame {
                None => return Ending::Broken,
                Some(Ok(Message::Close(frame))) => {
                    // 1005: the close frame carried no code.
                    return Ending::ByClient(frame.map_or(1005, |frame| frame.code));
                }
                Some(Err(error)) => {
                    return read_failure(error, config.max_frame_bytes).map_or(Ending::Broken, Ending::Close);
                }
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if text.len() > config.max_frame_bytes {
                        return Ending::Close(Close::new(close::TOO_BIG,
                            format!("frame over {} bytes", config.max_frame_bytes)));
                    }
                    protocol.on_text(session, text.as_str()).await
                }
                Some(Ok(Message::Binary(_))) => {
                    return Ending::Close(Close::new(1003, "binary frames are not supported; send JSON text"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    last_heard = Instant::now();
                    Ok(())
                }
            },
            item = queue.recv() => {
                // The session holds a sender itself, so the queue closes only with it.
                let Some(item) = item else { return Ending::Broken };
                // Take whatever else is already queued and write it all with one flush:
                // under load that is one system call for many frames.
                let mut frames: Vec<Utf8Bytes> = protocol.render(&item).into_iter().collect();
                let mut taken = 1;
                while taken < WRITE_BATCH {
                    let Ok(item) = queue.try_recv() else { break };
                    taken += 1;
                    frames.extend(protocol.render(&item));
                }
                metrics::dequeued(taken);
                session.write_all(frames).await
            }
            outcome = session.next_outcome() => match outcome.and_then(|outcome| protocol.on_outcome(*outcome)) {
                Some(text) => session.send_text(text).await,
                None => Ok(()),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= config.idle_timeout {
                    return Ending::Close(Close::new(1001, "idle: no frames or pongs received"));
                }
                session.write(Message::Ping(Default::default())).await
            }
        };
        if let Err(close) = result {
            return Ending::Close(close);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_never_outgrow_a_control_frame() {
        let long = Close::new(close::FORBIDDEN, "ü".repeat(100));
        assert_eq!(long.code, close::FORBIDDEN);
        assert!(long.reason.len() <= close::MAX_REASON_BYTES);
        assert_eq!(long.reason, "ü".repeat(61));
        assert_eq!(Close::new(1001, "idle").reason, "idle");
    }
}
