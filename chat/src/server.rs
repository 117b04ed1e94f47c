//! Serving a router until a shutdown signal, then draining within a deadline.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::serve::{ListenerExt, TapIo};
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long background tasks get to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

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

/// Serves `app` until `shutdown`, then waits (at most [`DRAIN_DEADLINE`]) for `tasks`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    let graceful = shutdown.clone();
    axum::serve(without_nagle(listener), app)
        .with_graceful_shutdown(async move { graceful.cancelled().await })
        .await
        .context("serving HTTP")?;
    shutdown.cancel();
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        for task in tasks {
            let _ = task.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("background tasks did not finish within the drain deadline");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() -> anyhow::Result<()> {
        let listener = bind("127.0.0.1:0".parse()?, None)?;
        let address = listener.local_addr()?;
        let mut listener = without_nagle(listener);
        let _client = TcpStream::connect(address).await?;
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay()?, "TCP_NODELAY must be set on accepted sockets");
        Ok(())
    }
}
