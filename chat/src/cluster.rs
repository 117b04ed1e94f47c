//! The roles as separate processes on Kafka + CQL: `chat ingest`, `chat fanout`,
//! `chat projector`. Each serves `/healthz` and `/readyz` and drains on SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use eventlog::kafka::{KafkaConfig, KafkaEventLog};
use eventlog::kafka_signals::KafkaSignalBus;
use tokio_util::sync::CancellationToken;
use viewstore::cql::{CqlConfig, CqlStore};

use crate::cli::{ClusterArgs, ProjectorArgs, RoleArgs};
use crate::wiring::{Backends, fanout_config, ingest_router, spawn_projector, start_fanout};
use crate::{health, jwt, server};

pub(crate) fn kafka_config(args: &ClusterArgs, topic: &str, role: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(args.kafka_brokers.clone(), topic);
    config.client_id = format!("chat-{role}");
    config
}

pub(crate) fn cql_config(args: &ClusterArgs, keyspace: &str) -> CqlConfig {
    CqlConfig::new(args.cql_nodes.clone(), keyspace)
}

/// Connects to Kafka and CQL; fails with one clear line when either is missing or not
/// migrated. `instance` names this replica in consumer groups (static membership).
pub(crate) async fn connect(
    args: &ClusterArgs,
    role: &str,
    instance: Option<String>,
) -> anyhow::Result<Backends> {
    let mut events = kafka_config(args, &args.topic, role);
    events.group_instance = instance;
    let log = KafkaEventLog::connect(events)
        .await
        .with_context(|| format!("connecting to Kafka at {}", args.kafka_brokers))?;
    let signals = KafkaSignalBus::connect(kafka_config(args, &args.signals_topic, role))
        .context("connecting the signal bus")?;
    let store = CqlStore::connect(&cql_config(args, &args.keyspace))
        .await
        .with_context(|| format!("connecting to CQL at {:?}", args.cql_nodes))?;
    Ok(Backends::new(Arc::new(log), Arc::new(signals), Arc::new(store)))
}

fn announce(role: &str, address: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "chat {role} is serving on http://{address}")?;
    out.flush()?;
    Ok(())
}

pub(crate) async fn run_ingest(args: RoleArgs) -> anyhow::Result<()> {
    let (verifier, _) = jwt::verifier(&args.jwt, None)?;
    let verifier = Arc::new(verifier);
    let backends = connect(&args.cluster, "ingest", None).await?;
    let listener = server::bind(args.listen, args.limits.socket_send_buffer)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let ingest = backends.ingest(&args.limits);
    let app = ingest_router(&ingest, &verifier)
        .merge(health::router(Arc::clone(&backends.log), Arc::clone(&backends.read_model)))
        .fallback(ingest::not_found);
    announce("ingest", listener.local_addr()?)?;
    server::serve(listener, app, shutdown, Vec::new()).await
}

pub(crate) async fn run_fanout(args: RoleArgs) -> anyhow::Result<()> {
    let (verifier, _) = jwt::verifier(&args.jwt, None)?;
    let verifier = Arc::new(verifier);
    let backends = connect(&args.cluster, "fanout", None).await?;
    let listener = server::bind(args.listen, args.limits.socket_send_buffer)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let ingest = backends.ingest(&args.limits);
    let (sockets, hub) = start_fanout(
        &backends,
        &ingest,
        &verifier,
        fanout_config(&args.limits, args.allowed_origins.clone()),
        &shutdown,
    )
    .await?;
    let app = sockets
        .merge(health::router(Arc::clone(&backends.log), Arc::clone(&backends.read_model)))
        .fallback(ingest::not_found);
    announce("fanout", listener.local_addr()?)?;
    server::serve(listener, app, shutdown, vec![hub]).await
}

pub(crate) async fn run_projector(args: ProjectorArgs) -> anyhow::Result<()> {
    let backends = connect(&args.cluster, "projector", args.instance.clone()).await?;
    let listener = server::bind(args.listen, None)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let config = projector::ProjectorConfig {
        group: args.group.clone(),
        batch_size: args.batch as usize,
        ..projector::ProjectorConfig::default()
    };
    let task = spawn_projector(&backends, config, shutdown.clone());
    let app = health::router(Arc::clone(&backends.log), Arc::clone(&backends.read_model))
        .fallback(ingest::not_found);
    announce("projector", listener.local_addr()?)?;
    server::serve(listener, app, shutdown, vec![task]).await
}
