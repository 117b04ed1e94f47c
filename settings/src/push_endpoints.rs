//! Which push endpoints the server may call: a subscription is a URL the server will POST
//! to, so only origins on a list are accepted (checked when registered and before each push).

use std::net::IpAddr;

use url::{Host, Url};

/// The public browser push services (Chrome and Edge through FCM, Firefox, Windows, Safari):
/// the default of `CHAT_PUSH_ALLOWED_ENDPOINTS`.
pub const PUBLIC_PUSH_SERVICES: [&str; 4] = [
    "https://fcm.googleapis.com",
    "https://*.push.services.mozilla.com",
    "https://*.notify.windows.com",
    "https://*.push.apple.com",
];

/// Longest endpoint accepted (the public services' are a few hundred bytes).
const MAX_ENDPOINT: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    scheme: String,
    host: String,
    /// True for `*.host`: any subdomain of `host` (not `host` itself).
    subdomains: bool,
    port: u16,
}

/// The origins subscriptions may point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedEndpoints {
    allowed: Vec<Allowed>,
}

/// Why an endpoint is not one the server will call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("push endpoint refused: {0}")]
pub struct EndpointRefused(pub String);

impl AllowedEndpoints {
    /// The public browser push services.
    pub fn public_push_services() -> Self {
        Self::parse(&PUBLIC_PUSH_SERVICES.join(",")).unwrap_or(Self { allowed: Vec::new() })
    }

    /// A comma-separated list of `scheme://host[:port]`, a host may start with `*.`.
    /// `http` only for loopback hosts (tests and local push services).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for item in list.split(',') {
            let origin = crate::push_origin(item)?;
            if origin.is_empty() {
                continue;
            }
            allowed.push(parse_allowed(&origin)?);
        }
        if allowed.is_empty() {
            return Err("no push endpoint origin listed".into());
        }
        Ok(Self { allowed })
    }

    /// The endpoint as the server will call it, if its origin is allowed: `https` (or `http`
    /// to an allowed loopback host), no user or password, a host and port on the list.
    pub fn check(&self, endpoint: &str) -> Result<Url, EndpointRefused> {
        let refuse = |why: &str| Err(EndpointRefused(why.to_owned()));
        if endpoint.len() > MAX_ENDPOINT {
            return refuse("longer than 2048 bytes");
        }
        let Ok(url) = Url::parse(endpoint) else {
            return refuse("not a URL");
        };
        if url.scheme() != "https" && url.scheme() != "http" {
            return refuse("not https");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return refuse("it carries a user or password");
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return refuse("it names no host");
        };
        if url.scheme() == "http" && !is_loopback(url.host().as_ref()) {
            return refuse("not https");
        }
        let listed = self.allowed.iter().any(|allowed| {
            allowed.scheme == url.scheme()
                && allowed.port == port
                && if allowed.subdomains {
                    host.strip_suffix(allowed.host.as_str())
                        .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
                } else {
                    host == allowed.host
                }
        });
        if !listed {
            return refuse("its origin is not on the allowed list (CHAT_PUSH_ALLOWED_ENDPOINTS)");
        }
        Ok(url)
    }
}

fn parse_allowed(origin: &str) -> Result<Allowed, String> {
    let (text, subdomains) = match origin.split_once("://*.") {
        Some((scheme, rest)) => (format!("{scheme}://{rest}"), true),
        None => (origin.to_owned(), false),
    };
    let url = Url::parse(&text).map_err(|error| format!("{origin:?}: {error}"))?;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(format!("{origin:?} names no host"));
    };
    if url.scheme() == "http" && (subdomains || !is_loopback(url.host().as_ref())) {
        return Err(format!("{origin:?}: http is allowed only for a loopback host"));
    }
    Ok(Allowed { scheme: url.scheme().to_owned(), host: host.to_owned(), subdomains, port })
}

fn is_loopback(host: Option<&Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => IpAddr::V4(*ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(*ip).is_loopback(),
        Some(Host::Domain(name)) => *name == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_services_are_allowed_by_default_and_nothing_else() {
        let allowed = AllowedEndpoints::public_push_services();
        for endpoint in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
            "https://wns2-by3p.notify.windows.com/w/?token=x",
            "https://web.push.apple.com/QGu",
        ] {
            assert!(allowed.check(endpoint).is_ok(), "{endpoint} refused");
        }
        for endpoint in [
            "http://fcm.googleapis.com/fcm/send/abc",
            "https://fcm.googleapis.com:8443/fcm/send/abc",
            "https://user:pw@fcm.googleapis.com/fcm/send/abc",
            "https://fcm.googleapis.com.evil.example/x",
            "https://evilfcm.googleapis.com/x",
            "https://push.services.mozilla.com/x",
            "https://xpush.services.mozilla.com/x",
            "https://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:8080/",
            "ftp://fcm.googleapis.com/x",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(allowed.check(endpoint).is_err(), "{endpoint} accepted");
        }
    }

    #[test]
    fn a_loopback_push_service_is_allowed_over_http_only_when_named() {
        let allowed = AllowedEndpoints::parse("http://127.0.0.1:4567").unwrap();
        assert!(allowed.check("http://127.0.0.1:4567/push/1").is_ok());
        assert!(allowed.check("http://127.0.0.1:4568/push/1").is_err());
        assert!(allowed.check("https://127.0.0.1:4567/push/1").is_err());
        assert!(allowed.check("http://localhost:4567/push/1").is_err());
        assert!(AllowedEndpoints::parse("http://push.example.com").is_err());
        assert!(AllowedEndpoints::parse("http://*.localhost").is_err());
        assert!(AllowedEndpoints::parse(" , ").is_err());
    }
}
