//! The trace of each appended event. The record names the span that appended it (see
//! `eventlog::trace`): the producer span the service opens around each append, a child of
//! the HTTP request's or WebSocket frame's span. When no OpenTelemetry layer is installed,
//! spans have no context, and the record's `traceparent` is instead a child of the
//! request's own `traceparent` (or of a new trace), so the log always carries one.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use eventlog::trace::{self, TraceParent};

tokio::task_local! {
    static REQUEST_TRACE: TraceParent;
}

/// The `traceparent` for a record appended inside `span`.
pub(crate) fn record_header(span: &tracing::Span) -> String {
    match trace::of_span(span) {
        Some(context) => context.header(),
        None => REQUEST_TRACE
            .try_with(TraceParent::child_header)
            .unwrap_or_else(|_| TraceParent::root().header()),
    }
}

/// Middleware: the request's `traceparent` (or a new trace) is the parent of every event
/// the request appends, when spans carry no context of their own.
pub(crate) async fn propagate(request: Request, next: Next) -> Response {
    let trace = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse)
        .unwrap_or_else(TraceParent::root);
    REQUEST_TRACE.scope(trace, next.run(request)).await
}
