//! OpenTelemetry traces, exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and off otherwise. Configured only by the
//! standard variables: the protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`, `http/protobuf` by
//! default or `grpc`), `OTEL_SERVICE_NAME` (default `chat-<role>`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` and its argument, `OTEL_BSP_MAX_QUEUE_SIZE`,
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_EXPORTER_OTLP_TIMEOUT`.
//!
//! A collector that is down or slow must never stall or crash a role: finished spans go
//! into a bounded queue that a thread of its own drains to the exporter; when the queue is
//! full the span is dropped and counted (`chat_trace_spans_dropped_total{reason}`), as are
//! spans whose export failed.

use std::sync::LazyLock;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opentelemetry::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

struct Metrics {
    exported: Counter,
    dropped: Family<DropLabels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let dropped = Family::default();
    for reason in ["queue_full", "export_failed"] {
        dropped.get_or_create_owned(&DropLabels { reason });
    }
    Metrics { exported: Counter::default(), dropped }
});

fn dropped(reason: &'static str, spans: usize) {
    METRICS.dropped.get_or_create(&DropLabels { reason }).inc_by(spans as u64);
}

pub(crate) fn register(registry: &mut Registry) {
    let metrics = &*METRICS;
    registry.register(
        "chat_trace_spans_exported",
        "Spans the OTLP exporter delivered to the collector",
        metrics.exported.clone(),
    );
    registry.register(
        "chat_trace_spans_dropped",
        "Spans dropped: the export queue was full, or the collector did not take them",
        metrics.dropped.clone(),
    );
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

fn variable_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match variable(name) {
        None => Ok(default),
        Some(text) => {
            text.trim().parse().map_err(|_| anyhow::anyhow!("{name}={text:?} is not a number"))
        }
    }
}

/// Whether the environment asks for traces to be exported.
pub(crate) fn wanted() -> bool {
    variable("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
}

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    HttpProtobuf,
    Grpc,
}

fn protocol() -> anyhow::Result<Protocol> {
    let chosen = variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| variable("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match chosen.as_deref().map(str::trim) {
        None | Some("http/protobuf") => Ok(Protocol::HttpProtobuf),
        Some("grpc") => Ok(Protocol::Grpc),
        Some(other) => anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported: use http/protobuf or grpc"
        ),
    }
}

/// Checks the `OTEL_*` variables this process reads, without exporting anything.
pub(crate) fn check() -> anyhow::Result<()> {
    protocol()?;
    variable_or("OTEL_BSP_MAX_QUEUE_SIZE", 0_usize)?;
    variable_or("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 0_usize)?;
    variable_or("OTEL_BSP_SCHEDULE_DELAY", 0_u64)?;
    Ok(())
}

/// The tracer provider the environment describes, for `role`. Its spans are exported from a
/// thread of its own; shut it down to flush them.
pub(crate) fn provider(role: &str) -> anyhow::Result<SdkTracerProvider> {
    let protocol = protocol()?;
    let mut resource = Resource::builder();
    let named = variable("OTEL_SERVICE_NAME").is_some()
        || variable("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|attributes| attributes.contains("service.name="));
    if !named {
        resource = resource.with_service_name(format!("chat-{role}"));
    }
    let resource = resource.build();
    let settings = QueueSettings {
        capacity: variable_or("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?,
        batch: variable_or("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?,
        delay: Duration::from_millis(variable_or("OTEL_BSP_SCHEDULE_DELAY", 1000)?),
    };
    let processor = BoundedExport::start(protocol, resource.clone(), settings)?;
    Ok(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build())
}

/// The tracer `provider` hands the `tracing` layer.
pub(crate) fn tracer(provider: &SdkTracerProvider) -> opentelemetry_sdk::trace::Tracer {
    provider.tracer("chat")
}

#[derive(Debug, Clone, Copy)]
struct QueueSettings {
    capacity: usize,
    batch: usize,
    delay: Duration,
}

enum Message {
    Span(Box<SpanData>),
    Flush(SyncSender<()>),
    Shutdown,
}

/// A span processor with a bounded queue and its own export thread.
#[derive(Debug)]
struct BoundedExport {
    queue: SyncSender<Message>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Span(_) => "Span",
            Self::Flush(_) => "Flush",
            Self::Shutdown => "Shutdown",
        })
    }
}

impl BoundedExport {
    /// Starts the export thread, which builds the exporter itself: a gRPC exporter lives
    /// on a Tokio runtime of that thread (so no role's runtime ever waits on a collector),
    /// the HTTP one blocks and must not run on one.
    fn start(
        protocol: Protocol,
        resource: Resource,
        settings: QueueSettings,
    ) -> anyhow::Result<Self> {
        let (queue, spans) = mpsc::sync_channel(settings.capacity.max(1));
        let (built, ready) = mpsc::sync_channel::<anyhow::Result<()>>(1);
        let worker = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let runtime = match protocol {
                    Protocol::Grpc => {
                        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                            Ok(runtime) => Some(runtime),
                            Err(error) => {
                                let _ = built.send(Err(anyhow::Error::new(error)
                                    .context("starting the trace export runtime")));
                                return;
                            }
                        }
                    }
                    Protocol::HttpProtobuf => None,
                };
                let _inside = runtime.as_ref().map(tokio::runtime::Runtime::enter);
                let exporter = match protocol {
                    Protocol::HttpProtobuf => SpanExporter::builder().with_http().build(),
                    Protocol::Grpc => SpanExporter::builder().with_tonic().build(),
                };
                let mut exporter = match exporter {
                    Ok(exporter) => exporter,
                    Err(error) => {
                        let _ = built.send(Err(anyhow::Error::new(error)
                            .context("configuring the OTLP trace exporter")));
                        return;
                    }
                };
                exporter.set_resource(&resource);
                let _ = built.send(Ok(()));
                export_loop(&exporter, runtime.as_ref(), &spans, settings);
            })
            .context("starting the trace export thread")?;
        ready.recv().context("the trace export thread stopped")??;
        Ok(Self { queue, worker: Mutex::new(Some(worker)) })
    }
}

fn export(
    exporter: &SpanExporter,
    runtime: Option<&tokio::runtime::Runtime>,
    batch: &mut Vec<SpanData>,
) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let count = spans.len();
    let result = match runtime {
        Some(runtime) => runtime.block_on(exporter.export(spans)),
        None => futures_executor::block_on(exporter.export(spans)),
    };
    match result {
        Ok(()) => {
            METRICS.exported.inc_by(count as u64);
        }
        Err(error) => {
            tracing::debug!(%error, spans = count, "trace export failed");
            dropped("export_failed", count);
        }
    }
}

fn export_loop(
    exporter: &SpanExporter,
    runtime: Option<&tokio::runtime::Runtime>,
    spans: &mpsc::Receiver<Message>,
    settings: QueueSettings,
) {
    let mut batch = Vec::with_capacity(settings.batch);
    let mut due = Instant::now() + settings.delay;
    loop {
        match spans.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                if batch.len() >= settings.batch {
                    export(exporter, runtime, &mut batch);
                }
            }
            Ok(Message::Flush(done)) => {
                export(exporter, runtime, &mut batch);
                let _ = done.send(());
            }
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                export(exporter, runtime, &mut batch);
                let _ = exporter.shutdown();
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                export(exporter, runtime, &mut batch);
                due = Instant::now() + settings.delay;
            }
        }
    }
}

impl SpanProcessor for BoundedExport {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.queue.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => dropped("queue_full", 1),
            Err(TrySendError::Disconnected(_)) => dropped("export_failed", 1),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let (done, flushed) = mpsc::sync_channel(1);
        self.queue.send(Message::Flush(done)).map_err(|_| OTelSdkError::AlreadyShutdown)?;
        flushed
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| OTelSdkError::Timeout(Duration::from_secs(10)))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let Some(worker) = self.worker.lock().take() else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        // The queue may be full; the worker is draining it, so this waits only for a slot.
        if self.queue.send(Message::Shutdown).is_err() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        while !worker.is_finished() {
            if Instant::now() >= deadline {
                return Err(OTelSdkError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = worker.join();
        Ok(())
    }
}
