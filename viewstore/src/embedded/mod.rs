//! The embedded store: SQLite in WAL mode, one file under the data directory.
//!
//! Views and messages are kept as JSON documents keyed the way the queries need them, with
//! an `inbox` index table for "most recent activity first". A projector batch is one
//! transaction; its guards (`applied_offset` only rises, messages only inserted) make
//! re-applying a batch a no-op.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use embedded_sqlite::Readers;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use schemas::{ConversationId, MessageId, Participant, Timestamp, UserId};

use crate::model::{
    ConversationRecord, ConversationView, InboxCursor, MessageCounts, ProjectionBatch,
    StoredChange, StoredMessage,
};
use crate::{ConversationDirectory, ProjectionStore, ReadModel, StoreError};

mod leases;
mod push;
mod schema;

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn corrupt(error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(error.to_string().into())
}

#[derive(Debug)]
struct Shared {
    writer: Mutex<Connection>,
    readers: Arc<Readers>,
}

/// The store `chat dev` runs on.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = embedded_sqlite::open(path, schema::MIGRATIONS).map_err(unavailable)?;
        let readers = Arc::new(Readers::new(path));
        Ok(Self { shared: Arc::new(Shared { writer: Mutex::new(writer), readers }) })
    }

    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || work(&mut shared.writer.lock()).map_err(unavailable))
            .await
            .map_err(unavailable)?
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.shared.readers.read(work).await.map_err(unavailable)
    }
}

fn participant(id: String, name: String) -> rusqlite::Result<Participant> {
    Ok(Participant { id: UserId::new(id).map_err(corrupt)?, name })
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRecord> {
    Ok(ConversationRecord {
        conversation_id: ConversationId::new(row.get(0)?).map_err(corrupt)?,
        job_id: row.get(1)?,
        client: participant(row.get(2)?, row.get(3)?)?,
        worker: participant(row.get(4)?, row.get(5)?)?,
        created_at: Timestamp::from_millis(row.get(6)?),
        started: row.get::<_, i64>(7)? != 0,
    })
}

const RECORD_COLUMNS: &str = "conversation_id, job_id, client_id, client_name, worker_id, \
                              worker_name, created_at, started";

fn decode<T: serde::de::DeserializeOwned>(body: &str) -> rusqlite::Result<T> {
    serde_json::from_str(body).map_err(corrupt)
}

fn encode<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(corrupt)
}

#[async_trait]
impl ConversationDirectory for EmbeddedStore {
    async fn open_conversation(
        &self,
        job_id: &str,
        client: Participant,
        worker: Participant,
        now: Timestamp,
    ) -> Result<(ConversationRecord, bool), StoreError> {
        let job_id = job_id.to_owned();
        self.write(move |conn| {
            let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = transaction.execute(
                "INSERT INTO conversations
                    (job_id, client_id, client_name, worker_id, worker_name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (job_id) DO NOTHING",
                params![
                    job_id,
                    client.id.as_str(),
                    client.name,
                    worker.id.as_str(),
                    worker.name,
                    now.millis()
                ],
            )?;
            let record = transaction.query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM conversations WHERE job_id = ?1"),
                [&job_id],
                record_from_row,
            )?;
            transaction.commit()?;
            Ok((record, inserted == 1))
        })
        .await
    }

    async fn mark_started(&self, conversation: ConversationId) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE conversations SET started = 1 WHERE conversation_id = ?1",
                [conversation.get()],
            )
            .map(drop)
        })
        .await
    }

    async fn conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM conversations WHERE conversation_id = ?1"),
                [conversation.get()],
                record_from_row,
            )
            .optional()
        })
        .await
    }
}

fn load_view(conn: &Connection, conversation: u64) -> rusqlite::Result<Option<ConversationView>> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM views WHERE conversation_id = ?1")?
        .query_row([conversation], |row| row.get(0))
        .optional()?;
    body.map(|body| decode(&body)).transpose()
}

fn query_messages(
    conn: &Connection,
    sql: &str,
    values: impl rusqlite::Params,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut statement = conn.prepare_cached(sql)?;
    let bodies = statement.query_map(values, |row| row.get::<_, String>(0))?;
    bodies.map(|body| decode(&body?)).collect()
}

#[async_trait]
impl ReadModel for EmbeddedStore {
    async fn view(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationView>, StoreError> {
        self.read(move |conn| load_view(conn, conversation.get())).await
    }

    async fn inbox(
        &self,
        user: &UserId,
        cursor: Option<InboxCursor>,
        limit: usize,
    ) -> Result<Vec<ConversationView>, StoreError> {
        let user = user.as_str().to_owned();
        let (activity, conversation) = match cursor {
            Some(cursor) => (cursor.last_activity_at.millis(), cursor.conversation_id.get() as i64),
            None => (i64::MAX, i64::MAX),
        };
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT v.body FROM inbox i JOIN views v ON v.conversation_id = i.conversation_id
                 WHERE i.user_id = ?1 AND (i.last_activity < ?2
                       OR (i.last_activity = ?2 AND i.conversation_id < ?3))
                 ORDER BY i.last_activity DESC, i.conversation_id DESC LIMIT ?4",
            )?;
            let bodies = statement
                .query_map(params![user, activity, conversation, limit as i64], |row| {
                    row.get::<_, String>(0)
                })?;
            bodies.map(|body| decode(&body?)).collect()
        })
        .await
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        after: MessageId,
        before: Option<MessageId>,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let before = before.map_or(i64::MAX, |id| id.get() as i64);
        let values = (conversation.get(), after.get(), before, limit as i64);
        self.read(move |conn| {
            if !newest {
                return query_messages(
                    conn,
                    "SELECT body FROM messages WHERE conversation_id = ?1
                     AND message_id > ?2 AND message_id < ?3 ORDER BY message_id LIMIT ?4",
                    values,
                );
            }
            let mut page = query_messages(
                conn,
                "SELECT body FROM messages WHERE conversation_id = ?1
                 AND message_id > ?2 AND message_id < ?3 ORDER BY message_id DESC LIMIT ?4",
                values,
            )?;
            page.reverse();
            Ok(page)
        })
        .await
    }

    async fn changes(
        &self,
        conversation: ConversationId,
        after: MessageId,
        before: MessageId,
    ) -> Result<Vec<StoredChange>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT body FROM message_changes WHERE conversation_id = ?1
                 AND position > ?2 AND position < ?3 ORDER BY position",
            )?;
            let bodies = statement
                .query_map(params![conversation.get(), after.get(), before.get()], |row| {
                    row.get::<_, String>(0)
                })?;
            bodies.map(|body| decode(&body?)).collect()
        })
        .await
    }

    async fn message_with_key(
        &self,
        conversation: ConversationId,
        key: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let body: Option<String> = conn
                .prepare_cached(
                    "SELECT body FROM messages
                     WHERE conversation_id = ?1 AND idempotency_key = ?2
                     ORDER BY message_id LIMIT 1",
                )?
                .query_row(params![conversation.get(), key], |row| row.get(0))
                .optional()?;
            body.map(|body| decode(&body)).transpose()
        })
        .await
    }

    async fn watermarks(&self, partitions: u32) -> Result<Vec<Option<u64>>, StoreError> {
        self.read(move |conn| {
            let mut marks = vec![None; partitions as usize];
            let mut statement = conn.prepare_cached("SELECT partition, offset FROM watermarks")?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, u64>(1)?)))?;
            for row in rows {
                let (partition, offset) = row?;
                if let Some(slot) = marks.get_mut(partition as usize) {
                    *slot = Some(offset);
                }
            }
            Ok(marks)
        })
        .await
    }
}

#[async_trait]
impl ProjectionStore for EmbeddedStore {
    async fn load_views(
        &self,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationView>, StoreError> {
        let ids: Vec<u64> = conversations.iter().map(|id| id.get()).collect();
        self.read(move |conn| {
            let mut views = Vec::with_capacity(ids.len());
            for id in ids {
                views.extend(load_view(conn, id)?);
            }
            Ok(views)
        })
        .await
    }

    async fn counts_at(
        &self,
        conversation: ConversationId,
        up_to: MessageId,
    ) -> Result<Option<(MessageId, MessageCounts)>, StoreError> {
        self.read(move |conn| {
            let found = query_messages(
                conn,
                "SELECT body FROM messages WHERE conversation_id = ?1 AND message_id <= ?2
                 ORDER BY message_id DESC LIMIT 1",
                params![conversation.get(), up_to.get()],
            )?;
            Ok(found.first().map(|message| (message.id, message.counts)))
        })
        .await
    }

    async fn apply(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        let batch = batch.clone();
        self.write(move |conn| {
            let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Statements are prepared once per connection and kept: parsing SQL text on
            // every row showed in the profile.
            let mut upsert_message = transaction.prepare_cached(
                "INSERT INTO messages (conversation_id, message_id, idempotency_key, body, revision)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (conversation_id, message_id) DO UPDATE
                 SET body = excluded.body, revision = excluded.revision
                 WHERE excluded.revision > messages.revision",
            )?;
            let mut insert_change = transaction.prepare_cached(
                "INSERT INTO message_changes (conversation_id, position, body)
                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?;
            let mut upsert_view = transaction.prepare_cached(
                "INSERT INTO views (conversation_id, applied_offset, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (conversation_id) DO UPDATE
                 SET applied_offset = excluded.applied_offset, body = excluded.body
                 WHERE excluded.applied_offset > views.applied_offset",
            )?;
            let mut upsert_inbox = transaction.prepare_cached(
                "INSERT INTO inbox (user_id, conversation_id, last_activity)
                 VALUES (?1, ?2, ?3) ON CONFLICT (user_id, conversation_id)
                 DO UPDATE SET last_activity = excluded.last_activity",
            )?;
            let mut raise_watermark = transaction.prepare_cached(
                "INSERT INTO watermarks (partition, offset) VALUES (?1, ?2)
                 ON CONFLICT (partition) DO UPDATE SET offset = MAX(offset, excluded.offset)",
            )?;
            for message in &batch.messages {
                upsert_message.execute(params![
                    message.conversation_id.get(),
                    message.id.get(),
                    message.idempotency_key,
                    encode(message)?,
                    message.revision
                ])?;
            }
            for change in &batch.changes {
                insert_change.execute(params![
                    change.conversation_id.get(),
                    change.position.get(),
                    encode(change)?
                ])?;
            }
            for view in &batch.views {
                let changed = upsert_view.execute(params![
                    view.conversation_id.get(),
                    view.applied_offset,
                    encode(view)?
                ])?;
                if changed == 0 {
                    continue;
                }
                for user in [&view.client.id, &view.worker.id] {
                    upsert_inbox.execute(params![
                        user.as_str(),
                        view.conversation_id.get(),
                        view.last_activity_at().millis()
                    ])?;
                }
            }
            for mark in &batch.watermarks {
                raise_watermark.execute(params![mark.partition, mark.offset])?;
            }
            drop((upsert_message, insert_change, upsert_view, upsert_inbox, raise_watermark));
            transaction.commit()
        })
        .await
    }
}
