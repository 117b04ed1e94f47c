//! The signal bus: how typing, presence and inbox updates reach every fanout node.
//!
//! Best effort by design: a subscriber that falls behind skips what it missed (and the
//! skipped count is logged), because every signal is either short-lived or re-derivable.

use async_trait::async_trait;
use schemas::signals::Signal;
use tokio::sync::broadcast;

use crate::LogError;

#[async_trait]
pub trait SignalBus: Send + Sync + 'static {
    /// Publishes to every subscriber on every node, this one included.
    async fn publish(&self, signal: Signal);
    /// Publishes several at once; subscribers see them in this order. A bus may carry them
    /// together (the Kafka bus: one record), which is what makes a projector batch's inbox
    /// updates cheap.
    async fn publish_all(&self, signals: Vec<Signal>) {
        for signal in signals {
            self.publish(signal).await;
        }
    }
    /// A stream of every signal published after this call returns.
    async fn subscribe(&self) -> Result<Box<dyn SignalStream>, LogError>;
}

#[async_trait]
pub trait SignalStream: Send {
    /// The next signal; `None` once the bus is gone.
    async fn next(&mut self) -> Option<Signal>;
}

/// The in-process bus of `chat dev`.
#[derive(Debug, Clone)]
pub struct MemorySignalBus {
    sender: broadcast::Sender<Signal>,
}

impl MemorySignalBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }
}

#[async_trait]
impl SignalBus for MemorySignalBus {
    async fn publish(&self, signal: Signal) {
        // No subscribers is not an error: nobody is listening yet.
        let _ = self.sender.send(signal);
    }

    async fn subscribe(&self) -> Result<Box<dyn SignalStream>, LogError> {
        Ok(Box::new(MemorySignalStream { receiver: self.sender.subscribe() }))
    }
}

struct MemorySignalStream {
    receiver: broadcast::Receiver<Signal>,
}

#[async_trait]
impl SignalStream for MemorySignalStream {
    async fn next(&mut self) -> Option<Signal> {
        loop {
            match self.receiver.recv().await {
                Ok(signal) => return Some(signal),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "signal subscriber fell behind; skipped signals");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
