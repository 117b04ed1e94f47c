//! The consumer loop on the embedded backend: projections are exact, and delivering the
//! whole log again (as after a crash before a commit) changes nothing.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, MemorySignalBus, SignalBus};
use projector::ProjectorConfig;
use schemas::{
    ChatEvent, ConversationId, ConversationStarted, Envelope, MessageId, MessageSent, MessageType,
    MessagesRead, Participant, Timestamp, UserId,
};
use tokio_util::sync::CancellationToken;
use viewstore::embedded::EmbeddedStore;
use viewstore::{ProjectionStore, ReadModel, Role};

fn person(id: &str) -> Participant {
    Participant { id: UserId::new(id).unwrap(), name: id.into() }
}

async fn append(log: &EmbeddedLog, event: ChatEvent) -> MessageId {
    let envelope = Envelope::wrap(&event, "/test");
    let position =
        log.append(event.conversation_id(), envelope.to_bytes(), Vec::new()).await.unwrap();
    MessageId::from_position(position)
}

async fn write_conversation(log: &EmbeddedLog, id: u64) -> Vec<MessageId> {
    let conversation_id = ConversationId::new(id).unwrap();
    append(
        log,
        ChatEvent::ConversationStarted(ConversationStarted {
            conversation_id,
            job_id: format!("job-{id}"),
            client: person("client"),
            worker: person(&format!("worker-{id}")),
            started_at: Timestamp::now(),
        }),
    )
    .await;
    let mut ids = Vec::new();
    for index in 0..20 {
        let sender =
            if index % 3 == 0 { person("client") } else { person(&format!("worker-{id}")) };
        let key = (index % 5 == 0).then(|| format!("key-{}", index / 10));
        ids.push(
            append(
                log,
                ChatEvent::MessageSent(MessageSent {
                    conversation_id,
                    sender,
                    message_type: MessageType::Text,
                    text: format!("message {index}"),
                    attachment: None,
                    idempotency_key: key,
                    sent_at: Timestamp::now(),
                }),
            )
            .await,
        );
    }
    append(
        log,
        ChatEvent::MessagesRead(MessagesRead {
            conversation_id,
            reader_id: UserId::new("client").unwrap(),
            up_to: ids[9],
            read_at: Timestamp::now(),
        }),
    )
    .await;
    ids
}

async fn project_until(
    log: Arc<EmbeddedLog>,
    store: Arc<EmbeddedStore>,
    group: &str,
    caught_up: impl AsyncFn(&EmbeddedStore) -> bool,
) {
    let shutdown = CancellationToken::new();
    let signals: Arc<dyn SignalBus> = Arc::new(MemorySignalBus::new(1024));
    let config = ProjectorConfig { group: group.into(), ..ProjectorConfig::default() };
    let task = tokio::spawn(projector::run(log, store.clone(), signals, config, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !caught_up(&store).await {
        assert!(Instant::now() < deadline, "projector did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn projections_are_exact_and_survive_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.db"), 4).unwrap());
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.db")).unwrap());
    for id in 1..=3 {
        write_conversation(&log, id).await;
    }
    let end = log.end_offsets().await.unwrap();
    let caught_up = async |store: &EmbeddedStore| {
        let marks = store.watermarks(4).await.unwrap();
        marks.iter().zip(&end).all(|(mark, end)| *end == 0 || *mark == Some(end - 1))
    };
    project_until(log.clone(), store.clone(), "first", caught_up).await;

    let conversation = ConversationId::new(2).unwrap();
    let view = store.view(conversation).await.unwrap().unwrap();
    // 20 sends, two of which reuse key-0 and key-1 after their first use: 18 messages.
    assert_eq!(view.totals.total, 18);
    let history = store.messages(conversation, MessageId::ZERO, None, 100, false).await.unwrap();
    assert_eq!(history.len(), 18);
    assert!(history.windows(2).all(|pair| pair[0].id < pair[1].id));
    // The client read through message 9 (index); worker messages after it are unread.
    let worker_sent_after_mark = history
        .iter()
        .filter(|m| m.sender.id.as_str() != "client" && m.id > view.client_read.last_read)
        .count() as u64;
    assert_eq!(view.unread(Role::Client), worker_sent_after_mark);
    assert!(view.unread(Role::Client) > 0);

    // Deliver the whole log again, as a restart before a commit would: nothing may move.
    let before = store.load_views(&[conversation]).await.unwrap();
    let mut records = Vec::new();
    for partition in 0..log.partitions() {
        records.extend(log.read(partition, 0, 10_000).await.unwrap());
    }
    for _ in 0..2 {
        let applied = projector::batch::apply_records(store.as_ref(), &records).await.unwrap();
        assert_eq!(applied.counts.messages, 0, "a redelivered message was counted again");
        store.apply(&applied.projection).await.unwrap();
    }
    assert_eq!(store.load_views(&[conversation]).await.unwrap(), before);
    let again = store.messages(conversation, MessageId::ZERO, None, 100, false).await.unwrap();
    assert_eq!(again, history);
}

async fn send(log: &EmbeddedLog, id: u64, text: &str) -> MessageId {
    let event = ChatEvent::MessageSent(MessageSent {
        conversation_id: ConversationId::new(id).unwrap(),
        sender: person("client"),
        message_type: MessageType::Text,
        text: text.into(),
        attachment: None,
        idempotency_key: Some(text.into()),
        sent_at: Timestamp::now(),
    });
    append(log, event).await
}

/// Until `store`'s view of `conversation` has `id` as its last message.
fn last_message_is(
    conversation: ConversationId,
    id: MessageId,
) -> impl AsyncFn(&EmbeddedStore) -> bool {
    async move |store: &EmbeddedStore| {
        let view = store.view(conversation).await.unwrap();
        view.and_then(|view| view.last_message).is_some_and(|last| last.id == id)
    }
}

/// A store that comes back without writes it had acknowledged (a CQL node crashed in
/// periodic commit-log mode), while the group had committed their offsets: the projector that
/// starts next, which saw none of it, folds the lost part again from the log.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_lost_committed_writes_is_repaired_by_the_next_projector() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.db"), 4).unwrap());
    let (live, lost) = (dir.path().join("store.db"), dir.path().join("lost.db"));
    let conversation = ConversationId::new(1).unwrap();

    let sent = write_conversation(&log, 1).await;
    let store = Arc::new(EmbeddedStore::open(&live).unwrap());
    project_until(log.clone(), store.clone(), "g", last_message_is(conversation, sent[19])).await;
    drop(store);
    // What the store will come back with: the writes through the first part only.
    std::fs::copy(&live, &lost).unwrap();

    let mut last = sent[19];
    for n in 0..5 {
        last = send(&log, 1, &format!("then {n}")).await;
    }
    let store = Arc::new(EmbeddedStore::open(&live).unwrap());
    project_until(log.clone(), store.clone(), "g", last_message_is(conversation, last)).await;
    drop(store);

    // The group has committed all of it; the store that comes back has lost the last five.
    let final_id = send(&log, 1, "after the crash").await;
    let store = Arc::new(EmbeddedStore::open(&lost).unwrap());
    project_until(log.clone(), store.clone(), "g", last_message_is(conversation, final_id)).await;

    let view = store.view(conversation).await.unwrap().unwrap();
    assert_eq!(view.totals.total, 18 + 5 + 1, "the lost messages are counted again");
    let history = store.messages(conversation, MessageId::ZERO, None, 100, false).await.unwrap();
    let texts: Vec<&str> = history.iter().rev().take(6).map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["after the crash", "then 4", "then 3", "then 2", "then 1", "then 0"],
        "history has the lost messages back, in order"
    );
}
