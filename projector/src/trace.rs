//! The projector's spans: one per traced record taking it into the projections, a child of
//! the span that appended it, and under each the store write its batch made. Records whose
//! trace is not sampled get none, and a batch traces at most [`TRACED_PER_BATCH`] records:
//! under a backlog of thousands a batch would otherwise hold thousands of open spans.

use eventlog::trace::{self, TraceParent};
use eventlog::{Destination, Record};

/// Traced records per batch at most.
pub(crate) const TRACED_PER_BATCH: usize = 64;

/// The open spans of one batch's traced records.
#[derive(Debug, Default)]
pub(crate) struct BatchSpans {
    records: Vec<tracing::Span>,
}

impl BatchSpans {
    pub(crate) fn start(records: &[Record], destination: Destination<'_>) -> Self {
        let traced = records
            .iter()
            .filter_map(|record| {
                let parent = TraceParent::parse(record.header("traceparent")?)?;
                parent.sampled().then_some((record, parent))
            })
            .take(TRACED_PER_BATCH)
            .map(|(record, parent)| {
                let span = trace::consumer_span(destination, record, &parent);
                span.record("messaging.batch.message_count", records.len());
                span
            })
            .collect();
        Self { records: traced }
    }

    /// One span per traced record for the batch's write to the store; they end when the
    /// returned spans are dropped.
    pub(crate) fn writing(&self, records: usize) -> Vec<tracing::Span> {
        self.records
            .iter()
            .map(|parent| {
                tracing::debug_span!(
                    parent: parent,
                    "write projections",
                    otel.kind = "client",
                    db.operation.name = "apply projection batch",
                    db.operation.batch.size = records,
                )
            })
            .collect()
    }

    pub(crate) fn failed(spans: &[tracing::Span], error: &dyn std::fmt::Display) {
        for span in spans {
            trace::set_error(span, error);
        }
    }
}
