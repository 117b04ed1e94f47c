//! The fold, given/when/then, with no I/O: the lookups the fold asks for are answered from
//! the messages the test itself produced.

#![allow(clippy::unwrap_used)]

use projector::fold::{self, Known, Need, Outcome};
use schemas::{
    ChatEvent, ConversationId, ConversationStarted, MessageDeleted, MessageEdited, MessageId,
    MessageSent, MessageType, MessagesRead, Participant, Position, Timestamp, UserId,
};
use viewstore::{ConversationView, Role, StoredMessage};

struct Given {
    view: Option<ConversationView>,
    messages: Vec<StoredMessage>,
    next_offset: u64,
}

fn person(id: &str) -> Participant {
    Participant { id: UserId::new(id).unwrap(), name: id.to_uppercase() }
}

fn conversation() -> ConversationId {
    ConversationId::new(11).unwrap()
}

fn started() -> ChatEvent {
    ChatEvent::ConversationStarted(ConversationStarted {
        conversation_id: conversation(),
        job_id: "job-1".into(),
        client: person("client"),
        worker: person("worker"),
        started_at: Timestamp::from_millis(1),
    })
}

fn sent(sender: &str, text: &str, key: Option<&str>) -> ChatEvent {
    ChatEvent::MessageSent(MessageSent {
        conversation_id: conversation(),
        sender: person(sender),
        message_type: if sender == "jobs" { MessageType::System } else { MessageType::Text },
        text: text.into(),
        attachment: None,
        idempotency_key: key.map(str::to_owned),
        sent_at: Timestamp::from_millis(100),
    })
}

fn read(reader: &str, up_to: MessageId) -> ChatEvent {
    ChatEvent::MessagesRead(MessagesRead {
        conversation_id: conversation(),
        reader_id: UserId::new(reader).unwrap(),
        up_to,
        read_at: Timestamp::from_millis(200),
    })
}

impl Given {
    fn new() -> Self {
        let mut given = Self { view: None, messages: Vec::new(), next_offset: 0 };
        assert_eq!(given.when(&started()), Outcome::Started);
        given
    }

    fn at(&self, offset: u64) -> Position {
        Position { partition: 3, offset }
    }

    fn answer(&self, need: Need) -> Known {
        match need {
            Need::Nothing => Known::Nothing,
            Need::FirstWithKey(key) => Known::FirstWithKey(
                self.messages
                    .iter()
                    .find(|m| m.idempotency_key.as_deref() == Some(key.as_str()))
                    .map(|m| m.id),
            ),
            Need::CountsAt(up_to) => Known::CountsAt(
                self.messages.iter().rev().find(|m| m.id <= up_to).map(|m| (m.id, m.counts)),
            ),
            Need::Message { id, standing_before } => Known::Message {
                message: self.messages.iter().find(|m| m.id == id).cloned().map(Box::new),
                standing_before: standing_before
                    .then(|| {
                        self.messages.iter().rev().find(|m| m.id < id && m.deleted_at.is_none())
                    })
                    .flatten()
                    .cloned()
                    .map(Box::new),
            },
        }
    }

    /// Applies `event` at the next offset.
    fn when(&mut self, event: &ChatEvent) -> Outcome {
        let position = self.at(self.next_offset);
        self.next_offset += 1;
        self.when_at(event, position)
    }

    fn when_at(&mut self, event: &ChatEvent, position: Position) -> Outcome {
        let known = self.answer(fold::need(self.view.as_ref(), event, position));
        let outcome = fold::apply(&mut self.view, event, position, known);
        match &outcome {
            Outcome::Message(message) => self.messages.push(message.as_ref().clone()),
            Outcome::Changed { message, .. } => {
                let slot = self.messages.iter_mut().find(|m| m.id == message.id).unwrap();
                *slot = message.as_ref().clone();
            }
            _ => {}
        }
        outcome
    }

    fn send(&mut self, sender: &str) -> MessageId {
        match self.when(&sent(sender, "hello", None)) {
            Outcome::Message(message) => message.id,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn unread(&self, role: Role) -> u64 {
        self.view.as_ref().unwrap().unread(role)
    }
}

#[test]
fn messages_from_the_other_side_are_unread_until_read() {
    let mut given = Given::new();
    given.send("worker");
    let last = given.send("worker");
    given.send("client");
    assert_eq!(given.unread(Role::Client), 2);
    assert_eq!(given.unread(Role::Worker), 1);
    assert_eq!(
        given.when(&read("client", last)),
        Outcome::Read { role: Role::Client, up_to: last }
    );
    assert_eq!(given.unread(Role::Client), 0);
    assert_eq!(given.unread(Role::Worker), 1);
}

#[test]
fn reading_up_to_a_middle_message_leaves_the_exact_remainder() {
    let mut given = Given::new();
    let ids: Vec<MessageId> = (0..5).map(|_| given.send("worker")).collect();
    given.send("client");
    given.when(&read("client", ids[1]));
    assert_eq!(given.unread(Role::Client), 3);
    // up_to names the client's own later message: the mark lands on it, the remainder is 0.
    let own = given.messages.last().unwrap().id;
    given.when(&read("client", own));
    assert_eq!(given.unread(Role::Client), 0);
}

#[test]
fn read_marks_never_go_backwards_or_past_the_last_message() {
    let mut given = Given::new();
    let first = given.send("worker");
    let second = given.send("worker");
    given.when(&read("client", second));
    assert_eq!(
        given.when(&read("client", first)),
        Outcome::Unchanged("read mark does not move forward")
    );
    assert_eq!(given.unread(Role::Client), 0);
    let far_future = MessageId::new(1 << 50).unwrap();
    let third = given.send("worker");
    let outcome = given.when(&read("client", far_future));
    assert_eq!(outcome, Outcome::Read { role: Role::Client, up_to: third });
    let fourth = given.send("worker");
    assert!(fourth > third);
    assert_eq!(
        given.unread(Role::Client),
        1,
        "a mark past the end must not swallow later messages"
    );
}

#[test]
fn a_reused_idempotency_key_is_a_duplicate_not_a_message() {
    let mut given = Given::new();
    let Outcome::Message(first) = given.when(&sent("worker", "once", Some("k1"))) else {
        panic!("first send must be a message");
    };
    let again = given.when(&sent("worker", "once", Some("k1")));
    assert_eq!(again, Outcome::Duplicate { original: first.id });
    assert_eq!(given.unread(Role::Client), 1);
    assert_eq!(given.view.as_ref().unwrap().totals.total, 1);
    assert!(matches!(given.when(&sent("worker", "other", Some("k2"))), Outcome::Message(_)));
}

#[test]
fn redelivered_events_change_nothing() {
    let mut given = Given::new();
    let message = sent("worker", "hi", None);
    let position = given.at(given.next_offset);
    given.next_offset += 1;
    assert!(matches!(given.when_at(&message, position), Outcome::Message(_)));
    let before = given.view.clone();
    assert_eq!(given.when_at(&message, position), Outcome::Unchanged("already applied"));
    assert_eq!(given.view, before);
    assert_eq!(given.unread(Role::Client), 1);
}

#[test]
fn system_messages_are_unread_for_both_participants() {
    let mut given = Given::new();
    given.send("jobs");
    assert_eq!(given.unread(Role::Client), 1);
    assert_eq!(given.unread(Role::Worker), 1);
}

#[test]
fn summaries_track_the_last_message_with_a_bounded_preview() {
    let mut given = Given::new();
    let long = "x".repeat(500);
    given.when(&sent("client", &long, None));
    let view = given.view.as_ref().unwrap();
    let last = view.last_message.as_ref().unwrap();
    assert!(last.preview.chars().count() <= 121);
    assert_eq!(last.sender_id.as_str(), "client");
    assert_eq!(view.last_activity_at(), Timestamp::from_millis(100));
}

fn edited(editor: &str, id: MessageId, text: &str) -> ChatEvent {
    ChatEvent::MessageEdited(MessageEdited {
        conversation_id: conversation(),
        message_id: id,
        editor_id: UserId::new(editor).unwrap(),
        text: text.into(),
        edited_at: Timestamp::from_millis(300),
    })
}

fn deleted(by: &str, id: MessageId, moderation: bool) -> ChatEvent {
    ChatEvent::MessageDeleted(MessageDeleted {
        conversation_id: conversation(),
        message_id: id,
        deleted_by: UserId::new(by).unwrap(),
        moderation,
        deleted_at: Timestamp::from_millis(400),
    })
}

fn stored(given: &Given, id: MessageId) -> StoredMessage {
    given.messages.iter().find(|m| m.id == id).unwrap().clone()
}

#[test]
fn an_edit_by_the_sender_replaces_the_text_and_the_preview_of_the_latest() {
    let mut given = Given::new();
    let first = given.send("worker");
    let last = given.send("worker");
    let outcome = given.when(&edited("worker", last, "the right quote"));
    let Outcome::Changed { change, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(change.message_id, last);
    assert!(change.position > last, "a change comes after its message");
    let message = stored(&given, last);
    assert_eq!(message.text, "the right quote");
    assert_eq!(message.edited_at, Some(Timestamp::from_millis(300)));
    let view = given.view.as_ref().unwrap();
    assert_eq!(view.last_message.as_ref().unwrap().preview, "the right quote");
    // An older message's edit leaves the preview alone; nobody else edits; counts hold.
    given.when(&edited("worker", first, "earlier"));
    assert_eq!(
        given.view.as_ref().unwrap().last_message.as_ref().unwrap().preview,
        "the right quote"
    );
    assert_eq!(
        given.when(&edited("client", last, "hijacked")),
        Outcome::Unchanged("only the sender edits a message")
    );
    assert_eq!(stored(&given, last).text, "the right quote");
    assert_eq!(given.unread(Role::Client), 2);
}

#[test]
fn a_deleted_message_is_a_tombstone_no_longer_unread_and_the_preview_moves_back() {
    let mut given = Given::new();
    let first = given.send("worker");
    let second = given.send("worker");
    let third = given.send("worker");
    assert_eq!(given.unread(Role::Client), 3);
    given.when(&deleted("worker", third, false));
    let tombstone = stored(&given, third);
    assert!(tombstone.deleted_at.is_some() && tombstone.text.is_empty());
    assert_eq!(given.unread(Role::Client), 2, "a deleted message is not unread");
    let view = given.view.as_ref().unwrap();
    assert_eq!(view.last_message.as_ref().unwrap().id, second, "preview on the latest standing");
    // A read up to the tombstone, then deleting an already read one: counts stay exact.
    given.when(&read("client", third));
    assert_eq!(given.unread(Role::Client), 0);
    given.when(&deleted("worker", first, false));
    assert_eq!(given.unread(Role::Client), 0);
    let after = given.send("worker");
    assert_eq!(given.unread(Role::Client), 1);
    given.when(&deleted("worker", after, false));
    assert_eq!(given.unread(Role::Client), 0);
    // Nobody edits a tombstone or deletes it twice; only its sender or moderation deletes.
    assert_eq!(
        given.when(&edited("worker", third, "back")),
        Outcome::Unchanged("message already deleted")
    );
    assert_eq!(
        given.when(&deleted("client", second, false)),
        Outcome::Unchanged("only the sender or moderation deletes a message")
    );
    assert!(matches!(given.when(&deleted("jobs", second, true)), Outcome::Changed { .. }));
    assert!(given.view.as_ref().unwrap().last_message.is_none(), "nothing left standing");
}

#[test]
fn a_deleted_system_message_leaves_both_unread_counts() {
    let mut given = Given::new();
    let notice = given.send("jobs");
    assert_eq!((given.unread(Role::Client), given.unread(Role::Worker)), (1, 1));
    given.when(&deleted("jobs", notice, true));
    assert_eq!((given.unread(Role::Client), given.unread(Role::Worker)), (0, 0));
}

#[test]
fn strangers_and_unknown_conversations_change_nothing() {
    let mut given = Given::new();
    let id = given.send("worker");
    assert_eq!(given.when(&read("mallory", id)), Outcome::Unchanged("reader is not a participant"));
    assert_eq!(given.when(&started()), Outcome::Unchanged("conversation already started"));
    let mut empty = None;
    let outcome =
        fold::apply(&mut empty, &sent("worker", "hi", None), given.at(99), Known::Nothing);
    assert_eq!(outcome, Outcome::Unchanged("no such conversation"));
    assert!(empty.is_none());
}

#[test]
fn a_keyed_message_already_in_the_store_is_not_its_own_duplicate() {
    // A crash wrote the message (and its key) but not the view: on redelivery the key
    // lookup finds the message itself, which must still be counted once.
    let mut given = Given::new();
    let event = sent("worker", "once", Some("k1"));
    let position = given.at(given.next_offset);
    given.next_offset += 1;
    let itself = MessageId::from_position(position);
    let outcome = fold::apply(&mut given.view, &event, position, Known::FirstWithKey(Some(itself)));
    assert!(matches!(outcome, Outcome::Message(_)), "{outcome:?}");
    assert_eq!(given.unread(Role::Client), 1);
    let later = given.at(given.next_offset);
    let again = fold::apply(&mut given.view, &event, later, Known::FirstWithKey(Some(itself)));
    assert_eq!(again, Outcome::Duplicate { original: itself });
}
