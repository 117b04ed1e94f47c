//! What only a clustered deployment can show: several ingest and fanout processes agreeing
//! on one order, a projector killed mid-stream converging to a replay of the log, and an
//! analytics consumer outside Rust validating every event against the published schemas and
//! counting messages and unread ones, by the rules of docs/EVENTS.md, as the inbox does.
//! Runs with `--features cluster-tests` on the cluster `infra/local/up` starts.

#![cfg(feature = "cluster-tests")]
#![allow(clippy::unwrap_used)]

use testkit as support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, Role, Server, Shape, token};

async fn collect(client: &mut Client, count: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    while ids.len() < count {
        match client.next(Duration::from_secs(10)).await {
            support::Seen::Frame(frame) if frame["type"] == "message" => {
                ids.push(frame["message"]["id"].as_u64().unwrap());
            }
            support::Seen::Frame(_) => {}
            support::Seen::Closed(code, reason) => {
                panic!("closed {code} {reason} after {} of {count} messages: {ids:?}", ids.len())
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn two_ingests_and_two_fanouts_agree_on_one_order() {
    let server = Server::start_shaped(Shape { ingests: 2, fanouts: 2, ..Shape::default() });
    let conversation = server.open_conversation("job-split", "carla", "wei").await;
    let path = format!("/ws/chat/{conversation}/");
    let mut carla =
        Client::connect(&server.ws_url_on(0, &format!("{path}?token={}", token("carla")))).await;
    let mut wei =
        Client::connect(&server.ws_url_on(1, &format!("{path}?token={}", token("wei")))).await;
    let per_sender = 60;
    let mut senders = Vec::new();
    for (index, user) in ["carla", "wei"].into_iter().enumerate() {
        let url = server.url_on(index, &format!("/v1/conversations/{conversation}/messages"));
        let http = server.http.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..per_sender {
                let body = json!({"text": format!("{user}-{n}")});
                let response =
                    http.post(&url).bearer_auth(token(user)).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 201);
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let seen_by_carla = collect(&mut carla, 2 * per_sender).await;
    let seen_by_wei = collect(&mut wei, 2 * per_sender).await;
    assert_eq!(seen_by_carla, seen_by_wei, "the two fanout nodes delivered different orders");
    assert!(seen_by_carla.windows(2).all(|pair| pair[0] < pair[1]), "delivery is not in log order");
    let last = *seen_by_carla.last().unwrap();
    server.inbox_item_when("wei", conversation, |item| item["last_message_id"] == last).await;
    let history: Vec<u64> = server
        .history("wei", conversation)
        .await
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(history, seen_by_carla, "history order differs from delivery order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projector_killed_mid_stream_converges_to_a_replay_of_the_log() {
    let mut server = Server::start();
    let mut conversations = Vec::new();
    for index in 0..3 {
        conversations.push(
            server
                .open_conversation(&format!("job-kill-{index}"), "carla", &format!("w{index}"))
                .await,
        );
    }
    let total_per_conversation = 700;
    let mut senders = Vec::new();
    for (index, conversation) in conversations.iter().copied().enumerate() {
        let worker = format!("w{index}");
        let (http, base) =
            (server.http.clone(), server.url(&format!("/v1/conversations/{conversation}")));
        senders.push(tokio::spawn(async move {
            let mut last = 0;
            for n in 0..total_per_conversation {
                let (user, text) = if n % 4 == 0 {
                    ("carla", "from carla")
                } else {
                    (worker.as_str(), "from the worker")
                };
                let body = json!({"text": format!("{text} {n}")});
                let response = http
                    .post(format!("{base}/messages"))
                    .bearer_auth(token(user))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                last = response.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
                if n % 50 == 49 {
                    let read = json!({"up_to": last});
                    http.post(format!("{base}/read"))
                        .bearer_auth(token("carla"))
                        .json(&read)
                        .send()
                        .await
                        .unwrap();
                }
            }
            last
        }));
    }
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            senders.iter().all(|sender| !sender.is_finished()),
            "the kill must land mid-stream"
        );
        server.crash_and_restart_role(Role::Projector);
    }
    let mut lasts = Vec::new();
    for sender in senders {
        lasts.push(sender.await.unwrap());
    }
    for (conversation, last) in conversations.iter().zip(&lasts) {
        let item = server
            .inbox_item_when("carla", *conversation, |item| item["last_message_id"] == *last)
            .await;
        let history = server.history("carla", *conversation).await;
        assert_eq!(history.len(), total_per_conversation, "history lost or repeated messages");
        let mark = item["last_read_id"].as_u64().unwrap();
        let unread = history
            .iter()
            .filter(|m| m["sender_id"] != "carla" && m["id"].as_u64().unwrap() > mark)
            .count() as u64;
        assert_eq!(
            item["unread_count"].as_u64().unwrap(),
            unread,
            "unread count differs from history"
        );
    }
    let report = server.replay_agrees();
    assert!(report.contains("3 conversations"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analytics_consumer_validates_every_event_against_the_published_schemas() {
    let server = Server::start();
    let conversation = server.open_conversation("job-analytics", "carla", "wei").await;
    let base = format!("/v1/conversations/{conversation}");
    let last = server.send("carla", conversation, "hello").await;
    let attachments = [
        json!({"type": "IMAGE", "text": "", "attachment":
            {"url": "https://cdn.example/p.png", "name": "p.png", "mime_type": "image/png", "size": 2048}}),
        json!({"type": "FILE", "text": "contract", "idempotency_key": "file-1", "attachment":
            {"url": "https://cdn.example/c.pdf", "name": "c.pdf", "mime_type": "application/pdf"}}),
    ];
    for body in attachments {
        let (status, answer) = server.post("wei", &format!("{base}/messages"), body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, _) = server.post("wei", &format!("{base}/read"), json!({"up_to": last})).await;
    assert_eq!(status, 200);
    send_as_the_jobs_system(&server, conversation).await;

    let names = server.cluster.clone().unwrap();
    let validate = || analytics("validate_events.py", &names);
    let checked = validate();
    let report = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert!(checked.status.success(), "{report}{}", String::from_utf8_lossy(&checked.stderr));
    for expected in [
        "6 events",
        "1 chat.conversation.started.v1",
        "4 chat.message.sent.v1",
        "1 chat.messages.read.v1",
    ] {
        assert!(report.contains(expected), "expected {expected:?} in {report}");
    }

    // The validator must be able to fail: a record that breaks the schema is reported.
    let broken = json!({"specversion": "1.0", "id": "x", "source": "/test", "type": "chat.message.sent.v1",
        "time": "2026-01-01T00:00:00Z", "subject": conversation.to_string(), "data": {"text": 5}});
    append_raw(&names, conversation, &broken).await;
    let failed = validate();
    assert_eq!(failed.status.code(), Some(1), "{}", String::from_utf8_lossy(&failed.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_on_the_events_and_signals_topics_matches_what_asyncapi_publishes() {
    let server = Server::start();
    let conversation = server.open_conversation("job-topics", "carla", "wei").await;
    // Presence (connections, queries) and typing go on the signals topic; messages and
    // reads on the events topic, and the projector's inbox updates as signal batches.
    let mut carla = support::native_client(&server, "carla").await;
    carla.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    carla.frame_of("subscribed").await;
    let mut wei = support::native_client(&server, "wei").await;
    wei.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    wei.frame_of("subscribed").await;
    wei.send_json(json!({"type": "typing", "conversation_id": conversation, "is_typing": true}))
        .await;
    carla.frame_of("typing").await;
    let mut last = 0;
    for text in ["one", "two", "three"] {
        last = server.send("carla", conversation, text).await;
    }
    let read = format!("/v1/conversations/{conversation}/read");
    assert_eq!(server.post("wei", &read, json!({"up_to": last})).await.0, 200);
    server.inbox_item_when("wei", conversation, |item| item["unread_count"] == 0).await;
    wei.close().await;

    let names = server.cluster.clone().unwrap();
    let events = format!("events={}", names.topic);
    let signals = format!("signals={}", names.signals_topic);
    let validate = || {
        support::analytics(
            "validate_topics.py",
            &names,
            &["--channel", &events, "--channel", &signals],
        )
    };
    let checked = validate();
    let report = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert!(checked.status.success(), "{report}{}", String::from_utf8_lossy(&checked.stderr));
    for expected in ["3 messageSent", "1 messagesRead", " signalBatch)"] {
        assert!(report.contains(expected), "expected {expected:?} in {report}");
    }
    assert!(report.contains(" signal, "), "single signals (presence, typing) in {report}");

    // The check can fail: a record of a shape nobody published is reported.
    append_raw(&names, conversation, &json!({"signals": [{"type": "shrug"}]})).await;
    let failed = validate();
    assert_eq!(failed.status.code(), Some(1), "{}", String::from_utf8_lossy(&failed.stdout));
}

/// A `SYSTEM` message from the jobs system (the service role), as the job's state changes.
async fn send_as_the_jobs_system(server: &Server, conversation: u64) {
    let system = server
        .http
        .post(server.url(&format!("/v1/conversations/{conversation}/messages")))
        .bearer_auth(support::service_token())
        .json(&json!({"type": "SYSTEM", "text": "The job was marked complete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(system.status(), 201);
}

/// Appends `value` to the test's topic as it is, past ingest: what a consumer may meet
/// although ingest never writes it.
async fn append_raw(names: &support::ClusterNames, conversation: u64, value: &Value) {
    let config = eventlog::kafka::KafkaConfig::new(names.brokers.clone(), names.topic.clone())
        .with_env_security()
        .unwrap();
    let log = eventlog::kafka::KafkaEventLog::connect(config).await.unwrap();
    let key = schemas::ConversationId::new(conversation).unwrap();
    eventlog::EventLog::append(&log, key, value.to_string().into_bytes(), Vec::new())
        .await
        .unwrap();
}

/// Runs one of the `analytics/` scripts against the test's events topic.
fn analytics(script: &str, names: &support::ClusterNames) -> std::process::Output {
    support::analytics(script, names, &["--topic", &names.topic])
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analytics_consumer_counting_by_the_documented_rules_agrees_with_the_inbox() {
    let server = Server::start();
    let conversation = server.open_conversation("job-counts", "carla", "wei").await;
    let messages = format!("/v1/conversations/{conversation}/messages");
    let keyed = json!({"text": "one", "idempotency_key": "k-1"});
    let (status, first) = server.post("carla", &messages, keyed.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, retried) = server.post("carla", &messages, keyed).await;
    assert!(status == 200 || status == 201, "{retried}");
    assert_eq!(retried["id"], first["id"], "a retried key is the same message");
    let hi = server.send("wei", conversation, "hi").await;
    let two = server.send("carla", conversation, "two").await;
    send_as_the_jobs_system(&server, conversation).await;
    let read = format!("/v1/conversations/{conversation}/read");
    assert_eq!(server.post("wei", &read, json!({"up_to": two})).await.0, 200);
    assert_eq!(server.post("carla", &read, json!({"up_to": hi})).await.0, 200);

    // What the log may hold although ingest never writes it twice: a second record with a
    // key already used (the rules say it is no message).
    let names = server.cluster.clone().unwrap();
    let duplicate = json!({"specversion": "1.0", "id": "duplicate-of-k-1", "source": "/test",
        "type": "chat.message.sent.v1", "time": "2026-01-01T00:00:00Z",
        "subject": conversation.to_string(), "datacontenttype": "application/json",
        "data": {"conversation_id": conversation, "sender": {"id": "carla", "name": "Carla"},
            "message_type": "TEXT", "text": "one, again", "sent_at": "2026-01-01T00:00:00Z",
            "idempotency_key": "k-1"}});
    append_raw(&names, conversation, &duplicate).await;
    let after = server.send("wei", conversation, "after").await;
    // A message taken back: a tombstone, neither unread nor the latest.
    let oops = server.send("wei", conversation, "oops").await;
    let taken_back = server
        .call(reqwest::Method::DELETE, "wei", &format!("{messages}/{oops}"), Value::Null)
        .await;
    assert_eq!(taken_back.0, 204);

    let carla = server
        .inbox_item_when("carla", conversation, |item| {
            item["last_message_id"] == after && item["last_read_id"] == hi
        })
        .await;
    let wei = server
        .inbox_item_when("wei", conversation, |item| {
            item["last_message_id"] == after && item["last_read_id"] == two
        })
        .await;
    let mut history = server.history("carla", conversation).await;
    while !history.iter().any(|m| m["id"] == oops && m["deleted"] == true) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        history = server.history("carla", conversation).await;
    }

    let counted = analytics("conversation_stats.py", &names);
    let stdout = String::from_utf8_lossy(&counted.stdout).into_owned();
    assert!(counted.status.success(), "{stdout}{}", String::from_utf8_lossy(&counted.stderr));
    let stats: Value = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|stats| stats["conversation_id"] == conversation)
        .unwrap_or_else(|| panic!("conversation {conversation} missing from {stdout}"));
    assert_eq!(stats["messages"], history.len(), "{stats}");
    assert_eq!((stats["messages"].as_u64(), stats["duplicates"].as_u64()), (Some(6), Some(1)));
    assert_eq!(stats["last_message_id"], after);
    for (user, item) in [("carla", &carla), ("wei", &wei)] {
        let counted = &stats["participants"][user];
        assert_eq!(counted["unread"], item["unread_count"], "{user}: {stats} against {item}");
        assert_eq!(counted["last_read_id"], item["last_read_id"], "{user}: {stats}");
    }
    assert_eq!((carla["unread_count"].as_u64(), wei["unread_count"].as_u64()), (Some(2), Some(1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_trace_context_travels_in_the_record_headers() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};

    let server = Server::start();
    let conversation = server.open_conversation("job-trace", "carla", "wei").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = server
        .http
        .post(server.url(&format!("/v1/conversations/{conversation}/messages")))
        .bearer_auth(token("carla"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"text": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let (partition, offset) = ((id % 1024) as i32, (id / 1024 - 1) as i64);

    let names = server.cluster.clone().unwrap();
    let config = eventlog::kafka::KafkaConfig::new(names.brokers.clone(), names.topic.clone())
        .with_env_security()
        .unwrap();
    let consumer: BaseConsumer =
        config.client().set("group.id", format!("{}-trace-check", names.group)).create().unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(&names.topic, partition, rdkafka::Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let record = match consumer.poll(Duration::from_secs(10)) {
        Some(Ok(record)) => record,
        Some(Err(error)) => panic!("{error}"),
        None => panic!("the message's record did not arrive"),
    };
    assert_eq!(record.offset(), offset);
    let header = record
        .headers()
        .and_then(|headers| headers.iter().find(|h| h.key == "traceparent"))
        .and_then(|h| h.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .expect("a traceparent header");
    assert!(header.starts_with(&format!("00-{trace_id}-")), "{header}");
    assert!(
        !header.contains("00f067aa0ba902b7"),
        "the event must be a child span, not the request's span"
    );
    let envelope: Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
    assert_eq!(envelope["traceparent"], header.as_str());
    assert_eq!(envelope["data"]["text"], "traced");
}
