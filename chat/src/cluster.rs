//! The roles as separate processes on Kafka + CQL: `chat ingest`, `chat fanout`,
//! `chat projector`. Each serves `/healthz` and `/readyz` and drains on SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use eventlog::kafka::{KafkaConfig, KafkaEventLog};
use eventlog::kafka_signals::KafkaSignalBus;
use ingest::writer::{ForwardKey, WriterConfig};
use tokio_util::sync::CancellationToken;
use viewstore::cql::{CqlConfig, CqlStore};

use crate::cli::{ClusterArgs, ProjectorArgs, RoleArgs};
use crate::telemetry::metrics::{Consumer, Metrics, Parts};
use crate::wiring::{
    Backends, close_after, fanout_config, ingest_router, node_name, spawn_projector, start_fanout,
};
use crate::{health, jwt, server, telemetry};

/// How long a keyed send waits for its partition to have a reachable writer (a handover
/// takes a moment; a takeover after a crash can take a lease period, and then the client
/// is told to retry).
const ROUTE_WAIT: Duration = Duration::from_secs(5);

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
    append_timeout: Option<Duration>,
) -> anyhow::Result<Backends> {
    let mut events = kafka_config(args, &args.topic, role);
    events.group_instance = instance;
    if let Some(timeout) = append_timeout {
        events.append_timeout = timeout;
    }
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

/// The key forwarded keyed sends are signed with.
fn forward_key(args: &RoleArgs) -> anyhow::Result<ForwardKey> {
    let key = match (&args.cluster_secret, &args.jwt.jwt_secret) {
        (Some(secret), _) => ForwardKey::new(secret.as_bytes()),
        (None, Some(token_secret)) => {
            ForwardKey::derived_from_token_secret(token_secret.as_bytes())
        }
        (None, None) => bail!(
            "CHAT_CLUSTER_SECRET is required when tokens are verified with a public key: \
             nodes sign the keyed sends they forward to each other with it"
        ),
    };
    key.map_err(anyhow::Error::msg)
}

/// Refuses, before anything is connected or bound, an ingest node other nodes could not
/// forward keyed sends to.
fn check_advertise(args: &RoleArgs) -> anyhow::Result<()> {
    if args.advertise.is_none() && args.listen.ip().is_unspecified() {
        bail!(
            "--listen {} names no address other nodes can reach; set --advertise \
             (CHAT_ADVERTISE) to this node's host:port",
            args.listen
        );
    }
    Ok(())
}

/// This node's part in writing keyed sends: ingest nodes join the writer group (and are
/// reached at their advertised address), fanout nodes only forward.
fn writer_config(args: &RoleArgs, role: &str, bound: SocketAddr) -> anyhow::Result<WriterConfig> {
    let member = role == "ingest";
    if member {
        check_advertise(args)?;
    }
    let address = args.advertise.clone().unwrap_or_else(|| bound.to_string());
    let group =
        args.writer_group.clone().unwrap_or_else(|| format!("{}.writers", args.cluster.topic));
    Ok(WriterConfig {
        node: node_name(role),
        address,
        group: member.then_some(group),
        timing: args.write.timing(),
        forward_key: Some(forward_key(args)?),
        route_wait: ROUTE_WAIT,
    })
}

/// What `role` checks before connecting anywhere (also `chat config check`).
pub(crate) fn check_role(args: &RoleArgs, role: &str) -> anyhow::Result<()> {
    jwt::verifier(&args.jwt, None)?;
    forward_key(args)?;
    args.write.timing().check(args.write.append_timeout)?;
    if role == "ingest" {
        check_advertise(args)?;
    }
    Ok(())
}

pub(crate) async fn run_ingest(args: RoleArgs) -> anyhow::Result<()> {
    check_role(&args, "ingest")?;
    let (verifier, _) = jwt::verifier(&args.jwt, None)?;
    let verifier = Arc::new(verifier);
    let forward = forward_key(&args)?;
    let backends = connect(&args.cluster, "ingest", None, Some(args.write.append_timeout)).await?;
    let listener = server::bind(args.listen, args.limits.socket_send_buffer)?;
    let writer = writer_config(&args, "ingest", listener.local_addr()?)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let attachments = args.files.open(None)?;
    let (ingest, writers, writers_task) =
        backends.start_ingest(&args.limits, writer, attachments, &shutdown).await?;
    let parts = Parts { ingest: true, ..Parts::default() };
    let metrics = Metrics::new("ingest", parts, Arc::clone(&backends.log), Vec::new());
    let app = ingest_router(&ingest, &verifier, args.files.max_upload_bytes())
        .merge(ingest::writer::forward_router(writers, forward))
        .merge(health::router(Arc::clone(&backends.log), Arc::clone(&backends.read_model), None))
        .merge(metrics.router())
        .fallback(ingest::not_found)
        .layer(axum::middleware::from_fn(telemetry::http::track));
    announce("ingest", listener.local_addr()?)?;
    // Leases are handed back while this node still answers forwarded sends with "not here".
    let close = close_after(writers_task, &shutdown);
    server::serve(listener, app, &args.http.limits(), close, Vec::new()).await
}

pub(crate) async fn run_fanout(args: RoleArgs) -> anyhow::Result<()> {
    check_role(&args, "fanout")?;
    let (verifier, _) = jwt::verifier(&args.jwt, None)?;
    let verifier = Arc::new(verifier);
    let backends = connect(&args.cluster, "fanout", None, Some(args.write.append_timeout)).await?;
    let listener = server::bind(args.listen, args.limits.socket_send_buffer)?;
    let writer = writer_config(&args, "fanout", listener.local_addr()?)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    // Native sends may carry uploads, which the fanout's ingest describes from the store.
    let attachments = args.files.open(None)?;
    let (ingest, _, writers_task) =
        backends.start_ingest(&args.limits, writer, attachments, &shutdown).await?;
    let (sockets, hub, hub_task) = start_fanout(
        &backends,
        &ingest,
        &verifier,
        fanout_config(&args.limits, args.allowed_origins.clone()),
        &shutdown,
    )
    .await?;
    let parts = Parts { fanout: true, ..Parts::default() };
    let consumers = vec![Consumer::Fanout(hub)];
    let metrics = Metrics::new("fanout", parts, Arc::clone(&backends.log), consumers);
    let app = sockets
        .merge(health::router(Arc::clone(&backends.log), Arc::clone(&backends.read_model), None))
        .merge(metrics.router())
        .fallback(ingest::not_found)
        .layer(axum::middleware::from_fn(telemetry::http::track));
    announce("fanout", listener.local_addr()?)?;
    server::serve(listener, app, &args.http.limits(), shutdown, vec![hub_task, writers_task]).await
}

pub(crate) async fn run_projector(args: ProjectorArgs) -> anyhow::Result<()> {
    let backends = connect(&args.cluster, "projector", args.instance.clone(), None).await?;
    let listener = server::bind(args.listen, None)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let config = projector::ProjectorConfig {
        group: args.group.clone(),
        batch_size: args.batch as usize,
        ..projector::ProjectorConfig::default()
    };
    let joined = Arc::clone(&config.joined);
    let task = spawn_projector(&backends, config, shutdown.clone());
    let parts = Parts { projector: true, ..Parts::default() };
    let consumers = vec![Consumer::Projector(Arc::clone(&backends.read_model))];
    let metrics = Metrics::new("projector", parts, Arc::clone(&backends.log), consumers);
    let probes =
        health::router(Arc::clone(&backends.log), Arc::clone(&backends.read_model), Some(joined));
    let app = probes
        .merge(metrics.router())
        .fallback(ingest::not_found)
        .layer(axum::middleware::from_fn(telemetry::http::track));
    announce("projector", listener.local_addr()?)?;
    server::serve(listener, app, &args.http.limits(), shutdown, vec![task]).await
}
