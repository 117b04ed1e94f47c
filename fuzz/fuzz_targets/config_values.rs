//! Configuration values (flags and `CHAT_*` variables): durations, rates, allowed origins,
//! librdkafka properties and secret files' text. Nothing panics; what parses is in range,
//! renders back to the same value, and a secret never prints itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(duration) = settings::duration_or_zero(text) {
        // Whole seconds as seconds: hours of u64 seconds can exceed u64 milliseconds.
        let rendered = if duration.subsec_millis() == 0 {
            format!("{}s", duration.as_secs())
        } else {
            format!("{}ms", duration.as_millis())
        };
        assert_eq!(settings::duration_or_zero(&rendered), Ok(duration));
        assert_eq!(settings::duration(text).is_ok(), !duration.is_zero());
    }
    if let Ok(rate) = settings::rate(text) {
        assert!(rate == 0.0 || (settings::MIN_RATE..=settings::MAX_RATE).contains(&rate));
        assert_eq!(settings::rate(&rate.to_string()), Ok(rate));
    }
    if let Ok(origin) = settings::origin(text) {
        assert_eq!(settings::origin(&origin), Ok(origin.clone()), "an origin is its own form");
        assert!(!origin.contains(char::is_whitespace) && !origin.ends_with('/'));
    }
    if let Ok((name, value)) = settings::property(text) {
        assert!(!name.is_empty() && !name.contains('='), "a property name: {name:?}");
        let rendered = format!("{name}={value}");
        assert_eq!(settings::property(&rendered), Ok((name, value)), "a property is its own form");
    }
    if let Ok(secret) = settings::Secret::from_file_text(text) {
        assert!(!secret.expose().is_empty() && !secret.expose().contains('\n'));
        assert_eq!(format!("{secret:?}"), "<redacted>");
    }
});
