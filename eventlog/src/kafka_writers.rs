//! Writer groups on Kafka: a consumer group on the event topic whose members never fetch.
//!
//! Kafka's group protocol already does what a writer group needs: it shares the topic's
//! partitions among the live members (cooperative-sticky, so a rebalance moves only what it
//! must) and notices members that leave or die (the session timeout). Each member pauses
//! whatever it is assigned, so it reads nothing; a thread polls the consumer to keep the
//! membership alive and publishes every new assignment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use tokio::sync::watch;

use crate::kafka_config::unavailable;
use crate::{LogError, WriterAssignment};

struct WriterContext {
    topic: String,
    assignment: watch::Sender<Vec<u32>>,
}

impl ClientContext for WriterContext {}

impl ConsumerContext for WriterContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Error(error) = rebalance {
            tracing::warn!(%error, "writer group rebalance failed");
        }
        let Ok(assigned) = consumer.assignment() else {
            return;
        };
        if let Err(error) = consumer.pause(&assigned) {
            tracing::debug!(%error, "cannot pause the writer group's partitions");
        }
        let mut partitions: Vec<u32> = assigned
            .elements_for_topic(&self.topic)
            .iter()
            .filter_map(|element| u32::try_from(element.partition()).ok())
            .collect();
        partitions.sort_unstable();
        self.assignment.send_if_modified(|current| {
            let changed = *current != partitions;
            *current = partitions;
            changed
        });
    }
}

/// Joins the group `consumer` names on `topic` and keeps the membership alive until dropped.
pub(crate) fn join(
    mut consumer: ClientConfig,
    topic: &str,
) -> Result<KafkaWriterAssignment, LogError> {
    let (sender, receiver) = watch::channel(Vec::new());
    let context = WriterContext { topic: topic.to_owned(), assignment: sender };
    let consumer: BaseConsumer<WriterContext> = consumer
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", "latest")
        .create_with_context(context)
        .map_err(unavailable)?;
    consumer.subscribe(&[topic]).map_err(unavailable)?;
    let stop = Arc::new(AtomicBool::new(false));
    let polling = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("writer-group".into())
        .spawn(move || {
            while !polling.load(Ordering::Acquire) {
                // Paused partitions deliver nothing; polling serves the group protocol.
                let _ = consumer.poll(Duration::from_millis(100));
            }
            // Dropping the consumer leaves the group, so the others rebalance at once.
        })
        .map_err(unavailable)?;
    Ok(KafkaWriterAssignment { receiver, stop })
}

pub(crate) struct KafkaWriterAssignment {
    receiver: watch::Receiver<Vec<u32>>,
    stop: Arc<AtomicBool>,
}

impl Drop for KafkaWriterAssignment {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[async_trait]
impl WriterAssignment for KafkaWriterAssignment {
    fn current(&self) -> Vec<u32> {
        self.receiver.borrow().clone()
    }

    async fn changed(&mut self) -> Result<Vec<u32>, LogError> {
        self.receiver.changed().await.map_err(|_| LogError::Closed)?;
        Ok(self.receiver.borrow_and_update().clone())
    }
}
