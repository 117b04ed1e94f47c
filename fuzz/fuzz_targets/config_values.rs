//! Configuration values (flags and `CHAT_*` variables): durations, rates and allowed
//! origins. Nothing panics; what parses is in range, and renders back to the same value.
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
});
