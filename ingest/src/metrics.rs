//! The write path's metrics: appends to the log, messages accepted, and refusals by limit.
//! Counted here, registered by the binary (names and meanings in docs/TELEMETRY.md).

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
pub(crate) enum Appender {
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

/// A limit a caller ran into.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    SendRate,
    ConnectionsPerUser,
    Subscriptions,
    SubscriptionChanges,
    UploadRate,
    UploadMemory,
    PreviewMemory,
    FileQuota,
    DownloadsInFlight,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Self::SendRate => "send_rate",
            Self::ConnectionsPerUser => "connections_per_user",
            Self::Subscriptions => "subscriptions",
            Self::SubscriptionChanges => "subscription_changes",
            Self::UploadRate => "upload_rate",
            Self::UploadMemory => "upload_memory",
            Self::PreviewMemory => "preview_memory",
            Self::FileQuota => "file_quota",
            Self::DownloadsInFlight => "downloads_in_flight",
        }
    }
}

fn append_buckets() -> Histogram {
    // 0.5 ms to ~16 s: a local fsync to an append that times out.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

struct Metrics {
    records: Family<AppendLabels, Counter>,
    appends: Family<AppenderLabels, Histogram, fn() -> Histogram>,
    messages: Family<MessageLabels, Counter>,
    refusals: Family<LimitLabels, Counter>,
    uploads: Counter,
    uploaded_bytes: Counter,
    swept: Counter,
    swept_bytes: Counter,
}

/// Every known label value starts at zero, so that rates and alerts see a series from the
/// first scrape.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        records: Family::default(),
        appends: Family::new_with_constructor(append_buckets),
        messages: Family::default(),
        refusals: Family::default(),
        uploads: Counter::default(),
        uploaded_bytes: Counter::default(),
        swept: Counter::default(),
        swept_bytes: Counter::default(),
    };
    for appender in [Appender::Keyed, Appender::Direct] {
        metrics.appends.get_or_create_owned(&AppenderLabels { appender: appender.label() });
        for outcome in ["ok", "failed"] {
            metrics
                .records
                .get_or_create_owned(&AppendLabels { appender: appender.label(), outcome });
        }
    }
    for outcome in ["new", "duplicate"] {
        metrics.messages.get_or_create_owned(&MessageLabels { outcome });
    }
    for limit in [
        Limit::SendRate,
        Limit::ConnectionsPerUser,
        Limit::Subscriptions,
        Limit::SubscriptionChanges,
        Limit::UploadRate,
        Limit::UploadMemory,
        Limit::PreviewMemory,
        Limit::FileQuota,
        Limit::DownloadsInFlight,
    ] {
        metrics.refusals.get_or_create_owned(&LimitLabels { limit: limit.label() });
    }
    metrics
});

/// One append call (a batch counts once) of `records` records that took `took`.
pub(crate) fn appended(appender: Appender, records: usize, ok: bool, took: Duration) {
    let outcome = if ok { "ok" } else { "failed" };
    let labels = AppendLabels { appender: appender.label(), outcome };
    METRICS.records.get_or_create(&labels).inc_by(records as u64);
    let labels = AppenderLabels { appender: appender.label() };
    METRICS.appends.get_or_create(&labels).observe(took.as_secs_f64());
}

/// A message send answered: a new message, or the original of a retried key.
pub(crate) fn message_sent(duplicate: bool) {
    let outcome = if duplicate { "duplicate" } else { "new" };
    METRICS.messages.get_or_create(&MessageLabels { outcome }).inc();
}

/// An attachment of `bytes` bytes kept.
pub(crate) fn uploaded(bytes: u64) {
    METRICS.uploads.inc();
    METRICS.uploaded_bytes.inc_by(bytes);
}

/// Unsent uploads removed by a sweep, and their bytes.
pub(crate) fn swept(uploads: u64, bytes: u64) {
    METRICS.swept.inc_by(uploads);
    METRICS.swept_bytes.inc_by(bytes);
}

/// A request or frame refused by `limit`.
pub fn refused(limit: Limit) {
    METRICS.refusals.get_or_create(&LimitLabels { limit: limit.label() }).inc();
}

/// Adds this crate's metrics to `registry`.
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
    registry.register(
        "chat_messages_sent",
        "Message sends answered, new or the original of a retried idempotency key",
        metrics.messages.clone(),
    );
    registry.register(
        "chat_attachments_uploaded",
        "Attachments kept in object storage",
        metrics.uploads.clone(),
    );
    registry.register_with_unit(
        "chat_attachments_uploaded",
        "Bytes of attachments kept in object storage",
        Unit::Bytes,
        metrics.uploaded_bytes.clone(),
    );
    registry.register(
        "chat_attachments_swept",
        "Uploads removed because no message carried them in time",
        metrics.swept.clone(),
    );
    registry.register_with_unit(
        "chat_attachments_swept",
        "Bytes of uploads removed because no message carried them in time",
        Unit::Bytes,
        metrics.swept_bytes.clone(),
    );
    registry.register(
        "chat_limit_refusals",
        "Requests, handshakes and frames refused by a per-user or per-connection limit",
        metrics.refusals.clone(),
    );
}
