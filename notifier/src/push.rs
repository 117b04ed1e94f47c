//! Delivering one notification to every browser a recipient subscribed, honouring what
//! push services answer: 404/410 remove the subscription, 429 and 5xx are retried (with
//! `Retry-After`) within the TTL, 413 means the payload was cut wrongly.

use std::sync::Arc;
use std::time::Duration;

use schemas::UserId;
use schemas::notify::{PushKeys, PushPayload, PushSubscription};
use viewstore::{PushSubscriptions, StoredPushSubscription};
use webpush::{AllowedEndpoints, Push, Subscription, Urgency, VapidKey};

use crate::metrics;
use crate::outbound::Outbound;
use crate::retry::{Backoff, retry_after};

/// How pushes are signed and where they may go.
#[derive(Debug, Clone)]
pub struct PushSettings {
    pub key: Arc<VapidKey>,
    /// `sub` of the VAPID token: `mailto:` or `https:` contact of the operator.
    pub subject: String,
    pub allowed: AllowedEndpoints,
    /// How long a push service keeps a push for an offline device, and how long an
    /// answered 429 or 5xx is retried.
    pub ttl: Duration,
}

pub(crate) struct PushSender {
    settings: PushSettings,
    client: Outbound,
    store: Arc<dyn PushSubscriptions>,
}

impl std::fmt::Debug for PushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSender").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl PushSender {
    pub(crate) fn new(
        settings: PushSettings,
        client: Outbound,
        store: Arc<dyn PushSubscriptions>,
    ) -> Self {
        Self { settings, client, store }
    }

    /// Pushes `payload` to each of `recipient`'s subscriptions, concurrently.
    pub(crate) async fn notify(&self, recipient: &UserId, payload: &PushPayload) {
        let subscriptions = match self.store.push_subscriptions(recipient).await {
            Ok(subscriptions) => subscriptions,
            Err(error) => {
                tracing::warn!(%error, "cannot read push subscriptions; this push is lost");
                metrics::push("store_unavailable");
                return;
            }
        };
        let mut payload = payload.clone();
        webpush::fit_text(&mut payload, webpush::MAX_PLAINTEXT);
        let deliveries = subscriptions
            .iter()
            .map(|subscription| self.deliver(recipient, subscription, &payload));
        futures_util::future::join_all(deliveries).await;
    }

    async fn deliver(
        &self,
        recipient: &UserId,
        stored: &StoredPushSubscription,
        payload: &PushPayload,
    ) {
        let browser = PushSubscription {
            endpoint: stored.endpoint.clone(),
            keys: PushKeys { p256dh: stored.p256dh.clone(), auth: stored.auth.clone() },
        };
        // Checked again: the allowed list may have changed since it was registered.
        let subscription = match Subscription::check(&browser, &self.settings.allowed) {
            Ok(subscription) => subscription,
            Err(refused) => {
                tracing::warn!(%refused, "push subscription no longer allowed; skipped");
                metrics::push("not_allowed");
                return;
            }
        };
        let topic = webpush::topic(payload.conversation_id);
        let mut backoff = Backoff::within(self.settings.ttl);
        loop {
            let push = Push {
                subscription: &subscription,
                payload,
                ttl: backoff.remaining(),
                urgency: Urgency::Normal,
                topic: &topic,
            };
            let request = match webpush::request(&push, &self.settings.key, &self.settings.subject)
            {
                Ok(request) => request,
                Err(error) => {
                    tracing::error!(%error, "cannot build a push");
                    metrics::push("unbuildable");
                    return;
                }
            };
            let asked = match self.client.send(request).await {
                Ok(answer) => match answer.status.as_u16() {
                    200..=299 => return metrics::push("delivered"),
                    404 | 410 => {
                        metrics::push("gone");
                        let removed =
                            self.store.remove_push_subscription(recipient, &stored.endpoint).await;
                        if let Err(error) = removed {
                            tracing::warn!(%error, "cannot remove a gone push subscription");
                        }
                        return;
                    }
                    413 => {
                        tracing::error!("a push service found a payload too large");
                        return metrics::push("too_large");
                    }
                    429 | 500..=599 => retry_after(&answer.headers),
                    status => {
                        tracing::warn!(status, "a push service refused a push");
                        return metrics::push("refused");
                    }
                },
                Err(error) => {
                    tracing::debug!(error, "push not delivered; retrying");
                    None
                }
            };
            metrics::push("retried");
            let Some(wait) = backoff.wait(asked) else {
                return metrics::push("expired");
            };
            tokio::time::sleep(wait).await;
        }
    }
}
