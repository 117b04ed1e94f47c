//! The backend suite against a real Kafka broker (`infra/local/up`). Compiled with
//! `--features kafka-tests`; then `CHAT_KAFKA_BROKERS` must name the cluster, and a missing
//! broker fails the tests rather than skipping them.

#![cfg(feature = "kafka-tests")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use eventlog::kafka::{KafkaConfig, KafkaEventLog, TopicSpec, ensure_topic};
use eventlog::kafka_signals::KafkaSignalBus;
mod suite;

use eventlog::{EventLog, SignalBus};
use schemas::signals::Signal;
use schemas::{ConversationId, Timestamp, UserId};

fn brokers() -> String {
    std::env::var("CHAT_KAFKA_BROKERS")
        .expect("CHAT_KAFKA_BROKERS must name the Kafka cluster (start one with infra/local/up)")
}

fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let sequence = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("test-{prefix}-{nanos}-{sequence}")
}

async fn fresh_log(prefix: &str) -> KafkaEventLog {
    let config = KafkaConfig::new(brokers(), unique(prefix)).with_env_security().unwrap();
    let spec = TopicSpec { partitions: 4, replication_factor: 1, retention: None };
    assert!(ensure_topic(&config, spec).await.unwrap(), "the topic should be new");
    assert!(!ensure_topic(&config, spec).await.unwrap(), "ensure_topic must be idempotent");
    let cluster_size = eventlog::kafka::broker_count(&config).await.unwrap();
    let too_wide = TopicSpec { replication_factor: cluster_size as u32 + 1, ..spec };
    let refused = ensure_topic(
        &KafkaConfig::new(brokers(), unique(prefix)).with_env_security().unwrap(),
        too_wide,
    )
    .await;
    match refused {
        Err(eventlog::LogError::Config(reason)) => {
            assert!(reason.contains(&format!("has {cluster_size}")), "unclear refusal: {reason}")
        }
        other => panic!("a replication factor above the broker count must be refused: {other:?}"),
    }
    let wrong = TopicSpec { partitions: 8, ..spec };
    assert!(
        ensure_topic(&config, wrong).await.is_err(),
        "a partition count change must be refused"
    );
    KafkaEventLog::connect(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn appends_are_dense_ordered_and_readable() {
    suite::appends_are_dense_ordered_and_readable(&fresh_log("dense").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_land_in_order() {
    suite::batches_land_in_order(&fresh_log("batch").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_to_one_key_are_totally_ordered() {
    suite::concurrent_appends_to_one_key_are_totally_ordered(&fresh_log("order").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_resume_after_their_last_commit() {
    let group = unique("group");
    suite::groups_resume_after_their_last_commit(&fresh_log("groups").await, &group).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tails_start_at_the_end_and_wake_on_appends() {
    suite::tails_start_at_the_end_and_wake_on_appends(&fresh_log("tail").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_is_a_clear_error() {
    let mut config = KafkaConfig::new(brokers(), unique("missing")).with_env_security().unwrap();
    config.request_timeout = Duration::from_secs(2);
    let error = KafkaEventLog::connect(config).await.unwrap_err();
    assert!(error.to_string().contains("chat migrate"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_reach_every_subscriber() {
    let config = KafkaConfig::new(brokers(), unique("signals")).with_env_security().unwrap();
    let spec = TopicSpec {
        partitions: 2,
        replication_factor: 1,
        retention: Some(Duration::from_secs(60)),
    };
    ensure_topic(&config, spec).await.unwrap();
    let bus = KafkaSignalBus::connect(config).unwrap();
    let mut first = bus.subscribe().await.unwrap();
    let mut second = bus.subscribe().await.unwrap();
    let signal = Signal::Typing {
        conversation_id: ConversationId::new(5).unwrap(),
        user_id: UserId::new("carla").unwrap(),
        is_typing: true,
        at: Timestamp::now(),
    };
    // Subscribers hear what is published after `subscribe` returned: one publish suffices,
    // but keep publishing so a failure shows as a timeout rather than a hang.
    let publisher = {
        let signal = signal.clone();
        let bus = std::sync::Arc::new(bus);
        tokio::spawn(async move {
            for _ in 0..100 {
                bus.publish(signal.clone()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        (first.next().await, second.next().await)
    })
    .await
    .unwrap();
    publisher.abort();
    assert_eq!(heard, (Some(signal.clone()), Some(signal)));
}

/// Waits until `assignment` holds `want` partitions, returning them.
async fn settle(assignment: &mut dyn eventlog::WriterAssignment, want: usize) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut current = assignment.current();
    while current.len() != want {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, assignment.changed()).await {
            Ok(changed) => current = changed.unwrap(),
            Err(_) => panic!("writer assignment stayed at {current:?}, wanted {want} partitions"),
        }
    }
    current
}

/// A writer group shares the partitions out: one member gets all four, two members split
/// them without overlap, and when one leaves the other gets them all back.
#[tokio::test(flavor = "multi_thread")]
async fn writer_groups_share_partitions() {
    let log = fresh_log("writers").await;
    let group = unique("writers");
    let mut first = log.writer_assignment(&group).await.unwrap();
    assert_eq!(settle(first.as_mut(), 4).await, vec![0, 1, 2, 3]);
    let mut second = log.writer_assignment(&group).await.unwrap();
    let theirs = settle(second.as_mut(), 2).await;
    let ours = settle(first.as_mut(), 2).await;
    let mut together: Vec<u32> = ours.iter().chain(&theirs).copied().collect();
    together.sort_unstable();
    assert_eq!(together, vec![0, 1, 2, 3], "{ours:?} and {theirs:?} must split the partitions");
    drop(second);
    assert_eq!(settle(first.as_mut(), 4).await, vec![0, 1, 2, 3]);
}

/// A batch published at once arrives whole and in order, mixed with single signals.
#[tokio::test(flavor = "multi_thread")]
async fn signal_batches_arrive_in_order() {
    let config = KafkaConfig::new(brokers(), unique("batches")).with_env_security().unwrap();
    let spec = TopicSpec { partitions: 1, replication_factor: 1, retention: None };
    ensure_topic(&config, spec).await.unwrap();
    let bus = KafkaSignalBus::connect(config).unwrap();
    let mut stream = bus.subscribe().await.unwrap();
    let typing = |user: &str| Signal::Typing {
        conversation_id: ConversationId::new(9).unwrap(),
        user_id: UserId::new(user).unwrap(),
        is_typing: true,
        at: Timestamp::from_millis(1),
    };
    bus.publish_all(vec![typing("a"), typing("b"), typing("c")]).await;
    bus.publish(typing("d")).await;
    let mut heard = Vec::new();
    for _ in 0..4 {
        heard.push(tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap());
    }
    let expected: Vec<Option<Signal>> = ["a", "b", "c", "d"].map(|u| Some(typing(u))).into();
    assert_eq!(heard, expected);
}
