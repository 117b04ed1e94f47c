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

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::storm::Storm;
use support::{Role, Server, Shape};

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

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_send_survives_killed_roles_a_broker_and_cassandra_once_and_in_order() {
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
