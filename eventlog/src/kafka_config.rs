//! How this process reaches the Kafka cluster: the one place its client settings are
//! made, and how a client's failure reads as a [`LogError`].

use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::LogError;

/// How to reach the cluster and which topic is the log.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port,host:port`.
    pub brokers: String,
    pub topic: String,
    /// Names this process in broker logs and metrics.
    pub client_id: String,
    /// An append not acknowledged by then fails (`delivery.timeout.ms`): after it, the
    /// record will never be written, which the idempotency protocol relies on.
    pub append_timeout: Duration,
    /// How long metadata and offset requests may take.
    pub request_timeout: Duration,
    /// A stable name for this group member (`group.instance.id`, static membership): a
    /// member restarted under the same name takes its partitions back at once instead of
    /// waiting for the old session to expire. One per replica, e.g. a pod name.
    pub group_instance: Option<String>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: topic.into(),
            client_id: "chat".into(),
            append_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            group_instance: None,
        }
    }

    pub(crate) fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("socket.keepalive.enable", "true");
        config
    }

    pub(crate) fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.client();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000");
        config
    }
}

/// A group id no other consumer uses, for consumers that never join a group.
pub(crate) fn private_group(config: &KafkaConfig, purpose: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sequence = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{purpose}-{}-{sequence}", config.client_id, std::process::id())
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}
