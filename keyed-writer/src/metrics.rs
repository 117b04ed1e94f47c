//! The log's append metrics, for every appender: the keyed writers here, and ingest's own
//! appends (sends without a key, read marks, opened conversations), which count through
//! this module so that one family holds both. Registered by `ingest::metrics::register`
//! (names and meanings in docs/TELEMETRY.md).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Who appended: the keyed writers (batches of idempotent sends) or the service directly
/// (sends without a key, read marks, opened conversations).
#[derive(Debug, Clone, Copy)]
pub enum Appender {
    Keyed,
    Direct,
}

impl Appender {
    fn label(self) -> &'static str {
        match self {
            Self::Keyed => "keyed",
            Self::Direct => "direct",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppendLabels {
    appender: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppenderLabels {
    appender: &'static str,
}

fn append_buckets() -> Histogram {
    // 0.5 ms to ~16 s: a local fsync to an append that times out.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

struct Metrics {
    records: Family<AppendLabels, Counter>,
    appends: Family<AppenderLabels, Histogram, fn() -> Histogram>,
}

/// Every label value starts at zero, so that rates and alerts see a series from the first
/// scrape.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        records: Family::default(),
        appends: Family::new_with_constructor(append_buckets),
    };
    for appender in [Appender::Keyed, Appender::Direct] {
        metrics.appends.get_or_create_owned(&AppenderLabels { appender: appender.label() });
        for outcome in ["ok", "failed"] {
            metrics
                .records
                .get_or_create_owned(&AppendLabels { appender: appender.label(), outcome });
        }
    }
    metrics
});

/// One append call (a batch counts once) of `records` records that took `took`.
pub fn appended(appender: Appender, records: usize, ok: bool, took: Duration) {
    let outcome = if ok { "ok" } else { "failed" };
    let labels = AppendLabels { appender: appender.label(), outcome };
    METRICS.records.get_or_create(&labels).inc_by(records as u64);
    let labels = AppenderLabels { appender: appender.label() };
    METRICS.appends.get_or_create(&labels).observe(took.as_secs_f64());
}

/// Adds the append metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let metrics = &*METRICS;
    registry.register(
        "chat_log_appended_records",
        "Records handed to the log, by appender and outcome",
        metrics.records.clone(),
    );
    registry.register_with_unit(
        "chat_log_append_duration",
        "Time from handing records to the log to its acknowledgement, per append call",
        Unit::Seconds,
        metrics.appends.clone(),
    );
}
