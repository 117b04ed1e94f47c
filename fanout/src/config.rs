//! Fanout settings: every bound on memory and time a connection can use.

use std::time::Duration;

use auth::OriginPolicy;

#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Messages of each conversation kept in memory for resumes that need no store read.
    pub recent_per_conversation: usize,
    /// Conversations without subscribers whose recent messages are kept (least recently
    /// active are forgotten first).
    pub idle_conversations: usize,
    /// Frames queued for one connection; a connection whose queue fills is too slow and is
    /// closed with 4008, to resume later.
    pub queue_per_connection: usize,
    /// Largest frame (and message) a client may send.
    pub max_frame_bytes: usize,
    /// Conversations one native connection may subscribe to.
    pub max_subscriptions: usize,
    /// Subscribes and unsubscribes one native connection may make per second; each costs
    /// an authorization and signals to every fanout node, so churn is bounded. `None`: no
    /// limit. Its burst is twice `max_subscriptions` plus ten, so a client that reconnects
    /// can subscribe again to everything at once and still change a few.
    pub subscription_changes: Option<f64>,
    /// WebSocket connections one user may hold on one fanout node.
    pub max_connections_per_user: usize,
    /// Sends one connection may have waiting for the log.
    pub max_pending_sends: usize,
    pub ping_interval: Duration,
    /// On shutdown, connections close (1012, "reconnect and resume") spread over this long,
    /// so their clients do not all reconnect elsewhere at the same instant.
    pub drain_period: Duration,
    /// A frame the client does not take within this long marks it too slow (4008).
    pub write_timeout: Duration,
    /// A connection that sent nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// A fanout node not heard from for this long is presumed gone, and its users offline.
    /// Nodes say they are alive three times per period.
    pub presence_ttl: Duration,
    /// A typing indicator not repeated within this long is withdrawn.
    pub typing_ttl: Duration,
    /// How long a resume waits for the store to catch up with the log.
    pub resume_wait: Duration,
    /// Messages fetched from the store per page while resuming.
    pub resume_page: usize,
    /// Origins allowed to open cookie-authenticated WebSockets.
    pub origins: OriginPolicy,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            recent_per_conversation: 128,
            idle_conversations: 10_000,
            queue_per_connection: 1024,
            max_frame_bytes: 16 * 1024,
            max_subscriptions: 100,
            subscription_changes: Some(20.0),
            max_connections_per_user: 20,
            max_pending_sends: 32,
            ping_interval: Duration::from_secs(20),
            write_timeout: Duration::from_secs(10),
            drain_period: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            typing_ttl: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(30),
            resume_wait: Duration::from_secs(10),
            resume_page: 500,
            origins: OriginPolicy::default(),
        }
    }
}

impl FanoutConfig {
    /// The limit on one connection's subscription changes, if any.
    pub fn subscription_change_rate(&self) -> Option<ingest::Rate> {
        let burst = self.max_subscriptions.saturating_mul(2).saturating_add(10);
        let burst = u32::try_from(burst).unwrap_or(u32::MAX);
        self.subscription_changes.map(|per_second| ingest::Rate { per_second, burst })
    }
}
