//! How this process reaches the Kafka cluster: the one place its client settings are
//! made, and how a client's failure reads as a [`LogError`].

use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::LogError;
use crate::kafka_security::KafkaSecurity;

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
    /// How clients authenticate and encrypt, and the operator's further properties.
    pub security: KafkaSecurity,
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
            security: KafkaSecurity::default(),
        }
    }

    /// With the security the `CHAT_KAFKA_*` variables describe: for tools and tests that
    /// reach the cluster without the binary's command line.
    pub fn with_env_security(mut self) -> Result<Self, LogError> {
        self.security = crate::kafka_security::KafkaSecuritySettings::from_env().resolve()?;
        Ok(self)
    }

    /// What every client shares: where the cluster is and how to reach it securely.
    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("socket.keepalive.enable", "true");
        self.security.apply(&mut config);
        config
    }

    /// The operator's properties go last, so they tune ours; the ones that would change a
    /// guarantee were refused when the settings were read.
    fn with_options(&self, mut config: ClientConfig) -> ClientConfig {
        for (name, value) in &self.security.options {
            config.set(name, value);
        }
        config
    }

    /// A client for metadata, watermarks and administration; public for tools and tests
    /// that need an rdkafka client of their own, with this process's security applied.
    pub fn client(&self) -> ClientConfig {
        self.with_options(self.base())
    }

    /// Checks, without connecting, that librdkafka takes every setting (an operator's
    /// property it does not know, TLS asked of a build without it).
    pub fn check(&self) -> Result<(), LogError> {
        self.client()
            .create_native_config()
            .map(drop)
            .map_err(|error| LogError::Config(format!("CHAT_KAFKA_OPTIONS or security: {error}")))
    }

    /// The log's producer: idempotent, `acks=all`, giving up on a record exactly at the
    /// append timeout.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            // librdkafka waits on its sockets in whole milliseconds, so with 2 ms its broker
            // threads spun through the last one of every linger: 5 ms measured 92 against
            // 125 µs of CPU per record at 2,000/s (66 against 145 at 5,000/s), p99 16 against
            // 24 ms, for 3 ms more at the median when idle (BENCHMARKS.md).
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("delivery.timeout.ms", self.append_timeout.as_millis().to_string())
            .set("request.timeout.ms", self.request_timeout.as_millis().to_string());
        self.with_options(config)
    }

    /// A producer of signals: one acknowledgement, no linger, given up after 5 s (a late
    /// signal is worthless).
    pub(crate) fn signal_producer(&self) -> ClientConfig {
        let mut config = self.base();
        config.set("acks", "1").set("linger.ms", "0").set("message.timeout.ms", "5000");
        self.with_options(config)
    }

    pub(crate) fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000");
        self.with_options(config)
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
