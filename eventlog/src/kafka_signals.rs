//! The signal bus on a Kafka topic: every node publishes to it and tails all of it.
//!
//! Signals are ephemeral, so the producer asks for one acknowledgement only and the topic
//! keeps records briefly (`chat migrate` creates it with a short retention). A subscriber
//! starts at the end: what was said before it listened is gone, by design. A record holds
//! one signal, or a [`SignalBatch`] (what `publish_all` writes): a projector batch's inbox
//! updates are one record, not two per message. Both shapes are published in AsyncAPI.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use schemas::signals::{Signal, SignalBatch};

use crate::kafka_config::{KafkaConfig, private_group, unavailable};
use crate::{LogError, SignalBus, SignalStream};

/// Signals carried in one record at most (records stay far below the broker's size limit).
const SIGNALS_PER_RECORD: usize = 500;

/// What one record holds: a signal, or a batch of them.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Carried {
    Batch(SignalBatch),
    One(Signal),
}

pub struct KafkaSignalBus {
    config: KafkaConfig,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaSignalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSignalBus").field("config", &self.config).finish_non_exhaustive()
    }
}

impl KafkaSignalBus {
    /// `config.topic` names the signals topic.
    pub fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        let producer: FutureProducer = config.signal_producer().create().map_err(unavailable)?;
        Ok(Self { config, producer })
    }
}

#[async_trait]
impl SignalBus for KafkaSignalBus {
    async fn publish(&self, signal: Signal) {
        let Ok(payload) = serde_json::to_vec(&signal) else {
            return;
        };
        self.send(&payload).await;
    }

    async fn publish_all(&self, signals: Vec<Signal>) {
        let mut signals = signals;
        while !signals.is_empty() {
            let rest = signals.split_off(signals.len().min(SIGNALS_PER_RECORD));
            let batch = SignalBatch { signals: std::mem::replace(&mut signals, rest) };
            if let Ok(payload) = serde_json::to_vec(&batch) {
                self.send(&payload).await;
            }
        }
    }

    async fn subscribe(&self) -> Result<Box<dyn SignalStream>, LogError> {
        let partitions = crate::kafka_topics::topic_partitions(&self.config).await?;
        let config = self.config.clone();
        let consumer = tokio::task::spawn_blocking(move || -> Result<StreamConsumer, LogError> {
            let consumer: StreamConsumer = config
                .consumer(&private_group(&config, "signals"))
                .create()
                .map_err(unavailable)?;
            // Explicit offsets, resolved now: "from here on" means from this call.
            let mut assignment = TopicPartitionList::new();
            for partition in 0..partitions as i32 {
                let (_, high) = consumer
                    .fetch_watermarks(&config.topic, partition, config.request_timeout)
                    .map_err(unavailable)?;
                assignment
                    .add_partition_offset(&config.topic, partition, Offset::Offset(high))
                    .map_err(unavailable)?;
            }
            consumer.assign(&assignment).map_err(unavailable)?;
            Ok(consumer)
        })
        .await
        .map_err(unavailable)??;
        Ok(Box::new(KafkaSignalStream { consumer, unread: VecDeque::new() }))
    }
}

impl KafkaSignalBus {
    async fn send(&self, payload: &[u8]) {
        let record: FutureRecord<'_, (), [u8]> =
            FutureRecord::to(&self.config.topic).payload(payload);
        if let Err((error, _)) =
            self.producer.send(record, Timeout::After(Duration::from_secs(1))).await
        {
            tracing::warn!(%error, "failed to publish a signal");
        }
    }
}

struct KafkaSignalStream {
    consumer: StreamConsumer,
    /// The rest of a batch already read.
    unread: VecDeque<Signal>,
}

#[async_trait]
impl SignalStream for KafkaSignalStream {
    async fn next(&mut self) -> Option<Signal> {
        loop {
            if let Some(signal) = self.unread.pop_front() {
                return Some(signal);
            }
            match self.consumer.recv().await {
                Ok(message) => {
                    let parsed = message.payload().map(serde_json::from_slice::<Carried>);
                    match parsed {
                        Some(Ok(Carried::One(signal))) => return Some(signal),
                        Some(Ok(Carried::Batch(batch))) => self.unread.extend(batch.signals),
                        Some(Err(error)) => {
                            tracing::debug!(%error, "skipping an unreadable signal")
                        }
                        None => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "signal consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
