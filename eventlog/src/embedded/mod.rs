//! The embedded log: SQLite in WAL mode, one file under the data directory.
//!
//! One writer thread owns the write connection and commits appends in groups: every append
//! waiting when a commit starts rides in it, so a burst of sends costs one fsync rather than
//! one each (`synchronous=FULL` fsyncs the WAL at every commit). Readers use their own
//! connections and see only committed records. Offsets are dense per partition, assigned by
//! the writer in commit order, exactly like Kafka's.

mod subscription;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use embedded_sqlite::{Migration, Readers};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use schemas::{ConversationId, Position, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use subscription::{EmbeddedSubscription, committed_offsets};

use crate::{
    EventLog, Header, LogError, NewRecord, Record, SubscribeSpec, Subscription, WriterAssignment,
};

/// Appends that may wait for the writer before `append` itself waits (backpressure).
const APPEND_QUEUE: usize = 16 * 1024;
/// Appends committed together at most.
const MAX_GROUP_COMMIT: usize = 1024;

/// The log's schema, one numbered step at a time (`embedded_sqlite::migrate`).
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "records, group offsets and metadata",
    sql: "
    CREATE TABLE IF NOT EXISTS records (
        partition INTEGER NOT NULL,
        offset    INTEGER NOT NULL,
        key       INTEGER NOT NULL,
        value     BLOB    NOT NULL,
        headers   TEXT    NOT NULL,
        timestamp INTEGER NOT NULL,
        PRIMARY KEY (partition, offset)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS group_offsets (
        group_id    TEXT    NOT NULL,
        partition   INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (group_id, partition)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
",
}];

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

/// What appends have made visible: the end offset of every partition, and a counter that
/// ticks after every commit so waiting readers wake up.
#[derive(Debug)]
struct Progress {
    end: Vec<AtomicU64>,
    commits: watch::Sender<u64>,
}

impl Progress {
    fn end_offsets(&self) -> Vec<u64> {
        self.end.iter().map(|end| end.load(Ordering::Acquire)).collect()
    }
}

#[derive(Debug)]
struct Shared {
    partitions: u32,
    jobs: mpsc::Sender<AppendJob>,
    progress: Arc<Progress>,
    groups: Mutex<HashSet<String>>,
    readers: Arc<Readers>,
    /// Held for the life of the log: one process at a time writes it.
    _lock: std::fs::File,
}

#[derive(Debug)]
struct AppendJob {
    key: ConversationId,
    value: Vec<u8>,
    headers: Vec<Header>,
    reply: oneshot::Sender<Result<Position, LogError>>,
}

/// The durable log `chat dev` runs on.
#[derive(Debug, Clone)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
}

impl EmbeddedLog {
    /// Opens (or creates) the log at `path`. `partitions` must match what the log was
    /// created with: every key's partition and every message id depend on it.
    pub fn open(path: &Path, partitions: u32) -> Result<Self, LogError> {
        if partitions == 0 || partitions > schemas::ids::MAX_PARTITIONS {
            return Err(LogError::Config(format!(
                "partitions must be 1 to {}",
                schemas::ids::MAX_PARTITIONS
            )));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(unavailable)?;
        }
        let lock = lock_exclusively(path)?;
        let conn = embedded_sqlite::open(path, MIGRATIONS).map_err(unavailable)?;
        check_partitions(&conn, partitions)?;
        let end = load_end_offsets(&conn, partitions).map_err(unavailable)?;
        let progress = Arc::new(Progress {
            end: end.into_iter().map(AtomicU64::new).collect(),
            commits: watch::Sender::new(0),
        });
        let (jobs, queue) = mpsc::channel(APPEND_QUEUE);
        let writer_progress = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || run_writer(conn, queue, &writer_progress, partitions))
            .map_err(unavailable)?;
        let shared = Shared {
            partitions,
            jobs,
            progress,
            groups: Mutex::new(HashSet::new()),
            readers: Arc::new(Readers::new(path)),
            _lock: lock,
        };
        Ok(Self { shared: Arc::new(shared) })
    }
}

/// Locks `<log>.lock`, so a second process (a second `chat dev` on the same data directory)
/// is refused instead of appending beside the first.
fn lock_exclusively(path: &Path) -> Result<std::fs::File, LogError> {
    let lock_path = path.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(unavailable)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Config(format!(
            "the log {} is open in another process (another chat dev on this data directory?)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(unavailable(error)),
    }
}

fn check_partitions(conn: &Connection, partitions: u32) -> Result<(), LogError> {
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE name = 'partitions'", [], |row| row.get(0))
        .optional()
        .map_err(unavailable)?;
    match stored {
        None => {
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('partitions', ?1)",
                params![partitions.to_string()],
            )
            .map_err(unavailable)?;
            Ok(())
        }
        Some(value) if value == partitions.to_string() => Ok(()),
        Some(value) => Err(LogError::Config(format!(
            "the log was created with {value} partitions, not {partitions}; \
             the partition count of an existing log cannot change"
        ))),
    }
}

fn load_end_offsets(conn: &Connection, partitions: u32) -> rusqlite::Result<Vec<u64>> {
    let mut end = vec![0_u64; partitions as usize];
    let mut statement =
        conn.prepare("SELECT partition, MAX(offset) + 1 FROM records GROUP BY partition")?;
    let rows = statement.query_map([], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, u64>(1)?)))?;
    for row in rows {
        let (partition, next) = row?;
        if let Some(slot) = end.get_mut(partition as usize) {
            *slot = next;
        }
    }
    Ok(end)
}

fn run_writer(
    mut conn: Connection,
    mut queue: mpsc::Receiver<AppendJob>,
    progress: &Progress,
    partitions: u32,
) {
    let mut batch = Vec::with_capacity(MAX_GROUP_COMMIT);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP_COMMIT {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut next = progress.end_offsets();
        let timestamp = Timestamp::now();
        let placed: Vec<Position> = batch
            .iter()
            .map(|job| {
                let partition = job.key.partition(partitions);
                let offset = next[partition as usize];
                next[partition as usize] += 1;
                Position { partition, offset }
            })
            .collect();
        match write_batch(&mut conn, &batch, &placed, timestamp) {
            Ok(()) => {
                for (partition, end) in next.iter().enumerate() {
                    progress.end[partition].store(*end, Ordering::Release);
                }
                progress.commits.send_modify(|count| *count += 1);
                for (job, position) in batch.drain(..).zip(placed) {
                    let _ = job.reply.send(Ok(position));
                }
            }
            Err(error) => {
                tracing::error!(%error, "failed to commit appends to the embedded log");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(unavailable(&error)));
                }
            }
        }
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: &[AppendJob],
    placed: &[Position],
    timestamp: Timestamp,
) -> rusqlite::Result<()> {
    let transaction = conn.transaction()?;
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO records (partition, offset, key, value, headers, timestamp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (job, position) in batch.iter().zip(placed) {
            let headers = serde_json::to_string(&job.headers).unwrap_or_else(|_| "[]".into());
            insert.execute(params![
                position.partition,
                position.offset,
                job.key.get(),
                job.value,
                headers,
                timestamp.millis()
            ])?;
        }
    }
    transaction.commit()
}

impl Shared {
    /// Runs `work` on a pooled read connection, off the async threads.
    async fn with_reader<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, LogError> {
        self.readers.read(work).await.map_err(unavailable)
    }
}

/// The one process that opens an embedded log is the only member of any writer group.
struct SoleWriter {
    partitions: Vec<u32>,
}

#[async_trait]
impl WriterAssignment for SoleWriter {
    fn current(&self) -> Vec<u32> {
        self.partitions.clone()
    }

    fn exclusive(&self) -> bool {
        true
    }

    async fn changed(&mut self) -> Result<Vec<u32>, LogError> {
        std::future::pending().await
    }
}

fn read_partition(
    conn: &Connection,
    partition: u32,
    from: u64,
    max: usize,
) -> rusqlite::Result<Vec<Record>> {
    let mut statement = conn.prepare_cached(
        "SELECT offset, key, value, headers, timestamp FROM records
         WHERE partition = ?1 AND offset >= ?2 ORDER BY offset LIMIT ?3",
    )?;
    let rows = statement.query_map(params![partition, from, max as i64], |row| {
        let key: u64 = row.get(1)?;
        let headers: String = row.get(3)?;
        Ok((row.get::<_, u64>(0)?, key, row.get::<_, Vec<u8>>(2)?, headers, row.get::<_, i64>(4)?))
    })?;
    let mut records = Vec::new();
    for row in rows {
        let (offset, key, value, headers, timestamp) = row?;
        let Ok(key) = ConversationId::new(key) else {
            continue;
        };
        records.push(Record {
            position: Position { partition, offset },
            key,
            value,
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            timestamp: Timestamp::from_millis(timestamp),
        });
    }
    Ok(records)
}

#[async_trait]
impl EventLog for EmbeddedLog {
    fn partitions(&self) -> u32 {
        self.shared.partitions
    }

    fn destination(&self) -> crate::Destination<'_> {
        crate::Destination { system: "chat-embedded", name: "chat.events" }
    }

    /// An append fails only when its commit failed, and then nothing of it was written.
    fn delivery_timeout(&self) -> Duration {
        Duration::ZERO
    }

    async fn append(
        &self,
        key: ConversationId,
        value: Vec<u8>,
        headers: Vec<Header>,
    ) -> Result<Position, LogError> {
        let (reply, answer) = oneshot::channel();
        let job = AppendJob { key, value, headers, reply };
        self.shared.jobs.send(job).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    async fn append_batch(&self, records: Vec<NewRecord>) -> Vec<Result<Position, LogError>> {
        // Queued one after another from this task, so the writer takes them in this order.
        let mut answers = Vec::with_capacity(records.len());
        for NewRecord { key, value, headers } in records {
            let (reply, answer) = oneshot::channel();
            let queued = self.shared.jobs.send(AppendJob { key, value, headers, reply }).await;
            answers.push(queued.ok().map(|()| answer));
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Some(answer) => answer.await.unwrap_or(Err(LogError::Closed)),
                None => Err(LogError::Closed),
            });
        }
        results
    }

    async fn end_offsets(&self) -> Result<Vec<u64>, LogError> {
        Ok(self.shared.progress.end_offsets())
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        let end = self.shared.progress.end.get(partition as usize);
        end.map(|end| end.load(Ordering::Acquire))
            .ok_or_else(|| LogError::Config(format!("no partition {partition}")))
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<Record>, LogError> {
        if partition >= self.shared.partitions {
            return Err(LogError::Config(format!("no partition {partition}")));
        }
        self.shared.with_reader(move |conn| read_partition(conn, partition, from, max)).await
    }

    async fn writer_assignment(&self, _group: &str) -> Result<Box<dyn WriterAssignment>, LogError> {
        Ok(Box::new(SoleWriter { partitions: (0..self.shared.partitions).collect() }))
    }

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Box<dyn Subscription>, LogError> {
        let shared = Arc::clone(&self.shared);
        let (group, start) = match spec {
            SubscribeSpec::Tail => (None, shared.progress.end_offsets()),
            SubscribeSpec::TailFrom(start) => {
                if start.len() != shared.partitions as usize {
                    return Err(LogError::Config(format!(
                        "a tail needs {} offsets",
                        shared.partitions
                    )));
                }
                (None, start)
            }
            SubscribeSpec::Group(group) => {
                if !shared.groups.lock().insert(group.clone()) {
                    return Err(LogError::GroupTaken(group));
                }
                let partitions = shared.partitions;
                let name = group.clone();
                let committed = shared
                    .with_reader(move |conn| committed_offsets(conn, &name, partitions))
                    .await;
                match committed {
                    Ok(start) => (Some(group), start),
                    Err(error) => {
                        shared.groups.lock().remove(&group);
                        return Err(error);
                    }
                }
            }
        };
        Ok(Box::new(EmbeddedSubscription::new(shared, group, start)))
    }
}
