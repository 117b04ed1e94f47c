//! The store suite against the embedded store.

use viewstore::embedded::EmbeddedStore;
mod suite;

fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
    EmbeddedStore::open(&dir.path().join("store.db")).expect("open store")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_conversation_per_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::one_conversation_per_job(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_leases_change_by_compare_and_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::writer_leases_change_by_compare_and_set(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn projection_writes_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::projection_writes_are_idempotent(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_pages_by_recent_activity() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::inbox_pages_by_recent_activity(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn message_changes_keep_the_newest_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::message_changes_keep_the_newest_revision(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::history_pages_both_ways(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_subscriptions_are_bounded_and_one_user_per_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite::push_subscriptions_are_bounded_and_one_user_per_endpoint(&open(&dir)).await;
}
