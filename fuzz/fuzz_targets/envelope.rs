//! Records on the log, as analytics consumers and every reader decode them: the
//! CloudEvents envelope and its event, of known and unknown types and versions. Decoding
//! never panics, and a decoded event re-encoded decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok((envelope, event)) = Envelope::decode(data) else { return };
    let (again, same) =
        Envelope::decode(&envelope.to_bytes()).expect("a decoded envelope re-encodes");
    assert_eq!(same, event);
    assert_eq!(again.event_type, envelope.event_type);
    if let Some(event) = event {
        let wrapped = Envelope::wrap(&event, "fuzz");
        let (_, rewrapped) =
            Envelope::decode(&wrapped.to_bytes()).expect("a wrapped event decodes");
        assert_eq!(rewrapped, Some(event));
    }
});
