//! The W3C `traceparent` from HTTP headers and record headers: parsing never panics, what
//! parses renders to a header that parses to the same value, and a child keeps the trace.
#![no_main]

use schemas::traceparent::TraceParent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(parent) = TraceParent::parse(text) else { return };
    assert_eq!(TraceParent::parse(&parent.header()), Some(parent.clone()));
    let child = TraceParent::parse(&parent.child_header()).expect("a child header parses");
    assert_eq!(child.trace_id(), parent.trace_id());
});
