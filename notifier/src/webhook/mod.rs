//! Signed webhooks to the jobs system (Standard Webhooks): each event posted with its id,
//! the time and a signature, retried with backoff for a bounded time, then parked on the
//! dead-letter log for an operator to redeliver (`chat webhooks`).

mod dead_letters;
mod signature;

use std::time::Duration;

use schemas::notify::WebhookEvent;
use url::Url;

pub use dead_letters::{DeadLetters, Parked};
pub use signature::WebhookSecret;

use crate::metrics;
use crate::outbound::Outbound;
use crate::retry::{Backoff, retry_after};

/// Where and how events are posted.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: Url,
    pub secret: WebhookSecret,
    /// How long an event is retried before it is parked.
    pub retry_for: Duration,
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Accepted,
    Parked,
}

/// Posts events, one attempt at a time.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    settings: WebhookSettings,
    client: Outbound,
    dead_letters: Option<DeadLetters>,
}

/// What one attempt got: taken, or why not and when the receiver asked to be tried again.
#[derive(Debug)]
pub enum Attempt {
    Accepted,
    Failed { reason: String, retry_after: Option<Duration> },
}

impl WebhookSender {
    pub fn new(
        settings: WebhookSettings,
        client: Outbound,
        dead_letters: Option<DeadLetters>,
    ) -> Self {
        Self { settings, client, dead_letters }
    }

    /// One signed post of `event` under `id`.
    pub async fn attempt(&self, id: &str, event: &WebhookEvent) -> Attempt {
        self.post(id, serde_json::to_vec(event).unwrap_or_default()).await
    }

    /// One signed post of `body` under `id`, signed at this moment.
    async fn post(&self, id: &str, body: Vec<u8>) -> Attempt {
        let timestamp = schemas::Timestamp::now().millis() / 1000;
        let signature = self.settings.secret.sign(id, timestamp, &body);
        let request = http::Request::post(self.settings.url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let request = match request {
            Ok(request) => request,
            Err(error) => {
                return Attempt::Failed { reason: error.to_string(), retry_after: None };
            }
        };
        match self.client.send(request).await {
            Ok(answer) if answer.status.is_success() => Attempt::Accepted,
            Ok(answer) => Attempt::Failed {
                reason: format!("answered {}", answer.status),
                retry_after: retry_after(&answer.headers),
            },
            Err(reason) => Attempt::Failed { reason, retry_after: None },
        }
    }

    /// Posts `event` under `id` until the receiver takes it (2xx) or the retry window
    /// ends; then parks it. Returns once it is taken or durably parked.
    pub(crate) async fn deliver(&self, id: &str, event: &WebhookEvent) -> Delivered {
        let body = serde_json::to_vec(event).unwrap_or_default();
        let mut backoff = Backoff::within(self.settings.retry_for);
        loop {
            let (reason, asked) = match self.post(id, body.clone()).await {
                Attempt::Accepted => {
                    metrics::webhook(&event.kind, "accepted");
                    return Delivered::Accepted;
                }
                Attempt::Failed { reason, retry_after } => (reason, retry_after),
            };
            tracing::debug!(id, reason, "webhook not taken; retrying");
            metrics::webhook(&event.kind, "retried");
            match backoff.wait(asked) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => {
                    self.park(id, event, &reason).await;
                    return Delivered::Parked;
                }
            }
        }
    }

    async fn park(&self, id: &str, event: &WebhookEvent, reason: &str) {
        metrics::webhook(&event.kind, "parked");
        tracing::warn!(
            id,
            event_type = event.kind,
            reason,
            "webhook parked after its retry window"
        );
        let Some(dead_letters) = &self.dead_letters else { return };
        let mut wait = Duration::from_millis(200);
        // The decision is not done until the event is parked: keep trying, the log is
        // ours and comes back.
        while let Err(error) = dead_letters.park(id, event, reason).await {
            tracing::warn!(error, id, "cannot park a webhook event yet; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }
}
