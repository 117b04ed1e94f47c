//! Parsers of the chat's configuration values: what a flag or a `CHAT_*` variable may say,
//! refused with a message that names the mistake before any port is bound.
//!
//! Pure functions of text, apart from the binary, so the fuzz targets and property tests
//! reach them: a value a role cannot run with (a zero ping interval, which would panic the
//! timer of every connection; a send rate of `NaN`, which would switch the limit off; an
//! allowed origin with a path, which no browser ever sends) is a refusal here, not a
//! surprise in production.

use std::time::Duration;

mod push_endpoints;
mod secret;

pub use push_endpoints::{AllowedEndpoints, EndpointRefused, PUBLIC_PUSH_SERVICES};
pub use secret::{Secret, readable};

/// Parses `500ms`, `20s`, `5m`, `1h`; more than zero (a zero timer or interval would
/// fire without pause or panic).
pub fn duration(text: &str) -> Result<Duration, String> {
    match duration_or_zero(text)? {
        Duration::ZERO => Err(format!("{:?} must be more than zero", text.trim())),
        positive => Ok(positive),
    }
}

/// Like [`duration`], and zero allowed (for a wait that may be skipped).
pub fn duration_or_zero(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 20s"))?;
    let seconds = |per_unit: u64| {
        value
            .checked_mul(per_unit)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => Err(format!("{text:?} needs a unit: ms, s, m or h")),
    }
}

/// The slowest and fastest rate (events per second) a limit may be set to; 0 turns it off.
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 1_000_000.0;

/// Parses a rate per second: `0` (no limit) or a number from [`MIN_RATE`] to [`MAX_RATE`].
/// `NaN`, infinities and negative numbers are refused rather than read as "no limit".
pub fn rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if value == 0.0 || (MIN_RATE..=MAX_RATE).contains(&value) {
        Ok(value.abs())
    } else {
        Err(format!("{text:?} must be 0 (no limit) or from {MIN_RATE} to {MAX_RATE} a second"))
    }
}

/// Parses one allowed origin (`https://chat.example.com`, `http://localhost:5173`) into
/// the form browsers send in their `Origin` header: scheme and host in lower case, no
/// trailing slash. Refused: paths, queries, credentials, wildcards and `null` (the origin of
/// sandboxed frames and files, which anyone can produce). Empty text is no origin (an
/// empty list in a deployment template), returned as an empty string to be skipped.
pub fn origin(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let refuse = |why: &str| Err(format!("{trimmed:?} is not an origin: {why}"));
    let lower = trimmed.to_ascii_lowercase();
    if lower == "*" || lower == "null" {
        return refuse("list each origin as scheme://host[:port]");
    }
    let Some((scheme, rest)) = lower.split_once("://") else {
        return refuse("it needs a scheme, like https://chat.example.com");
    };
    if scheme != "https" && scheme != "http" {
        return refuse("the scheme must be https or http");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = split_port(authority);
    if host.is_empty() {
        return refuse("the host is missing");
    }
    if !valid_host(host) {
        return refuse("only a host and a port may follow the scheme (no path, query or user)");
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(1..))
    {
        return refuse("the port must be a number from 1 to 65535");
    }
    Ok(format!("{scheme}://{authority}"))
}

/// Parses one origin push subscriptions may point at: an [`origin`], whose host may start
/// with `*.` to allow its subdomains (`https://*.push.services.mozilla.com`).
pub fn push_origin(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return origin(trimmed);
    };
    match rest.strip_prefix("*.") {
        Some(host) => {
            let parsed = origin(&format!("{scheme}://{host}"))?;
            Ok(parsed.replacen("://", "://*.", 1))
        }
        None => origin(trimmed),
    }
}

/// Parses where attachments are kept: `file:///absolute/directory` or
/// `s3://bucket[/prefix]` (a bucket name as S3 allows: 3 to 63 lowercase letters, digits,
/// dots and hyphens).
pub fn object_store(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Some(directory) = text.strip_prefix("file://") {
        if !directory.starts_with('/') {
            return Err(format!("{text:?}: a file:// location needs an absolute directory"));
        }
        return Ok(text.to_owned());
    }
    let Some(rest) = text.strip_prefix("s3://") else {
        return Err(format!("{text:?}: expected file:///directory or s3://bucket[/prefix]"));
    };
    let bucket = rest.split('/').next().unwrap_or_default();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(format!("{text:?}: {bucket:?} is not an S3 bucket name"));
    }
    Ok(text.to_owned())
}

/// `host:port` into its host and port; a bracketed IPv6 host keeps its colons.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |end| end + 1)
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    (host, rest.strip_prefix(':').or(if rest.is_empty() { None } else { Some(rest) }))
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.strip_suffix(']').is_some_and(|ip| {
            !ip.is_empty() && ip.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
        });
    }
    host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !host.starts_with('.')
        && !host.ends_with('.')
}

/// Parses one client library property, `name=value` (`socket.keepalive.enable=true`):
/// a lowercase dotted name and a value, which may itself hold `=`.
pub fn property(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("{text:?} is not name=value"));
    };
    let name = name.trim();
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
    if !plain {
        return Err(format!("{name:?} is not a property name (lowercase, dotted)"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn durations_parse_and_zero_or_overflow_is_refused() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration(" 20s "), Ok(Duration::from_secs(20)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(duration("9999999999999999999h").is_err(), "would overflow");
        assert!(duration("20").is_err());
        assert!(duration("-1s").is_err());
        assert_eq!(duration("0s"), Err("\"0s\" must be more than zero".into()));
        assert_eq!(duration_or_zero("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rates_are_zero_or_within_bounds() {
        assert_eq!(rate("10"), Ok(10.0));
        assert_eq!(rate(" 0.5 "), Ok(0.5));
        assert_eq!(rate("0"), Ok(0.0));
        assert_eq!(rate("-0"), Ok(0.0));
        for refused in ["NaN", "inf", "-inf", "-5", "1e-300", "1e9", "ten", ""] {
            assert!(rate(refused).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn push_origins_may_allow_subdomains() {
        assert_eq!(
            push_origin("https://*.Push.Services.Mozilla.com"),
            Ok("https://*.push.services.mozilla.com".into())
        );
        assert_eq!(push_origin("http://127.0.0.1:9"), Ok("http://127.0.0.1:9".into()));
        for refused in ["https://*", "https://a.*.example.com", "https://*.x.com/path", "*.x.com"] {
            assert!(push_origin(refused).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn origins_take_the_form_browsers_send() {
        assert_eq!(origin("https://Chat.Example.com/"), Ok("https://chat.example.com".into()));
        assert_eq!(origin(" http://localhost:5173"), Ok("http://localhost:5173".into()));
        assert_eq!(origin("http://[::1]:8080"), Ok("http://[::1]:8080".into()));
        assert_eq!(origin("  "), Ok(String::new()), "nothing, skipped");
        for refused in [
            "*",
            "null",
            "chat.example.com",
            "ftp://chat.example.com",
            "https://chat.example.com/app",
            "https://chat.example.com?x=1",
            "https://user@chat.example.com",
            "https://chat.example.com:0",
            "https://chat.example.com:99999",
            "https://chat.example.com:",
            "https://",
            "https://chat example.com",
            "https://[::1",
        ] {
            assert!(origin(refused).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn object_stores_are_local_directories_or_s3_buckets() {
        assert!(object_store("file:///var/lib/chat/objects").is_ok());
        assert!(object_store("s3://chat-attachments").is_ok());
        assert!(object_store("s3://chat-attachments/prod/eu").is_ok());
        for refused in ["file://relative/dir", "s3://", "s3://Upper", "s3://ab", "gs://bucket", ""]
        {
            assert!(object_store(refused).is_err(), "{refused} was accepted");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_a_value_or_a_refusal(text in any::<String>()) {
            let _ = duration(&text);
            let _ = rate(&text);
            let _ = object_store(&text);
            if let Ok(parsed) = origin(&text)
                && !parsed.is_empty()
            {
                prop_assert_eq!(origin(&parsed), Ok(parsed.clone()), "an origin is its own form");
                prop_assert!(!parsed.ends_with('/'));
            }
        }

        #[test]
        fn a_rendered_duration_parses_back(value in any::<u64>(), unit in 0_usize..4) {
            let (suffix, per_unit) = [("ms", 0), ("s", 1), ("m", 60), ("h", 3600)][unit];
            let parsed = duration_or_zero(&format!("{value}{suffix}"));
            let expected = if per_unit == 0 {
                Some(Duration::from_millis(value))
            } else {
                value.checked_mul(per_unit).map(Duration::from_secs)
            };
            prop_assert_eq!(parsed.ok(), expected);
        }

        #[test]
        fn a_rendered_rate_parses_back(value in MIN_RATE..=MAX_RATE) {
            prop_assert_eq!(rate(&value.to_string()), Ok(value));
        }

        #[test]
        fn an_origin_of_host_and_port_is_accepted(
            host in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z]{2,8}){0,3}",
            port in proptest::option::of(1_u16..),
            https in any::<bool>(),
        ) {
            let scheme = if https { "https" } else { "http" };
            let text = match port {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            };
            prop_assert_eq!(origin(&text.to_uppercase()), Ok(text));
        }
    }
}
