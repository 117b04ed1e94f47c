//! Telemetry for the whole process, set up once in `main`: logs (to stderr, so stdout
//! carries only what a command prints for people or scripts: the banner, a token), traces
//! (`traces.rs`, exported over OTLP when the standard `OTEL_*` variables ask for it), and the
//! metrics registry with `/metrics` and the HTTP middleware, which each role builds.

pub(crate) mod http;
mod log_format;
pub(crate) mod metrics;
mod refusals;
pub(crate) mod traces;

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogArgs, LogFormat};
use log_format::WithTraceIds;

/// What must be flushed when the process ends.
#[derive(Debug)]
pub(crate) struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued (bounded: a collector that is gone costs a few
    /// seconds at most).
    /// Flushes the traces for at most 5 s, and never past the process's exit deadline (a
    /// drain bounds everything after SIGTERM).
    pub(crate) fn shutdown(self) {
        let limit = std::time::Duration::from_secs(5);
        let left = crate::server::exit_deadline().map_or(limit, |deadline| {
            deadline.saturating_duration_since(std::time::Instant::now())
        });
        let flush = limit.min(left).max(std::time::Duration::from_millis(100));
        if let Some(provider) = self.traces
            && let Err(error) = provider.shutdown_with_timeout(flush)
        {
            eprintln!("chat: traces not flushed: {error}");
        }
    }
}

/// Installs the logs and, when the environment asks for it, the trace exporter of `role`.
///
/// The chat's spans are at debug level: without traces, the log filter (`info` by default)
/// disables them at their call sites, so a send pays nothing for them (recording their
/// fields for the logs cost a send-heavy `chat dev` half its held rate). With traces, the
/// log filter applies to the logs only and the chat's own spans are always traced.
pub(crate) fn init(args: &LogArgs, role: &str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(&args.filter).unwrap_or_else(|error| {
        eprintln!("chat: ignoring log filter {:?}: {error}", args.filter);
        EnvFilter::new("info")
    });
    let traces = if traces::wanted() { Some(traces::provider(role)?) } else { None };
    let Some(provider) = &traces else {
        let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        match args.format {
            LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
            // One object per line, the event's fields flattened into it.
            LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).try_init(),
        }
        .map_err(|error| anyhow::anyhow!("installing the logs: {error}"))?;
        return Ok(Telemetry { traces });
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = match args.format {
        LogFormat::Text => logs
            .with_ansi(false)
            .event_format(WithTraceIds(tracing_subscriber::fmt::format().with_ansi(false)))
            .boxed(),
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false);
            logs.fmt_fields(JsonFields::new()).event_format(WithTraceIds(json)).boxed()
        }
    };
    let traced = Targets::new().with_targets(
        ["chat", "auth", "eventlog", "viewstore", "ingest", "projector", "fanout"]
            .map(|target| (target, LevelFilter::DEBUG)),
    );
    let otel = tracing_opentelemetry::layer()
        .with_tracer(traces::tracer(provider))
        // Source locations, threads and busy/idle times would double each span's size.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(traced);
    tracing_subscriber::registry().with(logs.with_filter(filter)).with(otel).try_init()?;
    Ok(Telemetry { traces })
}
