//! The fold: what each event does to a conversation's view.
//!
//! Two steps, so the fold itself stays pure: [`need`] says what the fold must know beyond the
//! view (was this idempotency key used before? what were the counts at the read mark?), the
//! caller looks it up, and [`apply`] computes the new view.
//!
//! Rules:
//! - The first `conversation.started` creates the view; repeats change nothing.
//! - A `message.sent` adds a message and counts it, unless an earlier message of the
//!   conversation carried the same idempotency key (then it is a duplicate, not a message).
//!   The message itself, already in the store from a partly applied batch, is not earlier.
//! - A `messages.read` moves the reader's mark forward to the last message at or before
//!   `up_to` (never beyond the last message, never backwards); unread = messages from
//!   others after the mark.
//! - A `message.edited` replaces the text of a message its editor sent, unless deleted; a
//!   `message.deleted` by the sender (or by moderation) makes the message a tombstone. Both
//!   are recorded as changes at their position, for resuming clients. A deleted message no
//!   longer counts as unread, and the inbox preview moves to the latest message standing.
//! - A participant's `conversation.blocked` stands until their `conversation.unblocked`.
//! - An event at or below the view's applied offset was applied already and changes nothing.
//!   This is what makes redelivery harmless.

use schemas::limits::message_preview;
use schemas::native::MessageChange;
use schemas::{
    ChatEvent, MessageDeleted, MessageEdited, MessageId, MessageSent, MessagesRead, Position,
};
use viewstore::{
    ConversationView, DeletedMessage, LastMessage, MessageCounts, ReadState, Receipt, Role,
    StoredChange, StoredMessage,
};

/// What [`apply`] needs to know beyond the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Nothing,
    /// The first message of the conversation that carried this key, if any.
    FirstWithKey(String),
    /// The last message at or before this id, with the counts through it.
    CountsAt(MessageId),
    /// The message a change applies to, as history has it now; with `standing_before`, also
    /// the latest message before it that is not deleted (the preview after deleting it).
    Message {
        id: MessageId,
        standing_before: bool,
    },
}

/// The answer to a [`Need`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    Nothing,
    FirstWithKey(Option<MessageId>),
    CountsAt(Option<(MessageId, MessageCounts)>),
    Message { message: Option<Box<StoredMessage>>, standing_before: Option<Box<StoredMessage>> },
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Started,
    Message(Box<StoredMessage>),
    Read {
        role: Role,
        up_to: MessageId,
    },
    Duplicate {
        original: MessageId,
    },
    /// A message changed: its new state, and the change as resuming clients get it.
    Changed {
        message: Box<StoredMessage>,
        change: StoredChange,
    },
    /// A participant blocked the conversation or lifted their block.
    Blocking,
    Unchanged(&'static str),
}

impl Outcome {
    pub fn changed_view(&self) -> bool {
        matches!(
            self,
            Self::Started
                | Self::Message(_)
                | Self::Read { .. }
                | Self::Changed { .. }
                | Self::Blocking
        )
    }
}

fn already_applied(view: &ConversationView, position: Position) -> bool {
    debug_assert_eq!(view.partition, position.partition, "a conversation moved partitions");
    position.offset <= view.applied_offset
}

pub fn need(view: Option<&ConversationView>, event: &ChatEvent, position: Position) -> Need {
    let Some(view) = view else {
        return Need::Nothing;
    };
    if already_applied(view, position) {
        return Need::Nothing;
    }
    match event {
        ChatEvent::MessageSent(MessageSent { idempotency_key: Some(key), .. }) => {
            Need::FirstWithKey(key.clone())
        }
        ChatEvent::MessagesRead(read) => match &view.last_message {
            Some(last) if view.role_of(&read.reader_id).is_some() => {
                Need::CountsAt(read.up_to.min(last.id))
            }
            _ => Need::Nothing,
        },
        ChatEvent::MessageEdited(edited) => {
            Need::Message { id: edited.message_id, standing_before: false }
        }
        ChatEvent::MessageDeleted(deleted) => Need::Message {
            id: deleted.message_id,
            standing_before: view.last_message.as_ref().is_some_and(|l| l.id == deleted.message_id),
        },
        _ => Need::Nothing,
    }
}

pub fn apply(
    view: &mut Option<ConversationView>,
    event: &ChatEvent,
    position: Position,
    known: Known,
) -> Outcome {
    if let ChatEvent::ConversationStarted(started) = event {
        if view.is_some() {
            return Outcome::Unchanged("conversation already started");
        }
        *view = Some(ConversationView {
            conversation_id: started.conversation_id,
            job_id: started.job_id.clone(),
            client: started.client.clone(),
            worker: started.worker.clone(),
            started_at: started.started_at,
            last_message: None,
            totals: MessageCounts::default(),
            client_read: ReadState::default(),
            worker_read: ReadState::default(),
            deleted: Vec::new(),
            blocked_by: Vec::new(),
            partition: position.partition,
            applied_offset: position.offset,
        });
        return Outcome::Started;
    }
    let Some(view) = view.as_mut() else {
        return Outcome::Unchanged("no such conversation");
    };
    if already_applied(view, position) {
        return Outcome::Unchanged("already applied");
    }
    match event {
        ChatEvent::MessageSent(sent) => apply_message(view, sent, position, &known),
        ChatEvent::MessagesRead(read) => apply_read(view, read, position, &known),
        ChatEvent::MessageEdited(edited) => apply_edit(view, edited, position, known),
        ChatEvent::MessageDeleted(deleted) => apply_delete(view, deleted, position, known),
        ChatEvent::MessageReported(_) => Outcome::Unchanged("a report is for the moderators"),
        ChatEvent::ConversationBlocked(block) => {
            apply_blocking(view, &block.blocker_id, true, position)
        }
        ChatEvent::ConversationUnblocked(unblock) => {
            apply_blocking(view, &unblock.unblocker_id, false, position)
        }
        ChatEvent::ConversationStarted(_) => Outcome::Unchanged("conversation already started"),
    }
}

fn apply_message(
    view: &mut ConversationView,
    sent: &MessageSent,
    position: Position,
    known: &Known,
) -> Outcome {
    let id = MessageId::from_position(position);
    // The store may already hold this very message (a redelivery after a crash that wrote
    // the message but not yet the view): only an earlier message makes it a duplicate.
    if let Known::FirstWithKey(Some(original)) = *known
        && original < id
    {
        return Outcome::Duplicate { original };
    }
    let mut counts = view.totals;
    counts.total += 1;
    match view.role_of(&sent.sender.id) {
        Some(Role::Client) => counts.by_client += 1,
        Some(Role::Worker) => counts.by_worker += 1,
        None => {}
    }
    view.totals = counts;
    view.last_message = Some(LastMessage {
        id,
        preview: message_preview(&sent.text, sent.attachment.as_ref()),
        sent_at: sent.sent_at,
        sender_id: sent.sender.id.clone(),
    });
    view.applied_offset = position.offset;
    Outcome::Message(Box::new(StoredMessage {
        id,
        conversation_id: sent.conversation_id,
        sender: sent.sender.clone(),
        message_type: sent.message_type,
        text: sent.text.clone(),
        attachment: sent.attachment.clone(),
        idempotency_key: sent.idempotency_key.clone(),
        sent_at: sent.sent_at,
        counts,
        edited_at: None,
        deleted_at: None,
        revision: position.offset,
    }))
}

/// The message a change applies to, if it is a standing message of this conversation.
fn standing(
    view: &ConversationView,
    known: Known,
) -> Result<(StoredMessage, Option<Box<StoredMessage>>), &'static str> {
    let Known::Message { message: Some(message), standing_before } = known else {
        return Err("no such message");
    };
    if message.conversation_id != view.conversation_id {
        return Err("message of another conversation");
    }
    if message.deleted_at.is_some() {
        return Err("message already deleted");
    }
    Ok((*message, standing_before))
}

fn change_of(
    view: &mut ConversationView,
    message: StoredMessage,
    position: Position,
    change: MessageChange,
) -> Outcome {
    view.applied_offset = position.offset;
    let change = StoredChange {
        conversation_id: view.conversation_id,
        message_id: message.id,
        position: MessageId::from_position(position),
        change,
    };
    Outcome::Changed { message: Box::new(message), change }
}

fn apply_edit(
    view: &mut ConversationView,
    edited: &MessageEdited,
    position: Position,
    known: Known,
) -> Outcome {
    let mut message = match standing(view, known) {
        Ok((message, _)) => message,
        Err(reason) => return Outcome::Unchanged(reason),
    };
    if message.sender.id != edited.editor_id {
        return Outcome::Unchanged("only the sender edits a message");
    }
    message.text.clone_from(&edited.text);
    message.edited_at = Some(edited.edited_at);
    message.revision = position.offset;
    if let Some(last) = view.last_message.as_mut()
        && last.id == message.id
    {
        last.preview = message_preview(&message.text, message.attachment.as_ref());
    }
    let change = MessageChange::Edited { text: edited.text.clone(), edited_at: edited.edited_at };
    change_of(view, message, position, change)
}

fn apply_delete(
    view: &mut ConversationView,
    deleted: &MessageDeleted,
    position: Position,
    known: Known,
) -> Outcome {
    let (mut message, standing_before) = match standing(view, known) {
        Ok(found) => found,
        Err(reason) => return Outcome::Unchanged(reason),
    };
    if !deleted.moderation && message.sender.id != deleted.deleted_by {
        return Outcome::Unchanged("only the sender or moderation deletes a message");
    }
    view.deleted.push(DeletedMessage { id: message.id, sender: view.role_of(&message.sender.id) });
    view.forget_deleted_read_by_both();
    if view.last_message.as_ref().is_some_and(|last| last.id == message.id) {
        view.last_message = standing_before.map(|before| LastMessage {
            id: before.id,
            preview: message_preview(&before.text, before.attachment.as_ref()),
            sent_at: before.sent_at,
            sender_id: before.sender.id.clone(),
        });
    }
    message.text.clear();
    message.attachment = None;
    message.edited_at = None;
    message.deleted_at = Some(deleted.deleted_at);
    message.revision = position.offset;
    change_of(view, message, position, MessageChange::Deleted { deleted_at: deleted.deleted_at })
}

/// A participant's block stands from `blocked` until they lift it; each participant lifts
/// only their own.
fn apply_blocking(
    view: &mut ConversationView,
    who: &schemas::UserId,
    blocked: bool,
    position: Position,
) -> Outcome {
    if view.role_of(who).is_none() {
        return Outcome::Unchanged("only a participant blocks");
    }
    if view.blocked_by.contains(who) == blocked {
        return Outcome::Unchanged("the block is as it was");
    }
    if blocked {
        view.blocked_by.push(who.clone());
    } else {
        view.blocked_by.retain(|blocker| blocker != who);
    }
    view.applied_offset = position.offset;
    Outcome::Blocking
}

fn apply_read(
    view: &mut ConversationView,
    read: &MessagesRead,
    position: Position,
    known: &Known,
) -> Outcome {
    let Some(role) = view.role_of(&read.reader_id) else {
        return Outcome::Unchanged("reader is not a participant");
    };
    let Known::CountsAt(Some((mark, counts_at_mark))) = *known else {
        return Outcome::Unchanged("no message at or before up_to");
    };
    let state = view.read_state_mut(role);
    if mark <= state.last_read {
        return Outcome::Unchanged("read mark does not move forward");
    }
    let receipt = Some(Receipt { offset: position.offset, read_at: read.read_at });
    *state = ReadState { last_read: mark, counts_at_mark, receipt };
    view.forget_deleted_read_by_both();
    view.applied_offset = position.offset;
    Outcome::Read { role, up_to: mark }
}
