//! `/healthz` (the process is alive) and `/readyz` (its log and store answer, and for a
//! projector, it is a member of its group), served by every role.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use eventlog::EventLog;
use schemas::http::Health;
use viewstore::ReadModel;

/// How long a readiness probe waits for the log and the store: a backend that hangs is
/// not ready, and the probe must answer before the orchestrator's own timeout.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Probes {
    log: Arc<dyn EventLog>,
    read_model: Arc<dyn ReadModel>,
    /// A projector's membership of its group.
    joined: Option<Arc<AtomicBool>>,
}

pub(crate) fn router(
    log: Arc<dyn EventLog>,
    read_model: Arc<dyn ReadModel>,
    joined: Option<Arc<AtomicBool>>,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "ok".into() }) }))
        .route("/readyz", get(ready))
        .with_state(Probes { log, read_model, joined })
}

/// What keeps the role from being ready, if anything.
async fn unready(probes: &Probes) -> Vec<String> {
    let checks = async {
        tokio::join!(
            probes.log.end_offsets(),
            probes.read_model.watermarks(probes.log.partitions())
        )
    };
    let mut problems = Vec::new();
    match tokio::time::timeout(PROBE_DEADLINE, checks).await {
        Err(_) => problems.push("the log and the store did not answer within 2 s".to_owned()),
        Ok((log, store)) => {
            problems.extend(log.err().map(|error| format!("log: {error}")));
            problems.extend(store.err().map(|error| format!("store: {error}")));
        }
    }
    if probes.joined.as_ref().is_some_and(|joined| !joined.load(Ordering::Acquire)) {
        problems.push("the projector is not a member of its group".to_owned());
    }
    problems
}

async fn ready(State(probes): State<Probes>) -> Response {
    let problems = unready(&probes).await;
    if problems.is_empty() {
        return Json(Health { status: "ready".into() }).into_response();
    }
    let detail = problems.join("; ");
    tracing::warn!(detail, "not ready");
    ingest::problem_response(&schemas::http::Problem {
        problem_type: "urn:chat:problem:unavailable".into(),
        title: "Service Unavailable".into(),
        status: 503,
        detail,
        instance: None,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};
    use eventlog::embedded::EmbeddedLog;
    use viewstore::embedded::EmbeddedStore;

    use super::*;

    #[tokio::test]
    async fn a_projector_outside_its_group_is_not_ready() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.db"), 2)?);
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.db"))?);
        let joined = Arc::new(AtomicBool::new(false));
        let probes = Probes { log, read_model: store, joined: Some(Arc::clone(&joined)) };
        let problems = unready(&probes).await;
        assert_eq!(problems, ["the projector is not a member of its group"]);
        let response = ready(State(probes.clone())).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        joined.store(true, Ordering::Release);
        assert!(unready(&probes).await.is_empty());
        let other_role = Probes { joined: None, ..probes };
        assert!(unready(&other_role).await.is_empty(), "roles without a group need none");
        Ok(())
    }
}
