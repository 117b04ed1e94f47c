//! Serving a router until a shutdown signal, then draining within a deadline.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long background tasks get to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub(crate) async fn bind(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))
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

/// Serves `app` until `shutdown`, then waits (at most [`DRAIN_DEADLINE`]) for `tasks`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    let graceful = shutdown.clone();
    axum::serve(listener, app)
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
