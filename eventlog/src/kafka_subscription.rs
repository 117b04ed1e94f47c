//! A consumer of the log on Kafka: a member of a consumer group (committing only when
//! told to) or a tail of every partition from given offsets (never committing).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::kafka_config::unavailable;
use crate::kafka_records::record_from;
use schemas::Position;

use crate::{LogError, Record, Subscription};

pub(crate) struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    topic: String,
    group: bool,
    start: Vec<u64>,
    /// Records taken from the consumer but not yet returned. Kept here, not in the future,
    /// so that dropping a `next_batch` future (a `select!` that picked another branch)
    /// loses nothing: the next call returns them.
    pending: Vec<Record>,
    /// Since when a group member has held no partition.
    unassigned_since: Option<std::time::Instant>,
}

/// A group member that holds no partition this long is given up and joins again.
/// librdkafka can hang in a rejoin after a session timeout with static membership
/// (confluentinc/librdkafka#3437: a coordinator killed while the member's session ran); a
/// fresh member under the same instance id is taken back at once. A member that is idle
/// because the group has more members than partitions merely joins again, without a
/// rebalance (static membership).
const UNASSIGNED_LIMIT: Duration = Duration::from_secs(30);

impl KafkaSubscription {
    /// A member of the group `consumer` has subscribed with.
    pub(crate) fn group(consumer: StreamConsumer, topic: &str) -> Self {
        Self {
            consumer: Arc::new(consumer),
            topic: topic.to_owned(),
            group: true,
            start: Vec::new(),
            pending: Vec::new(),
            unassigned_since: None,
        }
    }

    /// A tail of every partition, assigned at `start`.
    pub(crate) fn tail(consumer: StreamConsumer, topic: &str, start: Vec<u64>) -> Self {
        Self {
            consumer: Arc::new(consumer),
            topic: topic.to_owned(),
            group: false,
            start,
            pending: Vec::new(),
            unassigned_since: None,
        }
    }
}

impl KafkaSubscription {
    /// Gives the membership up after [`UNASSIGNED_LIMIT`] without a partition.
    fn check_assigned(&mut self) -> Result<(), LogError> {
        let assigned = self.consumer.assignment().map(|list| list.count() > 0).unwrap_or(false);
        if assigned {
            self.unassigned_since = None;
            return Ok(());
        }
        let since = *self.unassigned_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < UNASSIGNED_LIMIT {
            return Ok(());
        }
        self.unassigned_since = None;
        Err(LogError::SubscriptionLost(format!(
            "no partition assigned for {}s; joining the group again",
            UNASSIGNED_LIMIT.as_secs()
        )))
    }
}

/// Commit failures that mean "the partition moved to another member": the new owner will
/// process the records again, which the idempotent projections absorb.
fn lost_ownership(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::AssignmentLost
                | RDKafkaErrorCode::State
        )
    )
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, LogError> {
        if self.group && self.pending.is_empty() {
            self.check_assigned()?;
        }
        let max = max.max(1);
        let deadline = tokio::time::Instant::now() + wait;
        while self.pending.len() < max {
            // After the first record, only take what is already there.
            let until = if self.pending.is_empty() {
                deadline
            } else {
                tokio::time::Instant::now() + Duration::from_millis(2)
            };
            match tokio::time::timeout_at(until, self.consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    if self.pending.is_empty() {
                        return Err(LogError::SubscriptionLost(code.to_string()));
                    }
                    break;
                }
                Ok(Err(error)) => {
                    if self.pending.is_empty() {
                        return Err(unavailable(error));
                    }
                    break;
                }
                Ok(Ok(message)) => self.pending.extend(record_from(&message)),
            }
        }
        let rest = self.pending.split_off(self.pending.len().min(max));
        Ok(std::mem::replace(&mut self.pending, rest))
    }

    async fn commit(&mut self, through: &[Position]) -> Result<(), LogError> {
        if !self.group || through.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for position in through {
            offsets
                .add_partition_offset(
                    &self.topic,
                    position.partition as i32,
                    Offset::Offset(position.offset as i64 + 1),
                )
                .map_err(unavailable)?;
        }
        let consumer = Arc::clone(&self.consumer);
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
                .await
                .map_err(unavailable)?;
        match committed {
            Ok(()) => Ok(()),
            Err(error) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) => {
                Err(LogError::SubscriptionLost(error.to_string()))
            }
            Err(error) if lost_ownership(&error) => {
                tracing::info!(%error, "offsets not committed: partitions were reassigned");
                Ok(())
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    fn start_offsets(&self) -> Vec<u64> {
        self.start.clone()
    }
}
