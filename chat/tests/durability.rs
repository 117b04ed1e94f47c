//! `kill -9` of `chat dev`: nothing acknowledged is lost, nothing is counted twice.

#![allow(clippy::unwrap_used)]

use testkit as support;

use serde_json::{Value, json};
use support::{Server, token};

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_messages_and_reads_survive_kill_9() {
    let mut server = Server::start();
    let conversation = server.open_conversation("job-durable", "carla", "wei").await;
    let mut from_wei = Vec::new();
    for index in 0..30 {
        from_wei.push(server.send("wei", conversation, &format!("w{index}")).await);
    }
    let last = server.send("carla", conversation, "c").await;
    let path = format!("/v1/conversations/{conversation}/read");
    let (status, _) = server.post("carla", &path, json!({"up_to": from_wei[19]})).await;
    assert_eq!(status, 200);
    // Crash right after the last acknowledgement, before the projector can be sure to
    // have caught up.
    server.crash_and_restart();

    // The projections catch up from the log after the restart.
    server.inbox_item_when("wei", conversation, |item| item["last_message_id"] == last).await;
    let history = server.history("wei", conversation).await;
    let history_ids: Vec<u64> = history.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(history_ids[..30], from_wei[..]);
    assert_eq!(history.len(), 31);
    let item = server
        .inbox_item_when("carla", conversation, |item| item["last_read_id"] == from_wei[19])
        .await;
    assert_eq!(item["unread_count"], 10);
    let next = server.send("wei", conversation, "after the crash").await;
    assert!(next > *from_wei.last().unwrap());
    let item =
        server.inbox_item_when("carla", conversation, |item| item["last_message_id"] == next).await;
    assert_eq!(item["unread_count"], 11);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_concurrent_sends_keeps_every_acknowledged_one_once() {
    let mut server = Server::start();
    let conversation = server.open_conversation("job-crash-storm", "carla", "wei").await;
    let url = server.url(&format!("/v1/conversations/{conversation}/messages"));
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (http, url) = (server.http.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for index in 0..200 {
                let body = json!({"text": format!("{worker}-{index}"), "idempotency_key": format!("{worker}-{index}")});
                let Ok(response) = http.post(&url).bearer_auth(token("wei")).json(&body).send().await else {
                    break;
                };
                if response.status() != 201 {
                    break;
                }
                acknowledged.push(response.json::<Value>().await.unwrap()["id"].as_u64().unwrap());
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    server.kill9();
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "nothing was acknowledged before the crash");
    server.crash_and_restart();

    let marker = server.send("wei", conversation, "marker").await;
    server.inbox_item_when("carla", conversation, |item| item["last_message_id"] == marker).await;
    let history = server.history("carla", conversation).await;
    let ids: Vec<u64> = history.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "history holds a message twice");
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "history is out of order");
    for id in &acknowledged {
        assert!(ids.contains(id), "acknowledged message {id} was lost");
    }
    let item = server
        .inbox_item_when("carla", conversation, |item| item["last_message_id"] == marker)
        .await;
    assert_eq!(
        item["unread_count"].as_u64().unwrap(),
        ids.len() as u64,
        "unread count differs from history"
    );
}
