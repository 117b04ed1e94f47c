//! `chat migrate`: the topics and the keyspace, created idempotently.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use eventlog::kafka::{TopicSpec, ensure_topic};
use viewstore::cql::{Replication, migrate};

use crate::cli::MigrateArgs;
use crate::cluster::{cql_config, kafka_config};

/// Signals are short-lived: an hour is plenty for a node that restarts.
const SIGNAL_RETENTION: Duration = Duration::from_secs(3600);

pub(crate) fn parse_replication(text: &str) -> anyhow::Result<Replication> {
    if let Ok(factor) = text.trim().parse::<u32>() {
        if factor == 0 {
            bail!("the CQL replication factor must be at least 1");
        }
        return Ok(Replication::Simple { factor });
    }
    let mut datacenters = Vec::new();
    for part in text.split(',') {
        let Some((name, factor)) = part.trim().split_once(':') else {
            bail!(
                "CQL replication must be a factor (3) or datacenters (dc1:3,dc2:3), not {text:?}"
            );
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let factor: u32 =
            factor.parse().with_context(|| format!("replication factor of {name}"))?;
        if !valid || factor == 0 {
            bail!("bad datacenter replication {part:?}");
        }
        datacenters.push((name.to_owned(), factor));
    }
    Ok(Replication::NetworkTopology(datacenters))
}

pub(crate) async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let replication = parse_replication(&args.cql_replication)?;
    let cluster = &args.cluster;
    crate::cluster::check_cluster(cluster)?;
    let retention =
        (args.retention_hours > 0).then(|| Duration::from_secs(args.retention_hours * 3600));
    let events = TopicSpec {
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        retention,
    };
    let signals = TopicSpec {
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        retention: Some(SIGNAL_RETENTION),
    };
    // Parked webhook events: few, kept until an operator redelivers them.
    let dead_letters =
        TopicSpec { partitions: 1, replication_factor: args.replication_factor, retention: None };
    let dead_letter_topic = crate::cluster::dead_letter_topic(cluster);
    let mut out = std::io::stdout().lock();
    for (topic, spec) in [
        (&cluster.topic, events),
        (&cluster.signals_topic, signals),
        (&dead_letter_topic, dead_letters),
    ] {
        let created = ensure_topic(&kafka_config(cluster, topic, "migrate")?, spec)
            .await
            .with_context(|| format!("topic {topic} on {}", cluster.kafka_brokers))?;
        let verb = if created { "created" } else { "exists" };
        writeln!(
            out,
            "topic {topic}: {verb} ({} partitions, replication {}, min.insync.replicas {})",
            spec.partitions,
            spec.replication_factor,
            spec.min_insync_replicas()
        )?;
    }
    let applied = migrate(&cql_config(cluster, &cluster.keyspace)?, &replication)
        .await
        .with_context(|| format!("keyspace {} on {:?}", cluster.keyspace, cluster.cql_nodes))?;
    if applied.is_empty() {
        writeln!(out, "keyspace {}: up to date", cluster.keyspace)?;
    } else {
        writeln!(out, "keyspace {}: applied migrations {applied:?}", cluster.keyspace)?;
    }
    Ok(())
}
