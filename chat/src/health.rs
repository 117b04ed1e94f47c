//! `/healthz` (the process is alive) and `/readyz` (its log and store answer), served by
//! every role.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use eventlog::EventLog;
use schemas::http::Health;
use viewstore::ReadModel;

#[derive(Clone)]
struct Probes {
    log: Arc<dyn EventLog>,
    read_model: Arc<dyn ReadModel>,
}

pub(crate) fn router(log: Arc<dyn EventLog>, read_model: Arc<dyn ReadModel>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "ok".into() }) }))
        .route("/readyz", get(ready))
        .with_state(Probes { log, read_model })
}

async fn ready(State(probes): State<Probes>) -> Response {
    let log = probes.log.end_offsets().await;
    let store = probes.read_model.watermarks(probes.log.partitions()).await;
    match (log, store) {
        (Ok(_), Ok(_)) => Json(Health { status: "ready".into() }).into_response(),
        (log, store) => {
            let detail = [log.err().map(|e| e.to_string()), store.err().map(|e| e.to_string())]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(detail, "not ready");
            let problem = schemas::http::Problem {
                problem_type: "urn:chat:problem:unavailable".into(),
                title: "Service Unavailable".into(),
                status: 503,
                detail: "the log or the store does not answer".into(),
                instance: None,
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "application/problem+json")],
                serde_json::to_string(&problem).unwrap_or_default(),
            )
                .into_response()
        }
    }
}
