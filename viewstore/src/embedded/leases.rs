//! Writer leases in SQLite: one row per partition, every change a conditional update.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::EmbeddedStore;
use crate::{StoreError, WriterLease, WriterLeases};

fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WriterLease> {
    Ok(WriterLease {
        partition: row.get(0)?,
        node: row.get(1)?,
        address: row.get(2)?,
        version: row.get(3)?,
    })
}

fn current(conn: &Connection, partition: u32) -> rusqlite::Result<Option<WriterLease>> {
    conn.query_row(
        "SELECT partition, node, address, version FROM writer_leases WHERE partition = ?1",
        [partition],
        lease_from_row,
    )
    .optional()
}

/// Replaces the lease with `next` if it is still exactly `seen` (`None`: no lease yet).
fn compare_and_set(
    conn: &mut Connection,
    seen: Option<&WriterLease>,
    next: &WriterLease,
) -> rusqlite::Result<bool> {
    let transaction = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let standing = current(&transaction, next.partition)?;
    if standing.as_ref() != seen {
        return Ok(false);
    }
    transaction.execute(
        "INSERT INTO writer_leases (partition, node, address, version) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (partition) DO UPDATE
            SET node = excluded.node, address = excluded.address, version = excluded.version",
        params![next.partition, next.node, next.address, next.version],
    )?;
    transaction.commit()?;
    Ok(true)
}

#[async_trait]
impl WriterLeases for EmbeddedStore {
    async fn writer_leases(&self) -> Result<Vec<WriterLease>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT partition, node, address, version FROM writer_leases ORDER BY partition",
            )?;
            let rows = statement.query_map([], lease_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn replace_writer_lease(
        &self,
        seen: Option<&WriterLease>,
        next: WriterLease,
    ) -> Result<Option<WriterLease>, StoreError> {
        let seen = seen.cloned();
        self.write(move |conn| Ok(compare_and_set(conn, seen.as_ref(), &next)?.then_some(next)))
            .await
    }
}
