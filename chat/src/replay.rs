//! `chat replay`: folds the whole log into a scratch keyspace and compares every
//! conversation with the live projections. Exits non-zero if any differs.
//!
//! The log keeps growing while this runs, so the comparison is per conversation and per
//! version: a live view at the same applied offset as the rebuilt one must be identical,
//! and so must its history (every message as it is now, edits and deletions applied, and
//! the changes kept for resumes); a live view that is further along only shows the
//! projector kept working.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use eventlog::EventLog;
use eventlog::kafka::KafkaEventLog;
use projector::batch::apply_records;
use schemas::{ConversationId, MessageId};
use viewstore::cql::{CqlStore, drop_keyspace, migrate};
use viewstore::{ConversationView, ProjectionStore};

use crate::cli::ReplayArgs;
use crate::cluster::{cql_config, kafka_config};
use crate::migrate::parse_replication;

const READ_CHUNK: usize = 5000;
/// Messages compared per page.
const HISTORY_PAGE: usize = 500;

/// Whether both stores hold the same messages and changes for `conversation`.
async fn same_history(
    live: &dyn ProjectionStore,
    rebuilt: &dyn ProjectionStore,
    conversation: ConversationId,
) -> anyhow::Result<bool> {
    let mut after = MessageId::ZERO;
    loop {
        let ours = live.messages(conversation, after, None, HISTORY_PAGE, false).await?;
        let theirs = rebuilt.messages(conversation, after, None, HISTORY_PAGE, false).await?;
        if ours != theirs {
            return Ok(false);
        }
        match ours.last() {
            Some(last) if ours.len() == HISTORY_PAGE => after = last.id,
            _ => break,
        }
    }
    let everything = MessageId::new(schemas::ids::MAX_SAFE_INTEGER).unwrap_or(MessageId::ZERO);
    let ours = live.changes(conversation, MessageId::ZERO, everything).await?;
    Ok(ours == rebuilt.changes(conversation, MessageId::ZERO, everything).await?)
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let cluster = &args.cluster;
    let scratch =
        args.into_keyspace.clone().unwrap_or_else(|| format!("{}_replay", cluster.keyspace));
    if scratch == cluster.keyspace || !scratch.contains("replay") {
        bail!("replay into a scratch keyspace whose name contains \"replay\", not {scratch:?}");
    }
    crate::cluster::check_cluster(cluster)?;
    let log = KafkaEventLog::connect(kafka_config(cluster, &cluster.topic, "replay")?).await?;
    let live = CqlStore::connect(&cql_config(cluster, &cluster.keyspace)?).await?;
    let scratch_config = cql_config(cluster, &scratch)?;
    drop_keyspace(&scratch_config).await?;
    migrate(&scratch_config, &parse_replication("1")?).await?;
    let rebuilt = Arc::new(CqlStore::connect(&scratch_config).await?);

    let end = log.end_offsets().await?;
    let mut events = 0_u64;
    let mut views: BTreeMap<ConversationId, ConversationView> = BTreeMap::new();
    for (partition, end) in end.iter().enumerate() {
        let mut next = 0;
        while next < *end {
            let records = log.read(partition as u32, next, READ_CHUNK).await?;
            let Some(last) = records.last() else { break };
            next = last.position.offset + 1;
            events += records.len() as u64;
            let applied = apply_records(rebuilt.as_ref(), &records).await?;
            rebuilt.apply(&applied.projection).await.context("writing the rebuilt projections")?;
            for view in applied.projection.views {
                views.insert(view.conversation_id, view);
            }
        }
    }

    let (mut equal, mut newer, mut different) = (0_u64, 0_u64, Vec::new());
    let ids: Vec<ConversationId> = views.keys().copied().collect();
    let live_views: BTreeMap<ConversationId, ConversationView> =
        live.load_views(&ids).await?.into_iter().map(|view| (view.conversation_id, view)).collect();
    for (id, rebuilt_view) in &views {
        match live_views.get(id) {
            Some(live_view) if live_view == rebuilt_view => {
                if same_history(&live, rebuilt.as_ref(), *id).await? {
                    equal += 1;
                } else {
                    different.push(*id);
                }
            }
            Some(live_view) if live_view.applied_offset > rebuilt_view.applied_offset => newer += 1,
            _ => different.push(*id),
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "replayed {events} events from {} partitions into {scratch}: {} conversations, \
         {equal} equal, {newer} newer in live, {} different",
        end.len(),
        views.len(),
        different.len()
    )?;
    for (n, id) in different.iter().take(20).enumerate() {
        writeln!(out, "  different: conversation {id}")?;
        // The first few in full, so that the report says how they differ, not only which.
        if n < 3 {
            writeln!(out, "    live:   {:?}", live_views.get(id))?;
            writeln!(out, "    replay: {:?}", views.get(id))?;
        }
    }
    out.flush()?;
    if !different.is_empty() {
        bail!("{} conversations differ from a replay of the log", different.len());
    }
    Ok(())
}
