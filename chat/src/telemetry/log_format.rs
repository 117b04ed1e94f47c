//! Log lines that name their trace: when traces are exported, each line logged inside a
//! span carries that span's `trace_id` and `span_id` (JSON members, or `key=value` at the
//! end of a text line), so a log search and a trace view meet.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps an event format, adding the ids of the active OpenTelemetry span.
#[derive(Debug)]
pub(crate) struct WithTraceIds<F>(pub(crate) F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Entered spans are the active OpenTelemetry context (the layer attaches them).
        let context = opentelemetry::Context::current();
        let span = context.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let (trace_id, span_id) = (ids.trace_id(), ids.span_id());
        match line.strip_prefix('{') {
            Some(members) => {
                write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{members}")
            }
            None => {
                let text = line.trim_end_matches('\n');
                writeln!(writer, "{text} trace_id={trace_id} span_id={span_id}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool, work: impl FnOnce()) -> Vec<String> {
        let lines = Lines::default();
        let writer = lines.clone();
        let provider = SdkTracerProvider::builder().build();
        let logs = tracing_subscriber::fmt::layer().with_writer(move || writer.clone());
        let logs: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = if json {
            let format = tracing_subscriber::fmt::format().json().flatten_event(true);
            Box::new(logs.fmt_fields(JsonFields::new()).event_format(WithTraceIds(format)))
        } else {
            let format = tracing_subscriber::fmt::format().with_ansi(false);
            Box::new(logs.with_ansi(false).event_format(WithTraceIds(format)))
        };
        let subscriber = tracing_subscriber::registry()
            .with(logs)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, work);
        let bytes = lines.0.lock().map(|bytes| bytes.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
    }

    #[test]
    fn lines_logged_inside_a_traced_span_name_its_trace_and_span() {
        let lines = logged(true, || {
            tracing::info!("before");
            let span = tracing::info_span!("work");
            let _inside = span.enter();
            tracing::info!(answer = 42, "inside");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let before: serde_json::Value = serde_json::from_str(&lines[0]).unwrap_or_default();
        assert!(before.get("trace_id").is_none(), "{before}");
        let inside: serde_json::Value = serde_json::from_str(&lines[1]).unwrap_or_default();
        let trace_id = inside["trace_id"].as_str().unwrap_or_default();
        let span_id = inside["span_id"].as_str().unwrap_or_default();
        assert_eq!((trace_id.len(), span_id.len()), (32, 16), "{inside}");
        assert_eq!(inside["message"], "inside");
        assert_eq!(inside["answer"], 42);

        let text = logged(false, || {
            let span = tracing::info_span!("work");
            let _inside = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(text[0].contains("inside") && text[0].contains(" trace_id="), "{text:?}");
    }
}
