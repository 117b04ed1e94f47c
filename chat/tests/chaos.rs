//! Chaos on the cluster: during a storm of keyed sends, with every conversation watched by a
//! client that reconnects and resumes whenever its socket breaks, the faults come one after
//! another: `kill -9` of an ingest node, of a fanout node, of the projector, of a Kafka
//! broker (of three), and of Cassandra, each started again. Afterwards every acknowledged
//! send is in history exactly once and in order under the id it was acknowledged with,
//! every watcher saw exactly that sequence, and the projections equal a replay of the log.
//! Loopback only, bounded in time; the killed services are started again, pass or fail.

#![cfg(feature = "cluster-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Role, Seen, Server, Shape, token};

const CONVERSATIONS: usize = 6;

fn infra(arguments: &[&str]) {
    let up = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/local/up");
    let status = std::process::Command::new(up).args(arguments).status();
    assert!(
        matches!(status, Ok(status) if status.success()),
        "infra/local/up {arguments:?} failed"
    );
}

fn kill_from_pid_file(relative: &str) {
    let state = std::env::var("CHAT_INFRA_STATE").unwrap_or_else(|_| "/tmp/chat-infra".into());
    let path = PathBuf::from(state).join(relative);
    let pid = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let killed = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success(), "kill -9 {} failed", path.display());
}

/// Starts the local Kafka brokers and Cassandra again when dropped (a no-op for those
/// still running), so a failed test leaves the cluster whole for the next one.
struct Revive;

impl Drop for Revive {
    fn drop(&mut self) {
        infra(&["--brokers", "3"]);
    }
}

/// A client with an outbox: sends keyed messages in order, each retried with its key (at
/// the next ingest node) until acknowledged, until `stop`; returns (key, id) in order.
async fn sender(
    http: reqwest::Client,
    bases: Vec<String>,
    conversation: u64,
    name: String,
    stop: Arc<AtomicBool>,
) -> Vec<(String, u64)> {
    let mut acked = Vec::new();
    let mut node = 0;
    for m in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("{name}-{m}");
        let body = json!({"text": key, "idempotency_key": key});
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let url = format!("{}/v1/conversations/{conversation}/messages", bases[node]);
            let sent = http.post(url).bearer_auth(token("carla")).json(&body).send().await;
            if let Ok(response) = sent {
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                if status == 200 || status == 201 {
                    acked.push((key.clone(), answer["id"].as_u64().unwrap()));
                    break;
                }
                assert_eq!(status, 503, "send {key} refused: {answer}");
            }
            assert!(Instant::now() < deadline, "send {key} was never acknowledged");
            node = (node + 1) % bases.len();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acked
}

/// A watcher on the seed protocol that reconnects (to the other fanout node) with `since`
/// whenever its socket ends, until it has seen `last`. Returns every id it received.
async fn watcher(
    sockets: Vec<String>,
    conversation: u64,
    last: tokio::sync::watch::Receiver<Option<u64>>,
) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    let mut node = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let since = seen.last().copied().unwrap_or(0);
        let url = format!(
            "{}/ws/chat/{conversation}/?token={}&since={since}",
            sockets[node],
            token("wei")
        );
        node = (node + 1) % sockets.len();
        let Some(mut client) = Client::try_connect(&url).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            if let Some(last) = *last.borrow()
                && seen.last() == Some(&last)
            {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "conversation {conversation}: saw {} ids",
                seen.len()
            );
            match client.next(Duration::from_secs(1)).await {
                Seen::Frame(frame) if frame["type"] == "message" => {
                    seen.push(frame["message"]["id"].as_u64().unwrap());
                }
                Seen::Frame(_) => {}
                Seen::Closed(0, _) => {}
                Seen::Closed(..) => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_send_survives_killed_roles_a_broker_and_cassandra_once_and_in_order() {
    let _revive = Revive;
    let mut server = Server::start_shaped(Shape {
        ingests: 2,
        fanouts: 2,
        replication_factor: 3,
        ..Shape::default()
    });
    let mut conversations = Vec::new();
    for n in 0..CONVERSATIONS {
        conversations
            .push(server.open_conversation(&format!("job-chaos-{n}"), "carla", "wei").await);
    }
    let bases: Vec<String> = (0..2).map(|node| server.url_on(node, "")).collect();
    let sockets: Vec<String> = (0..2).map(|node| server.ws_url_on(node, "")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    let mut watchers = Vec::new();
    let mut lasts = Vec::new();
    for (n, conversation) in conversations.iter().copied().enumerate() {
        let (last_tx, last_rx) = tokio::sync::watch::channel(None);
        lasts.push(last_tx);
        watchers.push(tokio::spawn(watcher(sockets.clone(), conversation, last_rx)));
        let (http, bases, stop) = (server.http.clone(), bases.clone(), Arc::clone(&stop));
        senders.push(tokio::spawn(sender(http, bases, conversation, format!("c{n}"), stop)));
    }

    let pause = || tokio::time::sleep(Duration::from_millis(1500));
    pause().await;
    server.kill_one(Role::Ingest, 0);
    pause().await;
    tokio::task::block_in_place(|| server.restart_role(Role::Ingest));
    pause().await;
    server.kill_one(Role::Fanout, 1);
    pause().await;
    tokio::task::block_in_place(|| server.restart_role(Role::Fanout));
    pause().await;
    tokio::task::block_in_place(|| server.crash_and_restart_role(Role::Projector));
    pause().await;
    kill_from_pid_file("kafka/n2/pid");
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| infra(&["--brokers", "3", "--no-cassandra"]));
    pause().await;
    // The local node keeps schema changes in memory only (`cassandra.unsafesystem`, for
    // fast DDL in tests; see infra/local/README.md), so a crash would lose this test's
    // keyspace as no production node would. Make the schema durable, then crash it: the
    // tables' own writes are in the commit log, which a killed process leaves behind.
    let flushed =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/local/nodetool"))
            .args(["flush", "system_schema"])
            .status()
            .unwrap();
    assert!(flushed.success(), "nodetool flush failed");
    kill_from_pid_file("cassandra/pid");
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| infra(&["--no-kafka"]));
    pause().await;
    assert!(
        senders.iter().all(|sender| !sender.is_finished()),
        "the storm ended before the faults"
    );
    stop.store(true, Ordering::Relaxed);

    let mut acked = Vec::new();
    for sender in senders {
        acked.push(sender.await.unwrap());
    }
    for (last, sent) in lasts.iter().zip(&acked) {
        last.send(sent.last().map(|(_, id)| *id)).unwrap();
    }
    let mut watched = Vec::new();
    for watcher in watchers {
        watched.push(watcher.await.unwrap());
    }
    for (conversation, sent) in conversations.iter().zip(&acked) {
        let final_id = sent.last().unwrap().1;
        server
            .inbox_item_when("carla", *conversation, |item| item["last_message_id"] == final_id)
            .await;
    }
    let replay = server.command("replay").output().unwrap();
    let report = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "chat replay failed: {report}");
    assert!(report.contains(" 0 different"), "{report}");
    for ((conversation, sent), seen) in conversations.iter().zip(&acked).zip(&watched) {
        let final_id = sent.last().unwrap().1;
        server
            .inbox_item_when("carla", *conversation, |item| item["last_message_id"] == final_id)
            .await;
        let history = server.history("carla", *conversation).await;
        let texts: Vec<&str> = history.iter().map(|m| m["text"].as_str().unwrap()).collect();
        let keys: Vec<&str> = sent.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            texts, keys,
            "conversation {conversation}: every acknowledged send once, in order"
        );
        let ids: Vec<u64> = history.iter().map(|m| m["id"].as_u64().unwrap()).collect();
        let answered: Vec<u64> = sent.iter().map(|(_, id)| *id).collect();
        assert_eq!(
            ids, answered,
            "conversation {conversation}: history holds the acknowledged ids"
        );
        assert_eq!(seen, &ids, "conversation {conversation}: the watcher's sequence after resumes");
    }
    let sends: usize = acked.iter().map(Vec::len).sum();
    println!("chaos: {sends} sends acknowledged across 5 faults, 0 lost, 0 duplicated");
}
