//! Every HTTP request's span and metrics, for every role: a server span (a child of the
//! caller's `traceparent`, when it sent one), the count by route, method and status, and
//! the duration with the request's trace as exemplar. The route is the matched path
//! template, never the path itself, so ids in URLs never become labels.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use eventlog::trace::{self, TraceParent};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::{Registry, Unit};
use tracing::Instrument;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceLabels {
    trace_id: String,
}

type Durations = Family<RouteLabels, HistogramWithExemplars<TraceLabels>, fn() -> Histogram>;
type Histogram = HistogramWithExemplars<TraceLabels>;

struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
}

fn duration_buckets() -> Histogram {
    // 0.5 ms to ~16 s.
    HistogramWithExemplars::new(exponential_buckets(0.0005, 2.0, 16))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: Family::default(),
    durations: Family::new_with_constructor(duration_buckets),
});

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: traces, counts and times the request. Without OpenTelemetry, a request
/// without a valid `traceparent` gets a new trace here, so the sample's exemplar and the
/// events it appends share it.
pub(crate) async fn track(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let incoming = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse);
    let span = tracing::debug_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route.as_str(),
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(parent) = &incoming {
        trace::set_remote_parent(&span, parent);
    }
    let trace = match (trace::of_span(&span), incoming) {
        (Some(own), _) => own,
        (None, Some(incoming)) => incoming,
        (None, None) => {
            let trace = TraceParent::root();
            if let Ok(value) = HeaderValue::from_str(&trace.header()) {
                request.headers_mut().insert("traceparent", value);
            }
            trace
        }
    };
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if response.status().is_server_error() {
        trace::set_error(&span, response.status());
    }
    let metrics = &*METRICS;
    metrics.requests.get_or_create(&RequestLabels { route: route.clone(), method, status }).inc();
    let exemplar = TraceLabels { trace_id: trace.trace_id().to_owned() };
    metrics.durations.get_or_create(&RouteLabels { route, method }).observe(
        started.elapsed().as_secs_f64(),
        Some(exemplar),
        None,
    );
    response
}

pub(crate) fn register(registry: &mut Registry) {
    let metrics = &*METRICS;
    registry.register(
        "chat_http_requests",
        "HTTP requests answered, by route template, method and status",
        metrics.requests.clone(),
    );
    registry.register_with_unit(
        "chat_http_request_duration",
        "Time to answer an HTTP request (to the 101 for WebSocket upgrades)",
        Unit::Seconds,
        metrics.durations.clone(),
    );
}
