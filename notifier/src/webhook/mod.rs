//! Signed webhooks to the jobs system (Standard Webhooks): each event posted with its id,
//! the time and a signature, retried with backoff for a bounded time, then given up as
//! parked (logged and counted with its id and body, for an operator to redeliver).

mod signature;

use std::time::Duration;

use schemas::notify::WebhookEvent;
use url::Url;

pub use signature::WebhookSecret;

use crate::metrics;
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

#[derive(Debug)]
pub(crate) struct WebhookSender {
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl WebhookSender {
    pub(crate) fn new(settings: WebhookSettings, client: reqwest::Client) -> Self {
        Self { settings, client }
    }

    /// Posts `event` under `id` until the receiver takes it (2xx) or the retry window ends.
    pub(crate) async fn deliver(&self, id: &str, event: &WebhookEvent) -> Delivered {
        let body = serde_json::to_vec(event).unwrap_or_default();
        let mut backoff = Backoff::within(self.settings.retry_for);
        loop {
            let timestamp = schemas::Timestamp::now().millis() / 1000;
            let signature = self.settings.secret.sign(id, timestamp, &body);
            let answer = self
                .client
                .post(self.settings.url.clone())
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body.clone())
                .send()
                .await;
            let asked = match answer {
                Ok(response) if response.status().is_success() => {
                    metrics::webhook(&event.kind, "accepted");
                    return Delivered::Accepted;
                }
                Ok(response) => {
                    tracing::debug!(status = %response.status(), id, "webhook refused; retrying");
                    retry_after(response.headers())
                }
                Err(error) => {
                    tracing::debug!(%error, id, "webhook not delivered; retrying");
                    None
                }
            };
            metrics::webhook(&event.kind, "retried");
            let Some(wait) = backoff.wait(asked) else {
                metrics::webhook(&event.kind, "parked");
                tracing::error!(
                    id,
                    event_type = event.kind,
                    body = String::from_utf8_lossy(&body).as_ref(),
                    "webhook parked: the receiver did not take it within the retry window"
                );
                return Delivered::Parked;
            };
            tokio::time::sleep(wait).await;
        }
    }
}
