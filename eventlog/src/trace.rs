//! W3C trace context on records. Every appended record carries a `traceparent` (a header,
//! and in the event's envelope) naming the span that appended it; consumers make their
//! spans its children, so one message is one trace from the request through the log to the
//! projections and the sockets.
//!
//! The spans themselves are `tracing` spans; when the binary installs the OpenTelemetry
//! layer they carry OpenTelemetry contexts, which is what [`of_span`] reads and
//! [`set_remote_parent`] writes. Without that layer both do nothing and callers fall back
//! to ids of their own.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{Destination, Record};

/// A parsed `traceparent`: version 00, trace id, parent span id, flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    span_id: String,
    flags: String,
}

fn is_hex(text: &str, length: usize) -> bool {
    text.len() == length && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn new_span_id() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_owned()
}

impl TraceParent {
    /// Parses a `traceparent` header; `None` for anything malformed or all-zero.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = version == "00"
            && parts.next().is_none()
            && is_hex(trace_id, 32)
            && is_hex(span_id, 16)
            && is_hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && span_id.bytes().any(|b| b != b'0');
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
            flags: flags.to_owned(),
        })
    }

    /// A new trace (sampled).
    pub fn root() -> Self {
        Self {
            trace_id: Uuid::new_v4().simple().to_string(),
            span_id: new_span_id(),
            flags: "01".into(),
        }
    }

    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// Whether the trace is sampled (flag 01): only then do consumers record spans.
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.flags, 16).is_ok_and(|flags| flags & 1 == 1)
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }

    /// The header value for a new span of this trace.
    pub fn child_header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, new_span_id(), self.flags)
    }

    fn span_context(&self) -> Option<SpanContext> {
        let trace_id = TraceId::from_hex(&self.trace_id).ok()?;
        let span_id = SpanId::from_hex(&self.span_id).ok()?;
        let flags = TraceFlags::new(u8::from_str_radix(&self.flags, 16).ok()?);
        Some(SpanContext::new(trace_id, span_id, flags, true, TraceState::default()))
    }
}

/// The trace context of `span`, when it has an OpenTelemetry one.
pub fn of_span(span: &tracing::Span) -> Option<TraceParent> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| TraceParent {
        trace_id: span_context.trace_id().to_string(),
        span_id: span_context.span_id().to_string(),
        flags: format!("{:02x}", span_context.trace_flags().to_u8()),
    })
}

/// Makes `span` (not yet entered) a child of the remote span `parent` names.
pub fn set_remote_parent(span: &tracing::Span, parent: &TraceParent) {
    let Some(remote) = parent.span_context() else {
        return;
    };
    let context = opentelemetry::Context::new().with_remote_span_context(remote);
    // Fails only without the OpenTelemetry layer (nothing to link) or once the span has
    // started (a caller's mistake the tests would show).
    let _ = span.set_parent(context);
}

/// Marks `span` failed (OpenTelemetry status ERROR) with `description`.
pub fn set_error(span: &tracing::Span, description: impl std::fmt::Display) {
    span.set_status(opentelemetry::trace::Status::error(description.to_string()));
}

/// The producer span of appending an event of `event_type` keyed `key` to `partition` of
/// `destination` (OpenTelemetry's messaging conventions); the offset is recorded with
/// [`record_offset`] once the append is acknowledged.
pub fn producer_span(
    destination: Destination<'_>,
    partition: u32,
    key: u64,
    event_type: &str,
) -> tracing::Span {
    tracing::debug_span!(
        "send",
        otel.name = format!("send {}", destination.name),
        otel.kind = "producer",
        messaging.system = destination.system,
        messaging.destination.name = destination.name,
        messaging.operation.type = "send",
        messaging.destination.partition.id = partition,
        messaging.kafka.message.key = key,
        messaging.kafka.offset = tracing::field::Empty,
        chat.event.type = event_type,
    )
}

/// Where an append landed, on its producer span.
pub fn record_offset(span: &tracing::Span, offset: u64) {
    span.record("messaging.kafka.offset", offset);
}

/// A consumer's span of processing `record`, a child of the span that appended it
/// (`parent`, from its `traceparent`). Consumers add what they did with it to the empty
/// fields: `messaging.batch.message_count` (the batch it came in) and `chat.deliveries`.
pub fn consumer_span(
    destination: Destination<'_>,
    record: &Record,
    parent: &TraceParent,
) -> tracing::Span {
    let span = tracing::debug_span!(
        "process",
        otel.name = format!("process {}", destination.name),
        otel.kind = "consumer",
        messaging.system = destination.system,
        messaging.destination.name = destination.name,
        messaging.operation.type = "process",
        messaging.destination.partition.id = record.position.partition,
        messaging.kafka.offset = record.position.offset,
        messaging.batch.message_count = tracing::field::Empty,
        chat.deliveries = tracing::field::Empty,
    );
    set_remote_parent(&span, parent);
    span
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_parsed_header_renders_to_itself(
            trace_id in "[0-9a-f]{32}",
            span_id in "[0-9a-f]{16}",
            flags in "[0-9a-f]{2}",
        ) {
            let header = format!("00-{trace_id}-{span_id}-{flags}");
            let zero = trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0');
            let parsed = TraceParent::parse(&header);
            prop_assert_eq!(parsed.is_none(), zero);
            if let Some(parent) = parsed {
                prop_assert_eq!(parent.header(), header);
                let child = TraceParent::parse(&parent.child_header()).unwrap();
                prop_assert_eq!(child.trace_id(), parent.trace_id());
            }
        }

        #[test]
        fn anything_else_is_refused_without_panic(text in any::<String>()) {
            if let Some(parent) = TraceParent::parse(&text) {
                prop_assert_eq!(TraceParent::parse(&parent.header()), Some(parent));
            }
        }
    }

    #[test]
    fn parses_valid_headers_and_refuses_the_rest() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(valid).unwrap();
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.header(), valid);
        assert!(parsed.sampled());
        let child = parsed.child_header();
        assert!(
            child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && child.ends_with("-01")
        );
        assert_ne!(child, valid, "a child has a span id of its own");
        assert!(TraceParent::parse(&child).is_some());
        let unsampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(!unsampled.unwrap().sampled());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
        assert!(TraceParent::parse(&TraceParent::root().child_header()).is_some());
    }

    #[test]
    fn without_the_opentelemetry_layer_spans_have_no_context() {
        let span = tracing::info_span!("no layer");
        assert_eq!(of_span(&span), None);
    }
}
