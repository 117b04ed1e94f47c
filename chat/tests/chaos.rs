//! Chaos on the cluster: during a storm of keyed sends, with every conversation watched by a
//! client that reconnects and resumes whenever its socket breaks, the faults come one after
//! another: `kill -9` of an ingest node, of a fanout node, of the projector, of a Kafka
//! broker (of three), and of Cassandra, each started again. Afterwards every acknowledged
//! send is in history exactly once and in order under the id it was acknowledged with,
//! every watcher saw exactly that sequence, the projections equal a replay of the log, and
//! no process that lived through the faults grew by more than a bound.
//! Loopback only, bounded in time; the killed services are started again, pass or fail.

#![cfg(feature = "cluster-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::path::PathBuf;
use std::time::Duration;

use support::storm::Storm;
use support::{Role, Server, Shape, seed_client};

/// The tests here stop shared services: one at a time, or one's fault lands in the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CONVERSATIONS: usize = 6;
/// A role's resident memory may grow by this much over the faults (buffers, caches and the
/// allocator's slack), not without bound.
const MEMORY_GROWTH_KIB: u64 = 96 * 1024;

fn infra(arguments: &[&str]) {
    let up = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/local/up");
    let status = std::process::Command::new(up).args(arguments).status();
    assert!(
        matches!(status, Ok(status) if status.success()),
        "infra/local/up {arguments:?} failed"
    );
}

fn kill_from_pid_file(relative: &str) {
    signal_from_pid_file("-9", relative);
}

/// Sends `signal` to the process whose pid the local cluster's state keeps at `relative`.
fn signal_from_pid_file(signal: &str, relative: &str) {
    let state = std::env::var("CHAT_INFRA_STATE").unwrap_or_else(|_| "/tmp/chat-infra".into());
    let path = PathBuf::from(state).join(relative);
    let pid = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let sent = std::process::Command::new("kill").args([signal, pid.trim()]).status().unwrap();
    assert!(sent.success(), "kill {signal} {} failed", path.display());
}

/// Lets a paused Cassandra go on when dropped, pass or fail.
struct Continue;

impl Drop for Continue {
    fn drop(&mut self) {
        signal_from_pid_file("-CONT", "cassandra/pid");
    }
}

/// Starts the local Kafka brokers and Cassandra again when dropped (a no-op for those
/// still running), so a failed test leaves the cluster whole for the next one.
struct Revive;

impl Drop for Revive {
    fn drop(&mut self) {
        infra(&["--brokers", "3"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_send_survives_killed_roles_a_broker_and_cassandra_once_and_in_order() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let _revive = Revive;
    let mut server = Server::start_shaped(Shape {
        ingests: 2,
        fanouts: 2,
        replication_factor: 3,
        ..Shape::default()
    });
    let storm = Storm::start(&server, "chaos", CONVERSATIONS).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.resident_memory();

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
    let sends = storm.finish(&server).await;
    server.assert_memory_bounded(&before, MEMORY_GROWTH_KIB);
    println!("chaos: {sends} sends acknowledged across 5 faults, 0 lost, 0 duplicated");
}

/// A shared backend's blip must not take the fleet out of rotation (docs/decisions/
/// readiness.md): with Cassandra paused for a few seconds, every ingest, fanout and
/// projector stays ready, open sockets stay open, and once it is back a send is acknowledged,
/// delivered live and found in history and the inbox.
#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_stays_in_rotation_while_cassandra_pauses() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = Server::start_shaped(Shape { ingests: 2, fanouts: 2, ..Shape::default() });
    let conversation = server.open_conversation("job-pause", "carla", "wei").await;
    let before = server.send("carla", conversation, "before the pause").await;
    let mut watcher = seed_client(&server, "wei", conversation, Some(before)).await;
    let unread = |item: &serde_json::Value| item["unread_count"].as_u64().unwrap_or(0);
    let seen = server.inbox_item_when("wei", conversation, |item| {
        item["last_message_text"] == "before the pause"
    });
    let unread_before = unread(&seen.await);
    let probes: Vec<String> = [(Role::Ingest, 2), (Role::Fanout, 2), (Role::Projector, 1)]
        .into_iter()
        .flat_map(|(role, count)| (0..count).map(move |index| (role, index)))
        .map(|(role, index)| server.internal_url(role, index, "/readyz"))
        .collect();
    let probe = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();

    signal_from_pid_file("-STOP", "cassandra/pid");
    let paused = Continue;
    let started = std::time::Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(6) {
        for url in &probes {
            let answer = probe.get(url).send().await;
            let status = answer.as_ref().map(|answer| answer.status().as_u16());
            assert_eq!(status.ok(), Some(200), "{url} while Cassandra is paused: {answer:?}");
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(paused);
    assert!(rounds >= 10, "only {rounds} rounds of probes in 6 s");

    let text = "after the pause";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let sent = loop {
        let (status, body) = server
            .post(
                "carla",
                &format!("/v1/conversations/{conversation}/messages"),
                serde_json::json!({"text": text, "idempotency_key": "after-pause"}),
            )
            .await;
        if status == 201 || status == 200 {
            break body["id"].as_u64().unwrap();
        }
        assert_eq!(status, 503, "a send right after the pause: {body}");
        assert!(std::time::Instant::now() < deadline, "sends still refused 30 s after the pause");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let live = watcher.frame_of("message").await;
    assert_eq!(
        (live["message"]["id"].as_u64(), live["message"]["message_text"].as_str()),
        (Some(sent), Some(text))
    );
    let item =
        server.inbox_item_when("wei", conversation, |item| item["last_message_text"] == text).await;
    assert_eq!(unread(&item), unread_before + 1, "{item}");
    let history = server.history("wei", conversation).await;
    assert_eq!(history.last().map(|message| message["id"].clone()), Some(sent.into()));
}
