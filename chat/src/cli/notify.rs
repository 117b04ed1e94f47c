//! The flags of notifications: when a recipient counts as not having seen a message, how
//! pushes are signed and where they may go, and the jobs system's webhook.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use notifier::{PushSettings, WebhookSecret, WebhookSettings};
use webpush::{AllowedEndpoints, VapidKey};

/// The VAPID key `chat dev` makes in its data directory when none is given.
const DEV_VAPID_KEY_FILE: &str = "vapid-key.pem";
/// The VAPID contact of `chat dev` (push services want one; operators set theirs).
const DEV_VAPID_SUBJECT: &str = "mailto:chat-dev@localhost";

/// What the public API needs to register browsers (ingest, `chat dev`).
#[derive(Debug, Clone, Args)]
pub(crate) struct PushApiArgs {
    /// The VAPID private key (PEM, or the base64url scalar web-push tools print) that signs
    /// pushes. `chat dev` makes one in its data directory.
    #[arg(long, env = "CHAT_VAPID_KEY_FILE")]
    pub vapid_key_file: Option<PathBuf>,
    /// Origins push subscriptions may point at (comma-separated `scheme://host[:port]`, a
    /// host may start with `*.`); replaces the public browser push services. `http` only
    /// for loopback hosts.
    #[arg(long, env = "CHAT_PUSH_ALLOWED_ENDPOINTS", value_parser = AllowedEndpoints::parse)]
    pub push_allowed_endpoints: Option<AllowedEndpoints>,
}

/// The jobs system's webhook (the notifier, `chat dev`, `chat webhooks`).
#[derive(Debug, Clone, Args)]
pub(crate) struct WebhookArgs {
    /// Where the jobs system takes webhook events (Standard Webhooks); none are sent
    /// without it.
    #[arg(long, env = "CHAT_WEBHOOK_URL", value_parser = webhook_url)]
    pub webhook_url: Option<url::Url>,
    /// The webhook signing secret (`whsec_` and base64; a Secret mount).
    #[arg(long, env = "CHAT_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// How long a webhook event is retried before it is parked.
    #[arg(long, env = "CHAT_WEBHOOK_RETRY_FOR", default_value = "15m", value_parser = settings::duration)]
    pub webhook_retry_for: Duration,
}

/// Everything notifications take (the notifier, `chat dev`).
#[derive(Debug, Clone, Args)]
pub(crate) struct NotifyArgs {
    /// A recipient not connected who has not read a message this long after it was sent
    /// is notified (one notification per burst of messages).
    #[arg(long, env = "CHAT_NOTIFY_DELAY", default_value = "10s", value_parser = settings::duration)]
    pub notify_delay: Duration,
    /// The operator's contact in every push (`mailto:` or `https:`), as push services ask.
    #[arg(long, env = "CHAT_VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,
    /// How long a push service keeps a push for an offline device; a push answered 429 or
    /// 5xx is retried within it.
    #[arg(long, env = "CHAT_PUSH_TTL", default_value = "1h", value_parser = settings::duration)]
    pub push_ttl: Duration,
    #[command(flatten)]
    pub api: PushApiArgs,
    #[command(flatten)]
    pub webhook: WebhookArgs,
}

fn webhook_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|error| format!("{text:?}: {error}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("{text:?}: the webhook URL must be https (or http)"));
    }
    Ok(url)
}

impl PushApiArgs {
    /// The VAPID key: the file named, or (given a data directory) the one kept there,
    /// made on first use.
    pub(crate) fn vapid_key(&self, data_dir: Option<&Path>) -> anyhow::Result<Option<VapidKey>> {
        let path = match (&self.vapid_key_file, data_dir) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => {
                let path = dir.join(DEV_VAPID_KEY_FILE);
                if !path.exists() {
                    let pem = VapidKey::generate().to_pem().map_err(anyhow::Error::msg)?;
                    std::fs::write(&path, pem)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                path
            }
            (None, None) => return Ok(None),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("CHAT_VAPID_KEY_FILE: reading {}", path.display()))?;
        let key = VapidKey::parse(&text)
            .map_err(|error| anyhow::anyhow!("CHAT_VAPID_KEY_FILE {}: {error}", path.display()))?;
        Ok(Some(key))
    }

    pub(crate) fn allowed_endpoints(&self) -> AllowedEndpoints {
        self.push_allowed_endpoints.clone().unwrap_or_else(AllowedEndpoints::public_push_services)
    }

    /// What the push routes need, on `store`; `None` without a key.
    pub(crate) fn registry(
        &self,
        key: Option<&VapidKey>,
        store: Arc<dyn viewstore::PushSubscriptions>,
    ) -> Option<ingest::PushRegistry> {
        key.map(|key| ingest::PushRegistry {
            public_key: key.public_key().to_owned(),
            allowed: self.allowed_endpoints(),
            store,
        })
    }
}

impl NotifyArgs {
    /// How old an event may be and still be notified: the delay, then the push's TTL.
    pub(crate) fn horizon(&self) -> Duration {
        self.notify_delay + self.push_ttl
    }

    /// What pushes need, with `key`; `chat dev` has a contact of its own.
    pub(crate) fn push(&self, key: VapidKey, dev: bool) -> anyhow::Result<PushSettings> {
        let subject = match (&self.vapid_subject, dev) {
            (Some(subject), _) => subject.clone(),
            (None, true) => DEV_VAPID_SUBJECT.to_owned(),
            (None, false) => anyhow::bail!(
                "CHAT_VAPID_SUBJECT: set the operator's contact (mailto: or https:) for pushes"
            ),
        };
        if !subject.starts_with("mailto:") && !subject.starts_with("https:") {
            anyhow::bail!("CHAT_VAPID_SUBJECT: {subject:?} is neither mailto: nor https:");
        }
        Ok(PushSettings {
            key: Arc::new(key),
            subject,
            allowed: self.api.allowed_endpoints(),
            ttl: self.push_ttl,
        })
    }
}

impl WebhookArgs {
    pub(crate) fn settings(&self) -> anyhow::Result<Option<WebhookSettings>> {
        let Some(url) = &self.webhook_url else {
            if self.webhook_secret_file.is_some() {
                anyhow::bail!("CHAT_WEBHOOK_SECRET_FILE is set but CHAT_WEBHOOK_URL is not");
            }
            return Ok(None);
        };
        let Some(path) = &self.webhook_secret_file else {
            anyhow::bail!("CHAT_WEBHOOK_URL needs CHAT_WEBHOOK_SECRET_FILE (whsec_…) to sign with");
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("CHAT_WEBHOOK_SECRET_FILE: reading {}", path.display()))?;
        let secret = WebhookSecret::parse(&text).map_err(|error| {
            anyhow::anyhow!("CHAT_WEBHOOK_SECRET_FILE {}: {error}", path.display())
        })?;
        Ok(Some(WebhookSettings { url: url.clone(), secret, retry_for: self.webhook_retry_for }))
    }
}
