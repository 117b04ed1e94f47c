//! Applying the fold to one batch of records.
//!
//! The batch keeps what it has produced so far (views, new messages, keys) so that a later
//! event in the same batch sees an earlier one without a round trip to the store; it asks the
//! store only for what the batch does not have. Those questions (was this key used before?
//! what were the counts at this read mark?) are asked all at once before the fold, since the
//! store does not change while a batch is folded; the fold itself stays sequential.

use std::collections::{BTreeMap, HashMap};

use futures_util::{StreamExt, TryStreamExt, stream};

use eventlog::Record;
use schemas::{ConversationId, Envelope, MessageId, Position};
use viewstore::{
    ConversationView, MessageCounts, ProjectionBatch, ProjectionStore, StoreError, StoredMessage,
};

use crate::fold::{self, Known, Need, Outcome};

/// What applying a batch produced.
#[derive(Debug, Default)]
pub struct AppliedBatch {
    /// Everything to write, in one idempotent store call.
    pub projection: ProjectionBatch,
    /// Per partition, the last position of the batch: what to commit afterwards.
    pub commit: Vec<Position>,
    pub counts: OutcomeCounts,
}

/// How many events had which effect; logged and counted in [`crate::metrics`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub messages: u64,
    pub reads: u64,
    pub started: u64,
    pub duplicates: u64,
    pub changes: u64,
    pub unchanged: u64,
    pub undecodable: u64,
    pub unknown_types: u64,
}

#[derive(Default)]
struct BatchState {
    views: HashMap<ConversationId, Option<ConversationView>>,
    changed: Vec<ConversationId>,
    new_messages: HashMap<ConversationId, Vec<(MessageId, MessageCounts)>>,
    keys: HashMap<(ConversationId, String), MessageId>,
    /// Every message the batch wrote or changed, at its latest, and where it is in `messages`.
    messages: Vec<StoredMessage>,
    message_slots: HashMap<(ConversationId, MessageId), usize>,
    /// The store's answers, asked before the fold.
    stored: StoredAnswers,
}

/// What the store said before the batch, for each question the fold is expected to ask.
#[derive(Default)]
struct StoredAnswers {
    keys: HashMap<(ConversationId, String), Option<MessageId>>,
    counts: HashMap<(ConversationId, MessageId), Option<(MessageId, MessageCounts)>>,
}

/// A conversation, the keys asked about, and those that have a message.
type KeysFound = (ConversationId, Vec<String>, Vec<(String, MessageId)>);
/// A conversation, a read mark, and the last message at or before it with its counts.
type CountsFound = (ConversationId, MessageId, Option<(MessageId, MessageCounts)>);

/// Store lookups in flight at once while prefetching.
const LOOKUPS_IN_FLIGHT: usize = 64;

/// Decodes `records` and folds them into the views they touch.
pub async fn apply_records(
    store: &dyn ProjectionStore,
    records: &[Record],
) -> Result<AppliedBatch, StoreError> {
    let mut applied = AppliedBatch::default();
    let mut last_positions: BTreeMap<u32, u64> = BTreeMap::new();
    let mut events = Vec::with_capacity(records.len());
    for record in records {
        last_positions
            .entry(record.position.partition)
            .and_modify(|offset| *offset = (*offset).max(record.position.offset))
            .or_insert(record.position.offset);
        match Envelope::decode(&record.value) {
            Ok((_, Some(event))) => events.push((record.position, event)),
            Ok((envelope, None)) => {
                applied.counts.unknown_types += 1;
                tracing::debug!(event_type = envelope.event_type, "skipping unknown event type");
            }
            Err(error) => {
                applied.counts.undecodable += 1;
                tracing::warn!(%error, partition = record.position.partition,
                    offset = record.position.offset, "skipping undecodable record");
            }
        }
    }

    let mut state = BatchState::default();
    let mut wanted: Vec<ConversationId> = events.iter().map(|(_, e)| e.conversation_id()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    for id in &wanted {
        state.views.insert(*id, None);
    }
    for view in store.load_views(&wanted).await? {
        state.views.insert(view.conversation_id, Some(view));
    }
    state.stored = prefetch(store, &state, &events).await?;

    for (position, event) in &events {
        let conversation = event.conversation_id();
        let need =
            fold::need(state.views.get(&conversation).and_then(Option::as_ref), event, *position);
        let known = resolve(store, &state, conversation, need).await?;
        let slot = state.views.entry(conversation).or_default();
        let outcome = fold::apply(slot, event, *position, known);
        record_outcome(&mut state, &mut applied, conversation, outcome);
    }

    applied.projection.views =
        state.changed.iter().filter_map(|id| state.views.get(id).cloned().flatten()).collect();
    applied.projection.messages = std::mem::take(&mut state.messages);
    let commit: Vec<Position> = last_positions
        .into_iter()
        .map(|(partition, offset)| Position { partition, offset })
        .collect();
    applied.projection.watermarks = commit.clone();
    applied.commit = commit;
    Ok(applied)
}

/// Asks the store, concurrently, what the fold will want to know about `events` given the
/// views as loaded. Questions that only arise later in the batch (a view the batch creates)
/// are asked when they arise.
async fn prefetch(
    store: &dyn ProjectionStore,
    state: &BatchState,
    events: &[(Position, schemas::ChatEvent)],
) -> Result<StoredAnswers, StoreError> {
    let mut questions: Vec<(ConversationId, Need)> = events
        .iter()
        .map(|(position, event)| {
            let conversation = event.conversation_id();
            let view = state.views.get(&conversation).and_then(Option::as_ref);
            let need = match (view, event) {
                // A conversation started in this very batch has no view yet, but its keyed
                // messages will ask: the first batch of every partition is full of them.
                (None, schemas::ChatEvent::MessageSent(sent)) => {
                    sent.idempotency_key.clone().map_or(Need::Nothing, Need::FirstWithKey)
                }
                _ => fold::need(view, event, *position),
            };
            (conversation, need)
        })
        .filter(|(_, need)| !matches!(need, Need::Nothing))
        .collect();
    questions.sort_unstable_by(|a, b| (a.0, need_order(&a.1)).cmp(&(b.0, need_order(&b.1))));
    questions.dedup();
    // Keys are asked per conversation, all of a conversation's keys in one question.
    let mut keys: BTreeMap<ConversationId, Vec<String>> = BTreeMap::new();
    let mut counts: Vec<(ConversationId, MessageId)> = Vec::new();
    for (conversation, need) in questions {
        match need {
            Need::FirstWithKey(key) => keys.entry(conversation).or_default().push(key),
            Need::CountsAt(up_to) => counts.push((conversation, up_to)),
            // Changes to messages are rare: asked when they come.
            Need::Message { .. } | Need::Nothing => {}
        }
    }
    let mut stored = StoredAnswers::default();
    let found_keys: Vec<KeysFound> = stream::iter(keys)
        .map(|(conversation, keys)| async move {
            let found = store.messages_with_keys(conversation, &keys).await?;
            Ok::<_, StoreError>((conversation, keys, found))
        })
        .buffer_unordered(LOOKUPS_IN_FLIGHT)
        .try_collect()
        .await?;
    for (conversation, asked, found) in found_keys {
        for key in asked {
            stored.keys.insert((conversation, key), None);
        }
        for (key, id) in found {
            stored.keys.insert((conversation, key), Some(id));
        }
    }
    let found_counts: Vec<CountsFound> = stream::iter(counts)
        .map(|(conversation, up_to)| async move {
            let found = store.counts_at(conversation, up_to).await?;
            Ok::<_, StoreError>((conversation, up_to, found))
        })
        .buffer_unordered(LOOKUPS_IN_FLIGHT)
        .try_collect()
        .await?;
    for (conversation, up_to, found) in found_counts {
        stored.counts.insert((conversation, up_to), found);
    }
    Ok(stored)
}

/// A total order on needs, to drop repeated questions.
fn need_order(need: &Need) -> (u8, &str, u64) {
    match need {
        Need::Nothing => (0, "", 0),
        Need::FirstWithKey(key) => (1, key.as_str(), 0),
        Need::CountsAt(up_to) => (2, "", up_to.get()),
        Need::Message { id, .. } => (3, "", id.get()),
    }
}

async fn resolve(
    store: &dyn ProjectionStore,
    state: &BatchState,
    conversation: ConversationId,
    need: Need,
) -> Result<Known, StoreError> {
    match need {
        Need::Nothing => Ok(Known::Nothing),
        Need::FirstWithKey(key) => {
            let slot = (conversation, key);
            if let Some(id) = state.keys.get(&slot) {
                return Ok(Known::FirstWithKey(Some(*id)));
            }
            if let Some(found) = state.stored.keys.get(&slot) {
                return Ok(Known::FirstWithKey(*found));
            }
            let found = store.message_with_key(conversation, &slot.1).await?;
            Ok(Known::FirstWithKey(found.map(|message| message.id)))
        }
        Need::CountsAt(up_to) => {
            let local = state
                .new_messages
                .get(&conversation)
                .and_then(|messages| messages.iter().rev().find(|(id, _)| *id <= up_to));
            if let Some(found) = local {
                return Ok(Known::CountsAt(Some(*found)));
            }
            if let Some(found) = state.stored.counts.get(&(conversation, up_to)) {
                return Ok(Known::CountsAt(*found));
            }
            Ok(Known::CountsAt(store.counts_at(conversation, up_to).await?))
        }
        Need::Message { id, standing_before } => {
            let message = match state.message(conversation, id) {
                Some(message) => Some(message.clone()),
                None => store.message(conversation, id).await?,
            };
            let before = if standing_before {
                latest_standing_before(store, state, conversation, id).await?
            } else {
                None
            };
            Ok(Known::Message {
                message: message.map(Box::new),
                standing_before: before.map(Box::new),
            })
        }
    }
}

/// Messages looked at per store query while searching back for one not deleted.
const STANDING_PAGE: usize = 50;

/// The latest message of `conversation` before `id` that is not deleted, as the batch has it
/// so far.
async fn latest_standing_before(
    store: &dyn ProjectionStore,
    state: &BatchState,
    conversation: ConversationId,
    id: MessageId,
) -> Result<Option<StoredMessage>, StoreError> {
    let current = |message: StoredMessage| match state.message(conversation, message.id) {
        Some(newer) => newer.clone(),
        None => message,
    };
    let in_batch = state
        .messages
        .iter()
        .filter(|m| m.conversation_id == conversation && m.id < id && m.deleted_at.is_none())
        .max_by_key(|m| m.id)
        .cloned();
    let mut before = id;
    loop {
        let page = store
            .messages(conversation, MessageId::ZERO, Some(before), STANDING_PAGE, true)
            .await?;
        let Some(oldest) = page.first().map(|m| m.id) else { return Ok(in_batch) };
        let found = page.into_iter().rev().map(current).find(|m| m.deleted_at.is_none());
        if let Some(found) = found {
            return Ok(match in_batch {
                Some(local) if local.id > found.id => Some(local),
                _ => Some(found),
            });
        }
        before = oldest;
    }
}

impl BatchState {
    fn message(&self, conversation: ConversationId, id: MessageId) -> Option<&StoredMessage> {
        self.message_slots.get(&(conversation, id)).and_then(|slot| self.messages.get(*slot))
    }

    /// Keeps `message` as the batch's latest version of it.
    fn keep(&mut self, message: StoredMessage) {
        let slot = (message.conversation_id, message.id);
        match self.message_slots.get(&slot) {
            Some(index) => self.messages[*index] = message,
            None => {
                self.message_slots.insert(slot, self.messages.len());
                self.messages.push(message);
            }
        }
    }
}

fn record_outcome(
    state: &mut BatchState,
    applied: &mut AppliedBatch,
    conversation: ConversationId,
    outcome: Outcome,
) {
    if outcome.changed_view() && !state.changed.contains(&conversation) {
        state.changed.push(conversation);
    }
    match outcome {
        Outcome::Started => applied.counts.started += 1,
        Outcome::Message(message) => {
            applied.counts.messages += 1;
            state.new_messages.entry(conversation).or_default().push((message.id, message.counts));
            if let Some(key) = &message.idempotency_key {
                state.keys.entry((conversation, key.clone())).or_insert(message.id);
            }
            state.keep(*message);
        }
        Outcome::Changed { message, change } => {
            applied.counts.changes += 1;
            state.keep(*message);
            applied.projection.changes.push(change);
        }
        Outcome::Read { .. } => applied.counts.reads += 1,
        Outcome::Blocking => applied.counts.changes += 1,
        Outcome::Duplicate { original } => {
            applied.counts.duplicates += 1;
            tracing::info!(%conversation, %original, "dropping a duplicate send");
        }
        Outcome::Unchanged(reason) => {
            applied.counts.unchanged += 1;
            tracing::debug!(%conversation, reason, "event changed nothing");
        }
    }
}
