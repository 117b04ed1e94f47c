//! Refused credentials, counted by reason. The binary registers these with every other
//! metric of the process (names in docs/TELEMETRY.md); here they are only counted.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::AuthError;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// Every reason starts at zero, so that rates and alerts see a series from the first scrape.
static REFUSALS: LazyLock<Family<RefusalLabels, Counter>> = LazyLock::new(|| {
    let refusals = Family::default();
    for reason in ["missing", "expired", "wrong_algorithm", "invalid", "foreign_origin"] {
        refusals.get_or_create_owned(&RefusalLabels { reason });
    }
    refusals
});

/// Counts a request or handshake refused for `error`.
pub fn count_refusal(error: &AuthError) {
    REFUSALS.get_or_create(&RefusalLabels { reason: error.reason() }).inc();
}

/// Adds this crate's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "chat_auth_refusals",
        "Requests and WebSocket handshakes refused for their credentials, by reason",
        REFUSALS.clone(),
    );
}
