//! The listener's own metric: connections it closed before they sent a whole first request.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::unfinished::Dropped;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroppedLabels {
    reason: &'static str,
}

static DROPPED: LazyLock<Family<DroppedLabels, Counter>> = LazyLock::new(Family::default);

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
}
