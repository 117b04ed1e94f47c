//! The write path's metrics: messages accepted, attachments kept and swept, and refusals by
//! limit, plus the log's append metrics (counted in `keyed_writer::metrics`). Registered by
//! the binary (names and meanings in docs/TELEMETRY.md).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    outcome: &'static str,
}

/// A limit of the write path a caller ran into (the fanout counts its own).
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    SendRate,
    UploadRate,
    UploadMemory,
    PreviewMemory,
    FileQuota,
    DownloadsInFlight,
}

impl Limit {
    const ALL: [Self; 6] = [
        Self::SendRate,
        Self::UploadRate,
        Self::UploadMemory,
        Self::PreviewMemory,
        Self::FileQuota,
        Self::DownloadsInFlight,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::SendRate => "send_rate",
            Self::UploadRate => "upload_rate",
            Self::UploadMemory => "upload_memory",
            Self::PreviewMemory => "preview_memory",
            Self::FileQuota => "file_quota",
            Self::DownloadsInFlight => "downloads_in_flight",
        }
    }
}

struct Metrics {
    messages: Family<MessageLabels, Counter>,
    /// By [`Limit`], in the order of [`Limit::ALL`].
    refusals: [Counter; Limit::ALL.len()],
    uploads: Counter,
    uploaded_bytes: Counter,
    swept: Counter,
    swept_bytes: Counter,
}

/// Every known label value starts at zero, so that rates and alerts see a series from the
/// first scrape.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        messages: Family::default(),
        refusals: Default::default(),
        uploads: Counter::default(),
        uploaded_bytes: Counter::default(),
        swept: Counter::default(),
        swept_bytes: Counter::default(),
    };
    for outcome in ["new", "duplicate"] {
        metrics.messages.get_or_create_owned(&MessageLabels { outcome });
    }
    metrics
});

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
    METRICS.refusals[limit as usize].inc();
}

/// This crate's refusals by limit label. The binary exposes them as `chat_limit_refusals`,
/// one family with the fanout's (`fanout::metrics::limit_refusals`), since an operator asks
/// "what was refused" across the roles.
pub fn limit_refusals() -> Vec<(&'static str, Counter)> {
    Limit::ALL
        .iter()
        .map(|limit| (limit.label(), METRICS.refusals[*limit as usize].clone()))
        .collect()
}

/// Adds this crate's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let metrics = &*METRICS;
    keyed_writer::metrics::register(registry);
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
}
