//! Assembling the roles from backends. `chat dev` and the separate role commands build
//! the same pieces here, so the embedded and the clustered deployments run the same code.

use std::sync::Arc;

use auth::{OriginPolicy, Verifier};
use axum::Router;
use eventlog::{EventLog, SignalBus};
use fanout::{FanoutConfig, FanoutState, Hub};
use ingest::writer::{KeyedWriters, WriterConfig};
use ingest::{Ingest, IngestConfig, IngestState, Rate};

use crate::cli::LimitsArgs;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use viewstore::{
    ConversationDirectory, ProjectionStore, PushSubscriptions, ReadModel, WriterLeases,
};

/// Everything the roles need from the outside world.
#[derive(Clone)]
pub(crate) struct Backends {
    pub log: Arc<dyn EventLog>,
    pub signals: Arc<dyn SignalBus>,
    pub directory: Arc<dyn ConversationDirectory>,
    pub read_model: Arc<dyn ReadModel>,
    pub projections: Arc<dyn ProjectionStore>,
    pub leases: Arc<dyn WriterLeases>,
    pub subscriptions: Arc<dyn PushSubscriptions>,
}

impl Backends {
    /// One store object that serves all three store roles.
    pub(crate) fn new<S>(log: Arc<dyn EventLog>, signals: Arc<dyn SignalBus>, store: Arc<S>) -> Self
    where
        S: ConversationDirectory + ProjectionStore + WriterLeases + PushSubscriptions,
    {
        Self {
            log,
            signals,
            directory: store.clone(),
            read_model: store.clone(),
            projections: store.clone(),
            leases: store.clone(),
            subscriptions: store,
        }
    }

    /// The write path: this node's part in writing keyed sends (checked against the log's
    /// delivery timeout first), and the ingest service on top. The task ends after
    /// `shutdown`, once this node's writer leases are handed back.
    pub(crate) async fn start_ingest(
        &self,
        limits: &LimitsArgs,
        writer: WriterConfig,
        attachments: Option<attachments::Attachments>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<(Arc<Ingest>, Arc<KeyedWriters>, JoinHandle<()>)> {
        writer.timing.check(self.log.delivery_timeout())?;
        let send_rate = (limits.send_rate > 0.0)
            .then_some(Rate { per_second: limits.send_rate, burst: limits.send_burst });
        let config = IngestConfig {
            send_rate,
            edit_window: limits.edit_window,
            append_timeout: writer.timing.append_timeout,
            ..IngestConfig::default()
        };
        let (writers, task) = KeyedWriters::start(
            Arc::clone(&self.log),
            Arc::clone(&self.read_model),
            Arc::clone(&self.leases),
            writer,
            shutdown.clone(),
        )
        .await
        .map_err(|error| anyhow::anyhow!("joining the writers of keyed sends: {error}"))?;
        let mut ingest = Ingest::new(
            Arc::clone(&self.log),
            Arc::clone(&self.directory),
            Arc::clone(&self.read_model),
            Arc::clone(&writers) as Arc<dyn ingest::writer::WriteKeyed>,
            config,
        );
        if let Some(attachments) = attachments {
            ingest = ingest.with_attachments(attachments);
        }
        let ingest = Arc::new(ingest);
        Ok((ingest, writers, task))
    }
}

/// The fanout settings the flags ask for.
pub(crate) fn fanout_config(limits: &LimitsArgs, origins: Vec<String>) -> FanoutConfig {
    FanoutConfig {
        origins: OriginPolicy::new(origins),
        queue_per_connection: limits.ws_queue.max(1),
        max_connections_per_user: limits.max_connections_per_user,
        max_subscriptions: limits.max_subscriptions.max(1),
        subscription_changes: (limits.subscription_changes > 0.0)
            .then_some(limits.subscription_changes),
        ping_interval: limits.ws_ping,
        idle_timeout: limits.ws_idle,
        write_timeout: limits.ws_write_timeout,
        drain_period: limits.drain,
        presence_ttl: limits.presence_ttl.max(std::time::Duration::from_secs(1)),
        ..FanoutConfig::default()
    }
}

pub(crate) fn ingest_router(
    ingest: &Arc<Ingest>,
    verifier: &Arc<Verifier>,
    files: ingest::FileLimits,
    push: Option<ingest::PushRegistry>,
) -> Router {
    ingest::router(IngestState {
        ingest: Arc::clone(ingest),
        verifier: Arc::clone(verifier),
        files: Arc::new(ingest::FileGate::new(files)),
        push: push.map(Arc::new),
    })
}

/// The notifier on these backends; the task ends after `shutdown`.
pub(crate) fn spawn_notifier(
    backends: &Backends,
    config: notifier::NotifierConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let stores = notifier::Stores {
        read_model: Arc::clone(&backends.read_model),
        directory: Arc::clone(&backends.directory),
        subscriptions: Arc::clone(&backends.subscriptions),
    };
    let (log, signals) = (Arc::clone(&backends.log), Arc::clone(&backends.signals));
    tokio::spawn(async move {
        if let Err(error) = notifier::run(log, signals, stores, config, shutdown).await {
            tracing::error!(%error, "notifier stopped");
        }
    })
}

pub(crate) fn spawn_projector(
    backends: &Backends,
    config: projector::ProjectorConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let (log, store, signals) = (
        Arc::clone(&backends.log),
        Arc::clone(&backends.projections),
        Arc::clone(&backends.signals),
    );
    tokio::spawn(async move {
        if let Err(error) = projector::run(log, store, signals, config, shutdown).await {
            tracing::error!(%error, "projector stopped");
        }
    })
}

/// Starts the hub (tailing the log and the signals) and returns the WebSocket routes, the
/// hub, and a task that ends after shutdown, once every connection has drained and the hub
/// stopped.
pub(crate) async fn start_fanout(
    backends: &Backends,
    ingest: &Arc<Ingest>,
    verifier: &Arc<Verifier>,
    config: FanoutConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Router, Arc<Hub>, JoinHandle<()>)> {
    // The hub keeps delivering while connections drain; it stops after the last one.
    let hub_stop = CancellationToken::new();
    let (hub, hub_task) = Hub::start(
        Arc::clone(&backends.log),
        Arc::clone(&backends.signals),
        config,
        hub_stop.clone(),
    )
    .await
    .map_err(|error| anyhow::anyhow!("starting fanout: {error}"))?;
    let state = FanoutState::new(
        Arc::clone(&hub),
        Arc::clone(ingest),
        Arc::clone(&backends.read_model),
        Arc::clone(&backends.signals),
        Arc::clone(verifier),
        shutdown.clone(),
    );
    let router = fanout::router(state.clone());
    let task = tokio::spawn(async move {
        state.drained().await;
        hub_stop.cancel();
        let _ = hub_task.await;
    });
    Ok((router, hub, task))
}

/// A name for this process in the writer leases: the role and a random suffix, unique per
/// start (a restarted process is a new writer).
pub(crate) fn node_name(role: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{role}-{}", &suffix[..12])
}

/// A site of a role: its routes, answering 404 problems for anything else, with each
/// request's telemetry.
pub(crate) fn site(listener: tokio::net::TcpListener, routes: Router) -> crate::server::Site {
    let app = routes
        .fallback(ingest::not_found)
        .layer(axum::middleware::from_fn(crate::telemetry::http::track));
    crate::server::Site { listener, app }
}
