//! Keyed sends attacked: retries racing the first attempt, a retry after the ingest node that
//! took the first attempt was `kill -9`ed, and ingest nodes dying and coming back during a
//! storm of keyed sends. Every acknowledged send is in history exactly once, every retry is
//! answered with the original id, and each conversation keeps its order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, Shape, token};

/// The ingest nodes a test may send to.
fn ingest_count() -> usize {
    if support::on_cluster() { 2 } else { 1 }
}

fn two_ingests() -> Shape {
    Shape { ingests: ingest_count(), ..Shape::default() }
}

/// The ingest nodes, as a client sees them: base URLs (stable across restarts) and a client.
#[derive(Clone)]
struct Ingests {
    http: reqwest::Client,
    bases: Vec<String>,
}

impl Ingests {
    fn of(server: &Server) -> Self {
        let bases = (0..ingest_count()).map(|node| server.url_on(node, "")).collect();
        Self { http: server.http.clone(), bases }
    }

    /// One POST; `None` when the node did not answer (it is down).
    async fn post_once(
        &self,
        node: usize,
        user: &str,
        conversation: u64,
        body: &Value,
    ) -> Option<(u16, Value)> {
        let url = format!("{}/v1/conversations/{conversation}/messages", self.bases[node]);
        let response = self.http.post(url).bearer_auth(token(user)).json(body).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.unwrap_or(Value::Null)))
    }
}

fn texts(history: &[Value]) -> Vec<String> {
    history.iter().map(|message| message["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_racing_the_first_attempt_make_one_message_in_history_and_on_every_socket() {
    let server = Server::start_shaped(two_ingests());
    let conversation = server.open_conversation("job-race", "carla", "wei").await;
    let mut watcher = support::seed_client(&server, "wei", conversation, None).await;
    let body = json!({"text": "only once", "idempotency_key": "race-1"});
    let ingests = Ingests::of(&server);
    let attempts =
        (0..24).map(|n| {
            let (ingests, body) = (&ingests, &body);
            async move {
                ingests.post_once(n % ingest_count(), "carla", conversation, body).await.unwrap()
            }
        });
    let answers = futures_util::future::join_all(attempts).await;
    assert!(answers.iter().all(|(status, _)| *status == 201 || *status == 200), "{answers:?}");
    let ids: std::collections::HashSet<u64> =
        answers.iter().map(|(_, a)| a["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 1, "every attempt is answered with the one message: {ids:?}");
    let originals: Vec<_> = answers.iter().filter(|(_, a)| a["duplicate"] == false).collect();
    assert_eq!(originals.len(), 1, "exactly one attempt wrote it: {answers:?}");
    assert_eq!(originals[0].0, 201, "the attempt that wrote it is answered 201");

    let live = watcher.frame_of("message").await;
    assert_eq!(live["message"]["message_text"], "only once");
    watcher.quiet_for("message", Duration::from_secs(2)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let history = server.history("wei", conversation).await;
        if !history.is_empty() {
            assert_eq!(texts(&history), ["only once"]);
            break;
        }
        assert!(Instant::now() < deadline, "the message never reached history");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What only a cluster can show: ingest nodes `kill -9`ed and restarted under keyed sends.
#[cfg(feature = "cluster-tests")]
mod nodes_dying {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::support::{Role, Server, token};
    use super::{Ingests, texts, two_ingests};

    impl Ingests {
        /// Sends with `key` until acknowledged, starting at node `first` and moving to the next
        /// node after every failure, as a client with an outbox does. Returns the answer.
        async fn send_until_acked(
            &self,
            first: usize,
            user: &str,
            conversation: u64,
            key: &str,
        ) -> Value {
            let body = json!({"text": key, "idempotency_key": key});
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut node = first % self.bases.len();
            loop {
                match self.post_once(node, user, conversation, &body).await {
                    // 201 for the send that wrote it, 200 for a repeat of it.
                    Some((200 | 201, answer)) => return answer,
                    Some((status, answer)) if status != 503 => {
                        panic!("send {key} refused with {status}: {answer}")
                    }
                    _ => {}
                }
                assert!(Instant::now() < deadline, "send {key} was never acknowledged");
                node = (node + 1) % self.bases.len();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until history holds `expected` messages, then returns it.
    async fn settled_history(
        server: &Server,
        user: &str,
        conversation: u64,
        expected: usize,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let history = server.history(user, conversation).await;
            if history.len() >= expected || Instant::now() >= deadline {
                return history;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_retry_after_the_ingest_that_took_the_first_attempt_was_killed_gets_the_original() {
        let mut server = Server::start_shaped(two_ingests());
        let mut conversations = Vec::new();
        for n in 0..8 {
            conversations.push(
                server.open_conversation(&format!("job-kill-{n}"), "carla", &format!("w{n}")).await,
            );
        }
        // Every conversation gets a message through node 0, which writes half the partitions
        // itself and forwards the rest.
        let ingests = Ingests::of(&server);
        let mut acked = HashMap::new();
        for (n, conversation) in conversations.iter().enumerate() {
            let key = format!("before-{n}");
            let body = json!({"text": key, "idempotency_key": key});
            let (status, answer) =
                ingests.post_once(0, "carla", *conversation, &body).await.unwrap();
            assert_eq!(status, 201, "{answer}");
            acked.insert(key, (*conversation, answer["id"].as_u64().unwrap()));
        }
        // A storm through node 0, which dies in the middle of it.
        let storm: Vec<_> = conversations
            .iter()
            .enumerate()
            .flat_map(|(n, conversation)| {
                (0..6).map(move |m| (*conversation, format!("storm-{n}-{m}")))
            })
            .collect();
        let in_flight: Vec<_> = storm
            .iter()
            .map(|(conversation, key)| {
                let body = json!({"text": key, "idempotency_key": key});
                let url = server.url_on(0, &format!("/v1/conversations/{conversation}/messages"));
                let http = server.http.clone();
                tokio::spawn(async move {
                    let response =
                        http.post(url).bearer_auth(token("carla")).json(&body).send().await.ok()?;
                    if response.status() != 201 {
                        return None;
                    }
                    response.json::<Value>().await.ok()?["id"].as_u64()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        server.kill_one(Role::Ingest, 0);
        for ((conversation, key), task) in storm.iter().zip(in_flight) {
            if let Some(id) = task.await.unwrap() {
                acked.insert(key.clone(), (*conversation, id));
            }
        }
        // Every key again, through the survivor: acknowledged keys get their original id.
        for (n, conversation) in conversations.iter().enumerate() {
            for key in std::iter::once(format!("before-{n}"))
                .chain((0..6).map(|m| format!("storm-{n}-{m}")))
            {
                let answer = ingests.send_until_acked(1, "carla", *conversation, &key).await;
                if let Some((_, original)) = acked.get(&key) {
                    assert_eq!(answer["id"].as_u64(), Some(*original), "retry of {key}: {answer}");
                    assert_eq!(answer["duplicate"], true, "{answer}");
                }
            }
        }
        // The killed node comes back; history is read through it.
        server.restart_role(Role::Ingest);
        for (n, conversation) in conversations.iter().enumerate() {
            let history = settled_history(&server, "carla", *conversation, 7).await;
            let mut seen = texts(&history);
            seen.sort();
            let mut expected: Vec<String> = std::iter::once(format!("before-{n}"))
                .chain((0..6).map(|m| format!("storm-{n}-{m}")))
                .collect();
            expected.sort();
            assert_eq!(seen, expected, "conversation {conversation}: each key exactly once");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn writers_dying_and_returning_during_a_keyed_storm_keep_every_send_once_and_in_order() {
        let mut server = Server::start_shaped(two_ingests());
        let mut conversations = Vec::new();
        for n in 0..8 {
            conversations.push(
                server
                    .open_conversation(&format!("job-storm-{n}"), "carla", &format!("w{n}"))
                    .await,
            );
        }
        let per_conversation = 25;
        let ingests = Ingests::of(&server);
        let senders: Vec<_> = conversations
            .iter()
            .enumerate()
            .map(|(n, conversation)| {
                let (ingests, conversation) = (ingests.clone(), *conversation);
                tokio::spawn(async move {
                    // Each client sends in order, retrying each message with its key until
                    // acknowledged.
                    let mut acked = Vec::new();
                    for m in 0..per_conversation {
                        let key = format!("c{n}-m{m}");
                        let answer =
                            ingests.send_until_acked(n + m, "carla", conversation, &key).await;
                        acked.push((key, answer["id"].as_u64().unwrap()));
                    }
                    acked
                })
            })
            .collect();
        // The writer of half the partitions dies, the survivor takes them over, then the dead
        // node comes back and gets its share again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.kill_one(Role::Ingest, 0);
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.restart_role(Role::Ingest);
        let mut acked = Vec::new();
        for sender in senders {
            acked.push(sender.await.unwrap());
        }
        for ((conversation, sent), n) in conversations.iter().zip(&acked).zip(0..) {
            let history = settled_history(&server, "carla", *conversation, per_conversation).await;
            let expected: Vec<String> = sent.iter().map(|(key, _)| key.clone()).collect();
            assert_eq!(texts(&history), expected, "conversation {n}: every send once, in order");
            let ids: Vec<u64> = history.iter().map(|m| m["id"].as_u64().unwrap()).collect();
            let answered: Vec<u64> = sent.iter().map(|(_, id)| *id).collect();
            assert_eq!(ids, answered, "conversation {n}: history holds the acknowledged ids");
        }
    }
}
