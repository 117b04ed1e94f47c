//! The fanout's metrics: connections, subscriptions, what the hub queues for them, how
//! connections end, resumes, signals, and how long a message takes from its send to the
//! hub. Counted here, registered by the binary (names and meanings in docs/TELEMETRY.md).
//! No label holds a conversation or user id.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use schemas::native::close;

use crate::delivery::Outbound;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DisconnectLabels {
    code: &'static str,
    closed_by: &'static str,
}

/// A limit of the fanout's a connection ran into.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    ConnectionsPerUser,
    Subscriptions,
    SubscriptionChanges,
}

impl Limit {
    const ALL: [Self; 3] =
        [Self::ConnectionsPerUser, Self::Subscriptions, Self::SubscriptionChanges];

    fn label(self) -> &'static str {
        match self {
            Self::ConnectionsPerUser => "connections_per_user",
            Self::Subscriptions => "subscriptions",
            Self::SubscriptionChanges => "subscription_changes",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

/// The trace of a message, attached to latency samples (OpenMetrics exemplars).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TraceLabels {
    trace_id: String,
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ClosedBy {
    /// This server, with a close frame (slow, idle, draining, refused, a protocol error).
    Server(u16),
    /// The client, with a close frame.
    Client(u16),
    /// Neither: the connection broke (or the client left without a close frame).
    Network,
}

struct Metrics {
    connections: Family<ProtocolLabels, Gauge>,
    subscriptions: Family<ProtocolLabels, Gauge>,
    queued: Family<KindLabels, Counter>,
    /// The children of `queued`, taken once: the hot path skips the family's map.
    queued_by_kind: [Counter; 3],
    waiting: Gauge,
    disconnects: Family<DisconnectLabels, Counter>,
    resumes: Family<SourceLabels, Counter>,
    resumed_messages: Histogram,
    signals: Family<KindLabels, Counter>,
    /// By [`Limit`], in the order of [`Limit::ALL`].
    refusals: [Counter; Limit::ALL.len()],
    latency: HistogramWithExemplars<TraceLabels>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let queued: Family<KindLabels, Counter> = Family::default();
    let queued_by_kind =
        ["message", "native", "about"].map(|kind| queued.get_or_create_owned(&KindLabels { kind }));
    // The common series start at zero, so that rates and alerts see them from the first
    // scrape (a slow-consumer storm is a rise of the 4008s).
    let (connections, subscriptions): (Family<ProtocolLabels, Gauge>, Family<_, _>) =
        (Family::default(), Family::default());
    for protocol in ["native", "seed"] {
        connections.get_or_create_owned(&ProtocolLabels { protocol });
        subscriptions.get_or_create_owned(&ProtocolLabels { protocol });
    }
    let disconnects: Family<DisconnectLabels, Counter> = Family::default();
    for (code, closed_by) in [
        ("1000", "client"),
        ("1001", "client"),
        ("1005", "client"),
        ("1006", "network"),
        ("1001", "server"),
        ("1012", "server"),
        ("4008", "server"),
        ("4429", "server"),
    ] {
        disconnects.get_or_create_owned(&DisconnectLabels { code, closed_by });
    }
    let resumes: Family<SourceLabels, Counter> = Family::default();
    for source in ["memory", "store"] {
        resumes.get_or_create_owned(&SourceLabels { source });
    }
    Metrics {
        connections,
        subscriptions,
        queued,
        queued_by_kind,
        waiting: Gauge::default(),
        disconnects,
        resumes,
        // 1 to ~16,000 messages missed.
        resumed_messages: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
        signals: Family::default(),
        refusals: Default::default(),
        // 1 ms to ~16 s.
        latency: HistogramWithExemplars::new(exponential_buckets(0.001, 2.0, 15)),
    }
});

/// A connection of `protocol` opened; it counts until [`disconnected`].
pub(crate) fn connected(protocol: &'static str) {
    METRICS.connections.get_or_create(&ProtocolLabels { protocol }).inc();
}

/// A connection of `protocol` ended, `closed_by` whom.
pub(crate) fn disconnected(protocol: &'static str, closed_by: ClosedBy) {
    METRICS.connections.get_or_create(&ProtocolLabels { protocol }).dec();
    count_close(closed_by);
}

/// A connection ran into `limit`.
pub(crate) fn limit_reached(limit: Limit) {
    METRICS.refusals[limit as usize].inc();
}

/// This crate's refusals by limit label, for the binary's `chat_limit_refusals` (one family
/// with the write path's, `ingest::metrics::limit_refusals`).
pub fn limit_refusals() -> Vec<(&'static str, Counter)> {
    Limit::ALL
        .iter()
        .map(|limit| (limit.label(), METRICS.refusals[*limit as usize].clone()))
        .collect()
}

/// A handshake refused with a close frame before the connection counted as open.
pub(crate) fn refused(code: u16) {
    count_close(ClosedBy::Server(code));
}

fn count_close(closed_by: ClosedBy) {
    let labels = match closed_by {
        ClosedBy::Server(code) => DisconnectLabels { code: code_label(code), closed_by: "server" },
        ClosedBy::Client(code) => DisconnectLabels { code: code_label(code), closed_by: "client" },
        ClosedBy::Network => DisconnectLabels { code: "1006", closed_by: "network" },
    };
    METRICS.disconnects.get_or_create(&labels).inc();
}

/// The close codes this server uses or that clients commonly send; anything else a client
/// sends is "other", so a client cannot grow the label set.
fn code_label(code: u16) -> &'static str {
    match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1005 => "1005",
        1008 => "1008",
        1009 => "1009",
        1011 => "1011",
        1012 => "1012",
        1013 => "1013",
        close::BAD_REQUEST => "4400",
        close::UNAUTHENTICATED => "4401",
        close::FORBIDDEN => "4403",
        close::NOT_FOUND => "4404",
        close::SLOW_CONSUMER => "4008",
        close::RATE_LIMITED => "4429",
        _ => "other",
    }
}

/// Subscriptions to conversations held by this node's connections went up or down.
pub(crate) fn subscriptions_changed(protocol: &'static str, by: i64) {
    METRICS.subscriptions.get_or_create(&ProtocolLabels { protocol }).inc_by(by);
}

/// The hub put `item` in `count` connections' queues.
pub(crate) fn queued(item: &Outbound, count: usize) {
    let kind = match item {
        Outbound::Message(_) => 0,
        Outbound::Native(_) => 1,
        Outbound::About(_) => 2,
    };
    METRICS.queued_by_kind[kind].inc_by(count as u64);
    METRICS.waiting.inc_by(count as i64);
}

/// A connection took `count` items from its queue (to write, or dropped with it).
pub(crate) fn dequeued(count: usize) {
    METRICS.waiting.dec_by(count as i64);
}

/// A subscription caught up on `missed` messages, from the store or the hub's memory.
pub(crate) fn resumed(from_store: bool, missed: usize) {
    let source = if from_store { "store" } else { "memory" };
    METRICS.resumes.get_or_create(&SourceLabels { source }).inc();
    METRICS.resumed_messages.observe(missed as f64);
}

/// A signal from the bus, by kind.
pub(crate) fn signal_received(kind: &'static str) {
    METRICS.signals.get_or_create(&KindLabels { kind }).inc();
}

/// A message reached the hub `after` its send was accepted.
pub(crate) fn message_arrived(after: Duration, trace_id: Option<&str>) {
    let exemplar = trace_id.map(|trace_id| TraceLabels { trace_id: trace_id.to_owned() });
    METRICS.latency.observe(after.as_secs_f64(), exemplar, None);
}

/// Adds this crate's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let metrics = &*METRICS;
    registry.register(
        "chat_fanout_connections",
        "Open WebSocket connections, by protocol",
        metrics.connections.clone(),
    );
    registry.register(
        "chat_fanout_subscriptions",
        "Conversation subscriptions held by open connections, by protocol",
        metrics.subscriptions.clone(),
    );
    registry.register(
        "chat_fanout_queued",
        "Items the hub put in connection queues: messages, native frames (receipts, inbox), \
         typing and presence",
        metrics.queued.clone(),
    );
    registry.register(
        "chat_fanout_queue_depth",
        "Items waiting in connection queues",
        metrics.waiting.clone(),
    );
    registry.register(
        "chat_fanout_disconnects",
        "Connections ended, by close code and by who closed them",
        metrics.disconnects.clone(),
    );
    registry.register(
        "chat_fanout_resumes",
        "Subscriptions that caught up on missed messages, by where they came from",
        metrics.resumes.clone(),
    );
    registry.register(
        "chat_fanout_resume_messages",
        "Messages a resuming subscription had missed",
        metrics.resumed_messages.clone(),
    );
    registry.register(
        "chat_fanout_signals",
        "Signals received from the bus, by kind",
        metrics.signals.clone(),
    );
    registry.register_with_unit(
        "chat_fanout_message_latency",
        "Time from a send being accepted to the hub queueing it for subscribers",
        Unit::Seconds,
        metrics.latency.clone(),
    );
}
