//! `/healthz` (the process is alive) and `/readyz` (this pod should get traffic), served
//! on every role's internal listener.
//!
//! Readiness says only what taking this pod out of rotation can fix: it is draining, or
//! (a projector) it is not a member of its group. It never asks the log or the store:
//! every pod shares them, so a blip of either would mark the whole fleet unready at once
//! and empty the Services, turning a partial outage into a total one. A request that needs
//! a backend which is away fails on its own (503, retried by clients); the backends'
//! health is the alerts' business (docs/decisions/readiness.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use schemas::http::Health;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Probes {
    /// A projector's membership of its group.
    joined: Option<Arc<AtomicBool>>,
    /// Cancelled when the process begins to drain.
    shutdown: CancellationToken,
}

pub(crate) fn router(joined: Option<Arc<AtomicBool>>, shutdown: &CancellationToken) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "ok".into() }) }))
        .route("/readyz", get(ready))
        .with_state(Probes { joined, shutdown: shutdown.clone() })
}

/// What keeps this pod from taking traffic, if anything.
fn unready(probes: &Probes) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if probes.shutdown.is_cancelled() {
        problems.push("draining: shutting down");
    }
    if probes.joined.as_ref().is_some_and(|joined| !joined.load(Ordering::Acquire)) {
        problems.push("the projector is not a member of its group");
    }
    problems
}

async fn ready(State(probes): State<Probes>) -> Response {
    let problems = unready(&probes);
    if problems.is_empty() {
        return Json(Health { status: "ready".into() }).into_response();
    }
    let detail = problems.join("; ");
    tracing::debug!(detail, "not ready");
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

    use super::*;

    #[tokio::test]
    async fn a_projector_outside_its_group_or_a_draining_pod_is_not_ready() {
        let joined = Arc::new(AtomicBool::new(false));
        let shutdown = CancellationToken::new();
        let probes = Probes { joined: Some(Arc::clone(&joined)), shutdown: shutdown.clone() };
        assert_eq!(unready(&probes), ["the projector is not a member of its group"]);
        let response = ready(State(probes.clone())).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        joined.store(true, Ordering::Release);
        assert!(unready(&probes).is_empty());
        let other_role = Probes { joined: None, ..probes.clone() };
        assert!(unready(&other_role).is_empty(), "roles without a group need none");
        shutdown.cancel();
        assert_eq!(unready(&probes), ["draining: shutting down"]);
        assert_eq!(ready(State(other_role)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
