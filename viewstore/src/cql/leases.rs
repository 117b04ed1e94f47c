//! Writer leases on CQL: one row per log partition, each change a lightweight transaction
//! on the node and version the caller last saw. Off the send path: a node touches its
//! leases once per renewal period.

use async_trait::async_trait;

use super::directory::applied;
use super::{CqlStore, unavailable};
use crate::{StoreError, WriterLease, WriterLeases};

fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn partition_value(partition: u32) -> i32 {
    i32::try_from(partition).unwrap_or(i32::MAX)
}

#[async_trait]
impl WriterLeases for CqlStore {
    async fn writer_leases(&self) -> Result<Vec<WriterLease>, StoreError> {
        let result = self
            .shared
            .session
            .execute_unpaged(&self.shared.statements.leases_all, ())
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let rows = result
            .rows::<(i32, Option<String>, Option<String>, Option<i64>)>()
            .map_err(unavailable)?;
        let mut leases = Vec::new();
        for row in rows {
            let (partition, node, address, version) = row.map_err(unavailable)?;
            let (Ok(partition), Some(version)) = (u32::try_from(partition), version) else {
                continue;
            };
            leases.push(WriterLease {
                partition,
                node: node.unwrap_or_default(),
                address: address.unwrap_or_default(),
                version: u64::try_from(version).unwrap_or(0),
            });
        }
        leases.sort_by_key(|lease| lease.partition);
        Ok(leases)
    }

    async fn replace_writer_lease(
        &self,
        seen: Option<&WriterLease>,
        next: WriterLease,
    ) -> Result<Option<WriterLease>, StoreError> {
        let (session, statements) = (&self.shared.session, &self.shared.statements);
        let result = match seen {
            None => {
                let values = (
                    partition_value(next.partition),
                    next.node.as_str(),
                    next.address.as_str(),
                    big(next.version),
                );
                session.execute_unpaged(&statements.lease_insert, values).await
            }
            Some(seen) => {
                let values = (
                    next.node.as_str(),
                    next.address.as_str(),
                    big(next.version),
                    partition_value(next.partition),
                    seen.node.as_str(),
                    big(seen.version),
                );
                session.execute_unpaged(&statements.lease_replace, values).await
            }
        };
        Ok(applied(result.map_err(unavailable)?)?.then_some(next))
    }
}
