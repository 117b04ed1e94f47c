//! The W3C `traceparent` (Trace Context level 1) as records and HTTP requests carry it:
//! parsed strictly (version 00, lowercase hex, no all-zero ids), rendered back the same, and
//! children of a trace made with span ids of their own. `eventlog::trace` ties it to the
//! OpenTelemetry spans of a process.

use uuid::Uuid;

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
        self.flags() & 1 == 1
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }

    /// The header value for a new span of this trace.
    pub fn child_header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, new_span_id(), self.flags)
    }

    /// The parent span's id.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        u8::from_str_radix(&self.flags, 16).unwrap_or(0)
    }
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
}
