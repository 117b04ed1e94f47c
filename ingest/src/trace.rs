//! W3C trace context for the write path: every appended event carries a `traceparent` (in
//! the envelope and as a record header), a child of the HTTP request's `traceparent` when
//! it sent one, so one message can be followed from the request through the log to the
//! projections and the sockets.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// A `traceparent` value: version 00, trace id, parent (span) id, flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    flags: String,
}

tokio::task_local! {
    static REQUEST_TRACE: TraceParent;
}

fn is_hex(text: &str, length: usize) -> bool {
    text.len() == length && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
        valid.then(|| Self { trace_id: trace_id.to_owned(), flags: flags.to_owned() })
    }

    /// A new trace (sampled).
    pub fn root() -> Self {
        Self { trace_id: Uuid::new_v4().simple().to_string(), flags: "01".into() }
    }

    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The header value for a new span of this trace.
    pub fn child_header(&self) -> String {
        let span = Uuid::new_v4().simple().to_string();
        format!("00-{}-{}-{}", self.trace_id, &span[..16], self.flags)
    }

    /// The trace of the HTTP request being served, or a new one (WebSocket sends, jobs).
    pub(crate) fn current() -> Self {
        REQUEST_TRACE.try_with(Clone::clone).unwrap_or_else(|_| Self::root())
    }
}

/// Middleware: the request's `traceparent` (or a new trace) is the parent of every event
/// the request appends.
pub(crate) async fn propagate(request: Request, next: Next) -> Response {
    let trace = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse)
        .unwrap_or_else(TraceParent::root);
    REQUEST_TRACE.scope(trace, next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_headers_and_refuses_the_rest() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(valid).unwrap();
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = parsed.child_header();
        assert!(
            child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && child.ends_with("-01")
        );
        assert!(TraceParent::parse(&child).is_some());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
        assert!(TraceParent::parse(&TraceParent::root().child_header()).is_some());
    }
}
