//! HTTP request bodies: a parse never panics, validation never panics, and what parses
//! renders back to JSON that parses to the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::http::{MarkReadRequest, OpenConversationRequest, SendMessageRequest};
use schemas::{limits, object};
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    text: &str,
) -> Option<T> {
    let parsed = object::from_str::<T>(text).ok()?;
    let rendered = serde_json::to_string(&parsed).expect("a parsed body renders");
    let again: T = object::from_str(&rendered).expect("a rendered body parses");
    assert_eq!(again, parsed);
    Some(parsed)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(send) = round_trip::<SendMessageRequest>(text) {
        let _ = limits::message(send.message_type, &send.text, send.attachment.as_ref());
        if let Some(key) = &send.idempotency_key {
            let _ = limits::idempotency_key(key);
        }
    }
    if let Some(open) = round_trip::<OpenConversationRequest>(text) {
        for name in [&open.client_name, &open.worker_name].into_iter().flatten() {
            let _ = limits::display_name("name", name);
        }
    }
    let _ = round_trip::<MarkReadRequest>(text);
});
