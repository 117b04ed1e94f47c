//! Kafka with three brokers and replication factor 3: losing the broker that leads the
//! conversation's partition in the middle of a send storm loses no acknowledged message and
//! duplicates none. Needs `infra/local/up --brokers 3` (which `scripts/test` starts); the
//! killed broker is started again before the test ends, pass or fail.

#![cfg(feature = "cluster-tests")]
#![allow(clippy::unwrap_used)]

use testkit as support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use support::{Server, Shape, token};

fn infra_state() -> PathBuf {
    PathBuf::from(std::env::var("CHAT_INFRA_STATE").unwrap_or_else(|_| "/tmp/chat-infra".into()))
}

/// The node id of the broker leading `partition` of `topic`.
fn leader(brokers: &str, topic: &str, partition: i32) -> i32 {
    let config = eventlog::kafka::KafkaConfig::new(brokers, topic).with_env_security().unwrap();
    let consumer: BaseConsumer = config.client().create().unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let topic = metadata.topics().iter().find(|t| t.name() == topic).unwrap();
    assert_eq!(
        metadata.brokers().len(),
        3,
        "this test needs three brokers (infra/local/up --brokers 3)"
    );
    let partition = topic.partitions().iter().find(|p| p.id() == partition).unwrap();
    assert_eq!(partition.replicas().len(), 3, "the topic must be replicated three times");
    partition.leader()
}

/// Starts every missing broker again when dropped.
struct Revive;

impl Drop for Revive {
    fn drop(&mut self) {
        let up = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/local/up");
        let status =
            std::process::Command::new(up).args(["--brokers", "3", "--no-cassandra"]).status();
        assert!(
            matches!(status, Ok(status) if status.success()),
            "could not restart the killed broker"
        );
    }
}

fn kill_broker(node: i32) -> Revive {
    let pid_file = infra_state().join(format!("kafka/n{node}/pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    let killed = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success(), "kill -9 of broker {node} failed");
    Revive
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_the_partition_leader_during_a_send_storm_loses_and_duplicates_nothing() {
    let server = Server::start_shaped(Shape { replication_factor: 3, ..Shape::default() });
    let conversation = server.open_conversation("job-broker-fault", "carla", "wei").await;
    let names = server.cluster.clone().unwrap();
    let partition = schemas::ConversationId::new(conversation).unwrap().partition(4) as i32;
    let victim = leader(&names.brokers, &names.topic, partition);

    let (senders, per_sender) = (4, 150);
    let url = server.url(&format!("/v1/conversations/{conversation}/messages"));
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let (http, url) = (server.http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = HashMap::new();
            for n in 0..per_sender {
                let key = format!("{sender}-{n}");
                let body = json!({"text": key, "idempotency_key": key});
                // A client retries with the same key until it gets an answer.
                for attempt in 0.. {
                    assert!(attempt < 120, "send {key} never succeeded");
                    let response =
                        http.post(&url).bearer_auth(token("wei")).json(&body).send().await;
                    if let Ok(response) = response
                        && response.status().is_success()
                    {
                        let id = response.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
                        acknowledged.insert(key.clone(), id);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(tasks.iter().all(|task| !task.is_finished()), "the broker must die mid-storm");
    let revive = kill_broker(victim);
    let mut acknowledged = HashMap::new();
    let storm = tokio::time::timeout(Duration::from_secs(180), async {
        for task in tasks {
            acknowledged.extend(task.await.unwrap());
        }
    });
    storm.await.expect("the send storm did not finish within three minutes");
    drop(revive);

    let marker = server.send("wei", conversation, "marker").await;
    server.inbox_item_when("carla", conversation, |item| item["last_message_id"] == marker).await;
    let history = server.history("carla", conversation).await;
    let mut texts: Vec<&str> = history.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(history.len(), senders * per_sender + 1, "history lost or repeated messages");
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), history.len(), "a message appears twice in history");
    let ids: Vec<u64> = history.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    for (key, id) in &acknowledged {
        assert!(ids.contains(id), "acknowledged message {key} ({id}) is not in history");
    }
    let item = server
        .inbox_item_when("carla", conversation, |item| item["last_message_id"] == marker)
        .await;
    assert_eq!(item["unread_count"].as_u64().unwrap(), history.len() as u64);
}
