//! The notifier's metrics: decisions by outcome, push and webhook deliveries by result,
//! bursts waiting. Counted here, registered by the binary (docs/TELEMETRY.md). No label
//! holds a conversation or user id.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event_type: String,
    result: &'static str,
}

static DECISIONS: LazyLock<Family<OutcomeLabels, Counter>> = LazyLock::new(Family::default);
static PUSHES: LazyLock<Family<PushLabels, Counter>> = LazyLock::new(Family::default);
static WEBHOOKS: LazyLock<Family<WebhookLabels, Counter>> = LazyLock::new(Family::default);
static WAITING: LazyLock<Gauge> = LazyLock::new(Gauge::default);

/// A burst was decided: `notified`, `online` (connected, saw it live) or `read`.
pub(crate) fn decided(outcome: &'static str) {
    DECISIONS.get_or_create(&OutcomeLabels { outcome }).inc();
}

pub(crate) fn push(result: &'static str) {
    PUSHES.get_or_create(&PushLabels { result }).inc();
}

pub(crate) fn webhook(event_type: &str, result: &'static str) {
    WEBHOOKS.get_or_create(&WebhookLabels { event_type: event_type.to_owned(), result }).inc();
}

pub(crate) fn waiting(bursts: usize) {
    WAITING.set(i64::try_from(bursts).unwrap_or(i64::MAX));
}

pub fn register(registry: &mut Registry) {
    // At zero from the start, so that the first of each shows as an increase.
    for outcome in ["notified", "online", "read"] {
        drop(DECISIONS.get_or_create(&OutcomeLabels { outcome }));
    }
    for result in ["delivered", "gone", "expired", "refused", "too_large"] {
        drop(PUSHES.get_or_create(&PushLabels { result }));
    }
    for event_type in ["conversation.started", "message.unread"] {
        for result in ["accepted", "parked"] {
            let labels = WebhookLabels { event_type: event_type.to_owned(), result };
            drop(WEBHOOKS.get_or_create(&labels));
        }
    }
    registry.register(
        "chat_notifier_decisions",
        "Bursts of unseen messages decided, by outcome (notified, online, read)",
        DECISIONS.clone(),
    );
    registry.register(
        "chat_push_deliveries",
        "Web Push requests by result (delivered, gone, retried, expired, too_large, refused, ...)",
        PUSHES.clone(),
    );
    registry.register(
        "chat_webhook_deliveries",
        "Webhook posts by event type and result (accepted, retried, parked)",
        WEBHOOKS.clone(),
    );
    registry.register(
        "chat_notifier_bursts_waiting",
        "Bursts waiting for their notification delay",
        WAITING.clone(),
    );
}
