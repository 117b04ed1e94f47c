//! Serving a role's public and internal sites until a shutdown signal, then draining
//! within the drain period and its margin; and every listener's defences against clients
//! that never finish a request.

mod deadline_body;
pub(crate) mod metrics;
mod unfinished;
mod write_stall;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::serve::{Listener, ListenerExt, TapIo};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use self::deadline_body::DeadlineBody;
use self::unfinished::Unfinished;
use self::write_stall::WriteStall;

/// How every listener treats slow and idle clients (from [`crate::cli::HttpArgs`]).
#[derive(Debug, Clone)]
pub(crate) struct HttpLimits {
    /// A connection's first request head, and every request body, must arrive this fast.
    pub read_timeout: Duration,
    /// Idle keep-alive connections, and later request heads, get this long.
    pub keep_alive_timeout: Duration,
    /// The largest request head (request line and headers) taken; larger gets 431.
    pub max_header_bytes: usize,
    /// Connections waiting for their first request head; beyond, the oldest is closed.
    pub max_unfinished: usize,
    /// A connection whose peer takes nothing written to it for this long is closed.
    pub write_timeout: Duration,
}

/// What a process gets after its drain period to finish the rest (the last sockets' close
/// handshakes, requests in flight, leases handed back, telemetry flushed): a drain of `d`
/// cuts whatever is left at `d` plus this, which leaves half a second of the promised
/// `d` + 2 s for the process to come down.
pub(crate) const DRAIN_MARGIN: Duration = Duration::from_millis(1500);

/// When this process must be gone, once a shutdown began (read by the telemetry flush).
static EXIT_DEADLINE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();

/// The moment by which the process exits, once shutdown has begun.
pub(crate) fn exit_deadline() -> Option<std::time::Instant> {
    EXIT_DEADLINE.get().map(|deadline| deadline.into_std())
}

/// A listener and the routes it serves.
pub(crate) struct Site {
    pub listener: TcpListener,
    pub app: Router,
}

/// Listens on `address`. With `send_buffer`, every accepted socket gets that kernel send
/// buffer (inherited from the listener): the bound on kernel memory per connection, and
/// what makes a client that stops reading show up as slow within a few frames.
pub(crate) fn bind(address: SocketAddr, send_buffer: Option<u32>) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        if let Some(bytes) = send_buffer {
            socket.set_send_buffer_size(bytes)?;
        }
        socket.bind(address)?;
        socket.listen(4096)
    };
    listen().with_context(|| format!("cannot listen on {address}"))
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub(crate) fn cancel_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {},
            () = terminate => {},
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}

/// Sets TCP_NODELAY on every accepted socket. Responses and frames are written whole, so
/// Nagle's algorithm would only hold back the last segment of one until the peer's delayed
/// ACK (up to 40 ms on Linux).
fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    fn set_nodelay(socket: &mut TcpStream) {
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted socket");
        }
    }
    listener.tap_io(set_nodelay)
}

/// Serves the public site (the API, the sockets, the web app) and the internal one
/// (metrics, probes, node-to-node routes) until `shutdown`. Then the public listener stops
/// accepting and finishes its requests while the role drains over `drain` (sockets close
/// spread over it) and `tasks` end; the internal site answers probes, scrapes and
/// forwarded sends until they have, and closes last. Everything is bounded by `drain` +
/// [`DRAIN_MARGIN`] from the signal: what is left then is cut.
pub(crate) async fn serve(
    public: Option<Site>,
    internal: Site,
    limits: &HttpLimits,
    shutdown: CancellationToken,
    drain: Duration,
    tasks: Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    let internal_close = CancellationToken::new();
    let public_served =
        public.map(|public| tokio::spawn(serve_site(public, limits.clone(), shutdown.clone())));
    let internal_served =
        tokio::spawn(serve_site(internal, limits.clone(), internal_close.clone()));
    shutdown.cancelled().await;
    let deadline = tokio::time::Instant::now() + drain + DRAIN_MARGIN;
    let _ = EXIT_DEADLINE.set(deadline);
    let draining = async {
        if let Some(served) = public_served {
            let _ = served.await;
        }
        for task in tasks {
            let _ = task.await;
        }
    };
    if tokio::time::timeout_at(deadline, draining).await.is_err() {
        tracing::warn!(
            drain_ms = drain.as_millis() as u64,
            "requests, sockets or tasks still open at the end of the drain were cut"
        );
    }
    internal_close.cancel();
    if tokio::time::timeout_at(deadline, internal_served).await.is_err() {
        tracing::warn!("internal requests still open at the end of the drain were cut");
    }
    Ok(())
}

/// Serves one site until `close`, then stops accepting and returns once its connections
/// have finished their requests in flight (idle ones close at once).
///
/// HTTP/1.1 only: browsers reach the chat through a load balancer or proxy, WebSockets
/// upgrade from HTTP/1.1, and cleartext HTTP/2 (which no browser speaks) would be one more
/// protocol to defend.
async fn serve_site(site: Site, limits: HttpLimits, close: CancellationToken) {
    let Site { listener, app } = site;
    let mut listener = without_nagle(listener);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.keep_alive_timeout)
        .max_header_size(limits.max_header_bytes);
    let unfinished = Unfinished::new(limits.max_unfinished);
    let connections = TaskTracker::new();
    loop {
        let (socket, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = close.cancelled() => break,
        };
        let ticket = unfinished.admit();
        let finisher = ticket.finisher();
        let router = app.clone();
        let read_timeout = limits.read_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            finisher.finish();
            let (request, read_whole) = if request.body().is_end_stream() {
                (request.map(Body::new), None)
            } else {
                let (parts, body) = request.into_parts();
                let (body, read_whole) = DeadlineBody::new(body, read_timeout);
                (hyper::Request::from_parts(parts, Body::new(body)), Some(read_whole))
            };
            let answered = router.clone().oneshot(request);
            async move {
                let mut response = answered.await?;
                // Answered before its body was read (a refusal by length, type or caller):
                // what is left of the body is still on the way, so the client must not send
                // its next request down this connection.
                if read_whole.is_some_and(|read| !read.load(Ordering::Relaxed)) {
                    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let socket = WriteStall::new(socket, limits.write_timeout);
        let connection = http.serve_connection(TokioIo::new(socket), service).with_upgrades();
        let closing = close.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            let mut abandoned = pin!(ticket.abandoned(read_timeout));
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            tracing::debug!(%error, "HTTP connection ended with an error");
                        }
                        break;
                    }
                    dropped = &mut abandoned => {
                        metrics::count_dropped_connection(dropped);
                        tracing::debug!(reason = dropped.as_str(), "closed a connection that sent no request");
                        break;
                    }
                    // Finish the request in progress, then close; idle connections close now.
                    () = closing.cancelled(), if !shutting_down => {
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

#[cfg(test)]
mod tests;
