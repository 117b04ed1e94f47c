//! A storm of keyed sends for the fault tests: per conversation, one client with an outbox
//! (every send retried with its key, at the next ingest node, until acknowledged) and one
//! watcher on the seed protocol that resumes with `since` whenever its socket ends. `finish`
//! stops the storm and checks the guarantees: every acknowledged send in history exactly
//! once, in order, under the id it was acknowledged with; every watcher saw exactly that
//! sequence; the projections equal a replay of the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Client, Role, Seen, Server, token};

/// How long one send may go unacknowledged, and a watcher may wait for its last id, before
/// the test fails instead of hanging.
const SEND_DEADLINE: Duration = Duration::from_secs(120);
const WATCH_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct Storm {
    conversations: Vec<u64>,
    stop: Arc<AtomicBool>,
    senders: Vec<JoinHandle<Vec<(String, u64)>>>,
    watchers: Vec<JoinHandle<Vec<u64>>>,
    lasts: Vec<watch::Sender<Option<u64>>>,
}

impl Storm {
    /// Opens `conversations` conversations (jobs named after `label`) and starts their
    /// senders and watchers against every ingest and fanout node of `server`.
    pub async fn start(server: &Server, label: &str, conversations: usize) -> Self {
        let mut ids = Vec::new();
        for n in 0..conversations {
            ids.push(server.open_conversation(&format!("job-{label}-{n}"), "carla", "wei").await);
        }
        let ingests = server.cluster.as_ref().map_or(1, |_| server.count(Role::Ingest));
        let fanouts = server.cluster.as_ref().map_or(1, |_| server.count(Role::Fanout));
        let bases: Vec<String> = (0..ingests).map(|node| server.url_on(node, "")).collect();
        let sockets: Vec<String> = (0..fanouts).map(|node| server.ws_url_on(node, "")).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut storm = Self {
            conversations: ids.clone(),
            stop: Arc::clone(&stop),
            senders: Vec::new(),
            watchers: Vec::new(),
            lasts: Vec::new(),
        };
        for (n, conversation) in ids.into_iter().enumerate() {
            let (last_tx, last_rx) = watch::channel(None);
            storm.lasts.push(last_tx);
            storm.watchers.push(tokio::spawn(watcher(sockets.clone(), conversation, last_rx)));
            let (http, bases, stop) = (server.http.clone(), bases.clone(), Arc::clone(&stop));
            let name = format!("{label}{n}");
            storm.senders.push(tokio::spawn(sender(http, bases, conversation, name, stop)));
        }
        storm
    }

    /// True while every sender is still sending (none failed or gave up).
    pub fn running(&self) -> bool {
        self.senders.iter().all(|sender| !sender.is_finished())
    }

    /// Stops the storm, waits for the projections and the watchers, and checks every
    /// guarantee; returns how many sends were acknowledged.
    pub async fn finish(self, server: &Server) -> usize {
        assert!(self.running(), "the storm ended before the faults did");
        self.stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for sender in self.senders {
            acked.push(sender.await.expect("a sender finishes"));
        }
        for (last, sent) in self.lasts.iter().zip(&acked) {
            last.send(sent.last().map(|(_, id)| *id)).expect("the watcher waits for its last id");
        }
        let mut watched = Vec::new();
        for watcher in self.watchers {
            watched.push(watcher.await.expect("a watcher finishes"));
        }
        for (conversation, sent) in self.conversations.iter().zip(&acked) {
            let final_id = sent.last().expect("at least one send was acknowledged").1;
            server
                .inbox_item_when("carla", *conversation, |item| item["last_message_id"] == final_id)
                .await;
        }
        let replay = server.command("replay").output().expect("chat replay runs");
        let report = String::from_utf8_lossy(&replay.stdout);
        assert!(replay.status.success(), "chat replay failed: {report}");
        assert!(report.contains(" 0 different"), "{report}");
        for ((conversation, sent), seen) in self.conversations.iter().zip(&acked).zip(&watched) {
            let history = server.history("carla", *conversation).await;
            let texts: Vec<&str> =
                history.iter().map(|m| m["text"].as_str().expect("messages have text")).collect();
            let keys: Vec<&str> = sent.iter().map(|(key, _)| key.as_str()).collect();
            assert_eq!(
                texts, keys,
                "conversation {conversation}: every acknowledged send once, in order"
            );
            let ids: Vec<u64> =
                history.iter().map(|m| m["id"].as_u64().expect("messages have ids")).collect();
            let answered: Vec<u64> = sent.iter().map(|(_, id)| *id).collect();
            assert_eq!(
                ids, answered,
                "conversation {conversation}: history holds the acknowledged ids"
            );
            assert_eq!(
                seen, &ids,
                "conversation {conversation}: the watcher's sequence after resumes"
            );
        }
        acked.iter().map(Vec::len).sum()
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
        let deadline = Instant::now() + SEND_DEADLINE;
        loop {
            let url = format!("{}/v1/conversations/{conversation}/messages", bases[node]);
            // A client gives up on an attempt it hears nothing back from, and retries.
            let attempt = http.post(url).bearer_auth(token("carla")).json(&body);
            let sent = attempt.timeout(Duration::from_secs(15)).send().await;
            if let Ok(response) = sent {
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                if status == 200 || status == 201 {
                    acked.push((
                        key.clone(),
                        answer["id"].as_u64().expect("an acknowledged send names its message"),
                    ));
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

/// A watcher on the seed protocol that reconnects (to the next fanout node) with `since`
/// whenever its socket ends, until it has seen `last`. Returns every id it received.
async fn watcher(
    sockets: Vec<String>,
    conversation: u64,
    last: watch::Receiver<Option<u64>>,
) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    let mut node = 0;
    let deadline = Instant::now() + WATCH_DEADLINE;
    loop {
        let since = seen.last().copied().unwrap_or(0);
        let url = format!(
            "{}/ws/chat/{conversation}/?token={}&since={since}",
            sockets[node],
            token("wei")
        );
        node = (node + 1) % sockets.len();
        let Some(mut client) = Client::try_connect(&url).await else {
            assert!(Instant::now() < deadline, "conversation {conversation}: no fanout answers");
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
                    seen.push(
                        frame["message"]["id"].as_u64().expect("a message frame names its message"),
                    );
                }
                Seen::Frame(_) => {}
                Seen::Closed(0, _) => {}
                Seen::Closed(..) => break,
            }
        }
    }
}
