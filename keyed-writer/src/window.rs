//! What one partition's writer knows about idempotency keys: every keyed message of the
//! partition that the projections may not show yet, and the keys whose send is under way.
//!
//! The window is complete above the projections' watermark: the writer fills it from the
//! log when it takes the partition (everything after the watermark) and adds every keyed
//! message it appends. A key the window does not have is therefore either new or already
//! in the projections, which is where the writer looks next. Entries at or below the
//! watermark are dropped, because the projections answer for them.

use std::collections::{BTreeMap, HashMap};

use crate::Original;
use schemas::ConversationId;

type Slot = (ConversationId, String);

#[derive(Debug)]
enum Entry<W> {
    /// The key's first message, at this offset.
    Written { original: Original, offset: u64 },
    /// A send with this key is being checked or appended; these wait for its outcome.
    Pending { waiting: Vec<W> },
}

/// What [`KeyWindow::admit`] decided about a send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission<W> {
    /// The key already produced this message: answer with it.
    Written(Original, W),
    /// Another send with the key is under way; the waiter was queued behind it.
    Queued,
    /// The key is not in the window: this send goes ahead (after a look at the
    /// projections), and its waiter is handed back. It must be settled with
    /// [`KeyWindow::settle`].
    New(W),
}

/// Keys of one partition, generic over what a waiting retry is (a reply channel in the
/// writer, a plain value in tests).
#[derive(Debug)]
pub(crate) struct KeyWindow<W> {
    entries: HashMap<Slot, Entry<W>>,
    by_offset: BTreeMap<u64, Slot>,
}

impl<W> Default for KeyWindow<W> {
    fn default() -> Self {
        Self { entries: HashMap::new(), by_offset: BTreeMap::new() }
    }
}

impl<W> KeyWindow<W> {
    pub(crate) fn admit(
        &mut self,
        conversation: ConversationId,
        key: &str,
        waiter: W,
    ) -> Admission<W> {
        let slot = (conversation, key.to_owned());
        match self.entries.get_mut(&slot) {
            Some(Entry::Written { original, .. }) => Admission::Written(*original, waiter),
            Some(Entry::Pending { waiting }) => {
                waiting.push(waiter);
                Admission::Queued
            }
            None => {
                self.entries.insert(slot, Entry::Pending { waiting: Vec::new() });
                Admission::New(waiter)
            }
        }
    }

    /// Ends the pending send of a key: `written` is where its message is (the one just
    /// appended, or an earlier one the projections had), `None` when it failed. Returns
    /// the sends that waited for it.
    pub(crate) fn settle(
        &mut self,
        conversation: ConversationId,
        key: &str,
        written: Option<(Original, u64)>,
    ) -> Vec<W> {
        let slot = (conversation, key.to_owned());
        let waiting = match self.entries.remove(&slot) {
            Some(Entry::Pending { waiting }) => waiting,
            Some(written @ Entry::Written { .. }) => {
                debug_assert!(false, "settling a key that is not pending");
                self.entries.insert(slot, written);
                return Vec::new();
            }
            None => Vec::new(),
        };
        if let Some((original, offset)) = written {
            self.insert_written(slot, original, offset);
        }
        waiting
    }

    /// Records a keyed message read from the log. The first message of a key stands.
    pub(crate) fn learn(
        &mut self,
        conversation: ConversationId,
        key: &str,
        original: Original,
        offset: u64,
    ) {
        let slot = (conversation, key.to_owned());
        match self.entries.get(&slot) {
            Some(Entry::Written { offset: known, .. }) if *known <= offset => {}
            Some(Entry::Pending { .. }) => {
                debug_assert!(false, "the log is read only while no send is pending");
            }
            _ => self.insert_written(slot, original, offset),
        }
    }

    fn insert_written(&mut self, slot: Slot, original: Original, offset: u64) {
        if let Some(Entry::Written { offset: replaced, .. }) = self.entries.get(&slot) {
            self.by_offset.remove(replaced);
        }
        self.by_offset.insert(offset, slot.clone());
        self.entries.insert(slot, Entry::Written { original, offset });
    }

    /// Drops the keys the projections now answer for (at or below `watermark`).
    pub(crate) fn forget_through(&mut self, watermark: u64) {
        let kept = self.by_offset.split_off(&(watermark + 1));
        for slot in std::mem::replace(&mut self.by_offset, kept).into_values() {
            self.entries.remove(&slot);
        }
    }

    /// Keys with a known message.
    pub(crate) fn written(&self) -> usize {
        self.by_offset.len()
    }

    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.entries.len() - self.by_offset.len()
    }
}

#[cfg(test)]
mod tests {
    use schemas::{MessageId, Position, Timestamp};

    use super::*;

    fn conversation(id: u64) -> ConversationId {
        ConversationId::new(id).unwrap()
    }

    /// The message at `offset`, sent at a time of its own.
    fn id(offset: u64) -> Original {
        Original {
            id: MessageId::from_position(Position { partition: 0, offset }),
            sent_at: Timestamp::from_millis(1_700_000_000_000 + offset as i64),
        }
    }

    #[test]
    fn a_new_key_goes_ahead_and_retries_wait_for_it() {
        let mut window = KeyWindow::default();
        assert_eq!(window.admit(conversation(1), "k", "first"), Admission::New("first"));
        assert_eq!(window.admit(conversation(1), "k", "retry"), Admission::Queued);
        assert_eq!(window.admit(conversation(1), "k", "again"), Admission::Queued);
        assert_eq!(window.pending(), 1);
        let waiting = window.settle(conversation(1), "k", Some((id(7), 7)));
        assert_eq!(waiting, vec!["retry", "again"]);
        assert_eq!(window.admit(conversation(1), "k", "late"), Admission::Written(id(7), "late"));
        assert_eq!((window.written(), window.pending()), (1, 0));
    }

    #[test]
    fn keys_are_per_conversation() {
        let mut window = KeyWindow::default();
        assert_eq!(window.admit(conversation(1), "k", ()), Admission::New(()));
        assert_eq!(window.admit(conversation(2), "k", ()), Admission::New(()));
    }

    #[test]
    fn a_failed_send_leaves_nothing_behind() {
        let mut window = KeyWindow::default();
        assert_eq!(window.admit(conversation(1), "k", 1), Admission::New(1));
        assert_eq!(window.admit(conversation(1), "k", 2), Admission::Queued);
        assert_eq!(window.settle(conversation(1), "k", None), vec![2]);
        assert_eq!(window.admit(conversation(1), "k", 3), Admission::New(3), "the next try is new");
    }

    #[test]
    fn the_first_message_of_a_key_stands_when_learning_from_the_log() {
        let mut window: KeyWindow<()> = KeyWindow::default();
        window.learn(conversation(1), "k", id(9), 9);
        window.learn(conversation(1), "k", id(4), 4);
        window.learn(conversation(1), "k", id(12), 12);
        assert_eq!(window.admit(conversation(1), "k", ()), Admission::Written(id(4), ()));
        assert_eq!(window.written(), 1, "replaced offsets must not linger");
    }

    #[test]
    fn keys_the_projections_cover_are_forgotten_and_the_rest_kept() {
        let mut window: KeyWindow<()> = KeyWindow::default();
        for offset in [3, 5, 8] {
            window.learn(conversation(1), &format!("k{offset}"), id(offset), offset);
        }
        assert_eq!(window.admit(conversation(1), "pending", ()), Admission::New(()));
        window.forget_through(5);
        assert_eq!(window.admit(conversation(1), "k3", ()), Admission::New(()));
        assert_eq!(window.admit(conversation(1), "k8", ()), Admission::Written(id(8), ()));
        assert_eq!(window.admit(conversation(1), "pending", ()), Admission::Queued);
        assert_eq!((window.written(), window.pending()), (1, 2));
    }
}
