//! Scenarios every store implementation must pass; the embedded store runs them always, the
//! CQL store against a real database. Each takes a fresh, empty store.

use std::time::Duration;

use schemas::{ConversationId, MessageId, MessageType, Participant, Position, Timestamp, UserId};

use viewstore::{
    ConversationDirectory, ConversationView, InboxCursor, KeyClaim, LastMessage, MessageCounts,
    ProjectionBatch, ProjectionStore, ReadState, StoredMessage,
};

fn person(id: &str) -> Participant {
    Participant { id: UserId::new(id).expect("valid id"), name: id.to_uppercase() }
}

fn message_id(offset: u64) -> MessageId {
    MessageId::from_position(Position { partition: 0, offset })
}

fn view(conversation: u64, client: &str, worker: &str, offset: u64, at: i64) -> ConversationView {
    ConversationView {
        conversation_id: ConversationId::new(conversation).expect("valid id"),
        job_id: format!("job-{conversation}"),
        client: person(client),
        worker: person(worker),
        started_at: Timestamp::from_millis(at),
        last_message: None,
        totals: MessageCounts::default(),
        client_read: ReadState::default(),
        worker_read: ReadState::default(),
        partition: 0,
        applied_offset: offset,
    }
}

fn message(
    conversation: u64,
    offset: u64,
    sender: &str,
    total: u64,
    key: Option<&str>,
) -> StoredMessage {
    StoredMessage {
        id: message_id(offset),
        conversation_id: ConversationId::new(conversation).expect("valid id"),
        sender: person(sender),
        message_type: MessageType::Text,
        text: format!("m{offset}"),
        attachment: None,
        idempotency_key: key.map(str::to_owned),
        sent_at: Timestamp::from_millis(1_000 + offset as i64),
        counts: MessageCounts { total, by_client: total, by_worker: 0 },
    }
}

/// One conversation per job, whoever asks and however often.
pub(crate) async fn one_conversation_per_job<S: ConversationDirectory + Clone>(store: &S) {
    let now = Timestamp::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.open_conversation("job-a", person("c1"), person("w1"), now).await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let (record, was_created) = task.await.expect("task").expect("open");
        ids.push(record.conversation_id);
        created += usize::from(was_created);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one job got several conversations");
    assert_eq!(created, 1, "more than one caller was told it created the conversation");
    let (other, _) =
        store.open_conversation("job-b", person("c1"), person("w2"), now).await.expect("open");
    assert_ne!(other.conversation_id, ids[0]);
    let found = store.conversation(ids[0]).await.expect("get").expect("exists");
    assert_eq!(found.worker.id.as_str(), "w1");
    assert!(!found.started);
    store.mark_started(ids[0]).await.expect("mark");
    assert!(store.conversation(ids[0]).await.expect("get").expect("exists").started);
    let missing = ConversationId::new(9_000_000).expect("valid id");
    assert!(store.conversation(missing).await.expect("get").is_none());
}

/// Claims: first wins, others wait, stale claims can be taken over once, and the earliest
/// recorded message stands.
pub(crate) async fn idempotency_keys_are_claimed_once<S: ConversationDirectory>(store: &S) {
    let conversation = ConversationId::new(5).expect("valid id");
    let stale_after = Duration::from_secs(30);
    let t0 = Timestamp::from_millis(1_000_000);
    let claim = |owner: &'static str, now: Timestamp| {
        store.claim_key(conversation, "k", owner, now, stale_after)
    };
    assert_eq!(claim("a", t0).await.expect("claim"), KeyClaim::Claimed);
    let fresh = claim("b", t0).await.expect("claim");
    assert_eq!(fresh, KeyClaim::Pending { owner: "a".into(), stale: false });
    let later = Timestamp::from_millis(t0.millis() + 31_000);
    assert_eq!(
        claim("b", later).await.expect("claim"),
        KeyClaim::Pending { owner: "a".into(), stale: true }
    );
    let took = store.take_over_key(conversation, "k", "a", "b", later).await.expect("take");
    assert_eq!(took, KeyClaim::Claimed);
    let again = store.take_over_key(conversation, "k", "a", "c", later).await.expect("take");
    assert!(matches!(again, KeyClaim::Pending { ref owner, .. } if owner == "b"));
    let standing = store.complete_key(conversation, "k", message_id(9)).await.expect("complete");
    assert_eq!(standing, message_id(9));
    let earlier = store.complete_key(conversation, "k", message_id(4)).await.expect("complete");
    assert_eq!(earlier, message_id(4), "the earlier message must win");
    let later_id = store.complete_key(conversation, "k", message_id(12)).await.expect("complete");
    assert_eq!(later_id, message_id(4));
    assert_eq!(claim("d", later).await.expect("claim"), KeyClaim::Completed(message_id(4)));
}

/// Applying a batch twice changes nothing; an older view never replaces a newer one;
/// watermarks only rise.
pub(crate) async fn projection_writes_are_idempotent<S: ProjectionStore>(store: &S) {
    let mut newer = view(1, "c", "w", 5, 10);
    newer.totals = MessageCounts { total: 2, by_client: 2, by_worker: 0 };
    newer.last_message = Some(LastMessage {
        id: message_id(5),
        preview: "m5".into(),
        sent_at: Timestamp::from_millis(1_005),
        sender_id: person("c").id,
    });
    let batch = ProjectionBatch {
        views: vec![newer.clone()],
        messages: vec![message(1, 3, "c", 1, Some("k")), message(1, 5, "c", 2, None)],
        watermarks: vec![Position { partition: 0, offset: 5 }],
    };
    store.apply(&batch).await.expect("apply");
    store.apply(&batch).await.expect("apply again");
    let stale = ProjectionBatch {
        views: vec![view(1, "c", "w", 2, 10)],
        messages: Vec::new(),
        watermarks: vec![Position { partition: 0, offset: 2 }],
    };
    store.apply(&stale).await.expect("apply stale");
    let conversation = newer.conversation_id;
    assert_eq!(store.view(conversation).await.expect("view"), Some(newer.clone()));
    let loaded = store.load_views(&[conversation]).await.expect("load");
    assert_eq!(loaded, vec![newer]);
    let all =
        store.messages(conversation, MessageId::ZERO, None, 10, false).await.expect("messages");
    assert_eq!(all.len(), 2, "a re-applied batch duplicated messages");
    assert_eq!(store.watermarks(2).await.expect("marks"), vec![Some(5), None]);
    let at = store.counts_at(conversation, message_id(4)).await.expect("counts");
    assert_eq!(at, Some((message_id(3), MessageCounts { total: 1, by_client: 1, by_worker: 0 })));
    assert_eq!(store.counts_at(conversation, message_id(2)).await.expect("counts"), None);
    assert_eq!(store.message_with_key(conversation, "k").await.expect("key"), Some(message_id(3)));
    assert_eq!(store.message_with_key(conversation, "nope").await.expect("key"), None);
}

/// The inbox lists a user's conversations by last activity, newest first, in pages.
pub(crate) async fn inbox_pages_by_recent_activity<S: ProjectionStore>(store: &S) {
    let mut views = Vec::new();
    for conversation in 1..=5_u64 {
        // Conversation 3 and 4 tie on activity: the cursor must still not skip one.
        let at = match conversation {
            4 => 3_000,
            other => other as i64 * 1_000,
        };
        views.push(view(conversation, "me", &format!("w{conversation}"), conversation, at));
    }
    views.push(view(6, "someone-else", "w6", 6, 9_000));
    store
        .apply(&ProjectionBatch { views, messages: Vec::new(), watermarks: Vec::new() })
        .await
        .expect("apply");
    let me = UserId::new("me").expect("valid id");
    let first = store.inbox(&me, None, 2).await.expect("inbox");
    let ids = |page: &[ConversationView]| {
        page.iter().map(|v| v.conversation_id.get()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), vec![5, 4]);
    let second = store.inbox(&me, first.last().map(InboxCursor::after), 2).await.expect("inbox");
    assert_eq!(ids(&second), vec![3, 2]);
    let third = store.inbox(&me, second.last().map(InboxCursor::after), 2).await.expect("inbox");
    assert_eq!(ids(&third), vec![1]);
    let worker = UserId::new("w3").expect("valid id");
    assert_eq!(ids(&store.inbox(&worker, None, 10).await.expect("inbox")), vec![3]);
}

/// History pages backwards from the newest and forwards from a position.
pub(crate) async fn history_pages_both_ways<S: ProjectionStore>(store: &S) {
    let messages: Vec<StoredMessage> =
        (1..=7).map(|offset| message(2, offset, "c", offset, None)).collect();
    store
        .apply(&ProjectionBatch {
            views: vec![view(2, "c", "w", 7, 1)],
            messages,
            watermarks: Vec::new(),
        })
        .await
        .expect("apply");
    let conversation = ConversationId::new(2).expect("valid id");
    let offsets = |page: &[StoredMessage]| page.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
    let newest = store.messages(conversation, MessageId::ZERO, None, 3, true).await.expect("page");
    assert_eq!(offsets(&newest), ["m5", "m6", "m7"]);
    let older = store
        .messages(conversation, MessageId::ZERO, Some(newest[0].id), 3, true)
        .await
        .expect("page");
    assert_eq!(offsets(&older), ["m2", "m3", "m4"]);
    let after = store.messages(conversation, message_id(5), None, 10, false).await.expect("page");
    assert_eq!(offsets(&after), ["m6", "m7"]);
    let window = store
        .messages(conversation, message_id(2), Some(message_id(5)), 10, false)
        .await
        .expect("page");
    assert_eq!(offsets(&window), ["m3", "m4"]);
}
