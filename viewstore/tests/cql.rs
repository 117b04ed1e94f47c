//! The store suite against a real CQL database (`infra/local/up`). Compiled with
//! `--features cql-tests`; then `CHAT_CQL_NODES` must name the database, and a missing database
//! fails the tests rather than skipping them. Each test gets its own keyspace.

#![cfg(feature = "cql-tests")]
#![allow(clippy::unwrap_used)]

use viewstore::cql::{CqlConfig, CqlStore, Replication, migrate};
mod suite;

fn nodes() -> Vec<String> {
    let nodes = std::env::var("CHAT_CQL_NODES")
        .expect("CHAT_CQL_NODES must name the CQL database (start one with infra/local/up)");
    nodes.split(',').map(str::to_owned).collect()
}

fn unique_keyspace(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let sequence = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let micros =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
            % 1_000_000_000_000;
    format!("t_{prefix}_{micros}_{sequence}")
}

async fn fresh_store(prefix: &str) -> CqlStore {
    let config = CqlConfig::new(nodes(), unique_keyspace(prefix)).with_env_security().unwrap();
    let applied = migrate(&config, &Replication::Simple { factor: 1 }).await.unwrap();
    let every: Vec<i32> = viewstore::cql::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(applied, every);
    assert!(
        migrate(&config, &Replication::Simple { factor: 1 }).await.unwrap().is_empty(),
        "migrate must be idempotent"
    );
    CqlStore::connect(&config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_conversation_per_job() {
    suite::one_conversation_per_job(&fresh_store("jobs").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_leases_change_by_compare_and_set() {
    suite::writer_leases_change_by_compare_and_set(&fresh_store("leases").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn projection_writes_are_idempotent() {
    suite::projection_writes_are_idempotent(&fresh_store("idem").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_pages_by_recent_activity() {
    suite::inbox_pages_by_recent_activity(&fresh_store("inbox").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn message_changes_keep_the_newest_revision() {
    suite::message_changes_keep_the_newest_revision(&fresh_store("changes").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_both_ways() {
    suite::history_pages_both_ways(&fresh_store("history").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmigrated_keyspace_is_a_clear_error() {
    let config = CqlConfig::new(nodes(), unique_keyspace("bare")).with_env_security().unwrap();
    let error = CqlStore::connect(&config).await.unwrap_err();
    assert!(error.to_string().contains("chat migrate"), "{error}");
    let bad = CqlConfig::new(nodes(), "Robert'); DROP").with_env_security().unwrap();
    assert!(CqlStore::connect(&bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn push_subscriptions_are_bounded_and_one_user_per_endpoint() {
    suite::push_subscriptions_are_bounded_and_one_user_per_endpoint(&fresh_store("push").await)
        .await;
}
