//! WebSocket text frames from clients, both protocols: a parse never panics, and what
//! parses renders back to JSON that parses to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::native::ClientFrame;
use schemas::object;
use schemas::seed::SeedInbound;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = object::from_str::<ClientFrame>(text) {
        let rendered = serde_json::to_string(&frame).expect("a parsed frame renders");
        let again: ClientFrame = object::from_str(&rendered).expect("a rendered frame parses");
        assert_eq!(again, frame);
        if let ClientFrame::Send { message_type, text, attachment, .. } = &frame {
            let _ = schemas::limits::message(*message_type, text, attachment.as_ref());
        }
    }
    if let Ok(inbound) = object::from_str::<SeedInbound>(text) {
        let rendered = serde_json::to_string(&inbound).expect("a parsed frame renders");
        let again: SeedInbound = object::from_str(&rendered).expect("a rendered frame parses");
        assert_eq!(again, inbound);
    }
});
