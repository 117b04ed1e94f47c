//! The listener's own metrics: connections waiting for their first whole request head,
//! and those it closed (before one arrived, or because their peer stopped reading).

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
    /// The peer took nothing written to it within the write timeout.
    WriteStalled,
}

impl Dropped {
    pub(crate) const ALL: [Self; 3] = [Self::Late, Self::Crowded, Self::WriteStalled];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Late => "read_timeout",
            Self::Crowded => "unfinished_limit",
            Self::WriteStalled => "write_timeout",
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

/// A connection closed by the listener (`read_timeout`: no whole first request in time;
/// `unfinished_limit`: evicted, the oldest of too many waiting; `write_timeout`: its peer
/// took nothing written to it for the write timeout).
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
        "Connections the listener closed: no whole first request in time, evicted, or a peer that stopped reading",
        DROPPED.clone(),
    );
    registry.register(
        "chat_http_connections_unfinished",
        "Connections waiting for their first whole request head, on every listener",
        WAITING.clone(),
    );
}
