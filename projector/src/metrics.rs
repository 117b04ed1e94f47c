//! The projector's metrics: batches, their size and apply time, and what each event did.
//! Counted here, registered by the binary (names and meanings in docs/TELEMETRY.md).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::batch::OutcomeCounts;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

struct Metrics {
    events: Family<OutcomeLabels, Counter>,
    batch_records: Histogram,
    apply: Histogram,
    freshness: Histogram,
    restored: Counter,
}

const OUTCOMES: [&str; 8] = [
    "message",
    "read",
    "started",
    "duplicate",
    "change",
    "unchanged",
    "undecodable",
    "unknown_type",
];

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    // Every outcome starts at zero, so that rates and alerts see it from the first scrape.
    events: {
        let events = Family::default();
        for outcome in OUTCOMES {
            events.get_or_create_owned(&OutcomeLabels { outcome });
        }
        events
    },
    // 1 to 65,536 records: one event to the largest batch flag allows (100,000).
    batch_records: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
    // 1 ms to ~16 s.
    apply: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
    // The projection-freshness SLI: its objective's threshold must be one of these bounds.
    freshness: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
    restored: Counter::default(),
});

/// Records applied again because the store had lost writes it acknowledged.
pub(crate) fn restored(records: usize) {
    METRICS.restored.inc_by(records as u64);
}

/// Records the log accepted at `accepted` (milliseconds since the epoch), whose writes the
/// store acknowledged at `written`: how stale the projections were for each.
pub(crate) fn projected(accepted: impl Iterator<Item = i64>, written: i64) {
    let metrics = &*METRICS;
    for at in accepted {
        // A clock behind the producer's would make an age negative: it counts as fresh.
        let age_ms = written.saturating_sub(at).max(0);
        metrics.freshness.observe(age_ms as f64 / 1000.0);
    }
}

/// A batch of `records` folded and written to the store in `took` (retries included).
pub(crate) fn batch_applied(records: usize, counts: &OutcomeCounts, took: Duration) {
    let metrics = &*METRICS;
    metrics.batch_records.observe(records as f64);
    metrics.apply.observe(took.as_secs_f64());
    let by_outcome = [
        counts.messages,
        counts.reads,
        counts.started,
        counts.duplicates,
        counts.changes,
        counts.unchanged,
        counts.undecodable,
        counts.unknown_types,
    ];
    for (outcome, count) in OUTCOMES.into_iter().zip(by_outcome) {
        if count > 0 {
            metrics.events.get_or_create(&OutcomeLabels { outcome }).inc_by(count);
        }
    }
}

/// Adds this crate's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let metrics = &*METRICS;
    registry.register(
        "chat_projector_events",
        "Events folded into the projections, by what they did to them",
        metrics.events.clone(),
    );
    registry.register(
        "chat_projector_batch_records",
        "Records per batch folded and written to the store in one call",
        metrics.batch_records.clone(),
    );
    registry.register_with_unit(
        "chat_projector_apply_duration",
        "Time to fold a batch and write it to the store, retries included",
        Unit::Seconds,
        metrics.apply.clone(),
    );
    registry.register_with_unit(
        "chat_projector_freshness",
        "From a record's acceptance by the log until the store acknowledged its batch",
        Unit::Seconds,
        metrics.freshness.clone(),
    );
    registry.register(
        "chat_projector_restored_records",
        "Records applied again because the store lost writes it had acknowledged",
        metrics.restored.clone(),
    );
}
