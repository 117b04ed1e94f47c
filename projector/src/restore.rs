//! Writes the store acknowledged and then lost, applied again from the log.
//!
//! Offsets are committed only after the store acknowledged a batch's writes, but an
//! acknowledgement is not always durable: a single Cassandra node in its default periodic
//! commit-log mode loses its last few milliseconds of acknowledged writes when it crashes
//! (measured: 18 of 4,342 in a `kill -9`), and no redelivery would bring them back, because
//! their offsets are committed. The watermarks tell: they are written after the rest of each
//! batch, so a loss takes them back too. Before each batch is written (and now and then while
//! idle), a partition whose watermark is below what the store must hold (see the runner's
//! `must_hold`) is read again from the log from its watermark on and folded again, in order;
//! the fold is idempotent, so what was not lost changes nothing. The check does not wait for
//! a failure this projector saw: the store may have crashed while it was idle, or before it
//! started.

use std::collections::BTreeMap;

use eventlog::{EventLog, Record};
use viewstore::{ProjectionStore, StoreError};

use crate::batch::apply_records;

/// Records read and re-applied at a time.
const CHUNK: usize = 1000;

/// Re-applies, per partition, what the store lost of the offsets `committed` covers.
/// Returns how many records were applied again.
pub(crate) async fn restore_lost_writes(
    log: &dyn EventLog,
    store: &dyn ProjectionStore,
    committed: &BTreeMap<u32, u64>,
) -> Result<usize, StoreError> {
    if committed.is_empty() {
        return Ok(0);
    }
    let marks = store.watermarks(log.partitions()).await?;
    let mut restored = 0;
    for (&partition, &through) in committed {
        let mark = marks.get(partition as usize).copied().flatten();
        let mut next = mark.map_or(0, |offset| offset + 1);
        if next > through {
            continue;
        }
        tracing::error!(
            partition,
            watermark = ?mark,
            committed = through,
            "the store lost acknowledged writes; applying them again from the log"
        );
        while next <= through {
            let mut records: Vec<Record> = log
                .read(partition, next, CHUNK)
                .await
                .map_err(|error| StoreError::Unavailable(error.to_string()))?;
            records.retain(|record| record.position.offset <= through);
            let Some(last) = records.last() else { break };
            next = last.position.offset + 1;
            let applied = apply_records(store, &records).await?;
            store.apply(&applied.projection).await?;
            restored += records.len();
            crate::metrics::restored(records.len());
        }
    }
    Ok(restored)
}
