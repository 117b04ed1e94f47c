//! The connection loop on virtual time, over an in-memory socket: every close code and
//! timer without a server.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::SinkExt;
use schemas::native::close;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant, sleep};
use tokio_util::sync::{CancellationToken, PollSender};

use super::{Close, Ending, FrameStream, Handler, Timers, Writer, serve};
use crate::delivery::Outbound;

const TIMERS: Timers = Timers {
    ping_interval: Duration::from_secs(20),
    idle_timeout: Duration::from_secs(60),
    drain_delay: Duration::from_secs(3),
    max_frame_bytes: 100,
};
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Records what the client says; "refuse" is refused with 4400.
struct Recorder {
    writer: Writer,
    heard: mpsc::UnboundedSender<String>,
    replies: mpsc::Receiver<Utf8Bytes>,
}

impl Handler for Recorder {
    fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Close> {
        let _ = self.heard.send(text.to_owned());
        if text == "refuse" { Err(Close::new(4400, "refused")) } else { Ok(()) }
    }

    fn render(&mut self, item: &Outbound) -> Option<Utf8Bytes> {
        match item {
            Outbound::Native(frame) => Some((**frame).clone()),
            _ => None,
        }
    }

    async fn next_reply(&mut self) -> Option<Utf8Bytes> {
        self.replies.recv().await
    }
}

/// The client's side of a running connection.
struct Client {
    to_server: mpsc::UnboundedSender<Result<Message, axum::Error>>,
    from_server: mpsc::Receiver<Message>,
    queue: mpsc::Sender<Outbound>,
    replies: mpsc::Sender<Utf8Bytes>,
    heard: mpsc::UnboundedReceiver<String>,
    too_slow: CancellationToken,
    shutdown: CancellationToken,
    served: JoinHandle<Ending>,
}

impl Client {
    fn say(&self, message: Message) {
        self.to_server.send(Ok(message)).unwrap();
    }

    fn fail(&self, error: tungstenite::Error) {
        self.to_server.send(Err(axum::Error::new(error))).unwrap();
    }

    fn queue(&self, text: &str) {
        self.queue.try_send(Outbound::Native(Arc::new(text.into()))).unwrap();
    }

    async fn next_text(&mut self) -> String {
        loop {
            match self.from_server.recv().await.unwrap() {
                Message::Text(text) => return text.as_str().to_owned(),
                Message::Ping(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    async fn ending(self) -> Ending {
        self.served.await.unwrap()
    }
}

/// Starts a connection whose client has room for `room` frames in flight.
fn connect(room: usize) -> Client {
    let (to_server, incoming) = mpsc::unbounded_channel();
    let mut stream: FrameStream =
        Box::pin(futures_util::stream::unfold(incoming, |mut rx| async {
            rx.recv().await.map(|message| (message, rx))
        }));
    let (outgoing, from_server) = mpsc::channel(room);
    let sink = PollSender::new(outgoing).sink_map_err(axum::Error::new);
    let too_slow = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let (queue, mut queued) = mpsc::channel(16);
    let (replies, pending_replies) = mpsc::channel(16);
    let (heard_tx, heard) = mpsc::unbounded_channel();
    let mut handler = Recorder {
        writer: Writer::new(Box::pin(sink), WRITE_TIMEOUT, too_slow.clone()),
        heard: heard_tx,
        replies: pending_replies,
    };
    let (slow, stop) = (too_slow.clone(), shutdown.clone());
    let served = tokio::spawn(async move {
        serve(&mut handler, &mut stream, &mut queued, TIMERS, &slow, &stop).await
    });
    Client { to_server, from_server, queue, replies, heard, too_slow, shutdown, served }
}

fn closed_with(ending: &Ending) -> u16 {
    match ending {
        Ending::Close(close) => close.code,
        other => panic!("expected the server to close, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_pinged_then_closed_as_idle() {
    let mut client = connect(64);
    let started = Instant::now();
    let first = client.from_server.recv().await.unwrap();
    assert!(matches!(first, Message::Ping(_)), "pinged: {first:?}");
    assert_eq!(started.elapsed(), TIMERS.ping_interval);
    let ending = client.ending().await;
    assert_eq!(closed_with(&ending), 1001);
    assert_eq!(started.elapsed(), TIMERS.idle_timeout);
}

#[tokio::test(start_paused = true)]
async fn pongs_keep_a_connection_open() {
    let client = connect(64);
    for _ in 0..8 {
        sleep(Duration::from_secs(15)).await;
        client.say(Message::Pong(Default::default()));
    }
    let last_pong = Instant::now();
    sleep(Duration::from_secs(1)).await;
    assert!(!client.served.is_finished(), "two minutes of pongs, still open");
    let ending = client.ending().await;
    assert_eq!(closed_with(&ending), 1001);
    let idle = last_pong.elapsed();
    assert!(idle >= TIMERS.idle_timeout && idle <= TIMERS.idle_timeout + TIMERS.ping_interval);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_as_too_slow_after_the_write_timeout() {
    let client = connect(1);
    let started = Instant::now();
    client.queue("one");
    client.queue("two");
    let ending = client.ending().await;
    assert_eq!(closed_with(&ending), close::SLOW_CONSUMER);
    assert_eq!(started.elapsed(), WRITE_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_hub_found_too_slow_closes_at_once() {
    let client = connect(64);
    client.too_slow.cancel();
    let started = Instant::now();
    assert_eq!(closed_with(&client.ending().await), close::SLOW_CONSUMER);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_draining_server_closes_with_restart_after_the_connections_share() {
    let mut client = connect(64);
    client.shutdown.cancel();
    let started = Instant::now();
    sleep(TIMERS.drain_delay - Duration::from_millis(1)).await;
    client.queue("still served while draining");
    assert_eq!(client.next_text().await, "still served while draining");
    assert_eq!(closed_with(&client.ending().await), close::RESTART);
    assert_eq!(started.elapsed(), TIMERS.drain_delay);
}

#[tokio::test(start_paused = true)]
async fn frames_the_protocol_refuses_close_with_their_codes() {
    let too_big = connect(64);
    too_big.say(Message::Text("x".repeat(TIMERS.max_frame_bytes + 1).into()));
    assert_eq!(closed_with(&too_big.ending().await), close::TOO_BIG);

    let over_the_buffer = connect(64);
    over_the_buffer.fail(tungstenite::Error::Capacity(
        tungstenite::error::CapacityError::MessageTooLong { size: 1 << 20, max_size: 1 << 16 },
    ));
    assert_eq!(closed_with(&over_the_buffer.ending().await), close::TOO_BIG);

    let binary = connect(64);
    binary.say(Message::Binary(vec![1, 2, 3].into()));
    assert_eq!(closed_with(&binary.ending().await), 1003);

    let violation = connect(64);
    violation
        .fail(tungstenite::Error::Protocol(tungstenite::error::ProtocolError::NonZeroReservedBits));
    assert_eq!(closed_with(&violation.ending().await), 1002);

    let refused = connect(64);
    refused.say(Message::Text("refuse".into()));
    assert_eq!(refused.ending().await, Ending::Close(Close::new(4400, "refused")));
}

#[tokio::test(start_paused = true)]
async fn how_the_client_left_is_told_apart() {
    let with_code = connect(64);
    with_code.say(Message::Close(Some(CloseFrame { code: 4000, reason: "bye".into() })));
    assert_eq!(with_code.ending().await, Ending::ByClient(4000));

    let without_code = connect(64);
    without_code.say(Message::Close(None));
    assert_eq!(without_code.ending().await, Ending::ByClient(1005));

    let reset = connect(64);
    reset.fail(tungstenite::Error::Protocol(
        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
    ));
    assert_eq!(reset.ending().await, Ending::Broken);

    let gone = connect(64);
    let Client { to_server, served, .. } = gone;
    drop(to_server);
    assert_eq!(served.await.unwrap(), Ending::Broken);
}

#[tokio::test(start_paused = true)]
async fn queued_frames_replies_and_client_frames_are_handled_in_order() {
    let mut client = connect(64);
    for n in 0..3 {
        client.queue(&format!("queued {n}"));
    }
    for n in 0..3 {
        assert_eq!(client.next_text().await, format!("queued {n}"));
    }
    client.replies.send("ack".into()).await.unwrap();
    assert_eq!(client.next_text().await, "ack");
    client.say(Message::Text("hello".into()));
    client.say(Message::Text("again".into()));
    assert_eq!(client.heard.recv().await.unwrap(), "hello");
    assert_eq!(client.heard.recv().await.unwrap(), "again");
    assert!(!client.served.is_finished());
}

#[tokio::test(start_paused = true)]
async fn the_close_frame_carries_the_code_and_gives_up_on_a_stuck_client() {
    let (outgoing, mut from_server) = mpsc::channel(4);
    let sink = PollSender::new(outgoing).sink_map_err(axum::Error::new);
    let mut writer = Writer::new(Box::pin(sink), WRITE_TIMEOUT, CancellationToken::new());
    writer.close(Close::new(close::RESTART, "restarting")).await;
    let Some(Message::Close(Some(frame))) = from_server.recv().await else {
        panic!("no close frame");
    };
    assert_eq!((frame.code, frame.reason.as_str()), (close::RESTART, "restarting"));

    let (outgoing, _stuck) = mpsc::channel(1);
    let sink = PollSender::new(outgoing).sink_map_err(axum::Error::new);
    let mut writer = Writer::new(Box::pin(sink), WRITE_TIMEOUT, CancellationToken::new());
    writer.text("fills the client's room".into()).await.unwrap();
    let started = Instant::now();
    writer.close(Close::new(close::RESTART, "restarting")).await;
    assert_eq!(started.elapsed(), super::CLOSE_TIMEOUT);
}

#[test]
fn close_reasons_never_outgrow_a_control_frame() {
    let long = Close::new(close::FORBIDDEN, "ü".repeat(100));
    assert_eq!(long.code, close::FORBIDDEN);
    assert!(long.reason.len() <= close::MAX_REASON_BYTES);
    assert_eq!(long.reason, "ü".repeat(61));
    assert_eq!(Close::new(1001, "idle").reason, "idle");
}

#[test]
fn drain_shares_spread_over_the_period() {
    let period = Duration::from_secs(5);
    let shares: Vec<Duration> = (1..=1000).map(|c| Timers::drain_share(c, period)).collect();
    assert!(shares.iter().all(|share| *share < period));
    let early = shares.iter().filter(|share| **share < period / 2).count();
    assert!((400..=600).contains(&early), "{early} of 1000 in the first half");
}
