//! Push subscriptions' endpoints as browsers send them (`PUT /v1/push/subscriptions`) and
//! the allow-list they are checked against: nothing panics, and an endpoint accepted is one
//! the server may call (https or loopback http, no user or password, an allowed host and
//! port), whatever the URL parser makes of tricks (userinfo, encodings, backslashes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::notify::PushSubscription;
use settings::AllowedEndpoints;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = AllowedEndpoints::parse(text);
    if let Ok(origin) = settings::push_origin(text) {
        assert_eq!(settings::push_origin(&origin), Ok(origin.clone()), "its own form");
    }
    let endpoint = match serde_json::from_str::<PushSubscription>(text) {
        Ok(subscription) => subscription.endpoint,
        Err(_) => text.to_owned(),
    };
    let allowed = AllowedEndpoints::parse("https://*.push.example.com,http://127.0.0.1:4567")
        .expect("a valid list");
    let Ok(url) = allowed.check(&endpoint) else { return };
    assert!(url.username().is_empty() && url.password().is_none(), "{url}");
    match (url.scheme(), url.host_str(), url.port_or_known_default()) {
        ("https", Some(host), Some(443)) => assert!(host.ends_with(".push.example.com"), "{url}"),
        ("http", Some("127.0.0.1"), Some(4567)) => {}
        _ => panic!("{url} was accepted"),
    }
    // What is called is what was checked: the same URL, parsed again.
    assert_eq!(allowed.check(url.as_str()).as_ref(), Ok(&url));
});
