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

use crate::{Destination, Record};

pub use schemas::traceparent::TraceParent;

/// The trace context of `span`, when it has an OpenTelemetry one.
pub fn of_span(span: &tracing::Span) -> Option<TraceParent> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if !span_context.is_valid() {
        return None;
    }
    TraceParent::parse(&format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    ))
}

/// The OpenTelemetry form of the remote span `parent` names.
fn remote_context(parent: &TraceParent) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(parent.trace_id()).ok()?;
    let span_id = SpanId::from_hex(parent.span_id()).ok()?;
    let flags = TraceFlags::new(parent.flags());
    Some(SpanContext::new(trace_id, span_id, flags, true, TraceState::default()))
}

/// Makes `span` (not yet entered) a child of the remote span `parent` names.
pub fn set_remote_parent(span: &tracing::Span, parent: &TraceParent) {
    let Some(remote) = remote_context(parent) else {
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

/// A span under OpenTelemetry's messaging conventions: `operation` (`send` or `process`) on
/// `partition` of `destination`, named `{operation} {topic}`, with the caller's own fields.
macro_rules! messaging_span {
    ($operation:literal, $kind:literal, $destination:expr, $partition:expr, $($fields:tt)*) => {
        tracing::debug_span!(
            $operation,
            otel.name = format!("{} {}", $operation, $destination.name),
            otel.kind = $kind,
            messaging.system = $destination.system,
            messaging.destination.name = $destination.name,
            messaging.operation.type = $operation,
            messaging.destination.partition.id = $partition,
            $($fields)*
        )
    };
}

/// The producer span of appending an event of `event_type` keyed `key` to `partition` of
/// `destination`; the offset is recorded with [`record_offset`] once the append is
/// acknowledged.
pub fn producer_span(
    destination: Destination<'_>,
    partition: u32,
    key: u64,
    event_type: &str,
) -> tracing::Span {
    messaging_span!(
        "send",
        "producer",
        destination,
        partition,
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
    let span = messaging_span!(
        "process",
        "consumer",
        destination,
        record.position.partition,
        messaging.kafka.offset = record.position.offset,
        messaging.batch.message_count = tracing::field::Empty,
        chat.deliveries = tracing::field::Empty,
    );
    set_remote_parent(&span, parent);
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_opentelemetry_layer_spans_have_no_context() {
        let span = tracing::info_span!("no layer");
        assert_eq!(of_span(&span), None);
    }
}
