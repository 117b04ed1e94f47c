//! Applying the fold to one batch of records.
//!
//! The batch keeps what it has produced so far (views, new messages, keys) so that a later
//! event in the same batch sees an earlier one without a round trip to the store; it asks the
//! store only for what the batch does not have.

use std::collections::{BTreeMap, HashMap};

use eventlog::Record;
use schemas::{ConversationId, Envelope, MessageId, Position};
use viewstore::{ConversationView, MessageCounts, ProjectionBatch, ProjectionStore, StoreError};

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

/// How many events had which effect; logged and exported as metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub messages: u64,
    pub reads: u64,
    pub started: u64,
    pub duplicates: u64,
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
}

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
    let commit: Vec<Position> = last_positions
        .into_iter()
        .map(|(partition, offset)| Position { partition, offset })
        .collect();
    applied.projection.watermarks = commit.clone();
    applied.commit = commit;
    Ok(applied)
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
            if let Some(id) = state.keys.get(&(conversation, key.clone())) {
                return Ok(Known::FirstWithKey(Some(*id)));
            }
            Ok(Known::FirstWithKey(store.message_with_key(conversation, &key).await?))
        }
        Need::CountsAt(up_to) => {
            let local = state
                .new_messages
                .get(&conversation)
                .and_then(|messages| messages.iter().rev().find(|(id, _)| *id <= up_to));
            if let Some(found) = local {
                return Ok(Known::CountsAt(Some(*found)));
            }
            Ok(Known::CountsAt(store.counts_at(conversation, up_to).await?))
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
            applied.projection.messages.push(*message);
        }
        Outcome::Read { .. } => applied.counts.reads += 1,
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
