//! Bounded resources and liveness: the per-user send rate, connections per user,
//! subscriptions per connection, idle and half-open connections, readers that stop
//! reading, and draining on SIGTERM.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Client, Role, Seen, Server, Shape, native_client, seed_client, service_token, token,
};

#[tokio::test(flavor = "multi_thread")]
async fn sends_over_the_rate_are_refused_until_the_bucket_refills() {
    let server = Server::start_shaped(
        Shape::default().with("CHAT_SEND_RATE", "2").with("CHAT_SEND_BURST", "3"),
    );
    let conversation = server.open_conversation("job-rate", "carla", "wei").await;
    let path = format!("/v1/conversations/{conversation}/messages");
    for n in 0..3 {
        let (status, body) =
            server.post("carla", &path, json!({"text": format!("burst {n}")})).await;
        assert_eq!(status, 201, "{body}");
    }
    let refused = server
        .http
        .post(server.url(&path))
        .bearer_auth(token("carla"))
        .json(&json!({"text": "one too many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:chat:problem:rate_limited");
    // Another user, and the jobs system, are not affected.
    let (status, _) = server.post("wei", &path, json!({"text": "mine"})).await;
    assert_eq!(status, 201);
    let system = server
        .http
        .post(server.url(&path))
        .bearer_auth(service_token())
        .json(&json!({"type": "SYSTEM", "text": "job updated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(system.status(), 201);
    // WebSocket sends share the limit (on a cluster, the fanout node's own bucket).
    let mut carla = native_client(&server, "carla").await;
    let mut answers = Vec::new();
    for n in 0..5 {
        carla
            .send_json(json!({"type": "send", "ref": format!("w{n}"), "conversation_id": conversation, "text": "ws"}))
            .await;
    }
    while answers.len() < 5 {
        let frame = carla.frame().await;
        if frame["type"] == "ack" || frame["type"] == "error" {
            answers.push(frame);
        }
    }
    assert!(
        answers.iter().any(|f| f["type"] == "error" && f["code"] == "rate_limited"),
        "{answers:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = server.post("carla", &path, json!({"text": "after a pause"})).await;
    assert_eq!(status, 201, "the bucket must refill");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_holds_a_bounded_number_of_connections() {
    let server = Server::start_shaped(Shape::default().with("CHAT_MAX_CONNECTIONS_PER_USER", "2"));
    let first = native_client(&server, "carla").await;
    let _second = native_client(&server, "carla").await;
    let url = server.ws_url(&format!("/v1/ws?token={}", token("carla")));
    let (code, reason) = Client::connect(&url).await.closed().await;
    assert_eq!(code, 4429, "{reason}");
    assert!(reason.contains("too many connections"), "{reason}");
    let _other_user = native_client(&server, "wei").await;
    first.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = Client::connect(&url).await;
        match again.next(Duration::from_secs(5)).await {
            Seen::Frame(frame) if frame["type"] == "ready" => break,
            other => {
                assert!(Instant::now() < deadline, "the freed place never came back: {other:?}")
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_subscribes_to_a_bounded_number_of_conversations() {
    let server = Server::start_shaped(Shape::default().with("CHAT_MAX_SUBSCRIPTIONS", "2"));
    let mut conversations = Vec::new();
    for job in ["job-sub-a", "job-sub-b", "job-sub-c"] {
        conversations.push(server.open_conversation(job, "carla", "wei").await);
    }
    let mut carla = native_client(&server, "carla").await;
    let subscribe =
        |conversation: u64| json!({"type": "subscribe", "conversation_id": conversation});
    for conversation in &conversations[..2] {
        carla.send_json(subscribe(*conversation)).await;
        assert_eq!(carla.frame_of("subscribed").await["conversation_id"], *conversation);
    }
    carla.send_json(subscribe(conversations[2])).await;
    let refused = carla.frame_of("error").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("at most 2 subscriptions"), "{refused}");
    // The refused conversation delivers nothing; the others are untouched.
    server.send("wei", conversations[2], "not for this connection").await;
    let delivered = server.send("wei", conversations[0], "for this connection").await;
    let message = carla.frame_of("message").await;
    assert_eq!(message["message"]["id"], delivered, "{message}");
    // Subscribing again to a held conversation is no new subscription; leaving frees one.
    carla.send_json(subscribe(conversations[1])).await;
    carla.frame_of("subscribed").await;
    carla.send_json(json!({"type": "unsubscribe", "conversation_id": conversations[1]})).await;
    carla.frame_of("unsubscribed").await;
    carla.send_json(subscribe(conversations[2])).await;
    assert_eq!(carla.frame_of("subscribed").await["conversation_id"], conversations[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_over_the_size_limit_close_native_connections_with_1009() {
    let server = Server::start();
    for size in [20_000, 200_000] {
        let mut carla = native_client(&server, "carla").await;
        carla.send_text(format!(r#"{{"type": "typing", "pad": "{}"}}"#, "y".repeat(size))).await;
        let (code, reason) = carla.closed().await;
        assert_eq!(code, 1009, "{size} bytes: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_are_closed_and_answering_ones_kept() {
    let server = Server::start_shaped(
        Shape::default().with("CHAT_WS_PING", "200ms").with("CHAT_WS_IDLE", "1s"),
    );
    let mut silent = native_client(&server, "carla").await;
    let mut alive = native_client(&server, "wei").await;
    // `alive` reads (and so answers pings); `silent` reads nothing, like a vanished phone.
    alive.quiet_for("error", Duration::from_millis(2500)).await;
    // The server closed it (1001 "idle"); a client that read nothing meanwhile may trip over
    // its own unsent pongs first and only see the socket gone.
    let (code, reason) = silent.closed().await;
    let gone = reason.contains("Broken pipe") || reason.contains("reset");
    assert!(code == 1001 || (code == 1006 && gone), "{code} {reason}");
    alive.send_json(json!({"type": "subscribe", "conversation_id": 424242})).await;
    assert_eq!(
        alive.frame_of("error").await["code"],
        "not_found",
        "the answering connection must be open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_stops_reading_is_cut_off_and_resumes_without_loss() {
    let server = Server::start_shaped(
        Shape::default()
            .with("CHAT_WS_QUEUE", "16")
            .with("CHAT_WS_WRITE_TIMEOUT", "1s")
            .with("CHAT_SOCKET_SEND_BUFFER", "8192"),
    );
    let conversation = server.open_conversation("job-slow", "carla", "wei").await;
    let url = server.ws_url(&format!("/ws/chat/{conversation}/?token={}&since=0", token("carla")));
    let mut slow = Client::connect_stalled(&url).await;
    let text = "x".repeat(3000);
    let mut sent = Vec::new();
    for _ in 0..150 {
        sent.push(server.send("wei", conversation, &text).await);
    }
    // Now read what made it through: some messages, then the 4008 close.
    let mut received = Vec::new();
    let close = loop {
        match slow.next(Duration::from_secs(15)).await {
            Seen::Frame(frame) => received.push(frame["message"]["id"].as_u64().unwrap()),
            Seen::Closed(code, reason) => break (code, reason),
        }
    };
    // The server offers its 4008 for two seconds; a reader still not reading by then (this
    // one reads only after all 150 sends, which a loaded machine makes slow) finds the
    // connection reset instead. Either way the server cut it for being slow, and says so.
    assert!(matches!(close.0, 4008 | 1006), "{close:?}");
    let page = server.http.get(server.internal_url(Role::Fanout, 0, "/metrics")).send().await;
    let page = page.unwrap().text().await.unwrap();
    let cut = page.lines().any(|line| {
        line.starts_with("chat_fanout_disconnects_total")
            && line.contains("code=\"4008\"")
            && line.contains("closed_by=\"server\"")
            && line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0) >= 1.0
    });
    assert!(cut, "the server did not count the cut as a slow consumer's (4008)");
    assert!(received.len() < sent.len(), "the slow reader was never cut off");
    assert_eq!(received, sent[..received.len()], "what arrived before the cut must be in order");
    let since = received.last().copied().unwrap_or(0);
    let mut resumed = seed_client(&server, "carla", conversation, Some(since)).await;
    let mut rest = Vec::new();
    while rest.len() < sent.len() - received.len() {
        rest.push(resumed.frame_of("message").await["message"]["id"].as_u64().unwrap());
    }
    assert_eq!(rest, sent[received.len()..], "resuming after the cut must lose and repeat nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_with_reconnect_and_resume_and_nothing_is_lost() {
    let mut server = Server::start_shaped(Shape::default().with("CHAT_DRAIN", "1s"));
    let conversation = server.open_conversation("job-drain", "carla", "wei").await;
    let mut before = Vec::new();
    for n in 0..5 {
        before.push(server.send("wei", conversation, &format!("before {n}")).await);
    }
    let mut carla = seed_client(&server, "carla", conversation, Some(0)).await;
    let mut seen = Vec::new();
    while seen.len() < before.len() {
        seen.push(carla.frame_of("message").await["message"]["id"].as_u64().unwrap());
    }
    let started = Instant::now();
    assert!(
        server.terminate(Role::Fanout, Duration::from_secs(15)),
        "the server did not exit after SIGTERM"
    );
    let (code, reason) = carla.closed().await;
    assert_eq!(code, 1012, "{reason}");
    assert!(reason.contains("reconnect"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(12), "draining took {:?}", started.elapsed());
    server.restart_role(Role::Fanout);
    let after = server.send("wei", conversation, "after").await;
    let mut resumed = seed_client(&server, "carla", conversation, seen.last().copied()).await;
    assert_eq!(resumed.frame_of("message").await["message"]["id"], after);
}
