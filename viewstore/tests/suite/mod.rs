//! Scenarios every store implementation must pass; the embedded store runs them always, the
//! CQL store against a real database. Each takes a fresh, empty store.

use schemas::native::MessageChange;
use schemas::{ConversationId, MessageId, MessageType, Participant, Position, Timestamp, UserId};

use viewstore::{
    ConversationDirectory, ConversationView, LastMessage, MessageCounts, ProjectionBatch,
    ProjectionStore, PushSubscriptions, ReadState, StoredChange, StoredMessage,
    StoredPushSubscription, WriterLease, WriterLeases,
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
        deleted: Vec::new(),
        blocked_by: Vec::new(),
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
        edited_at: None,
        deleted_at: None,
        revision: offset,
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

/// Leases change only from the state the caller saw: two takers of one free partition get
/// one lease between them, renewals and releases by anyone but the current holder fail, and
/// versions only rise (a released and retaken lease never repeats one).
pub(crate) async fn writer_leases_change_by_compare_and_set<S: WriterLeases>(store: &S) {
    assert!(store.writer_leases().await.expect("leases").is_empty());
    let (first, second) = tokio::join!(
        store.take_writer_lease(3, "a", "10.0.0.1:80", None),
        store.take_writer_lease(3, "b", "10.0.0.2:80", None),
    );
    let taken: Vec<WriterLease> =
        [first.expect("take"), second.expect("take")].into_iter().flatten().collect();
    assert_eq!(taken.len(), 1, "exactly one of two concurrent takers wins: {taken:?}");
    let held = taken[0].clone();
    assert_eq!(held.version, 1);
    assert_eq!(store.writer_leases().await.expect("leases"), vec![held.clone()]);

    let renewed = store.renew_writer_lease(&held).await.expect("renew").expect("still held");
    assert_eq!(renewed.version, 2);
    assert!(store.renew_writer_lease(&held).await.expect("renew").is_none(), "stale renewal");
    let thief = store.take_writer_lease(3, "c", "10.0.0.3:80", Some(&held)).await.expect("take");
    assert!(thief.is_none(), "a lease is taken over only from the version last seen");

    store.release_writer_lease(&held).await.expect("stale release is a no-op");
    assert_eq!(store.writer_leases().await.expect("leases"), vec![renewed.clone()]);
    store.release_writer_lease(&renewed).await.expect("release");
    let free = store.writer_leases().await.expect("leases").remove(0);
    assert!(free.is_free() && free.version == 3, "released: {free:?}");

    let retaken = store.take_writer_lease(3, "c", "10.0.0.3:80", Some(&free)).await.expect("take");
    let retaken = retaken.expect("a free lease can be taken");
    assert_eq!((retaken.node.as_str(), retaken.version), ("c", 4));
    let expired = store.take_writer_lease(3, "d", "10.0.0.4:80", Some(&retaken)).await;
    assert_eq!(expired.expect("take").map(|lease| lease.version), Some(5));
    let other = store.take_writer_lease(4, "a", "10.0.0.1:80", None).await.expect("take");
    assert!(other.is_some(), "partitions are leased independently");
    let partitions: Vec<u32> =
        store.writer_leases().await.expect("leases").iter().map(|l| l.partition).collect();
    assert_eq!(partitions, vec![3, 4]);
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
        changes: Vec::new(),
        watermarks: vec![Position { partition: 0, offset: 5 }],
    };
    store.apply(&batch).await.expect("apply");
    store.apply(&batch).await.expect("apply again");
    let stale = ProjectionBatch {
        views: vec![view(1, "c", "w", 2, 10)],
        messages: Vec::new(),
        changes: Vec::new(),
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
    let keyed = store.message_with_key(conversation, "k").await.expect("key").expect("found");
    assert_eq!(keyed, all[0], "the whole first message with the key, its time included");
    assert_eq!(keyed.id, message_id(3));
    assert_eq!(store.message_with_key(conversation, "nope").await.expect("key"), None);
    let asked = ["nope".to_owned(), "k".to_owned()];
    let found = store.messages_with_keys(conversation, &asked).await.expect("keys");
    assert_eq!(found, vec![("k".to_owned(), message_id(3))], "one query, only the keys found");
}

/// A changed message replaces the stored one only with a higher revision, whatever order
/// the writes come in; changes are kept once each and read back by position.
pub(crate) async fn message_changes_keep_the_newest_revision<S: ProjectionStore>(store: &S) {
    let original = message(3, 4, "c", 1, None);
    let mut edited = original.clone();
    edited.text = "edited".into();
    edited.edited_at = Some(Timestamp::from_millis(2_000));
    edited.revision = 6;
    let mut deleted = original.clone();
    deleted.text.clear();
    deleted.deleted_at = Some(Timestamp::from_millis(3_000));
    deleted.revision = 9;
    let change = |offset: u64, change: MessageChange| StoredChange {
        conversation_id: original.conversation_id,
        message_id: original.id,
        position: message_id(offset),
        change,
    };
    let edit = change(
        6,
        MessageChange::Edited { text: "edited".into(), edited_at: Timestamp::from_millis(2_000) },
    );
    let delete = change(9, MessageChange::Deleted { deleted_at: Timestamp::from_millis(3_000) });
    let batch = |messages: Vec<StoredMessage>, changes: Vec<StoredChange>| ProjectionBatch {
        messages,
        changes,
        ..ProjectionBatch::default()
    };
    store.apply(&batch(vec![original.clone()], Vec::new())).await.expect("apply");
    store.apply(&batch(vec![edited.clone()], vec![edit.clone()])).await.expect("edit");
    let conversation = original.conversation_id;
    let stored = store.message(conversation, original.id).await.expect("message");
    assert_eq!(stored, Some(edited.clone()), "an edit replaces the message");
    // A redelivered original and a redelivered edit change nothing once it is deleted.
    store.apply(&batch(vec![deleted.clone()], vec![delete.clone()])).await.expect("delete");
    store.apply(&batch(vec![original.clone(), edited], vec![edit.clone()])).await.expect("again");
    let stored = store.message(conversation, original.id).await.expect("message");
    assert_eq!(stored, Some(deleted), "an older revision replaced a newer one");
    let all = store.changes(conversation, MessageId::ZERO, message_id(100)).await.expect("changes");
    assert_eq!(all, vec![edit.clone(), delete.clone()], "each change once, in log order");
    let later = store.changes(conversation, message_id(6), message_id(100)).await.expect("changes");
    assert_eq!(later, vec![delete], "only changes after the position");
    let none = store.changes(conversation, MessageId::ZERO, message_id(6)).await.expect("changes");
    assert!(none.is_empty(), "the range's end is exclusive");
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
    store.apply(&ProjectionBatch { views, ..ProjectionBatch::default() }).await.expect("apply");
    let me = UserId::new("me").expect("valid id");
    let first = store.inbox(&me, None, 2).await.expect("inbox");
    let ids = |page: &[ConversationView]| {
        page.iter().map(|v| v.conversation_id.get()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), vec![5, 4]);
    let second =
        store.inbox(&me, first.last().map(ConversationView::inbox_cursor), 2).await.expect("inbox");
    assert_eq!(ids(&second), vec![3, 2]);
    let third = store
        .inbox(&me, second.last().map(ConversationView::inbox_cursor), 2)
        .await
        .expect("inbox");
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
            changes: Vec::new(),
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

fn subscription(endpoint: &str, at: i64) -> StoredPushSubscription {
    StoredPushSubscription {
        endpoint: endpoint.into(),
        p256dh: format!("key-of-{endpoint}"),
        auth: "secret".into(),
        registered_at: Timestamp::from_millis(at),
    }
}

pub(crate) async fn push_subscriptions_are_bounded_and_one_user_per_endpoint<
    S: PushSubscriptions,
>(
    store: &S,
) {
    let (ana, bo) = (UserId::new("ana").expect("id"), UserId::new("bo").expect("id"));
    let endpoints = |subscriptions: Vec<StoredPushSubscription>| -> Vec<String> {
        subscriptions.into_iter().map(|s| s.endpoint).collect()
    };
    for (n, endpoint) in ["https://p/1", "https://p/2", "https://p/3"].iter().enumerate() {
        store
            .put_push_subscription(&ana, &subscription(endpoint, 10 + n as i64), 2)
            .await
            .expect("the store answers");
    }
    let kept = store.push_subscriptions(&ana).await.expect("the store answers");
    assert_eq!(endpoints(kept), ["https://p/3", "https://p/2"], "the oldest went");

    // Registering again refreshes the keys and the time; it adds nothing.
    let mut refreshed = subscription("https://p/2", 20);
    refreshed.p256dh = "new-key".into();
    store.put_push_subscription(&ana, &refreshed, 2).await.expect("the store answers");
    let kept = store.push_subscriptions(&ana).await.expect("the store answers");
    assert_eq!(kept[0], refreshed);
    assert_eq!(kept.len(), 2);

    // The same browser signed in as bo: the endpoint is bo's now, and only his.
    store
        .put_push_subscription(&bo, &subscription("https://p/3", 30), 2)
        .await
        .expect("the store answers");
    assert_eq!(
        endpoints(store.push_subscriptions(&ana).await.expect("the store answers")),
        ["https://p/2"]
    );
    assert_eq!(
        endpoints(store.push_subscriptions(&bo).await.expect("the store answers")),
        ["https://p/3"]
    );

    assert!(
        !store.remove_push_subscription(&ana, "https://p/3").await.expect("the store answers"),
        "not ana's"
    );
    assert!(store.remove_push_subscription(&bo, "https://p/3").await.expect("the store answers"));
    assert!(store.push_subscriptions(&bo).await.expect("the store answers").is_empty());
}
