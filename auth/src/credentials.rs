//! Where a request carries its token.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, ORIGIN};

use crate::token::AuthError;

/// The cookie a browser front end may carry its token in.
pub const COOKIE_NAME: &str = "chat_token";

/// Origins whose pages may open cookie-authenticated WebSockets. Browsers attach cookies to
/// cross-site WebSocket handshakes, so without this check any page could act as the user.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// `allowed` as the command line's parser leaves them (`settings::origin`); empty
    /// entries are skipped, so an empty `Origin` header never matches.
    pub fn new(allowed: impl IntoIterator<Item = String>) -> Self {
        let allowed = allowed.into_iter().map(|origin| origin.trim_end_matches('/').to_owned());
        Self { allowed: allowed.filter(|origin| !origin.is_empty()).collect() }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.allowed.iter().any(|allowed| allowed == origin)
    }
}

/// A token and how it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Header(String),
    Query(String),
    Cookie(String),
}

impl Credentials {
    pub fn token(&self) -> &str {
        match self {
            Self::Header(token) | Self::Query(token) | Self::Cookie(token) => token,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, token)| token.to_owned())
}

/// HTTP API requests: `Authorization: Bearer <jwt>` only (cookies would make every
/// endpoint a cross-site request forgery target).
pub fn find_http_token(headers: &HeaderMap) -> Result<Credentials, AuthError> {
    bearer(headers).map(Credentials::Header).ok_or(AuthError::Missing)
}

/// WebSocket handshakes: the header, then `?token=`, then the cookie. A cookie counts only
/// when the handshake's `Origin` is allow-listed.
pub fn find_ws_token(
    headers: &HeaderMap,
    query_token: Option<&str>,
    origins: &OriginPolicy,
) -> Result<Credentials, AuthError> {
    if let Some(token) = bearer(headers) {
        return Ok(Credentials::Header(token));
    }
    if let Some(token) = query_token.filter(|token| !token.is_empty()) {
        return Ok(Credentials::Query(token.to_owned()));
    }
    let Some(token) = cookie(headers) else {
        return Err(AuthError::Missing);
    };
    let origin = headers.get(ORIGIN).and_then(|value| value.to_str().ok());
    match origin {
        Some(origin) if origins.allows(origin) => Ok(Credentials::Cookie(token)),
        other => Err(AuthError::ForeignOrigin(other.map(str::to_owned))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cookie_needs_an_allowed_origin() {
        let policy = OriginPolicy::new(["http://127.0.0.1:8080".to_owned()]);
        let good =
            headers(&[("cookie", "a=b; chat_token=t1"), ("origin", "http://127.0.0.1:8080")]);
        assert_eq!(find_ws_token(&good, None, &policy), Ok(Credentials::Cookie("t1".into())));
        let evil = headers(&[("cookie", "chat_token=t1"), ("origin", "https://evil.example")]);
        assert!(matches!(find_ws_token(&evil, None, &policy), Err(AuthError::ForeignOrigin(_))));
        let no_origin = headers(&[("cookie", "chat_token=t1")]);
        assert!(matches!(
            find_ws_token(&no_origin, None, &policy),
            Err(AuthError::ForeignOrigin(None))
        ));
    }

    #[test]
    fn explicit_tokens_win_over_cookies() {
        let policy = OriginPolicy::default();
        let both = headers(&[("cookie", "chat_token=c"), ("origin", "https://evil.example")]);
        assert_eq!(find_ws_token(&both, Some("q"), &policy), Ok(Credentials::Query("q".into())));
        let bearer = headers(&[("authorization", "Bearer h")]);
        assert_eq!(find_ws_token(&bearer, Some("q"), &policy), Ok(Credentials::Header("h".into())));
        assert_eq!(find_http_token(&bearer), Ok(Credentials::Header("h".into())));
        assert_eq!(
            find_http_token(&headers(&[("cookie", "chat_token=c")])),
            Err(AuthError::Missing)
        );
    }
}
