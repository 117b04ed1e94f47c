//! The backend suite against the embedded log, plus what only the embedded log promises.

#![allow(clippy::unwrap_used)]

use eventlog::embedded::EmbeddedLog;
mod suite;

use eventlog::{EventLog, LogError, SubscribeSpec};
use schemas::ConversationId;

fn open(dir: &tempfile::TempDir) -> EmbeddedLog {
    EmbeddedLog::open(&dir.path().join("log.db"), 4).expect("open log")
}

#[tokio::test(flavor = "multi_thread")]
async fn appends_are_dense_ordered_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    suite::appends_are_dense_ordered_and_readable(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_land_in_order() {
    let dir = tempfile::tempdir().unwrap();
    suite::batches_land_in_order(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_to_one_key_are_totally_ordered() {
    let dir = tempfile::tempdir().unwrap();
    suite::concurrent_appends_to_one_key_are_totally_ordered(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_resume_after_their_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    suite::groups_resume_after_their_last_commit(&open(&dir), "projector").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tails_start_at_the_end_and_wake_on_appends() {
    let dir = tempfile::tempdir().unwrap();
    suite::tails_start_at_the_end_and_wake_on_appends(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_and_commits_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = ConversationId::new(9).unwrap();
    let position = {
        let log = open(&dir);
        let position = log.append(key, b"kept".to_vec(), Vec::new()).await.unwrap();
        let mut group = log.subscribe(SubscribeSpec::Group("g".into())).await.unwrap();
        group.commit(&[position]).await.unwrap();
        position
    };
    let log = open(&dir);
    let end = log.end_offsets().await.unwrap();
    assert_eq!(end[position.partition as usize], position.offset + 1);
    let next = log.append(key, b"after".to_vec(), Vec::new()).await.unwrap();
    assert_eq!(next.offset, position.offset + 1, "offsets restart after a reopen");
    let group = log.subscribe(SubscribeSpec::Group("g".into())).await.unwrap();
    assert_eq!(group.start_offsets()[position.partition as usize], position.offset + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_count_cannot_change_and_groups_are_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let _member = log.subscribe(SubscribeSpec::Group("g".into())).await.unwrap();
    let second = log.subscribe(SubscribeSpec::Group("g".into())).await;
    assert!(matches!(second, Err(LogError::GroupTaken(_))));
    drop(log);
    let reopened = EmbeddedLog::open(&dir.path().join("log.db"), 8);
    assert!(matches!(reopened, Err(LogError::Config(_))));
}

/// The one process that opens an embedded log writes every partition.
#[tokio::test(flavor = "multi_thread")]
async fn the_only_writer_has_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let assignment = open(&dir).writer_assignment("writers").await.unwrap();
    assert_eq!(assignment.current(), vec![0, 1, 2, 3]);
}

/// A second process on the same data directory is refused while the first has it open.
#[tokio::test(flavor = "multi_thread")]
async fn one_process_at_a_time_opens_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir);
    let second = EmbeddedLog::open(&dir.path().join("log.db"), 4);
    assert!(
        matches!(second, Err(LogError::Config(ref reason)) if reason.contains("another process"))
    );
    drop(first);
    assert!(EmbeddedLog::open(&dir.path().join("log.db"), 4).is_ok(), "free again once closed");
}
