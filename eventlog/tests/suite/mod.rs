//! Scenarios every [`EventLog`] implementation must pass. The embedded log runs them in
//! every test run; the Kafka log runs the same functions against a real broker. Each takes a
//! fresh, empty log (its own topic) and panics with a description when the log misbehaves.

use std::collections::HashMap;
use std::time::Duration;

use schemas::{ConversationId, Position};

use eventlog::{EventLog, NewRecord, SubscribeSpec};

fn conversation(id: u64) -> ConversationId {
    ConversationId::new(id).expect("test ids are valid")
}

async fn append_text(log: &dyn EventLog, key: u64, text: &str) -> Position {
    log.append(conversation(key), text.as_bytes().to_vec(), vec![("h".into(), text.into())])
        .await
        .expect("append succeeds")
}

/// Offsets are dense per partition, a key always lands in the same partition, and reads
/// return exactly what was appended, in order, with headers.
pub(crate) async fn appends_are_dense_ordered_and_readable(log: &dyn EventLog) {
    let mut appended: HashMap<u32, Vec<(u64, String)>> = HashMap::new();
    for index in 0..60_u64 {
        let key = 1 + index % 6;
        let text = format!("record-{index}");
        let position = append_text(log, key, &text).await;
        assert_eq!(position.partition, conversation(key).partition(log.partitions()));
        appended.entry(position.partition).or_default().push((position.offset, text));
    }
    let end = log.end_offsets().await.expect("end offsets");
    for (partition, records) in &appended {
        let offsets: Vec<u64> = records.iter().map(|(offset, _)| *offset).collect();
        let dense: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, dense, "partition {partition} offsets are not dense");
        assert_eq!(end[*partition as usize], offsets.len() as u64);
        let read = log.read(*partition, 0, 1000).await.expect("read");
        let texts: Vec<String> =
            read.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
        let expected: Vec<String> = records.iter().map(|(_, text)| text.clone()).collect();
        assert_eq!(texts, expected, "partition {partition} reads back out of order");
        assert!(
            read.iter().all(|r| r.header("h") == Some(String::from_utf8_lossy(&r.value).as_ref()))
        );
        let tail = log.read(*partition, 2, 2).await.expect("read from an offset");
        assert_eq!(tail.first().map(|r| r.position.offset), Some(2));
        assert_eq!(tail.len(), 2);
    }
}

/// A batch lands in the order given, across partitions and within one, and every record's
/// position is reported; a partition's end offset is one past its last record.
pub(crate) async fn batches_land_in_order(log: &dyn EventLog) {
    let records: Vec<NewRecord> = (0..40_u64)
        .map(|index| NewRecord {
            key: conversation(1 + index % 3),
            value: format!("batch-{index}").into_bytes(),
            headers: vec![("index".into(), index.to_string())],
        })
        .collect();
    let expected = records.clone();
    let positions: Vec<Position> = log
        .append_batch(records)
        .await
        .into_iter()
        .map(|result| result.expect("every record of the batch is appended"))
        .collect();
    let mut by_partition: HashMap<u32, Vec<(u64, String)>> = HashMap::new();
    for (record, position) in expected.iter().zip(&positions) {
        assert_eq!(position.partition, record.key.partition(log.partitions()));
        let text = String::from_utf8_lossy(&record.value).into_owned();
        by_partition.entry(position.partition).or_default().push((position.offset, text));
    }
    for (partition, placed) in &by_partition {
        let offsets: Vec<u64> = placed.iter().map(|(offset, _)| *offset).collect();
        assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]), "batch order lost: {offsets:?}");
        let read = log.read(*partition, 0, 1000).await.expect("read");
        let texts: Vec<String> =
            read.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
        let in_batch: Vec<String> = placed.iter().map(|(_, text)| text.clone()).collect();
        assert_eq!(texts, in_batch, "partition {partition} holds the batch out of order");
        let end = log.end_offset(*partition).await.expect("end offset");
        assert_eq!(end, read.len() as u64);
        assert_eq!(log.end_offsets().await.expect("end offsets")[*partition as usize], end);
    }
    assert!(log.end_offset(log.partitions()).await.is_err(), "no such partition");
}

/// Concurrent appends to one conversation all succeed, get distinct increasing offsets, and
/// the order of offsets is the order the log returns.
pub(crate) async fn concurrent_appends_to_one_key_are_totally_ordered<L: EventLog + Clone>(
    log: &L,
) {
    let mut tasks = Vec::new();
    for index in 0..200 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { append_text(&log, 42, &format!("c{index}")).await }));
    }
    let mut positions = Vec::new();
    for task in tasks {
        positions.push(task.await.expect("append task"));
    }
    let partition = conversation(42).partition(log.partitions());
    assert!(positions.iter().all(|p| p.partition == partition));
    let mut offsets: Vec<u64> = positions.iter().map(|p| p.offset).collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), 200, "two appends got the same offset");
    let read = log.read(partition, 0, 1000).await.expect("read");
    assert_eq!(read.len(), 200);
    assert!(read.windows(2).all(|pair| pair[0].position.offset < pair[1].position.offset));
}

/// A group member that commits resumes after its commit; what it read but did not commit is
/// delivered again (at least once).
pub(crate) async fn groups_resume_after_their_last_commit(log: &dyn EventLog, group: &str) {
    for index in 0..10 {
        append_text(log, 7, &format!("g{index}")).await;
    }
    let mut first = log.subscribe(SubscribeSpec::Group(group.into())).await.expect("subscribe");
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let batch = first.next_batch(4, Duration::from_secs(10)).await.expect("batch");
        assert!(!batch.is_empty(), "group saw only {} of 10 records", seen.len());
        seen.extend(batch);
    }
    let committed = seen[5].position;
    first.commit(&[committed]).await.expect("commit");
    drop(first);

    let mut second = log.subscribe(SubscribeSpec::Group(group.into())).await.expect("resubscribe");
    let mut again = Vec::new();
    while again.len() < 4 {
        let batch = second.next_batch(100, Duration::from_secs(10)).await.expect("batch");
        assert!(!batch.is_empty(), "uncommitted records were not redelivered");
        again.extend(batch);
    }
    let offsets: Vec<u64> = again.iter().map(|r| r.position.offset).collect();
    let expected: Vec<u64> = (committed.offset + 1..committed.offset + 5).collect();
    assert_eq!(offsets, expected);
}

/// A tail starts at the end, sees nothing old, and wakes for new records.
pub(crate) async fn tails_start_at_the_end_and_wake_on_appends<L: EventLog + Clone>(log: &L) {
    append_text(log, 3, "old").await;
    let mut tail = log.subscribe(SubscribeSpec::Tail).await.expect("tail");
    let quiet = tail.next_batch(10, Duration::from_millis(200)).await.expect("batch");
    assert!(quiet.is_empty(), "a tail replayed old records");
    let writer = log.clone();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        append_text(&writer, 3, "new").await
    });
    let batch = tail.next_batch(10, Duration::from_secs(10)).await.expect("batch");
    let position = append.await.expect("append task");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].value, b"new");
    assert_eq!(batch[0].position, position);
    let start = tail.start_offsets();
    assert_eq!(start[position.partition as usize], position.offset);
}
