//! Assembling the roles from backends. `chat dev` and the separate role commands build
//! the same pieces here, so the embedded and the clustered deployments run the same code.

use std::sync::Arc;

use auth::{OriginPolicy, Verifier};
use axum::Router;
use eventlog::{EventLog, SignalBus};
use fanout::{FanoutConfig, FanoutState, Hub};
use ingest::{Ingest, IngestConfig, IngestState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use viewstore::{ConversationDirectory, ProjectionStore, ReadModel};

/// Everything the roles need from the outside world.
#[derive(Clone)]
pub(crate) struct Backends {
    pub log: Arc<dyn EventLog>,
    pub signals: Arc<dyn SignalBus>,
    pub directory: Arc<dyn ConversationDirectory>,
    pub read_model: Arc<dyn ReadModel>,
    pub projections: Arc<dyn ProjectionStore>,
}

impl Backends {
    /// One store object that serves all three store roles.
    pub(crate) fn new<S>(log: Arc<dyn EventLog>, signals: Arc<dyn SignalBus>, store: Arc<S>) -> Self
    where
        S: ConversationDirectory + ProjectionStore,
    {
        Self {
            log,
            signals,
            directory: store.clone(),
            read_model: store.clone(),
            projections: store,
        }
    }

    pub(crate) fn ingest(&self) -> Arc<Ingest> {
        Arc::new(Ingest::new(
            Arc::clone(&self.log),
            Arc::clone(&self.directory),
            Arc::clone(&self.read_model),
            IngestConfig::default(),
        ))
    }
}

pub(crate) fn ingest_router(ingest: &Arc<Ingest>, verifier: &Arc<Verifier>) -> Router {
    ingest::router(IngestState { ingest: Arc::clone(ingest), verifier: Arc::clone(verifier) })
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

/// Starts the hub (tailing the log and the signals) and returns the WebSocket routes.
pub(crate) async fn start_fanout(
    backends: &Backends,
    ingest: &Arc<Ingest>,
    verifier: &Arc<Verifier>,
    origins: Vec<String>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Router, JoinHandle<()>)> {
    let config = FanoutConfig { origins: OriginPolicy::new(origins), ..FanoutConfig::default() };
    let (hub, task) = Hub::start(
        Arc::clone(&backends.log),
        Arc::clone(&backends.signals),
        config,
        shutdown.clone(),
    )
    .await
    .map_err(|error| anyhow::anyhow!("starting fanout: {error}"))?;
    let state = FanoutState::new(
        hub,
        Arc::clone(ingest),
        Arc::clone(&backends.signals),
        Arc::clone(verifier),
        shutdown.clone(),
    );
    Ok((fanout::router(state), task))
}
