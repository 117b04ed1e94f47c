//! Gapless resume: `?since=` on the seed endpoint and `since` on native subscriptions
//! replay exactly what was missed, then continue live, from the hub's memory or, after a
//! restart, from the store.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, native_client, seed_client};

fn ids(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|frame| frame["message"]["id"].as_u64().unwrap()).collect()
}

async fn messages(client: &mut support::Client, count: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames.len() < count {
        frames.push(client.frame_of("message").await);
    }
    frames
}

#[tokio::test(flavor = "multi_thread")]
async fn since_replays_exactly_the_missed_messages_then_goes_live() {
    let server = Server::start();
    let conversation = server.open_conversation("job-since", "carla", "wei").await;
    let mut sent = Vec::new();
    for index in 0..6 {
        sent.push(server.send("wei", conversation, &format!("m{index}")).await);
    }
    let mut carla = seed_client(&server, "carla", conversation, Some(sent[2])).await;
    let replayed = messages(&mut carla, 3).await;
    assert_eq!(ids(&replayed), sent[3..]);
    let live = server.send("wei", conversation, "live").await;
    let next = carla.frame_of("message").await;
    assert_eq!(next["message"]["id"], live);
    carla.quiet_for("message", Duration::from_millis(300)).await;

    let mut everything = seed_client(&server, "carla", conversation, Some(0)).await;
    let all = messages(&mut everything, 7).await;
    assert_eq!(ids(&all)[..6], sent[..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_resume_reads_the_store_without_a_seam() {
    let mut server = Server::start();
    let conversation = server.open_conversation("job-restart-resume", "carla", "wei").await;
    let mut sent = Vec::new();
    for index in 0..8 {
        sent.push(server.send("wei", conversation, &format!("before-{index}")).await);
    }
    server.crash_and_restart();
    // The restarted hub remembers nothing: these come from the store.
    let mut seed = seed_client(&server, "carla", conversation, Some(sent[1])).await;
    let mut native = native_client(&server, "carla").await;
    native
        .send_json(json!({"type": "subscribe", "conversation_id": conversation, "since": sent[4]}))
        .await;
    assert_eq!(ids(&messages(&mut seed, 6).await), sent[2..]);
    assert_eq!(ids(&messages(&mut native, 3).await), sent[5..]);
    native.frame_of("subscribed").await;
    let after = server.send("wei", conversation, "after").await;
    assert_eq!(seed.frame_of("message").await["message"]["id"], after);
    assert_eq!(native.frame_of("message").await["message"]["id"], after);
    assert!(after > *sent.last().unwrap(), "ids must keep increasing across restarts");
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnecting_during_a_send_storm_loses_and_repeats_nothing() {
    let server = Server::start();
    let conversation = server.open_conversation("job-storm", "carla", "wei").await;
    let total = 300;
    let sender = {
        let (http, url, token) = (
            server.http.clone(),
            server.url(&format!("/v1/conversations/{conversation}/messages")),
            support::token("wei"),
        );
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for index in 0..total {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"text": format!("s{index}")}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.json::<Value>().await.unwrap();
                let Some(id) = body["id"].as_u64() else {
                    panic!("send {index} failed: {status} {body}")
                };
                ids.push(id);
            }
            ids
        })
    };
    let mut received: Vec<u64> = Vec::new();
    let mut reconnects = 0;
    let mut take = 1;
    while received.len() < total {
        let since = received.last().copied().unwrap_or(0);
        let mut client = seed_client(&server, "carla", conversation, Some(since)).await;
        // Read a varying number of frames, then drop the connection mid-stream.
        for _ in 0..take {
            if received.len() == total {
                break;
            }
            received.push(client.frame_of("message").await["message"]["id"].as_u64().unwrap());
        }
        drop(client);
        reconnects += 1;
        take = take % 23 + 7;
    }
    let sent = sender.await.unwrap();
    assert_eq!(received, sent, "after {reconnects} reconnects the client's sequence differs");
}

/// Frames up to the subscription's `subscribed`, after subscribing with `since`.
async fn resume_frames(server: &Server, conversation: u64, since: u64) -> Vec<Value> {
    let mut client = native_client(server, "wei").await;
    client
        .send_json(json!({"type": "subscribe", "conversation_id": conversation, "since": since}))
        .await;
    let mut frames = Vec::new();
    loop {
        let frame = client.frame().await;
        if frame["type"] == "subscribed" {
            return frames;
        }
        frames.push(frame);
    }
}

fn receipts(frames: &[Value]) -> Vec<(u64, u64)> {
    frames
        .iter()
        .filter(|frame| frame["type"] == "read")
        .map(|frame| (frame["up_to"].as_u64().unwrap(), frame["position"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_hands_over_the_latest_missed_receipt_once() {
    let mut server = Server::start();
    let conversation = server.open_conversation("job-receipts", "carla", "wei").await;
    let first = server.send("wei", conversation, "first").await;
    let second = server.send("wei", conversation, "second").await;
    // A live subscriber shows when the hub has the receipts: an acknowledged read mark is in
    // the log, but the hub may take a moment to consume it (it would then arrive live).
    let mut live = native_client(&server, "wei").await;
    live.send_json(json!({"type": "subscribe", "conversation_id": conversation, "since": second}))
        .await;
    live.frame_of("subscribed").await;
    let read = format!("/v1/conversations/{conversation}/read");
    for up_to in [first, second] {
        let (status, body) = server.post("carla", &read, json!({"up_to": up_to})).await;
        assert_eq!(status, 200, "{body}");
    }
    while live.frame_of("read").await["up_to"] != second {}

    // From the hub's memory: only the latest receipt, placed after the messages.
    let missed = receipts(&resume_frames(&server, conversation, second).await);
    assert_eq!(missed.len(), 1, "{missed:?}");
    let (up_to, position) = missed[0];
    assert_eq!(up_to, second);
    assert!(position > second, "a receipt sorts after the message it follows");
    assert_eq!(receipts(&resume_frames(&server, conversation, position).await), []);

    // From the store, after a restart: the same receipt at the same position, once.
    server.crash_and_restart();
    assert_eq!(receipts(&resume_frames(&server, conversation, second).await), [(second, position)]);
    assert_eq!(receipts(&resume_frames(&server, conversation, position).await), []);
    assert_eq!(receipts(&resume_frames(&server, conversation, first).await), [(second, position)]);
}
