//! One WebSocket connection's loop, over any `Sink` and `Stream` of frames: it reads client
//! frames (handing them to its [`Handler`]), drains the connection's bounded queue with one
//! flush per batch, writes the answers to sends, pings, and ends with a documented close
//! code when the client is too slow (4008), idle (1001), sends what the protocol refuses
//! (1003, 1009, 1002), or the server drains (1012). Generic over the socket so that every
//! code and timer is tested on virtual time, without a server.

use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use schemas::native::close;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::delivery::Outbound;
use crate::metrics;

/// The writing half of a socket.
pub(crate) type FrameSink = Pin<Box<dyn Sink<Message, Error = axum::Error> + Send>>;
/// The reading half of a socket.
pub(crate) type FrameStream = Pin<Box<dyn Stream<Item = Result<Message, axum::Error>> + Send>>;

/// Why and how a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
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

pub(crate) fn slow_consumer() -> Close {
    Close::new(close::SLOW_CONSUMER, "too slow to keep up; reconnect and resume")
}

/// How a connection's loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The server closes it, with this frame.
    Close(Close),
    /// The client sent a close frame with this code.
    ByClient(u16),
    /// The connection broke, or the client left without a close frame.
    Broken,
}

/// How long a closing connection waits for the client to take its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Queued frames written with one flush at most.
const WRITE_BATCH: usize = 64;

/// The socket's writing half, under the connection's deadline: a peer that stopped reading
/// must not hold the connection (and its buffers) forever.
pub(crate) struct Writer {
    sink: FrameSink,
    write_timeout: Duration,
    /// Cancelled by the hub when the connection's queue overflowed.
    too_slow: CancellationToken,
}

impl Writer {
    pub(crate) fn new(
        sink: FrameSink,
        write_timeout: Duration,
        too_slow: CancellationToken,
    ) -> Self {
        Self { sink, write_timeout, too_slow }
    }

    pub(crate) async fn text(&mut self, text: Utf8Bytes) -> Result<(), Close> {
        self.all(vec![text]).await
    }

    /// Writes `frames` with a single flush; too slow (4008) when the client does not take
    /// them within the write timeout or the hub has found it too slow meanwhile.
    pub(crate) async fn all(&mut self, frames: Vec<Utf8Bytes>) -> Result<(), Close> {
        self.messages(frames.into_iter().map(Message::Text)).await
    }

    async fn messages(&mut self, messages: impl Iterator<Item = Message>) -> Result<(), Close> {
        let sink = &mut self.sink;
        let mut messages = messages.peekable();
        if messages.peek().is_none() {
            return Ok(());
        }
        let written = async move {
            for message in messages {
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        tokio::select! {
            written = tokio::time::timeout(self.write_timeout, written) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Close::new(close::INTERNAL, "write failed")),
                Err(_) => Err(slow_consumer()),
            },
            () = self.too_slow.cancelled() => Err(slow_consumer()),
        }
    }

    /// Sends the close frame if the client takes it promptly; either way the socket is
    /// dropped afterwards.
    pub(crate) async fn close(&mut self, reason: Close) {
        let frame = CloseFrame { code: reason.code, reason: Utf8Bytes::from(reason.reason) };
        let goodbye = async {
            let _ = self.sink.send(Message::Close(Some(frame))).await;
            let _ = self.sink.close().await;
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    }
}

/// What the loop hands its owner: the protocol, with the connection's services.
pub(crate) trait Handler: Send {
    fn writer(&mut self) -> &mut Writer;
    /// A text frame from the client.
    fn on_text(&mut self, text: &str) -> impl Future<Output = Result<(), Close>> + Send;
    /// Renders a queued item; `None` skips it.
    fn render(&mut self, item: &Outbound) -> Option<Utf8Bytes>;
    /// The next answer to a send or read, rendered; pending while none is under way.
    fn next_reply(&mut self) -> impl Future<Output = Option<Utf8Bytes>> + Send;
}

/// The bounds on a connection's time and frames.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub ping_interval: Duration,
    /// Closed (1001) when nothing, not even a pong, arrived for this long.
    pub idle_timeout: Duration,
    /// After shutdown is requested, how long this connection keeps working: its share of
    /// the drain period, so that clients do not all reconnect elsewhere at once.
    pub drain_delay: Duration,
    pub max_frame_bytes: usize,
}

impl Timers {
    /// `connection`'s share of `drain_period`: spread evenly by a multiplicative hash.
    pub(crate) fn drain_share(connection: u64, drain_period: Duration) -> Duration {
        let share = (connection.wrapping_mul(2_654_435_761) % 1000) as u32;
        drain_period.mul_f64(f64::from(share) / 1000.0)
    }
}

/// Serves the connection until it ends, and says how.
pub(crate) async fn serve(
    handler: &mut impl Handler,
    stream: &mut FrameStream,
    queue: &mut mpsc::Receiver<Outbound>,
    timers: Timers,
    too_slow: &CancellationToken,
    shutdown: &CancellationToken,
) -> Ending {
    let mut ping = tokio::time::interval(timers.ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let drain = async move {
        shutdown.cancelled().await;
        tokio::time::sleep(timers.drain_delay).await;
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
                    return read_failure(error, timers.max_frame_bytes).map_or(Ending::Broken, Ending::Close);
                }
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if text.len() > timers.max_frame_bytes {
                        return Ending::Close(too_big(timers.max_frame_bytes));
                    }
                    handler.on_text(text.as_str()).await
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
                // The connection holds a sender itself, so the queue closes only with it.
                let Some(item) = item else { return Ending::Broken };
                // Take whatever else is already queued and write it all with one flush:
                // under load that is one system call for many frames.
                let mut frames: Vec<Utf8Bytes> = handler.render(&item).into_iter().collect();
                let mut taken = 1;
                while taken < WRITE_BATCH {
                    let Ok(item) = queue.try_recv() else { break };
                    taken += 1;
                    frames.extend(handler.render(&item));
                }
                metrics::dequeued(taken);
                handler.writer().all(frames).await
            }
            reply = handler.next_reply() => match reply {
                Some(text) => handler.writer().text(text).await,
                None => Ok(()),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= timers.idle_timeout {
                    return Ending::Close(Close::new(1001, "idle: no frames or pongs received"));
                }
                handler.writer().messages(std::iter::once(Message::Ping(Default::default()))).await
            }
        };
        if let Err(close) = result {
            return Ending::Close(close);
        }
    }
}

fn too_big(max_frame_bytes: usize) -> Close {
    Close::new(close::TOO_BIG, format!("frame over {max_frame_bytes} bytes"))
}

/// How to end a connection whose read failed: a frame too large for the socket's buffer
/// (before the limit check can see it) or a protocol violation is answered with a close
/// frame saying so; a broken connection just ends.
fn read_failure(error: axum::Error, max_frame_bytes: usize) -> Option<Close> {
    match *error.into_inner().downcast::<tungstenite::Error>().ok()? {
        tungstenite::Error::Capacity(_) => Some(too_big(max_frame_bytes)),
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

#[cfg(test)]
mod tests;
