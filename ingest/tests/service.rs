//! `Ingest` in one process, on the embedded log and store, with a writer of the test's own
//! in place of the keyed writers: what it validates and refuses, what it appends, and which
//! sends go to the writer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use auth::Caller;
use eventlog::EventLog;
use eventlog::embedded::EmbeddedLog;
use ingest::writer::{KeyedSend, Original, WriteError, WriteKeyed, Written};
use ingest::{Ingest, IngestConfig, IngestError, MessageDraft};
use parking_lot::Mutex;
use schemas::events::MessageType;
use schemas::http::OpenConversationRequest;
use schemas::{ConversationId, MessageId, Timestamp, UserId};
use viewstore::embedded::EmbeddedStore;

const PARTITIONS: u32 = 4;

/// A writer that appends each new key itself and remembers it, as one node holding every
/// lease would; it counts what it was asked.
struct OneWriter {
    log: Arc<EmbeddedLog>,
    keys: Mutex<HashMap<String, Original>>,
    asked: Mutex<Vec<String>>,
}

impl WriteKeyed for OneWriter {
    fn write_keyed(
        &self,
        send: KeyedSend,
    ) -> Pin<Box<dyn Future<Output = Result<Written, WriteError>> + Send + '_>> {
        Box::pin(async move {
            self.asked.lock().push(send.key.clone());
            if let Some(original) = self.keys.lock().get(&send.key) {
                return Ok(Written::Earlier(*original));
            }
            let record = send.record;
            let position = self.log.append(record.key, record.value, record.headers).await.unwrap();
            let id = MessageId::from_position(position);
            self.keys.lock().insert(send.key, Original { id, sent_at: send.sent_at });
            Ok(Written::Appended(id))
        })
    }
}

struct World {
    _dir: tempfile::TempDir,
    log: Arc<EmbeddedLog>,
    writer: Arc<OneWriter>,
    ingest: Ingest,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.db"), PARTITIONS).unwrap());
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.db")).unwrap());
    let writer = Arc::new(OneWriter {
        log: Arc::clone(&log),
        keys: Mutex::default(),
        asked: Mutex::default(),
    });
    let config = IngestConfig { send_rate: None, ..IngestConfig::default() };
    let writes: Arc<dyn WriteKeyed> = Arc::clone(&writer) as Arc<dyn WriteKeyed>;
    let ingest = Ingest::new(log.clone(), store.clone(), store, writes, config);
    World { _dir: dir, log, writer, ingest }
}

fn caller(user: &str, service: bool) -> Caller {
    Caller { user_id: UserId::new(user).unwrap(), name: user.to_uppercase(), service }
}

fn text(text: &str, key: Option<&str>) -> MessageDraft {
    MessageDraft {
        text: text.to_owned(),
        message_type: MessageType::Text,
        attachment: None,
        idempotency_key: key.map(str::to_owned),
    }
}

async fn open(world: &World) -> ConversationId {
    let request = OpenConversationRequest {
        client_id: UserId::new("ana").unwrap(),
        worker_id: UserId::new("bo").unwrap(),
        client_name: None,
        worker_name: None,
    };
    let (record, created) =
        world.ingest.open_conversation(&caller("jobs", true), "job-1", request).await.unwrap();
    assert!(created);
    record.conversation_id
}

/// Every record of the conversation's partition, as event type names.
async fn appended(world: &World, conversation: ConversationId) -> Vec<String> {
    let partition = conversation.partition(PARTITIONS);
    let records = world.log.read(partition, 0, 100).await.unwrap();
    records
        .iter()
        .map(|record| {
            let (envelope, _) = schemas::Envelope::decode(&record.value).unwrap();
            envelope.event_type
        })
        .collect()
}

#[tokio::test]
async fn participants_send_and_everyone_else_is_refused_before_anything_is_appended() {
    let world = world();
    let conversation = open(&world).await;
    let (ana, bo, cy) = (caller("ana", false), caller("bo", false), caller("cy", false));
    let sent = world.ingest.send_message(&ana, conversation, text("hi", None)).await.unwrap();
    assert!(!sent.duplicate);
    let outsider = world.ingest.send_message(&cy, conversation, text("hi", None)).await;
    assert!(matches!(outsider, Err(IngestError::NotFound(_))), "not a participant");
    let blank = world.ingest.send_message(&ana, conversation, text("  ", None)).await;
    assert!(matches!(blank, Err(IngestError::Invalid(_))), "blank text");
    let long = text(&"x".repeat(schemas::limits::MAX_TEXT_BYTES + 1), None);
    let long = world.ingest.send_message(&bo, conversation, long).await;
    assert!(matches!(long, Err(IngestError::Invalid(_))), "text over the limit");
    let opened_by_user = world.ingest.open_conversation(
        &ana,
        "job-2",
        OpenConversationRequest {
            client_id: UserId::new("ana").unwrap(),
            worker_id: UserId::new("bo").unwrap(),
            client_name: None,
            worker_name: None,
        },
    );
    assert!(matches!(opened_by_user.await, Err(IngestError::Forbidden(_))));
    let types = appended(&world, conversation).await;
    assert_eq!(types, ["chat.conversation.started.v1", "chat.message.sent.v1"], "{types:?}");
    assert!(world.writer.asked.lock().is_empty(), "a send without a key never asks the writer");
}

#[tokio::test]
async fn keyed_sends_go_to_the_writer_and_a_retry_is_answered_with_the_original() {
    let world = world();
    let conversation = open(&world).await;
    let ana = caller("ana", false);
    let first = world.ingest.send_message(&ana, conversation, text("quote", Some("k1"))).await;
    let first = first.unwrap();
    let again = world.ingest.send_message(&ana, conversation, text("quote", Some("k1"))).await;
    let again = again.unwrap();
    assert_eq!((again.id, again.duplicate), (first.id, true), "the original, not a new message");
    assert_eq!(again.sent_at, first.sent_at, "with the original's time");
    let bad_key = world.ingest.send_message(&ana, conversation, text("x", Some(""))).await;
    assert!(matches!(bad_key, Err(IngestError::Invalid(_))), "an empty key is refused");
    assert_eq!(*world.writer.asked.lock(), ["k1", "k1"], "both went to the writer, nothing else");
    let types = appended(&world, conversation).await;
    assert_eq!(types.iter().filter(|kind| kind.starts_with("chat.message")).count(), 1);
}

#[tokio::test]
async fn a_retry_is_answered_from_what_the_writer_remembers_without_reading_elsewhere() {
    let world = world();
    let conversation = open(&world).await;
    // A message neither the log nor the store has: only the writer knows it.
    let remembered = Original {
        id: MessageId::new(1_000_000_007).unwrap(),
        sent_at: Timestamp::from_millis(1_700_000_000_123),
    };
    world.writer.keys.lock().insert("k9".to_owned(), remembered);
    let ana = caller("ana", false);
    let again = world.ingest.send_message(&ana, conversation, text("quote", Some("k9"))).await;
    let again = again.unwrap();
    assert_eq!(
        (again.id, again.sent_at, again.duplicate),
        (remembered.id, remembered.sent_at, true)
    );
}
