//! Webhook events the receiver did not take within the retry window, parked for an
//! operator to list and redeliver (`chat webhooks`). On the cluster they are records of
//! the `<topic>.dead-letters` topic: the log is append-only, so a redelivery is a second
//! record naming the event, and what is parked is every event without one. `chat dev`
//! keeps them in `dead-letters.db`, which `chat webhooks` opens beside the running server.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use eventlog::EventLog;
use parking_lot::Mutex;
use rusqlite::{Connection, params};
use schemas::notify::{DeadLetter, WebhookData, WebhookEvent};
use schemas::{ConversationId, Timestamp};

/// An event waiting for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub id: String,
    pub parked_at: Timestamp,
    /// The receiver's last answer.
    pub reason: String,
    pub event: WebhookEvent,
}

const SCHEMA: &[embedded_sqlite::Migration] = &[embedded_sqlite::Migration {
    version: 1,
    name: "parked webhook events",
    sql: "CREATE TABLE IF NOT EXISTS parked (
        id TEXT PRIMARY KEY, parked_at INTEGER NOT NULL, reason TEXT NOT NULL,
        event TEXT NOT NULL, redelivered_at INTEGER)",
}];

#[derive(Clone)]
enum Backing {
    Topic(Arc<dyn EventLog>),
    File(Arc<Mutex<Connection>>),
}

#[derive(Clone)]
pub struct DeadLetters {
    backing: Backing,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backing {
            Backing::Topic(log) => write!(f, "DeadLetters({:?})", log.destination()),
            Backing::File(_) => f.write_str("DeadLetters(file)"),
        }
    }
}

fn key_of(event: &WebhookEvent) -> ConversationId {
    match &event.data {
        WebhookData::ConversationStarted(data) => data.conversation_id,
        WebhookData::MessageUnread(data) => data.conversation_id,
        WebhookData::MessageReported(data) => data.conversation_id,
    }
}

impl DeadLetters {
    /// On a topic of their own (the cluster).
    pub fn on_log(log: Arc<dyn EventLog>) -> Self {
        Self { backing: Backing::Topic(log) }
    }

    /// In a SQLite file, which several processes may open at once (`chat dev`).
    pub fn in_file(path: &Path) -> Result<Self, String> {
        let conn = embedded_sqlite::open(path, SCHEMA).map_err(|failure| failure.0)?;
        Ok(Self { backing: Backing::File(Arc::new(Mutex::new(conn))) })
    }

    async fn in_file_do<T: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let conn = Arc::clone(conn);
        tokio::task::spawn_blocking(move || work(&conn.lock()).map_err(|e| e.to_string()))
            .await
            .map_err(|error| error.to_string())?
    }

    /// Parks `event`; returns once it is durably kept.
    pub async fn park(&self, id: &str, event: &WebhookEvent, reason: &str) -> Result<(), String> {
        let parked_at = Timestamp::now();
        match &self.backing {
            Backing::Topic(log) => {
                let entry = DeadLetter::Parked {
                    id: id.to_owned(),
                    parked_at,
                    reason: reason.to_owned(),
                    event: event.clone(),
                };
                append(log.as_ref(), key_of(event), &entry).await
            }
            Backing::File(conn) => {
                let body = serde_json::to_string(event).map_err(|error| error.to_string())?;
                let (id, reason) = (id.to_owned(), reason.to_owned());
                Self::in_file_do(conn, move |conn| {
                    conn.execute(
                        "INSERT INTO parked (id, parked_at, reason, event) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (id) DO UPDATE SET parked_at = excluded.parked_at,
                            reason = excluded.reason, event = excluded.event,
                            redelivered_at = NULL",
                        params![id, parked_at.millis(), reason, body],
                    )
                    .map(drop)
                })
                .await
            }
        }
    }

    /// Records that `parked` was redelivered: it leaves the list.
    pub async fn redelivered(&self, parked: &Parked) -> Result<(), String> {
        let at = Timestamp::now();
        match &self.backing {
            Backing::Topic(log) => {
                let entry = DeadLetter::Redelivered { id: parked.id.clone(), at };
                append(log.as_ref(), key_of(&parked.event), &entry).await
            }
            Backing::File(conn) => {
                let id = parked.id.clone();
                Self::in_file_do(conn, move |conn| {
                    conn.execute(
                        "UPDATE parked SET redelivered_at = ?2 WHERE id = ?1",
                        params![id, at.millis()],
                    )
                    .map(drop)
                })
                .await
            }
        }
    }

    /// Every parked event not redelivered since, oldest first.
    pub async fn parked(&self) -> Result<Vec<Parked>, String> {
        let mut parked = match &self.backing {
            Backing::Topic(log) => parked_on(log.as_ref()).await?,
            Backing::File(conn) => Self::in_file_do(conn, |conn| {
                let mut statement = conn.prepare(
                    "SELECT id, parked_at, reason, event FROM parked
                         WHERE redelivered_at IS NULL",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?
            .into_iter()
            .filter_map(|(id, at, reason, event)| {
                let event = serde_json::from_str(&event).ok()?;
                Some(Parked { id, parked_at: Timestamp::from_millis(at), reason, event })
            })
            .collect(),
        };
        parked.sort_by_key(|parked| parked.parked_at);
        Ok(parked)
    }
}

async fn append(log: &dyn EventLog, key: ConversationId, entry: &DeadLetter) -> Result<(), String> {
    let value = serde_json::to_vec(entry).map_err(|error| error.to_string())?;
    log.append(key, value, Vec::new()).await.map(drop).map_err(|error| error.to_string())
}

async fn parked_on(log: &dyn EventLog) -> Result<Vec<Parked>, String> {
    let mut waiting: BTreeMap<String, Parked> = BTreeMap::new();
    let ends = log.end_offsets().await.map_err(|error| error.to_string())?;
    for (partition, end) in (0_u32..).zip(ends) {
        let mut from = 0;
        while from < end {
            let records =
                log.read(partition, from, 1000).await.map_err(|error| error.to_string())?;
            let Some(last) = records.last() else { break };
            from = last.position.offset + 1;
            for record in records {
                match serde_json::from_slice::<DeadLetter>(&record.value) {
                    Ok(DeadLetter::Parked { id, parked_at, reason, event }) => {
                        waiting.insert(id.clone(), Parked { id, parked_at, reason, event });
                    }
                    Ok(DeadLetter::Redelivered { id, .. }) => {
                        waiting.remove(&id);
                    }
                    Err(error) => tracing::warn!(%error, "skipping an unreadable dead letter"),
                }
            }
        }
    }
    Ok(waiting.into_values().collect())
}
