//! The log's topic on Kafka: created by `chat migrate` with the replication and retention
//! asked for (refused when the cluster is too small), and checked when a role connects.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;

use crate::LogError;
use crate::kafka_config::{KafkaConfig, unavailable};
use crate::kafka_refusal::fetch_metadata;

/// How a topic is created by `chat migrate`.
#[derive(Debug, Clone, Copy)]
pub struct TopicSpec {
    pub partitions: u32,
    pub replication_factor: u32,
    /// `retention.ms`; `None` keeps records forever (the log is the source of truth).
    pub retention: Option<Duration>,
}

impl TopicSpec {
    /// In-sync replicas an `acks=all` write needs: a majority of the replicas, but never all
    /// of them, so one broker can be lost (or restarted) without stopping writes.
    pub fn min_insync_replicas(&self) -> u32 {
        let majority = self.replication_factor / 2 + 1;
        majority.min(self.replication_factor.saturating_sub(1)).max(1)
    }
}

/// How many brokers the cluster has.
pub async fn broker_count(config: &KafkaConfig) -> Result<usize, LogError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = fetch_metadata(&config, None, |_| true)?;
        Ok(metadata.brokers().len())
    })
    .await
    .map_err(unavailable)?
}

/// What `chat config check --connect` says of the cluster: the brokers reached, and the
/// topic's partitions if it exists.
pub async fn reach(config: &KafkaConfig) -> Result<String, LogError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = fetch_metadata(&config, Some(&config.topic), |_| true)?;
        let topic = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == config.topic && topic.error().is_none())
            .map(|topic| topic.partitions().len());
        let topic = match topic {
            Some(partitions) => format!("topic {} has {partitions} partitions", config.topic),
            None => format!("topic {} does not exist (run `chat migrate`)", config.topic),
        };
        Ok(format!(
            "{} broker(s) ({}); {topic}",
            metadata.brokers().len(),
            config.security.describe()
        ))
    })
    .await
    .map_err(unavailable)?
}

/// Creates `config.topic` if it does not exist; an existing topic must have
/// `spec.partitions` partitions. Returns whether it was created. A replication factor larger
/// than the cluster is refused before anything is created.
pub async fn ensure_topic(config: &KafkaConfig, spec: TopicSpec) -> Result<bool, LogError> {
    let brokers = broker_count(config).await?;
    if spec.replication_factor as usize > brokers {
        return Err(LogError::Config(format!(
            "replication factor {} needs at least {} brokers, but the cluster at {} has {brokers} \
             (a single-broker development cluster takes --replication-factor 1)",
            spec.replication_factor, spec.replication_factor, config.brokers
        )));
    }
    let admin: AdminClient<DefaultClientContext> = config.client().create().map_err(unavailable)?;
    let retention = spec.retention.map_or_else(|| "-1".to_owned(), |r| r.as_millis().to_string());
    let min_insync = spec.min_insync_replicas().to_string();
    let topic = NewTopic::new(
        &config.topic,
        spec.partitions as i32,
        TopicReplication::Fixed(spec.replication_factor as i32),
    )
    .set("retention.ms", &retention)
    .set("min.insync.replicas", &min_insync)
    .set("cleanup.policy", "delete");
    let options = AdminOptions::new().operation_timeout(Some(config.request_timeout));
    let results = admin.create_topics([&topic], &options).await.map_err(unavailable)?;
    let created = match results.into_iter().next() {
        Some(Ok(_)) => true,
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => false,
        Some(Err((name, code))) => {
            return Err(LogError::Config(format!("cannot create topic {name}: {code}")));
        }
        None => false,
    };
    let existing = topic_partitions(config).await?;
    if existing != spec.partitions {
        return Err(LogError::Config(format!(
            "topic {} has {existing} partitions, not {}; the partition count of a log cannot change",
            config.topic, spec.partitions
        )));
    }
    Ok(created)
}

/// The topic's partition count. A topic that was just created may take a moment to show
/// its partitions (leaders are being elected), so an incomplete answer is asked again until
/// `request_timeout`.
pub(crate) async fn topic_partitions(config: &KafkaConfig) -> Result<u32, LogError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let led = |metadata: &Metadata| {
            metadata
                .topics()
                .iter()
                .find(|topic| topic.name() == config.topic)
                .filter(|topic| topic.error().is_none() && !topic.partitions().is_empty())
                .filter(|topic| {
                    topic.partitions().iter().all(|p| p.error().is_none() && p.leader() >= 0)
                })
                .map(|topic| topic.partitions().len() as u32)
        };
        let metadata =
            fetch_metadata(&config, Some(&config.topic), |metadata| led(metadata).is_some())?;
        led(&metadata).ok_or_else(|| {
            LogError::Config(format!(
                "topic {} does not exist or has no leaders; run `chat migrate`",
                config.topic
            ))
        })
    })
    .await
    .map_err(unavailable)?
}

#[cfg(test)]
mod tests {
    use super::TopicSpec;

    #[test]
    fn a_majority_must_be_in_sync_but_never_every_replica() {
        let isr = |replication_factor| {
            TopicSpec { partitions: 1, replication_factor, retention: None }.min_insync_replicas()
        };
        assert_eq!([1, 2, 3, 4, 5].map(isr), [1, 1, 2, 3, 3]);
    }
}
