//! The listener's own metrics: connections waiting for their first whole request head,
//! and those it closed before one arrived.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why an unfinished connection was closed (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// No whole request head within the read timeout.
    Late,
    /// Evicted, the oldest waiting, when the limit was reached.
    Crowded,
}

impl Dropped {
    pub(crate) const ALL: [Self; 2] = [Self::Late, Self::Crowded];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Late => "read_timeout",
            Self::Crowded => "unfinished_limit",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroppedLabels {
    reason: &'static str,
}

static DROPPED: LazyLock<Family<DroppedLabels, Counter>> = LazyLock::new(Family::default);
static WAITING: LazyLock<Gauge> = LazyLock::new(Gauge::default);

/// `by` more (or fewer) connections wait for their first request head, on any listener of
/// this process.
pub(super) fn count_waiting(by: i64) {
    WAITING.inc_by(by);
}

/// A connection closed before it sent a whole first request (`read_timeout`: too slow;
/// `unfinished_limit`: evicted, the oldest of too many waiting).
pub(super) fn count_dropped_connection(dropped: Dropped) {
    DROPPED.get_or_create(&DroppedLabels { reason: dropped.as_str() }).inc();
}

pub(crate) fn register(registry: &mut Registry) {
    // Both reasons from the start, so a rate over them is 0 rather than absent.
    for dropped in Dropped::ALL {
        let _ = DROPPED.get_or_create(&DroppedLabels { reason: dropped.as_str() });
    }
    registry.register(
        "chat_http_connections_dropped",
        "Connections closed before sending a whole first request, by reason",
        DROPPED.clone(),
    );
    registry.register(
        "chat_http_connections_unfinished",
        "Connections waiting for their first whole request head, on every listener",
        WAITING.clone(),
    );
}
