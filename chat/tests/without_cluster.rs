//! A binary built without the cluster backends (the default, what `cargo run -p chat -- dev`
//! builds): every command that needs Kafka, CQL or S3 refuses in one line that says how
//! to build it in, before binding or connecting anything.

#![cfg(not(feature = "cluster"))]
#![allow(clippy::unwrap_used)]

use std::process::Command;

const CLUSTER: [&str; 4] = ["--kafka-brokers", "127.0.0.1:1", "--cql-nodes", "127.0.0.1:1"];

#[test]
fn every_cluster_command_refuses_in_one_line_naming_the_feature() {
    let commands: [&[&str]; 8] = [
        &["ingest"],
        &["fanout"],
        &["projector"],
        &["notifier"],
        &["migrate"],
        &["replay"],
        &["config", "check", "ingest"],
        &["config", "check", "--connect", "projector"],
    ];
    for command in commands {
        let output = Command::new(env!("CARGO_BIN_EXE_chat"))
            .args(command)
            .args(CLUSTER)
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command:?} ran: {output:?}");
        assert_eq!(stderr.lines().count(), 1, "{command:?}: {stderr}");
        assert!(
            stderr.contains("--features cluster")
                && stderr.contains(&format!("`chat {}", command[0])),
            "{command:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{command:?} printed {:?}", output.stdout);
    }
}

#[test]
fn an_s3_store_is_refused_by_chat_dev_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_clear()
        .env("CHAT_OBJECT_STORE", "s3://chat-attachments")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr.contains("s3://chat-attachments") && stderr.contains("--features cluster"));
}

#[test]
fn parked_webhooks_on_kafka_are_refused_the_same_way_and_dev_ones_are_listed() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["webhooks", "list", "--kafka-brokers", "127.0.0.1:1"])
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--features cluster") && stderr.lines().count() == 1, "{stderr}");

    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["webhooks", "list", "--data-dir"])
        .arg(data.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "0 parked\n");
}
