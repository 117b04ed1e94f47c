//! The fanout tier under load: hundreds of clients reconnecting at random during a send
//! storm (across two fanout nodes on a cluster) each end with exactly the conversation's
//! sequence, and a thousand readers that stop reading cost bounded memory.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::time::Duration;

use serde_json::json;
use support::{Client, Role, Seen, Server, Shape, token};

/// A small deterministic generator, so a failing run can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_clients_reconnecting_at_random_each_see_exactly_the_sequence() {
    let server = Server::start_shaped(
        Shape { fanouts: 2, ..Shape::default() }.with("CHAT_MAX_CONNECTIONS_PER_USER", "1000"),
    );
    let fanouts = if support::on_cluster() { 2 } else { 1 };
    let conversation = server.open_conversation("job-crowd", "carla", "wei").await;
    let total = 400;
    let storm = {
        let (http, url) = (
            server.http.clone(),
            server.url(&format!("/v1/conversations/{conversation}/messages")),
        );
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..total {
                let user = if n % 2 == 0 { "carla" } else { "wei" };
                let response = http
                    .post(&url)
                    .bearer_auth(token(user))
                    .json(&json!({"text": format!("m{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                ids.push(
                    response.json::<serde_json::Value>().await.unwrap()["id"].as_u64().unwrap(),
                );
            }
            ids
        })
    };
    let clients = 200;
    let urls: Vec<String> = (0..fanouts).map(|node| server.ws_url_on(node, "")).collect();
    let mut readers = Vec::new();
    for client in 0..clients {
        let urls = urls.clone();
        let user = if client % 2 == 0 { "carla" } else { "wei" };
        readers.push(tokio::spawn(async move {
            let mut dice = Dice(client as u64 + 1);
            let mut received: Vec<u64> = Vec::new();
            let mut reconnects = 0;
            while received.len() < total {
                let base = &urls[dice.roll(urls.len() as u64) as usize];
                let since = received.last().copied().unwrap_or(0);
                let url =
                    format!("{base}/ws/chat/{conversation}/?token={}&since={since}", token(user));
                let mut socket = Client::connect(&url).await;
                let take = 1 + dice.roll(40);
                for _ in 0..take {
                    if received.len() == total {
                        break;
                    }
                    match socket.next(Duration::from_secs(20)).await {
                        Seen::Frame(frame) => {
                            received.push(frame["message"]["id"].as_u64().unwrap())
                        }
                        Seen::Closed(code, reason) => {
                            panic!("client {client} closed {code} {reason}")
                        }
                    }
                }
                drop(socket);
                reconnects += 1;
            }
            (received, reconnects)
        }));
    }
    let sent = storm.await.unwrap();
    let mut reconnects = 0;
    for reader in readers {
        let (received, count) = reader.await.unwrap();
        assert_eq!(received, sent, "a client's sequence differs from the conversation's");
        reconnects += count;
    }
    assert!(reconnects >= clients * 5, "only {reconnects} reconnects");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_readers_that_stop_reading_cost_bounded_memory() {
    let server = Server::start_shaped(
        Shape::default()
            .with("CHAT_MAX_CONNECTIONS_PER_USER", "2000")
            .with("CHAT_WS_QUEUE", "64")
            .with("CHAT_WS_WRITE_TIMEOUT", "2s")
            .with("CHAT_SOCKET_SEND_BUFFER", "8192"),
    );
    let pid = server.pids(Role::Fanout)[0];
    let conversation = server.open_conversation("job-stall", "carla", "wei").await;
    let before = rss_kib(pid);
    let url = server.ws_url(&format!("/ws/chat/{conversation}/?token={}", token("carla")));
    let mut stalled = Vec::new();
    for _ in 0..1000 {
        stalled.push(Client::connect_stalled(&url).await);
    }
    let connected = rss_kib(pid);
    let text = "y".repeat(2000);
    for _ in 0..300 {
        server.send("wei", conversation, &text).await;
    }
    // Give the server time to find every reader too slow.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let flooded = rss_kib(pid);
    let per_connection = (connected.saturating_sub(before)) / 1000;
    println!(
        "rss before {before} KiB, 1000 stalled connections {connected} KiB \
         ({per_connection} KiB each), after 300 x 2 KB messages {flooded} KiB"
    );
    assert!(per_connection <= 64, "{per_connection} KiB per idle connection");
    assert!(
        flooded.saturating_sub(connected) < 96 * 1024,
        "memory grew by {} KiB while 1000 readers stalled",
        flooded.saturating_sub(connected)
    );
    // The server must have let go of every one of them. A stalled reader usually cannot
    // receive the 4008 close frame (its buffers are full), so it sees its stream end; one
    // that is still open would sit silent, which `next` reports as code 0.
    let mut cut_off = 0;
    for mut client in stalled {
        loop {
            match client.next(Duration::from_secs(10)).await {
                Seen::Frame(_) => {}
                Seen::Closed(code, _) => {
                    cut_off += usize::from(code != 0);
                    break;
                }
            }
        }
    }
    assert_eq!(cut_off, 1000, "every stalled reader must be closed");
}

/// SIGTERM with a 20 s drain and two thousand sockets open: every socket is closed with a
/// 1012 close frame ("reconnect and resume"), spread over the drain rather than at once,
/// none is reset, and the process exits within the drain plus 2 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_drain_closes_every_socket_with_1012_and_the_process_exits_in_time() {
    const SOCKETS: usize = 2000;
    let drain = Duration::from_secs(20);
    let mut server = Server::start_shaped(
        Shape::default()
            .with("CHAT_DRAIN", "20s")
            .with("CHAT_MAX_CONNECTIONS_PER_USER", (SOCKETS + 10).to_string()),
    );
    let conversation = server.open_conversation("job-drain", "carla", "wei").await;
    let url = server.ws_url(&format!("/ws/chat/{conversation}/?token={}", token("carla")));
    let mut endings = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let mut client = Client::connect(&url).await;
        endings.push(tokio::spawn(async move {
            // Pings and frames keep coming while the socket waits for its turn.
            let ending = loop {
                match client.next(Duration::from_secs(40)).await {
                    Seen::Frame(_) => {}
                    Seen::Closed(code, reason) => break (code, reason, std::time::Instant::now()),
                }
            };
            // Answer the close frame, as browsers do, which completes the handshake.
            client.close().await;
            ending
        }));
    }
    let fanout = if support::on_cluster() { Role::Fanout } else { Role::Dev };
    let signalled = std::time::Instant::now();
    let exited = server.terminate(fanout, drain + Duration::from_secs(10));
    let took = signalled.elapsed();
    assert!(exited, "the process was still running {:?} after SIGTERM", took);
    assert!(
        took <= drain + Duration::from_secs(2),
        "the process exited {took:?} after SIGTERM, past the drain plus 2 s"
    );
    let mut codes = std::collections::BTreeMap::new();
    let mut closed_at = Vec::with_capacity(SOCKETS);
    for ending in endings {
        let (code, reason, at) = ending.await.unwrap();
        *codes.entry((code, reason)).or_insert(0_usize) += 1;
        closed_at.push(at.duration_since(signalled));
    }
    let restart = "server restarting; reconnect and resume".to_owned();
    assert_eq!(codes.get(&(1012, restart)), Some(&SOCKETS), "how the sockets ended: {codes:?}");
    // Spread over the drain: the first quarter of sockets did not all close in its first
    // second, nor the last quarter before its last five.
    closed_at.sort();
    let (early, late) = (closed_at[SOCKETS / 4], closed_at[SOCKETS * 3 / 4]);
    assert!(early >= Duration::from_secs(2), "a quarter closed within {early:?}: not spread");
    assert!(late >= Duration::from_secs(12), "three quarters closed within {late:?}: not spread");
}
