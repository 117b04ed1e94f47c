//! The projector's consumer loop.
//!
//! Per batch: fold it, write the result in one idempotent store call, commit the offsets,
//! then announce the changed inbox items. A crash anywhere in between is harmless: the batch
//! is delivered again, the fold skips what the views already reflect, and the writes are
//! idempotent. On shutdown the loop finishes the batch it holds, commits, and returns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventlog::{EventLog, LogError, SignalBus, SubscribeSpec, Subscription, join_group};
use schemas::signals::Signal;
use tokio_util::sync::CancellationToken;
use viewstore::{ProjectionStore, StoreError};

use crate::batch::{AppliedBatch, apply_records};
use crate::restore::restore_lost_writes;
use crate::trace::BatchSpans;

/// Most records folded per store write, unless configured (`chat projector --batch`). A
/// batch takes only what has arrived, so a large bound costs no latency.
pub const DEFAULT_BATCH: usize = 5000;

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// The consumer group; every projector of one deployment shares it.
    pub group: String,
    /// Records folded per store write.
    pub batch_size: usize,
    /// How long to wait for records before checking for shutdown.
    pub poll_wait: Duration,
    /// True while the projector is a member of its group (what readiness reports).
    pub joined: Arc<AtomicBool>,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            group: "chat-projector".into(),
            batch_size: DEFAULT_BATCH,
            poll_wait: Duration::from_millis(500),
            joined: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Log(#[from] LogError),
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle projector checks that the store still holds what it committed: a
/// store that lost its last writes while no batch came would otherwise stay wrong until the
/// partition's next event.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Runs until `shutdown` is cancelled. Store and log hiccups are retried with backoff;
/// only a subscription that cannot be had at all ends the loop with an error.
pub async fn run(
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    signals: Arc<dyn SignalBus>,
    config: ProjectorConfig,
    shutdown: CancellationToken,
) -> Result<(), ProjectorError> {
    let mut subscription = log.subscribe(SubscribeSpec::Group(config.group.clone())).await?;
    config.joined.store(true, Ordering::Release);
    // The last offset this projector committed per partition: what the store must hold.
    let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut last_check = std::time::Instant::now();
    tracing::info!(group = config.group, "projector started");
    while !shutdown.is_cancelled() {
        let records = tokio::select! {
            () = shutdown.cancelled() => break,
            records = subscription.next_batch(config.batch_size, config.poll_wait) => records,
        };
        let records = match records {
            Ok(records) => records,
            Err(LogError::SubscriptionLost(reason)) => {
                tracing::warn!(reason, "projector subscription lost; joining the group again");
                config.joined.store(false, Ordering::Release);
                drop(subscription);
                match join_group(log.as_ref(), &config.group, &shutdown).await {
                    Some(rejoined) => subscription = rejoined,
                    None => break,
                }
                config.joined.store(true, Ordering::Release);
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "failed to read from the log; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if records.is_empty() {
            if last_check.elapsed() >= IDLE_CHECK {
                last_check = std::time::Instant::now();
                check_while_idle(log.as_ref(), store.as_ref(), &committed).await;
            }
            continue;
        }
        last_check = std::time::Instant::now();
        let started = std::time::Instant::now();
        let spans = BatchSpans::start(&records, log.destination());
        let writing = Writing { log: log.as_ref(), store: store.as_ref(), committed: &committed };
        let Some(applied) = apply_with_retry(&writing, &records, &spans, &shutdown).await else {
            break;
        };
        let applied_in = started.elapsed();
        crate::metrics::batch_applied(records.len(), &applied.counts, applied_in);
        crate::metrics::projected(
            records.iter().map(|record| record.timestamp.millis()),
            schemas::Timestamp::now().millis(),
        );
        let lost = !commit_with_retry(subscription.as_mut(), &applied, &shutdown).await;
        if !lost {
            for position in &applied.commit {
                committed.insert(position.partition, position.offset);
            }
        }
        announce(signals.as_ref(), &applied).await;
        drop(spans);
        tracing::debug!(
            records = records.len(),
            apply_ms = applied_in.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        if lost {
            // The batch is written; the new member gets it again and the fold skips it.
            tracing::warn!("projector subscription lost while committing; joining the group again");
            config.joined.store(false, Ordering::Release);
            drop(subscription);
            match join_group(log.as_ref(), &config.group, &shutdown).await {
                Some(rejoined) => subscription = rejoined,
                None => break,
            }
            config.joined.store(true, Ordering::Release);
        }
    }
    config.joined.store(false, Ordering::Release);
    tracing::info!("projector stopped");
    Ok(())
}

/// Where a batch is written, and what the store must already hold.
struct Writing<'a> {
    log: &'a dyn EventLog,
    store: &'a dyn ProjectionStore,
    committed: &'a BTreeMap<u32, u64>,
}

async fn apply_with_retry(
    writing: &Writing<'_>,
    records: &[eventlog::Record],
    spans: &BatchSpans,
    shutdown: &CancellationToken,
) -> Option<AppliedBatch> {
    let store = writing.store;
    let must_hold = must_hold(writing.committed, records);
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt: Result<AppliedBatch, StoreError> = async {
            // The store may have lost what it acknowledged last (a crash this projector need
            // not have seen, or one before it started); that goes back first, so the fold
            // meets every event in log order.
            let restored = restore_lost_writes(writing.log, store, &must_hold).await?;
            if restored > 0 {
                tracing::warn!(restored, "re-applied records the store had lost");
            }
            let applied = apply_records(store, records).await?;
            let writes = spans.writing(records.len());
            let written = store.apply(&applied.projection).await;
            if let Err(error) = &written {
                BatchSpans::failed(&writes, error);
            }
            written?;
            Ok(applied)
        }
        .await;
        match attempt {
            Ok(applied) => {
                let counts = applied.counts;
                tracing::debug!(records = records.len(), ?counts, "applied batch");
                return Some(applied);
            }
            Err(error) => {
                tracing::warn!(%error, "failed to apply a batch; retrying");
                // Keep retrying through a shutdown request too: abandoning here is safe
                // (nothing was committed), but only after a last attempt has failed.
                if shutdown.is_cancelled() {
                    return None;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// What the store must hold before `records` are applied, per partition: what this
/// projector committed, and everything before the batch's first record of the partition.
/// The group delivers from its last commit, and a commit follows the store's
/// acknowledgement, whichever projector made it, so this holds across restarts too.
fn must_hold(committed: &BTreeMap<u32, u64>, records: &[eventlog::Record]) -> BTreeMap<u32, u64> {
    let mut through = committed.clone();
    let mut seen = BTreeSet::new();
    for record in records {
        let partition = record.position.partition;
        // A partition's records arrive in order: its first one tells what came before.
        if !seen.insert(partition) {
            continue;
        }
        if let Some(before) = record.position.offset.checked_sub(1) {
            let slot = through.entry(partition).or_insert(before);
            *slot = (*slot).max(before);
        }
    }
    through
}

/// Re-applies what the store lost of this projector's commits while no batch came; a
/// store that cannot be asked now is asked again at the next batch.
async fn check_while_idle(
    log: &dyn EventLog,
    store: &dyn ProjectionStore,
    committed: &BTreeMap<u32, u64>,
) {
    match restore_lost_writes(log, store, committed).await {
        Ok(0) => {}
        Ok(restored) => tracing::warn!(restored, "re-applied records the store had lost"),
        Err(error) => tracing::debug!(%error, "cannot check the store's watermarks while idle"),
    }
}

/// Commits the batch, retrying transient failures. False when the subscription is lost
/// (the caller must join the group again); true when committed or when asked to stop.
async fn commit_with_retry(
    subscription: &mut dyn Subscription,
    applied: &AppliedBatch,
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match subscription.commit(&applied.commit).await {
            Ok(()) => return true,
            Err(LogError::SubscriptionLost(_)) => return false,
            Err(error) => {
                // Not committing is safe (the batch comes again and changes nothing); it only
                // costs work after a restart, so give up when asked to stop.
                tracing::warn!(%error, "failed to commit offsets; retrying");
                if shutdown.is_cancelled() {
                    return true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Publishes every changed inbox item together: one bus record for the batch, rather than
/// a round trip per participant of every changed view.
async fn announce(signals: &dyn SignalBus, applied: &AppliedBatch) {
    let updates: Vec<Signal> = applied
        .projection
        .views
        .iter()
        .flat_map(|view| {
            [&view.client.id, &view.worker.id].into_iter().filter_map(move |user| {
                let item = view.inbox_item(user)?;
                Some(Signal::InboxUpdated { user_id: user.clone(), item: Box::new(item) })
            })
        })
        .collect();
    if !updates.is_empty() {
        signals.publish_all(updates).await;
    }
}
