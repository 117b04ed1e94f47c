//! What the notifier owes, as pure state: bursts of messages waiting for their deadline,
//! and which log offsets are not done yet, so offsets are committed only past decisions
//! that are finished.
//!
//! A burst is one recipient's unseen messages in one conversation. It opens with a message
//! and closes `delay` after that message was sent; messages sent to the same recipient
//! before it closes join it. Its id is the conversation, the recipient and the first
//! message: read again after a restart, the same messages make the same burst, so a
//! repeated notification carries the id of the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use schemas::{ConversationId, MessageId, Position, Timestamp, UserId};

/// A message as a burst needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unseen {
    pub id: MessageId,
    pub position: Position,
    pub sender_id: UserId,
    pub sender_name: String,
    pub text: String,
    pub sent_at: Timestamp,
}

/// A recipient's unseen messages in one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    pub id: String,
    pub conversation: ConversationId,
    pub recipient: UserId,
    /// When the decision is due: the first message's time plus the delay.
    pub due: Timestamp,
    /// Oldest first.
    pub messages: Vec<Unseen>,
}

impl Burst {
    pub fn latest(&self) -> Option<&Unseen> {
        self.messages.last()
    }

    fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        self.messages.iter().map(|message| message.position)
    }
}

#[derive(Debug, Default)]
pub struct Ledger {
    delay: Duration,
    open: HashMap<(ConversationId, UserId), Burst>,
    /// The open bursts by when they are due, so a tick looks only at those that are.
    deadlines: BTreeSet<(Timestamp, ConversationId, UserId)>,
    /// Per partition, per offset: how many bursts and tasks still hold it.
    holds: BTreeMap<u32, BTreeMap<u64, usize>>,
    /// Per partition, the last offset taken.
    taken: BTreeMap<u32, u64>,
    /// Per conversation and reader, the highest read mark seen in the log.
    read: HashMap<(ConversationId, UserId), MessageId>,
}

/// Read marks remembered before they are forgotten all at once. Forgetting is safe: a mark
/// only ever covers messages before it in the log, and those were taken already.
const READ_MARKS: usize = 100_000;

impl Ledger {
    pub fn new(delay: Duration) -> Self {
        Self { delay, ..Self::default() }
    }

    /// Notes that the record at `position` was read; it holds nothing unless something
    /// below holds it.
    pub fn taken(&mut self, position: Position) {
        let last = self.taken.entry(position.partition).or_insert(position.offset);
        *last = (*last).max(position.offset);
    }

    fn hold(&mut self, position: Position) {
        *self.holds.entry(position.partition).or_default().entry(position.offset).or_insert(0) += 1;
    }

    /// Releases one hold on `position`.
    pub fn release(&mut self, position: Position) {
        if let Some(partition) = self.holds.get_mut(&position.partition)
            && let Some(count) = partition.get_mut(&position.offset)
        {
            *count -= 1;
            if *count == 0 {
                partition.remove(&position.offset);
            }
        }
    }

    /// Holds `position` until [`Ledger::release`]: a task in flight for its record (a
    /// webhook for a started conversation).
    pub fn hold_task(&mut self, position: Position) {
        self.hold(position);
    }

    /// A message to `recipient`; joins their open burst in the conversation or opens one.
    /// Nothing if the recipient already read past it.
    pub fn message(&mut self, conversation: ConversationId, recipient: UserId, message: Unseen) {
        let key = (conversation, recipient);
        if self.read.get(&key).is_some_and(|mark| *mark >= message.id) {
            return;
        }
        self.hold(message.position);
        let delay = self.delay;
        let deadlines = &mut self.deadlines;
        let burst = self.open.entry(key.clone()).or_insert_with(|| {
            let due = later(message.sent_at, delay);
            deadlines.insert((due, conversation, key.1.clone()));
            Burst {
                id: format!("{}-{}-{}", conversation.get(), key.1.as_str(), message.id),
                conversation,
                recipient: key.1.clone(),
                due,
                messages: Vec::new(),
            }
        });
        burst.messages.push(message);
    }

    /// `reader` has read up to `up_to`: those messages are seen and leave their burst.
    pub fn read(&mut self, conversation: ConversationId, reader: UserId, up_to: MessageId) {
        let key = (conversation, reader);
        if self.read.len() >= READ_MARKS {
            self.read.clear();
        }
        let mark = self.read.entry(key.clone()).or_insert(up_to);
        *mark = (*mark).max(up_to);
        self.leave_burst(&key, |message| message.id <= up_to);
    }

    /// A message waiting in bursts changed: an edit (`Some(text)`) is notified with its new
    /// text, a deleted message (`None`) leaves its bursts and is not notified.
    pub fn changed(&mut self, conversation: ConversationId, id: MessageId, text: Option<&str>) {
        let keys: Vec<(ConversationId, UserId)> =
            self.open.keys().filter(|(held, _)| *held == conversation).cloned().collect();
        for key in keys {
            match text {
                Some(text) => {
                    let messages = self.open.get_mut(&key).map(|burst| &mut burst.messages);
                    for message in messages.into_iter().flatten().filter(|m| m.id == id) {
                        text.clone_into(&mut message.text);
                    }
                }
                None => self.leave_burst(&key, |message| message.id == id),
            }
        }
    }

    /// Takes the messages `gone` picks out of the burst at `key` (closing it if none is
    /// left) and releases their offsets.
    fn leave_burst(&mut self, key: &(ConversationId, UserId), gone: impl Fn(&Unseen) -> bool) {
        let Some(burst) = self.open.get_mut(key) else { return };
        let (left, kept): (Vec<Unseen>, Vec<Unseen>) =
            std::mem::take(&mut burst.messages).into_iter().partition(|m| gone(m));
        burst.messages = kept;
        if burst.messages.is_empty() {
            self.deadlines.remove(&(burst.due, key.0, key.1.clone()));
            self.open.remove(key);
        }
        for message in left {
            self.release(message.position);
        }
    }

    /// The bursts due at `now`, out of the ledger; their offsets stay held until
    /// [`Ledger::done`].
    pub fn due(&mut self, now: Timestamp) -> Vec<Burst> {
        let mut due = Vec::new();
        while self.deadlines.first().is_some_and(|(at, ..)| *at <= now) {
            if let Some((_, conversation, recipient)) = self.deadlines.pop_first() {
                due.extend(self.open.remove(&(conversation, recipient)));
            }
        }
        due
    }

    /// The decision on `burst` is finished (notified, or not needed).
    pub fn done(&mut self, burst: &Burst) {
        for position in burst.positions().collect::<Vec<_>>() {
            self.release(position);
        }
    }

    /// Per partition, the last offset that may be committed: everything up to it is done.
    pub fn committable(&self) -> Vec<Position> {
        self.taken
            .iter()
            .filter_map(|(&partition, &last)| {
                let lowest_held = self.holds.get(&partition).and_then(|h| h.keys().next().copied());
                match lowest_held {
                    None => Some(Position { partition, offset: last }),
                    Some(0) => None,
                    Some(held) => Some(Position { partition, offset: held - 1 }),
                }
            })
            .collect()
    }

    /// Forgets everything (the group moved partitions: their new owners read them again).
    pub fn clear(&mut self) {
        *self = Self::new(self.delay);
    }

    /// How many bursts wait for their deadline.
    pub fn waiting(&self) -> usize {
        self.open.len()
    }
}

fn later(at: Timestamp, delay: Duration) -> Timestamp {
    let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(at.millis().saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::new(name).unwrap()
    }

    fn unseen(offset: u64, at: i64) -> Unseen {
        let position = Position { partition: 1, offset };
        Unseen {
            id: MessageId::from_position(position),
            position,
            sender_id: user("ana"),
            sender_name: "Ana".into(),
            text: format!("m{offset}"),
            sent_at: Timestamp::from_millis(at),
        }
    }

    fn conversation() -> ConversationId {
        ConversationId::new(7).unwrap()
    }

    #[test]
    fn a_burst_is_due_a_delay_after_its_first_message_and_carries_them_all() {
        let mut ledger = Ledger::new(Duration::from_secs(1));
        for (offset, at) in [(10, 0), (11, 400), (12, 900)] {
            ledger.taken(Position { partition: 1, offset });
            ledger.message(conversation(), user("bo"), unseen(offset, at));
        }
        assert!(ledger.due(Timestamp::from_millis(999)).is_empty());
        assert_eq!(ledger.committable(), [Position { partition: 1, offset: 9 }]);
        let due = ledger.due(Timestamp::from_millis(1000));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].messages.len(), 3);
        assert_eq!(due[0].latest().unwrap().text, "m12");
        assert_eq!(due[0].id, format!("7-bo-{}", unseen(10, 0).id));
        // Out of the ledger but not done: the offsets stay held until the decision is.
        assert_eq!(ledger.committable(), [Position { partition: 1, offset: 9 }]);
        ledger.done(&due[0]);
        assert_eq!(ledger.committable(), [Position { partition: 1, offset: 12 }]);
        // A later message opens a new burst.
        ledger.message(conversation(), user("bo"), unseen(13, 1500));
        assert_eq!(ledger.waiting(), 1);
    }

    #[test]
    fn reading_takes_messages_out_of_their_burst_and_frees_their_offsets() {
        let mut ledger = Ledger::new(Duration::from_secs(1));
        for offset in [10, 11] {
            ledger.taken(Position { partition: 1, offset });
            ledger.message(conversation(), user("bo"), unseen(offset, 0));
        }
        ledger.taken(Position { partition: 1, offset: 12 });
        ledger.read(conversation(), user("bo"), unseen(10, 0).id);
        assert_eq!(ledger.committable(), [Position { partition: 1, offset: 10 }]);
        ledger.read(conversation(), user("bo"), unseen(11, 0).id);
        assert_eq!(ledger.waiting(), 0);
        assert_eq!(ledger.committable(), [Position { partition: 1, offset: 12 }]);
        // A message already read (its read came first, from another device) opens nothing.
        ledger.message(conversation(), user("bo"), unseen(11, 0));
        assert_eq!(ledger.waiting(), 0);
    }

    #[test]
    fn an_edited_message_is_notified_with_its_new_text_and_a_deleted_one_not_at_all() {
        let mut ledger = Ledger::new(Duration::from_secs(1));
        for offset in [10, 11] {
            ledger.taken(Position { partition: 1, offset });
            ledger.message(conversation(), user("bo"), unseen(offset, 0));
        }
        ledger.changed(conversation(), unseen(11, 0).id, Some("fixed"));
        ledger.changed(conversation(), unseen(10, 0).id, None);
        assert_eq!(ledger.committable(), [Position { partition: 1, offset: 10 }]);
        let due = ledger.due(Timestamp::from_millis(1000));
        assert_eq!(due[0].messages.len(), 1);
        assert_eq!(due[0].latest().unwrap().text, "fixed");
        ledger.done(&due[0]);
        // Deleting the only message of a burst closes it: nothing is notified.
        ledger.taken(Position { partition: 1, offset: 12 });
        ledger.message(conversation(), user("bo"), unseen(12, 2000));
        ledger.changed(conversation(), unseen(12, 0).id, None);
        assert_eq!(ledger.waiting(), 0);
        assert_eq!(ledger.committable(), [Position { partition: 1, offset: 12 }]);
    }

    #[test]
    fn nothing_is_committed_below_a_task_in_flight_and_an_unheld_first_offset_is_zero() {
        let mut ledger = Ledger::new(Duration::from_secs(1));
        let first = Position { partition: 2, offset: 0 };
        ledger.taken(first);
        ledger.hold_task(first);
        assert!(ledger.committable().is_empty(), "offset 0 is held: nothing to commit");
        ledger.release(first);
        assert_eq!(ledger.committable(), [first]);
    }
}
