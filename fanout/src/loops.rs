//! Starting the hub, and its three loops: the tail of the log, the signals from every node,
//! and liveness (this node's heartbeat, and the sweep of lapsed presence and typing).
//! Separate tasks, so none waits on another and no read is ever abandoned midway.

use std::sync::Arc;
use std::time::Duration;

use eventlog::{EventLog, LogError, SignalBus, SignalStream, SubscribeSpec, Subscription};
use schemas::Timestamp;
use schemas::signals::Signal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::FanoutConfig;
use crate::hub::Hub;

impl Hub {
    /// Starts tailing `log` and `signals`; the returned task ends when `shutdown` fires.
    pub async fn start(
        log: Arc<dyn EventLog>,
        signals: Arc<dyn SignalBus>,
        config: FanoutConfig,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Hub>, JoinHandle<()>), LogError> {
        let tail = log.subscribe(SubscribeSpec::Tail).await?;
        let hub = Arc::new(Hub::new(&*log, tail.start_offsets(), Arc::clone(&signals), config));
        let signal_stream = signals.subscribe().await?;
        let task = spawn(&hub, log, tail, signal_stream, &shutdown);
        Ok((hub, task))
    }
}

/// Starts the loops; the returned task ends when all three have, after `shutdown`.
fn spawn(
    hub: &Arc<Hub>,
    log: Arc<dyn EventLog>,
    tail: Box<dyn Subscription>,
    signals: Box<dyn SignalStream>,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let log_loop = tokio::spawn(tail_log(Arc::clone(hub), log, tail, shutdown.clone()));
    let signal_loop = tokio::spawn(relay_signals(Arc::clone(hub), signals, shutdown.clone()));
    let liveness_loop = tokio::spawn(keep_alive(Arc::clone(hub), shutdown.clone()));
    tokio::spawn(async move {
        let _ = log_loop.await;
        let _ = signal_loop.await;
        let _ = liveness_loop.await;
    })
}

async fn tail_log(
    hub: Arc<Hub>,
    log: Arc<dyn EventLog>,
    mut tail: Box<dyn Subscription>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let batch = tokio::select! {
            () = shutdown.cancelled() => break,
            batch = tail.next_batch(1000, Duration::from_millis(500)) => batch,
        };
        match batch {
            Ok(records) => {
                for record in &records {
                    hub.take(record);
                }
            }
            Err(LogError::SubscriptionLost(reason)) => {
                // Carry on exactly where the lost tail stopped: no gap.
                tracing::warn!(reason, "fanout lost its tail of the log; resuming");
                match log.subscribe(SubscribeSpec::TailFrom(hub.positions())).await {
                    Ok(resumed) => tail = resumed,
                    Err(error) => {
                        tracing::warn!(%error, "cannot resume the tail; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "fanout failed to read the log; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn relay_signals(
    hub: Arc<Hub>,
    mut signals: Box<dyn SignalStream>,
    shutdown: CancellationToken,
) {
    loop {
        let signal = tokio::select! {
            () = shutdown.cancelled() => break,
            signal = signals.next() => signal,
        };
        let Some(signal) = signal else { break };
        for reply in hub.on_signal(signal) {
            hub.publish(reply).await;
        }
    }
}

async fn keep_alive(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut alive = tokio::time::interval(hub.config().presence_ttl / 3);
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = alive.tick() => {
                let signal = Signal::NodeAlive { node: hub.node().to_owned(), at: Timestamp::now() };
                hub.publish(signal).await;
            }
            _ = sweep.tick() => {
                hub.expire_presence();
                hub.expire_typing();
            }
        }
    }
}
