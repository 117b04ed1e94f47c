//! What a fanout node remembers of each conversation so that a client resuming from a
//! message id gets every later event exactly once, and where that memory ends and the
//! store must take over.
//!
//! The invariant: for each conversation the backlog knows an offset `known_from` such that
//! it holds every message of the conversation at or after that offset (and every reader's
//! latest receipt there). Older messages come from the store, once the store's watermark
//! shows it has them. The backlog is pure: offsets come in as arguments and nothing here
//! blocks; the hub calls it under the same lock as its subscriber lists, so a subscription's
//! registration and its snapshot are one step and every later message reaches its queue.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use lru::LruCache;
use schemas::native::MessageChange;
use schemas::{ConversationId, MessageId, Position, UserId};

use crate::delivery::MessageDelivery;

/// Messages the store must supply before the in-memory ones: ids in `(after, before)`,
/// readable once the store's watermark for `partition` reaches `through_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreRange {
    pub after: MessageId,
    pub before: MessageId,
    pub partition: u32,
    pub through_offset: u64,
}

/// How to bring a resuming subscriber up to date: the store range first, then `recent`,
/// then the changes to messages and the read receipts it missed that the hub holds.
#[derive(Debug, Default)]
pub struct ResumePlan {
    pub from_store: Option<StoreRange>,
    pub recent: Vec<Arc<MessageDelivery>>,
    /// Native `message_changed` frames after `since`, in log order.
    pub changes: Vec<Utf8Bytes>,
    /// Native `read` frames: each reader's latest receipt after `since`, if the hub has it.
    pub receipts: Vec<Utf8Bytes>,
}

/// A reader's latest receipt in a conversation, as the hub saw it in the log.
#[derive(Debug)]
struct HeldReceipt {
    reader: UserId,
    /// The receipt's place among the conversation's message ids.
    position: MessageId,
    frame: Utf8Bytes,
}

/// One conversation's memory.
#[derive(Debug)]
struct Memory {
    recent: VecDeque<Arc<MessageDelivery>>,
    /// Every message at this offset or later is in `recent` (or newer than anything seen).
    known_from: u64,
    /// Offset of the newest event of the conversation seen, if any.
    newest: Option<u64>,
    receipts: Vec<HeldReceipt>,
    /// Changes to messages at or after `known_from`, by position, oldest first.
    changes: VecDeque<(MessageId, Utf8Bytes)>,
    /// Messages seen deleted: a repeated deletion or a later edit of one changes nothing.
    deleted: Vec<MessageId>,
}

impl Memory {
    fn new(known_from: u64) -> Self {
        Self {
            recent: VecDeque::new(),
            known_from,
            newest: None,
            receipts: Vec::new(),
            changes: VecDeque::new(),
            deleted: Vec::new(),
        }
    }
}

/// Every conversation's memory on one node, bounded twice: `recent` messages each, and
/// `idle` conversations nobody here watches (the least recently active are forgotten).
#[derive(Debug)]
pub(crate) struct Backlog {
    memories: HashMap<ConversationId, Memory>,
    /// Conversations remembered but not watched, least recently active first.
    idle: LruCache<ConversationId, ()>,
    idle_capacity: usize,
    /// Per partition: for a conversation without a memory, the offset from which the node
    /// has seen all of its messages (none).
    floors: Vec<u64>,
    recent_capacity: usize,
}

impl Backlog {
    /// `floors`: per partition, where this node started reading the log.
    pub(crate) fn new(floors: Vec<u64>, recent_capacity: usize, idle_capacity: usize) -> Self {
        Self {
            memories: HashMap::new(),
            // Unbounded: the bound is kept by `unwatch`, which must forget the memory of what
            // it drops (a bounded cache would drop keys on its own and leak their memories).
            idle: LruCache::unbounded(),
            idle_capacity,
            floors,
            recent_capacity,
        }
    }

    fn partition(&self, conversation: ConversationId) -> u32 {
        conversation.partition(u32::try_from(self.floors.len()).unwrap_or(u32::MAX).max(1))
    }

    fn memory(&mut self, conversation: ConversationId) -> &mut Memory {
        let floor = self.floors[self.partition(conversation) as usize];
        self.memories.entry(conversation).or_insert_with(|| Memory::new(floor))
    }

    /// Remembers a message read at `offset`. False when a remembered message carried the
    /// same idempotency key: a retried append that the projections drop too.
    pub(crate) fn message(&mut self, offset: u64, delivery: &Arc<MessageDelivery>) -> bool {
        let capacity = self.recent_capacity;
        let memory = self.memory(delivery.conversation());
        memory.newest = Some(offset);
        if let Some(key) = &delivery.message.idempotency_key
            && memory.recent.iter().any(|m| m.message.idempotency_key.as_ref() == Some(key))
        {
            return false;
        }
        memory.recent.push_back(Arc::clone(delivery));
        while memory.recent.len() > capacity {
            let Some(forgotten) = memory.recent.pop_front() else { break };
            let next = forgotten.id().position().map_or(offset, |position| position.offset + 1);
            memory.known_from = memory.known_from.max(next);
        }
        // Changes before `known_from` are the store's to hand over now.
        let partition = delivery.id().position().map_or(0, |position| position.partition);
        let from = MessageId::first_at(partition, memory.known_from);
        while memory.changes.front().is_some_and(|(position, _)| *position < from) {
            memory.changes.pop_front();
        }
        true
    }

    /// Remembers `frame`, a change to message `id` of the conversation read at `at`; the
    /// message, if remembered, is remembered as it is after the change, so that no resume
    /// hands over a text that was edited away or deleted. False for a change that changes
    /// nothing (the message was deleted already, as two racing deletions may both say).
    pub(crate) fn change(
        &mut self,
        conversation: ConversationId,
        at: Position,
        id: MessageId,
        change: &MessageChange,
        frame: Utf8Bytes,
    ) -> bool {
        let memory = self.memory(conversation);
        memory.newest = Some(at.offset);
        if memory.deleted.contains(&id) {
            return false;
        }
        if let MessageChange::Deleted { .. } = change {
            memory.deleted.push(id);
        }
        memory.changes.push_back((MessageId::from_position(at), frame));
        if let Some(held) = memory.recent.iter_mut().find(|held| held.id() == id) {
            let mut message = held.message.clone();
            change.apply_to(&mut message);
            *held = MessageDelivery::new(message);
        }
        true
    }

    /// Remembers `frame` as `reader`'s latest receipt, read at `at`.
    pub(crate) fn receipt(
        &mut self,
        conversation: ConversationId,
        at: Position,
        reader: UserId,
        frame: Utf8Bytes,
    ) {
        let memory = self.memory(conversation);
        memory.newest = Some(at.offset);
        memory.receipts.retain(|held| held.reader != reader);
        let position = MessageId::from_position(at);
        memory.receipts.push(HeldReceipt { reader, position, frame });
    }

    /// What a subscriber resuming after `since` needs, and the conversation counts as
    /// watched from now on; without `since` it just goes live.
    pub(crate) fn watch(
        &mut self,
        conversation: ConversationId,
        since: Option<MessageId>,
    ) -> ResumePlan {
        self.idle.pop(&conversation);
        let partition = self.partition(conversation);
        let memory = self.memory(conversation);
        let Some(since) = since else {
            return ResumePlan::default();
        };
        let recent = memory.recent.iter().filter(|m| m.id() > since).cloned().collect();
        let changes = memory
            .changes
            .iter()
            .filter(|(position, _)| *position > since)
            .map(|(_, frame)| frame.clone())
            .collect();
        let receipts = memory
            .receipts
            .iter()
            .filter(|held| held.position > since)
            .map(|held| held.frame.clone())
            .collect();
        // The store has a part only if an offset before `known_from` is after `since`.
        let from_store = memory.known_from.checked_sub(1).and_then(|through_offset| {
            (since < MessageId::first_at(partition, through_offset)).then(|| StoreRange {
                after: since,
                before: MessageId::first_at(partition, memory.known_from),
                partition,
                through_offset,
            })
        });
        ResumePlan { from_store, recent, changes, receipts }
    }

    /// Nobody here watches `conversation` any more: it joins the idle ones, and the least
    /// recently active beyond the bound are forgotten (their partition's floor rises past
    /// them, so a later resume reads them from the store).
    pub(crate) fn unwatch(&mut self, conversation: ConversationId) {
        if !self.memories.contains_key(&conversation) {
            return;
        }
        self.idle.put(conversation, ());
        while self.idle.len() > self.idle_capacity {
            let Some((forgotten, ())) = self.idle.pop_lru() else { return };
            let partition = self.partition(forgotten) as usize;
            let Some(memory) = self.memories.remove(&forgotten) else { continue };
            let seen_through = memory.newest.map_or(memory.known_from, |newest| newest + 1);
            self.floors[partition] = self.floors[partition].max(seen_through);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::http::Message;
    use schemas::{MessageType, Timestamp};

    const PARTITIONS: u32 = 4;

    /// A conversation on partition 0, so that offsets and ids are easy to relate.
    fn conversation(n: u64) -> ConversationId {
        (1..)
            .map(|id| ConversationId::new(id).unwrap())
            .filter(|id| id.partition(PARTITIONS) == 0)
            .nth(n as usize)
            .unwrap()
    }

    fn at(offset: u64) -> Position {
        Position { partition: 0, offset }
    }

    fn delivery(
        conversation: ConversationId,
        offset: u64,
        key: Option<&str>,
    ) -> Arc<MessageDelivery> {
        MessageDelivery::new(Message {
            id: MessageId::from_position(at(offset)),
            conversation_id: conversation,
            sender_id: UserId::new("ana").unwrap(),
            sender_name: "Ana".into(),
            message_type: MessageType::Text,
            text: format!("at {offset}"),
            attachment: None,
            idempotency_key: key.map(str::to_owned),
            sent_at: Timestamp::now(),
            is_read: false,
            edited_at: None,
            deleted: false,
        })
    }

    fn ids(plan: &ResumePlan) -> Vec<u64> {
        plan.recent.iter().map(|m| m.id().position().unwrap().offset).collect()
    }

    fn backlog(recent: usize, idle: usize) -> Backlog {
        Backlog::new(vec![0; PARTITIONS as usize], recent, idle)
    }

    #[test]
    fn a_resume_inside_memory_needs_no_store() {
        let mut backlog = backlog(8, 8);
        let c = conversation(0);
        for offset in 0..5 {
            assert!(backlog.message(offset, &delivery(c, offset, None)));
        }
        let plan = backlog.watch(c, Some(MessageId::from_position(at(1))));
        assert_eq!(plan.from_store, None);
        assert_eq!(ids(&plan), [2, 3, 4]);
        assert!(backlog.watch(c, None).recent.is_empty(), "no position: straight to live");
    }

    #[test]
    fn changes_after_the_position_are_handed_over_until_the_store_has_them() {
        let mut backlog = backlog(2, 8);
        let c = conversation(0);
        let (first, second) = (MessageId::from_position(at(0)), MessageId::from_position(at(2)));
        let edit = MessageChange::Edited { text: "fixed".into(), edited_at: Timestamp::now() };
        let delete = MessageChange::Deleted { deleted_at: Timestamp::now() };
        backlog.message(0, &delivery(c, 0, None));
        backlog.change(c, at(1), first, &edit, "edit at 1".into());
        backlog.message(2, &delivery(c, 2, None));
        assert!(backlog.change(c, at(3), second, &delete, "delete at 3".into()));
        assert!(!backlog.change(c, at(4), second, &delete, "again".into()), "deleted already");
        assert!(!backlog.change(c, at(4), second, &edit, "edit".into()), "a tombstone's edit");
        let plan = backlog.watch(c, Some(MessageId::ZERO));
        let texts: Vec<_> =
            plan.recent.iter().map(|m| (m.message.text.clone(), m.message.deleted)).collect();
        assert_eq!(texts, [("fixed".to_owned(), false), (String::new(), true)], "held as changed");
        let plan = backlog.watch(c, Some(MessageId::from_position(at(1))));
        assert_eq!(plan.changes, ["delete at 3"]);
        let plan = backlog.watch(c, Some(MessageId::from_position(at(0))));
        assert_eq!(plan.changes, ["edit at 1", "delete at 3"]);
        // Two more messages push 0 to 2 out of memory: the edit at 1 is the store's now.
        backlog.message(4, &delivery(c, 4, None));
        backlog.message(5, &delivery(c, 5, None));
        let plan = backlog.watch(c, Some(MessageId::from_position(at(0))));
        assert_eq!(plan.changes, ["delete at 3"]);
        assert_eq!(plan.from_store.unwrap().before, MessageId::first_at(0, 3));
    }

    #[test]
    fn overflow_hands_the_forgotten_part_to_the_store() {
        let mut backlog = backlog(3, 8);
        let c = conversation(0);
        for offset in 10..16 {
            backlog.message(offset, &delivery(c, offset, None));
        }
        // 13, 14 and 15 are kept; everything before 13 is the store's.
        let since = MessageId::from_position(at(10));
        let plan = backlog.watch(c, Some(since));
        let range = plan.from_store.unwrap();
        assert_eq!(range.after, since);
        assert_eq!(range.before, MessageId::first_at(0, 13));
        assert_eq!((range.partition, range.through_offset), (0, 12));
        assert_eq!(ids(&plan), [13, 14, 15]);
        // A client that saw 12 already needs nothing from the store.
        let plan = backlog.watch(c, Some(MessageId::from_position(at(12))));
        assert_eq!(plan.from_store, None);
        assert_eq!(ids(&plan), [13, 14, 15]);
    }

    #[test]
    fn a_node_that_started_late_sends_everything_before_its_start_to_the_store() {
        let mut backlog = Backlog::new(vec![100, 0, 0, 0], 8, 8);
        let c = conversation(0);
        backlog.message(100, &delivery(c, 100, None));
        let plan = backlog.watch(c, Some(MessageId::from_position(at(40))));
        assert_eq!(plan.from_store.unwrap().through_offset, 99);
        assert_eq!(ids(&plan), [100]);
        let fresh = backlog.watch(conversation(1), Some(MessageId::from_position(at(40))));
        assert_eq!(fresh.from_store.unwrap().through_offset, 99, "never seen: the floor");
    }

    #[test]
    fn a_repeated_key_is_dropped_while_remembered() {
        let mut backlog = backlog(2, 8);
        let c = conversation(0);
        assert!(backlog.message(1, &delivery(c, 1, Some("k"))));
        assert!(!backlog.message(2, &delivery(c, 2, Some("k"))), "the retry is a duplicate");
        assert!(backlog.message(3, &delivery(c, 3, None)));
        assert!(backlog.message(4, &delivery(c, 4, None)));
        // "k" is forgotten with its message; the store's fold decides from here on.
        assert!(backlog.message(5, &delivery(c, 5, Some("k"))));
        let plan = backlog.watch(c, Some(MessageId::ZERO));
        assert_eq!(ids(&plan), [4, 5]);
    }

    #[test]
    fn forgetting_an_idle_conversation_raises_its_partitions_floor() {
        let mut backlog = backlog(8, 1);
        let (first, second) = (conversation(0), conversation(1));
        backlog.message(5, &delivery(first, 5, None));
        backlog.message(6, &delivery(second, 6, None));
        backlog.unwatch(first);
        backlog.unwatch(second);
        assert_eq!(backlog.memories.len(), 1, "idle memories are bounded");
        // `first` was forgotten: a resume reads through its newest event from the store.
        let plan = backlog.watch(first, Some(MessageId::from_position(at(2))));
        assert_eq!(plan.from_store.unwrap().through_offset, 5, "the floor rose past it");
        assert!(plan.recent.is_empty());
        // `second` is still remembered whole.
        let plan = backlog.watch(second, Some(MessageId::from_position(at(2))));
        assert_eq!(ids(&plan), [6]);
    }

    #[test]
    fn a_watched_conversation_is_never_forgotten() {
        let mut backlog = backlog(8, 1);
        let (watched, other, third) = (conversation(0), conversation(1), conversation(2));
        backlog.message(1, &delivery(watched, 1, None));
        backlog.watch(watched, None);
        backlog.message(2, &delivery(other, 2, None));
        backlog.unwatch(other);
        backlog.message(3, &delivery(third, 3, None));
        backlog.unwatch(third);
        let plan = backlog.watch(watched, Some(MessageId::ZERO));
        assert_eq!(plan.from_store, None);
        assert_eq!(ids(&plan), [1]);
    }

    #[test]
    fn only_each_readers_latest_receipt_after_the_position_is_handed_over() {
        let mut backlog = backlog(8, 8);
        let c = conversation(0);
        let ana = UserId::new("ana").unwrap();
        let bo = UserId::new("bo").unwrap();
        backlog.receipt(c, at(3), ana.clone(), "ana at 3".into());
        backlog.receipt(c, at(4), bo, "bo at 4".into());
        backlog.receipt(c, at(6), ana, "ana at 6".into());
        let mut frames = |since: u64| {
            let plan = backlog.watch(c, Some(MessageId::from_position(at(since))));
            plan.receipts.iter().map(|f| f.as_str().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(frames(2), ["bo at 4", "ana at 6"]);
        assert_eq!(frames(4), ["ana at 6"]);
        assert!(frames(6).is_empty());
    }
}
