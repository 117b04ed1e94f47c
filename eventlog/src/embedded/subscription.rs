//! A consumer of the embedded log: a member of a group (progress stored in the log's
//! database when committed) or a tail from given offsets. Waits for appends on the log's
//! progress signal instead of polling.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};
use schemas::Position;
use tokio::sync::watch;

use super::{Shared, read_partition};
use crate::{LogError, Record, Subscription};

pub(super) fn committed_offsets(
    conn: &Connection,
    group: &str,
    partitions: u32,
) -> rusqlite::Result<Vec<u64>> {
    let mut start = vec![0_u64; partitions as usize];
    let mut statement =
        conn.prepare("SELECT partition, next_offset FROM group_offsets WHERE group_id = ?1")?;
    let rows =
        statement.query_map([group], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, u64>(1)?)))?;
    for row in rows {
        let (partition, next) = row?;
        if let Some(slot) = start.get_mut(partition as usize) {
            *slot = next;
        }
    }
    Ok(start)
}

#[derive(Debug)]
pub(super) struct EmbeddedSubscription {
    shared: Arc<Shared>,
    group: Option<String>,
    next: Vec<u64>,
    start: Vec<u64>,
    commits: watch::Receiver<u64>,
    /// Partition the next batch starts with, so a busy partition cannot starve the others.
    cursor: usize,
}

impl EmbeddedSubscription {
    /// Reads from `start`, as a member of `group` when there is one.
    pub(super) fn new(shared: Arc<Shared>, group: Option<String>, start: Vec<u64>) -> Self {
        let commits = shared.progress.commits.subscribe();
        Self { shared, group, next: start.clone(), start, commits, cursor: 0 }
    }

    async fn read_available(&mut self, max: usize) -> Result<Vec<Record>, LogError> {
        let end = self.shared.progress.end_offsets();
        let partitions = self.next.len();
        let wanted: Vec<(u32, u64)> = (0..partitions)
            .map(|step| (self.cursor + step) % partitions)
            .filter(|&partition| self.next[partition] < end[partition])
            .map(|partition| (partition as u32, self.next[partition]))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        self.cursor = (self.cursor + 1) % partitions;
        let records = self
            .shared
            .with_reader(move |conn| {
                let mut records = Vec::new();
                for (partition, from) in wanted {
                    let room = max.saturating_sub(records.len());
                    if room == 0 {
                        break;
                    }
                    records.extend(read_partition(conn, partition, from, room)?);
                }
                Ok(records)
            })
            .await?;
        for record in &records {
            self.next[record.position.partition as usize] = record.position.offset + 1;
        }
        Ok(records)
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, LogError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.commits.borrow_and_update();
            let records = self.read_available(max.max(1)).await?;
            if !records.is_empty() {
                return Ok(records);
            }
            match tokio::time::timeout_at(deadline, self.commits.changed()).await {
                Err(_elapsed) => return Ok(Vec::new()),
                Ok(Err(_closed)) => return Err(LogError::Closed),
                Ok(Ok(())) => {}
            }
        }
    }

    async fn commit(&mut self, through: &[Position]) -> Result<(), LogError> {
        let Some(group) = self.group.clone() else {
            return Ok(());
        };
        let offsets: Vec<(u32, u64)> =
            through.iter().map(|position| (position.partition, position.offset + 1)).collect();
        self.shared
            .with_reader(move |conn| {
                let transaction = conn.unchecked_transaction()?;
                for (partition, next) in offsets {
                    transaction.execute(
                        "INSERT INTO group_offsets (group_id, partition, next_offset)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (group_id, partition)
                         DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
                        params![group, partition, next],
                    )?;
                }
                transaction.commit()
            })
            .await
    }

    fn start_offsets(&self) -> Vec<u64> {
        self.start.clone()
    }
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        if let Some(group) = &self.group {
            self.shared.groups.lock().remove(group);
        }
    }
}
