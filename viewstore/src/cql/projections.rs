//! Projections and queries on CQL.
//!
//! Every write carries a CQL timestamp derived from the log: a view and its inbox rows are
//! written at `applied_offset + 1`, a watermark at `offset + 1`, so the newest state wins
//! regardless of arrival order and re-applying a batch changes nothing. An idempotency key
//! maps to its message at timestamp `2^53 - id`, so the earliest message of a key wins. A
//! message body is written at `2^53 + revision + 1`: the latest change of it wins, and it
//! wins over bodies written at wall-clock time before messages had revisions.
//! Watermarks are written only after everything else of the batch succeeded.

use std::collections::HashSet;

use async_trait::async_trait;
use futures_util::future::{try_join, try_join3};
use futures_util::{StreamExt, TryStreamExt, stream};
use schemas::{ConversationId, MessageId, UserId};
use scylla::value::CqlTimestamp;

use super::{CqlStore, unavailable};
use crate::model::{
    ConversationView, InboxCursor, MessageCounts, ProjectionBatch, StoredChange, StoredMessage,
};
use crate::{ProjectionStore, ReadModel, StoreError};

/// Messages per `messages` partition (one conversation's bucket).
const BUCKET_SIZE: u64 = 1000;
/// Writes of one batch in flight at once.
const WRITE_CONCURRENCY: usize = 128;
/// Idempotency keys asked about in one query.
const KEYS_PER_QUERY: usize = 100;

fn bucket_of(total: u64) -> i32 {
    i32::try_from(total.saturating_sub(1) / BUCKET_SIZE).unwrap_or(i32::MAX)
}

fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body)
        .map_err(|error| StoreError::Unavailable(format!("stored document: {error}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(unavailable)
}

fn message_id(value: i64) -> Result<MessageId, StoreError> {
    u64::try_from(value)
        .ok()
        .and_then(|id| MessageId::new(id).ok())
        .ok_or_else(|| unavailable("bad message id"))
}

impl CqlStore {
    async fn rows<T>(
        &self,
        statement: &scylla::statement::prepared::PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
    {
        let result = self
            .shared
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let rows = result.rows::<T>().map_err(unavailable)?;
        rows.map(|row| row.map_err(unavailable)).collect()
    }

    async fn write(
        &self,
        statement: &scylla::statement::prepared::PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<(), StoreError> {
        self.shared.session.execute_unpaged(statement, values).await.map(drop).map_err(unavailable)
    }

    // The writes of one message, and of one view, are independent of each other (each row
    // carries its own timestamp), so they go out together: a batch costs a few round trips,
    // not a few per row.
    async fn put_message(&self, message: &StoredMessage) -> Result<(), StoreError> {
        let statements = &self.shared.statements;
        let (conversation, id) = (big(message.conversation_id.get()), big(message.id.get()));
        let counts = message.counts;
        let revision = big(schemas::ids::MAX_SAFE_INTEGER + 1 + message.revision + 1);
        let body = (conversation, bucket_of(counts.total), id, encode(message)?, revision);
        let index =
            (conversation, id, big(counts.total), big(counts.by_client), big(counts.by_worker));
        let key = async {
            let Some(key) = &message.idempotency_key else { return Ok(()) };
            let earliest_wins = big(schemas::ids::MAX_SAFE_INTEGER - message.id.get());
            self.write(&statements.key_message_put, (conversation, key.as_str(), id, earliest_wins))
                .await
        };
        try_join3(
            self.write(&statements.message_put, body),
            self.write(&statements.index_put, index),
            key,
        )
        .await
        .map(drop)
    }

    /// Moves `user`'s inbox row for the conversation to its new activity time.
    async fn put_inbox_row(
        &self,
        user: &UserId,
        conversation: i64,
        activity: CqlTimestamp,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        let statements = &self.shared.statements;
        // The old position must be read before it is overwritten; the new row need not wait.
        let move_position = async {
            let previous: Vec<(Option<CqlTimestamp>,)> =
                self.rows(&statements.inbox_position_get, (user.as_str(), conversation)).await?;
            let old = previous.into_iter().next().and_then(|(at,)| at);
            let delete_old = async {
                match old.filter(|old| old.0 != activity.0) {
                    Some(old) => {
                        let key = (timestamp, user.as_str(), old, conversation);
                        self.write(&statements.inbox_delete, key).await
                    }
                    None => Ok(()),
                }
            };
            let position = (user.as_str(), conversation, activity, timestamp);
            try_join(delete_old, self.write(&statements.inbox_position_put, position)).await
        };
        let row = (user.as_str(), activity, conversation, timestamp);
        try_join(move_position, self.write(&statements.inbox_put, row)).await.map(drop)
    }

    async fn put_view(&self, view: &ConversationView) -> Result<(), StoreError> {
        let statements = &self.shared.statements;
        let conversation = big(view.conversation_id.get());
        let timestamp = big(view.applied_offset + 1);
        let activity = CqlTimestamp(view.last_activity_at().millis());
        let body = (conversation, big(view.applied_offset), encode(view)?, timestamp);
        try_join3(
            Box::pin(self.put_inbox_row(&view.client.id, conversation, activity, timestamp)),
            Box::pin(self.put_inbox_row(&view.worker.id, conversation, activity, timestamp)),
            self.write(&statements.view_put, body),
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl ReadModel for CqlStore {
    async fn view(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationView>, StoreError> {
        let rows: Vec<(String,)> =
            self.rows(&self.shared.statements.view_get, (big(conversation.get()),)).await?;
        rows.first().map(|(body,)| decode(body)).transpose()
    }

    async fn inbox(
        &self,
        user: &UserId,
        cursor: Option<InboxCursor>,
        limit: usize,
    ) -> Result<Vec<ConversationView>, StoreError> {
        let statements = &self.shared.statements;
        // Fetch a little more than asked: a conversation whose activity just moved may
        // briefly have two rows.
        let fetch = i32::try_from(limit * 2 + 1).unwrap_or(i32::MAX);
        let rows: Vec<(i64,)> = match cursor {
            None => self.rows(&statements.inbox_page, (user.as_str(), fetch)).await?,
            Some(cursor) => {
                let after = (
                    CqlTimestamp(cursor.last_activity_at.millis()),
                    big(cursor.conversation_id.get()),
                );
                self.rows(&statements.inbox_page_after, (user.as_str(), after.0, after.1, fetch))
                    .await?
            }
        };
        let mut seen = HashSet::new();
        let ids: Vec<ConversationId> = rows
            .into_iter()
            .filter_map(|(id,)| u64::try_from(id).ok().and_then(|id| ConversationId::new(id).ok()))
            .filter(|id| seen.insert(*id))
            .collect();
        let mut views = self.load_views(&ids).await?;
        views.retain(|view| view.role_of(user).is_some());
        let key = |view: &ConversationView| (view.last_activity_at(), view.conversation_id);
        views.sort_by_key(|view| std::cmp::Reverse(key(view)));
        if let Some(cursor) = cursor {
            views.retain(|view| key(view) < (cursor.last_activity_at, cursor.conversation_id));
        }
        views.truncate(limit);
        Ok(views)
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        after: MessageId,
        before: Option<MessageId>,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let statements = &self.shared.statements;
        let id = big(conversation.get());
        let before = before.map_or(i64::MAX, |before| big(before.get()));
        let limit_value = i32::try_from(limit).unwrap_or(i32::MAX);
        let statement =
            if newest { &statements.index_descending } else { &statements.index_ascending };
        let mut index: Vec<(i64, i64)> =
            self.rows(statement, (id, big(after.get()), before, limit_value)).await?;
        index.sort_unstable();
        let mut messages = Vec::with_capacity(index.len());
        // Consecutive index entries in one bucket are fetched with one range query.
        let mut start = 0;
        while start < index.len() {
            let bucket = bucket_of(u64::try_from(index[start].1).unwrap_or(0));
            let mut end = start + 1;
            while end < index.len() && bucket_of(u64::try_from(index[end].1).unwrap_or(0)) == bucket
            {
                end += 1;
            }
            let range = (id, bucket, index[start].0, index[end - 1].0);
            let bodies: Vec<(String,)> = self.rows(&statements.message_range, range).await?;
            for (body,) in &bodies {
                messages.push(decode::<StoredMessage>(body)?);
            }
            start = end;
        }
        messages.sort_by_key(|message| message.id);
        Ok(messages)
    }

    async fn changes(
        &self,
        conversation: ConversationId,
        after: MessageId,
        before: MessageId,
    ) -> Result<Vec<StoredChange>, StoreError> {
        let range = (big(conversation.get()), big(after.get()), big(before.get()));
        let bodies: Vec<(String,)> = self.rows(&self.shared.statements.change_range, range).await?;
        bodies.iter().map(|(body,)| decode(body)).collect()
    }

    async fn message_with_key(
        &self,
        conversation: ConversationId,
        key: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let rows: Vec<(i64,)> = self
            .rows(&self.shared.statements.key_message_get, (big(conversation.get()), key))
            .await?;
        let Some(id) = rows.first().map(|(id,)| message_id(*id)).transpose()? else {
            return Ok(None);
        };
        // The key's row is written with its message, so the message is there too.
        let after = MessageId::new(id.get().saturating_sub(1)).unwrap_or(MessageId::ZERO);
        let found = self.messages(conversation, after, MessageId::new(id.get() + 1).ok(), 1, false);
        Ok(found.await?.into_iter().find(|message| message.id == id))
    }

    async fn messages_with_keys(
        &self,
        conversation: ConversationId,
        keys: &[String],
    ) -> Result<Vec<(String, MessageId)>, StoreError> {
        let mut found = Vec::new();
        // One partition, so one request per chunk; chunks keep the IN list modest.
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let rows: Vec<(String, i64)> = self
                .rows(&self.shared.statements.key_messages_get, (big(conversation.get()), names))
                .await?;
            for (key, id) in rows {
                found.push((key, message_id(id)?));
            }
        }
        Ok(found)
    }

    async fn watermarks(&self, partitions: u32) -> Result<Vec<Option<u64>>, StoreError> {
        let rows: Vec<(i32, i64)> = self.rows(&self.shared.statements.watermarks, ()).await?;
        let mut marks = vec![None; partitions as usize];
        for (partition, offset) in rows {
            if let (Ok(partition), Ok(offset)) = (usize::try_from(partition), u64::try_from(offset))
                && let Some(slot) = marks.get_mut(partition)
            {
                *slot = Some(offset);
            }
        }
        Ok(marks)
    }
}

#[async_trait]
impl ProjectionStore for CqlStore {
    async fn load_views(
        &self,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationView>, StoreError> {
        let found: Vec<Option<ConversationView>> = stream::iter(conversations.iter().copied())
            .map(|conversation| self.view(conversation))
            .buffered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn counts_at(
        &self,
        conversation: ConversationId,
        up_to: MessageId,
    ) -> Result<Option<(MessageId, MessageCounts)>, StoreError> {
        let rows: Vec<(i64, i64, i64, i64)> = self
            .rows(&self.shared.statements.index_at, (big(conversation.get()), big(up_to.get())))
            .await?;
        let Some((id, total, by_client, by_worker)) = rows.into_iter().next() else {
            return Ok(None);
        };
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        let counts = MessageCounts {
            total: count(total),
            by_client: count(by_client),
            by_worker: count(by_worker),
        };
        Ok(Some((message_id(id)?, counts)))
    }

    async fn apply(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        // Messages before views, so an inbox never points at a message history lacks.
        stream::iter(batch.messages.iter().map(Ok))
            .try_for_each_concurrent(WRITE_CONCURRENCY, |message| self.put_message(message))
            .await?;
        stream::iter(batch.changes.iter().map(Ok))
            .try_for_each_concurrent(WRITE_CONCURRENCY, |change| async move {
                let values = (
                    big(change.conversation_id.get()),
                    big(change.position.get()),
                    encode(change)?,
                );
                self.write(&self.shared.statements.change_put, values).await
            })
            .await?;
        stream::iter(batch.views.iter().map(Ok))
            .try_for_each_concurrent(WRITE_CONCURRENCY, |view| self.put_view(view))
            .await?;
        // Watermarks last, so one never runs ahead of the rows it covers; each partition's
        // is its own row, so they go out together.
        stream::iter(batch.watermarks.iter().map(Ok))
            .try_for_each_concurrent(WRITE_CONCURRENCY, |mark| {
                let values = (
                    i32::try_from(mark.partition).unwrap_or(i32::MAX),
                    big(mark.offset),
                    big(mark.offset + 1),
                );
                self.write(&self.shared.statements.watermark_put, values)
            })
            .await
    }
}
