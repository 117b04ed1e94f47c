//! The keyed-send protocol, path by path, in one process (no binary, no cluster): which
//! send appends, which retry gets the original, what a new writer learns, and what happens
//! when appends fail, leases move, nodes die or cannot renew.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::sync::atomic::Ordering;
use std::time::Duration;

use eventlog::EventLog;
use harness::{World, conversation_in, earlier, eventually, id_of, keyed};
use keyed_writer::{WriteError, WriterTiming, Written};
use viewstore::{ProjectionStore, WriterLeases};

const SETTLE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_appended_once_and_every_retry_gets_its_message() {
    let world = World::new();
    let node = world.node("a", vec![0, 1]).await;
    let conversation = conversation_in(1, 0);
    let send = keyed(conversation, "k1", "hello");
    let first = node.writers.write(send.clone()).await.unwrap();
    assert!(matches!(first, Written::Appended(_)), "{first:?}");
    for _ in 0..3 {
        let again = node.writers.write(keyed(conversation, "k1", "hello")).await.unwrap();
        assert_eq!(again, earlier(&first, &send), "the original, at the original's time");
    }
    let other = node.writers.write(keyed(conversation, "k2", "second")).await.unwrap();
    assert!(matches!(other, Written::Appended(id) if id.get() > id_of(&first)));
    let elsewhere =
        node.writers.write(keyed(conversation_in(1, 1), "k1", "same key")).await.unwrap();
    assert!(matches!(elsewhere, Written::Appended(_)), "keys belong to one conversation");
    assert_eq!(world.log.records_with_key(1, "k1").await.len(), 2);
    assert_eq!(world.log.records_with_key(1, "k2").await.len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_sends_of_one_key_make_one_message() {
    let world = World::new();
    let node = world.node("a", vec![0, 1]).await;
    let conversation = conversation_in(0, 3);
    let sends = (0..40).map(|_| node.writers.write(keyed(conversation, "storm", "once")));
    let outcomes: Vec<Written> =
        futures_util::future::join_all(sends).await.into_iter().map(Result::unwrap).collect();
    let appended = outcomes.iter().filter(|w| matches!(w, Written::Appended(_))).count();
    assert_eq!(appended, 1, "{outcomes:?}");
    let ids: std::collections::HashSet<u64> = outcomes.iter().map(id_of).collect();
    assert_eq!(ids.len(), 1, "every racer is told the same message: {ids:?}");
    assert_eq!(world.log.records_with_key(0, "storm").await.len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_of_a_partition_are_appended_in_the_order_they_arrived() {
    let world = World::new();
    let node = world.node("a", vec![0, 1]).await;
    let conversation = conversation_in(0, 0);
    let mut ids = Vec::new();
    let sends: Vec<_> =
        (0..30).map(|n| node.writers.write(keyed(conversation, &format!("o{n}"), "x"))).collect();
    for written in futures_util::future::join_all(sends).await {
        ids.push(id_of(&written.unwrap()));
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "issued in order, appended in order");
    node.stop().await;
}

/// Projects the whole log, as the projector would.
async fn project_everything(world: &World) {
    for partition in 0..harness::PARTITIONS {
        let records = world.log.read(partition, 0, 10_000).await.unwrap();
        let applied =
            projector::batch::apply_records(world.store.as_ref(), &records).await.unwrap();
        world.store.apply(&applied.projection).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_older_than_the_writers_memory_is_found_in_the_projections() {
    let world = World::new();
    let conversation = conversation_in(1, 2);
    // A message sent long ago (before this writer), already projected.
    harness::start_conversation(&world, conversation).await;
    let old = keyed(conversation, "old-key", "from last week");
    let position =
        world.log.append(conversation, old.record.value.clone(), Vec::new()).await.unwrap();
    project_everything(&world).await;
    let node = world.node("a", vec![0, 1]).await;
    let end = world.log.end_offset(1).await.unwrap();
    let retry = node.writers.write(keyed(conversation, "old-key", "from last week")).await.unwrap();
    let projected = Written::Appended(schemas::MessageId::from_position(position));
    assert_eq!(retry, earlier(&projected, &old), "found in the projections, with its time");
    assert_eq!(world.log.end_offset(1).await.unwrap(), end, "nothing appended for the retry");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_writer_learns_every_key_its_predecessor_appended() {
    let world = World::new();
    let conversation = conversation_in(0, 1);
    let first = world.node("a", vec![0, 1]).await;
    let send = keyed(conversation, "k", "before the restart");
    let written = first.writers.write(send.clone()).await.unwrap();
    first.stop().await;
    // Nothing projected: only the log knows the key.
    let second = world.node("b", vec![0, 1]).await;
    let retry = second.writers.write(keyed(conversation, "k", "before the restart")).await.unwrap();
    assert_eq!(retry, earlier(&written, &send), "learned from the log, with its time");
    assert_eq!(world.log.records_with_key(0, "k").await.len(), 1);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_reported_failed_that_landed_is_found_before_anything_more_is_written() {
    let world = World::new();
    let node = world.node("a", vec![0, 1]).await;
    let conversation = conversation_in(1, 4);
    world.log.write_but_report_failure(1);
    // The send is retried within the call; the writer has read back what landed by then.
    let send = keyed(conversation, "lost-ack", "hi");
    let sent = node.writers.write(send.clone()).await.unwrap();
    let landed = world.log.records_with_key(1, "lost-ack").await;
    assert_eq!(landed.len(), 1, "one record, not a second append");
    let appended = Written::Appended(schemas::MessageId::from_position(landed[0]));
    assert_eq!(sent, earlier(&appended, &send));
    let retry = node.writers.write(keyed(conversation, "lost-ack", "hi")).await.unwrap();
    assert_eq!(retry, sent);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_moves_to_another_node_and_keys_hold_across_the_move() {
    let world = World::new();
    let a = world.node("a", vec![0, 1]).await;
    let b = world.node("b", vec![]).await;
    let conversation = conversation_in(1, 5);
    let send = keyed(conversation, "moving", "x");
    let before = a.writers.write(send.clone()).await.unwrap();
    // b forwards to a while a writes the partition.
    let via_b = b.writers.write(keyed(conversation, "moving", "x")).await.unwrap();
    assert_eq!(via_b, earlier(&before, &send), "the forwarded answer carries the time");

    world.log.assign("a", vec![0]);
    world.log.assign("b", vec![1]);
    eventually(SETTLE, "b takes partition 1", async || {
        let leases = world.leases.writer_leases().await.unwrap();
        leases.iter().any(|lease| lease.partition == 1 && lease.node == "b")
    })
    .await;
    // Now a forwards to b, and b learned the key from the log when it took over.
    let via_a = a.writers.write(keyed(conversation, "moving", "x")).await.unwrap();
    assert_eq!(via_a, earlier(&before, &send));
    let fresh = a.writers.write(keyed(conversation, "after-move", "y")).await.unwrap();
    assert!(matches!(fresh, Written::Appended(_)));
    assert_eq!(world.log.records_with_key(1, "moving").await.len(), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_writer_is_replaced_without_waiting_out_its_lease() {
    let world = World::new();
    // A lease far longer than finding a dead holder takes, even on a loaded machine: waiting
    // it out would show as 20 s, finding the holder gone takes a probe (well under 2 s).
    let lease = Duration::from_secs(20);
    let timing = WriterTiming { lease, margin: lease / 20, ..harness::long_lease() };
    let wait = timing.lease;
    let a = world.node_with("a", vec![0, 1], wait, timing).await;
    let b = world.node_with("b", vec![], wait, timing).await;
    let conversation = conversation_in(0, 6);
    let send = keyed(conversation, "k", "x");
    let written = a.writers.write(send.clone()).await.unwrap();
    a.kill();
    world.log.assign("b", vec![0, 1]);
    let started = tokio::time::Instant::now();
    let retry = b.writers.write(keyed(conversation, "k", "x")).await.unwrap();
    assert_eq!(retry, earlier(&written, &send));
    assert!(started.elapsed() < timing.lease, "found gone, not waited out");
    assert_eq!(world.log.records_with_key(0, "k").await.len(), 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_that_cannot_renew_stops_appending_before_its_lease_can_lapse() {
    let world = World::new();
    let node = world.node("a", vec![0, 1]).await;
    let conversation = conversation_in(1, 7);
    node.writers.write(keyed(conversation, "warm", "x")).await.unwrap();
    world.leases.refuse_renewals.store(true, Ordering::SeqCst);
    let timing = harness::timing();
    tokio::time::sleep(timing.lease - timing.append_timeout).await;
    let end = world.log.end_offset(1).await.unwrap();
    let refused = node.writers.write(keyed(conversation, "late", "x")).await;
    assert!(refused.is_err(), "appending after the lease may have lapsed: {refused:?}");
    assert_eq!(world.log.end_offset(1).await.unwrap(), end);
    world.leases.refuse_renewals.store(false, Ordering::SeqCst);
    eventually(SETTLE, "appends resume once renewals do", async || {
        node.writers.write(keyed(conversation, "late", "x")).await.is_ok()
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_whose_lease_was_taken_stops_writing_until_it_lapses() {
    let world = World::new();
    let node =
        world.node_with("a", vec![0, 1], Duration::from_millis(100), harness::long_lease()).await;
    let other = world.node("b", vec![]).await;
    let conversation = conversation_in(0, 8);
    node.writers.write(keyed(conversation, "k", "x")).await.unwrap();
    // A live node takes the lease from under it (as if it had seen it lapse). Until its
    // next renewal the node still writes, within the time its own renewal granted it.
    let held =
        world.leases.writer_leases().await.unwrap().into_iter().find(|l| l.partition == 0).unwrap();
    let taken = world.leases.take_writer_lease(0, "b", &other.address, Some(&held)).await.unwrap();
    let taken = taken.unwrap();
    let mut n = 0;
    eventually(harness::long_lease().lease / 2, "the node stops writing partition 0", async || {
        n += 1;
        let send = keyed(conversation, &format!("after-{n}"), "x");
        // A failed append is no refusal: on a loaded machine it may time out and land.
        matches!(node.writers.write(send).await,
            Err(WriteError::Unavailable(reason)) if !reason.starts_with("append failed"))
    })
    .await;
    let refused = format!("after-{n}");
    for attempt in 0..3 {
        let send = keyed(conversation, &format!("refused-{attempt}"), "x");
        assert!(node.writers.write(send).await.is_err(), "writing on after the lease was taken");
    }
    assert!(world.log.records_with_key(0, &refused).await.is_empty());
    assert!(world.log.records_with_key(0, "refused-0").await.is_empty());
    let standing =
        world.leases.writer_leases().await.unwrap().into_iter().find(|l| l.partition == 0);
    assert_eq!(standing, Some(taken), "the node renews nothing it no longer holds");
    // Nobody renews b's lease, so it lapses and the node takes the partition back.
    eventually(3 * harness::long_lease().lease, "the partition is written again", async || {
        node.writers.write(keyed(conversation, "again", "x")).await.is_ok()
    })
    .await;
    assert_eq!(world.log.records_with_key(0, "again").await.len(), 1);
    node.stop().await;
    other.stop().await;
}
