//! The log on Apache Kafka (or any Kafka-protocol broker), through rdkafka.
//!
//! One topic holds the events; its partition count is the log's. Appends go to an explicit
//! partition (`ConversationId::partition`, the same function the embedded log uses) with
//! the conversation id as the key, through an idempotent producer with `acks=all`, and
//! are acknowledged only once every in-sync replica has them. Group subscriptions commit
//! offsets only when told to; tails assign every partition at its end under a throwaway
//! group id and never commit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use schemas::{ConversationId, Position};

pub use crate::kafka_config::KafkaConfig;
use crate::kafka_config::{private_group, unavailable};
use crate::kafka_records::{owned_headers, position_of, record_from};
use crate::kafka_subscription::KafkaSubscription;
use crate::kafka_topics::topic_partitions;
pub use crate::kafka_topics::{TopicSpec, broker_count, ensure_topic, reach};
use crate::{
    EventLog, Header, LogError, NewRecord, Record, SubscribeSpec, Subscription, WriterAssignment,
};

struct Shared {
    config: KafkaConfig,
    partitions: u32,
    producer: FutureProducer,
    /// For watermarks; never subscribes or commits. Replaced when it fails: a client whose
    /// cached leader died was seen to keep timing out after the partition had a new one.
    metadata: parking_lot::Mutex<Arc<BaseConsumer>>,
}

impl Shared {
    /// The next offset `partition` will assign, from its leader.
    fn high_watermark(&self, partition: u32) -> Result<u64, LogError> {
        let ask = |client: &BaseConsumer| {
            client
                .fetch_watermarks(&self.config.topic, partition as i32, self.config.request_timeout)
                .map(|(_, high)| u64::try_from(high).unwrap_or(0))
        };
        let client = Arc::clone(&self.metadata.lock());
        match ask(&client) {
            Ok(high) => Ok(high),
            Err(error) => {
                tracing::debug!(%error, partition, "watermark request failed; with a new client");
                let fresh: Arc<BaseConsumer> =
                    Arc::new(self.config.client().create().map_err(unavailable)?);
                *self.metadata.lock() = Arc::clone(&fresh);
                ask(&fresh).map_err(unavailable)
            }
        }
    }
}

/// The log on a Kafka cluster.
#[derive(Clone)]
pub struct KafkaEventLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KafkaEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaEventLog").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl KafkaEventLog {
    /// Connects and reads the topic's partition count. The topic must exist.
    pub async fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        let partitions = topic_partitions(&config).await?;
        if partitions > schemas::ids::MAX_PARTITIONS {
            return Err(LogError::Config(format!(
                "topic {} has {partitions} partitions; at most {} are supported",
                config.topic,
                schemas::ids::MAX_PARTITIONS
            )));
        }
        let producer: FutureProducer = config.producer().create().map_err(unavailable)?;
        let metadata: BaseConsumer = config.client().create().map_err(unavailable)?;
        let metadata = parking_lot::Mutex::new(Arc::new(metadata));
        Ok(Self { shared: Arc::new(Shared { config, partitions, producer, metadata }) })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.shared.config
    }
}

fn watermarks(shared: &Shared) -> Result<Vec<u64>, LogError> {
    (0..shared.partitions).map(|partition| shared.high_watermark(partition)).collect()
}

#[async_trait]
impl EventLog for KafkaEventLog {
    fn partitions(&self) -> u32 {
        self.shared.partitions
    }

    fn destination(&self) -> crate::Destination<'_> {
        crate::Destination { system: "kafka", name: &self.shared.config.topic }
    }

    /// The producer's `delivery.timeout.ms`.
    fn delivery_timeout(&self) -> Duration {
        self.shared.config.append_timeout
    }

    async fn append(
        &self,
        key: ConversationId,
        value: Vec<u8>,
        headers: Vec<Header>,
    ) -> Result<Position, LogError> {
        let partition = key.partition(self.shared.partitions);
        let key_text = key.to_string();
        let record = FutureRecord::to(&self.shared.config.topic)
            .partition(partition as i32)
            .key(&key_text)
            .payload(&value)
            .headers(owned_headers(&headers));
        let timeout = Timeout::After(self.shared.config.append_timeout);
        match self.shared.producer.send(record, timeout).await {
            Ok(delivery) => position_of(&delivery),
            Err((error, _)) => Err(unavailable(error)),
        }
    }

    async fn append_batch(&self, records: Vec<NewRecord>) -> Vec<Result<Position, LogError>> {
        let shared = &self.shared;
        // Each record is handed to the producer before the next, so the producer (idempotent,
        // in order per partition) writes them in this order.
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            let partition = record.key.partition(shared.partitions);
            let key_text = record.key.to_string();
            let mut outgoing = FutureRecord::to(&shared.config.topic)
                .partition(partition as i32)
                .key(&key_text)
                .payload(&record.value)
                .headers(owned_headers(&record.headers));
            let deadline = tokio::time::Instant::now() + shared.config.append_timeout;
            let delivery = loop {
                match shared.producer.send_result(outgoing) {
                    Ok(delivery) => break Ok(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if tokio::time::Instant::now() < deadline =>
                    {
                        outgoing = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => break Err(unavailable(error)),
                }
            };
            deliveries.push(delivery);
        }
        let mut results = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            results.push(match delivery {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(delivered)) => position_of(&delivered),
                    Ok(Err((error, _))) => Err(unavailable(error)),
                    Err(_canceled) => Err(LogError::Closed),
                },
                Err(error) => Err(error),
            });
        }
        results
    }

    async fn end_offsets(&self) -> Result<Vec<u64>, LogError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || watermarks(&shared)).await.map_err(unavailable)?
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        if partition >= self.shared.partitions {
            return Err(LogError::Config(format!("no partition {partition}")));
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.high_watermark(partition))
            .await
            .map_err(unavailable)?
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        if partition >= self.shared.partitions {
            return Err(LogError::Config(format!("no partition {partition}")));
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || read_range(&shared, partition, from, max))
            .await
            .map_err(unavailable)?
    }

    async fn writer_assignment(&self, group: &str) -> Result<Box<dyn WriterAssignment>, LogError> {
        let consumer = self.shared.config.consumer(group);
        let topic = self.shared.config.topic.clone();
        tokio::task::spawn_blocking(move || -> Result<Box<dyn WriterAssignment>, LogError> {
            Ok(Box::new(crate::kafka_writers::join(consumer, &topic)?))
        })
        .await
        .map_err(unavailable)?
    }

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Box<dyn Subscription>, LogError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || -> Result<Box<dyn Subscription>, LogError> {
            let config = &shared.config;
            match spec {
                SubscribeSpec::Group(group) => {
                    let mut client = config.consumer(&group);
                    if let Some(instance) = &config.group_instance {
                        client.set("group.instance.id", instance);
                    }
                    let consumer: StreamConsumer = client.create().map_err(unavailable)?;
                    consumer.subscribe(&[&config.topic]).map_err(unavailable)?;
                    Ok(Box::new(KafkaSubscription::group(consumer, &config.topic)))
                }
                SubscribeSpec::Tail => tail(&shared, watermarks(&shared)?),
                SubscribeSpec::TailFrom(start) if start.len() == shared.partitions as usize => {
                    tail(&shared, start)
                }
                SubscribeSpec::TailFrom(_) => {
                    Err(LogError::Config(format!("a tail needs {} offsets", shared.partitions)))
                }
            }
        })
        .await
        .map_err(unavailable)?
    }
}

/// A subscription that reads every partition from `start` under a private group id.
fn tail(shared: &Shared, start: Vec<u64>) -> Result<Box<dyn Subscription>, LogError> {
    let config = &shared.config;
    let consumer: StreamConsumer =
        config.consumer(&private_group(config, "tail")).create().map_err(unavailable)?;
    let mut assignment = TopicPartitionList::new();
    for (partition, offset) in start.iter().enumerate() {
        assignment
            .add_partition_offset(&config.topic, partition as i32, Offset::Offset(*offset as i64))
            .map_err(unavailable)?;
    }
    consumer.assign(&assignment).map_err(unavailable)?;
    Ok(Box::new(KafkaSubscription::tail(consumer, &config.topic, start)))
}

/// Reads `[from, from + max)` of one partition with a short-lived assigned consumer.
fn read_range(
    shared: &Shared,
    partition: u32,
    from: u64,
    max: usize,
) -> Result<Vec<Record>, LogError> {
    let config = &shared.config;
    let end = shared.high_watermark(partition)?.min(from.saturating_add(max as u64));
    if from >= end {
        return Ok(Vec::new());
    }
    let consumer: BaseConsumer =
        config.consumer(&private_group(config, "reader")).create().map_err(unavailable)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&config.topic, partition as i32, Offset::Offset(from as i64))
        .map_err(unavailable)?;
    consumer.assign(&assignment).map_err(unavailable)?;
    let deadline = std::time::Instant::now() + config.request_timeout;
    let mut records = Vec::new();
    let mut next = from;
    while next < end {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        if remaining.is_zero() {
            return Err(LogError::Unavailable(format!("reading partition {partition} timed out")));
        }
        match consumer.poll(remaining.min(Duration::from_millis(200))) {
            None => {}
            Some(Err(error)) => return Err(unavailable(error)),
            Some(Ok(message)) => {
                next = u64::try_from(message.offset()).unwrap_or(next) + 1;
                records.extend(record_from(&message));
            }
        }
    }
    Ok(records)
}
