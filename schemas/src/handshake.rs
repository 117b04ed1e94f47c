//! The query string of a WebSocket handshake, on both protocols: `token` (for clients
//! that cannot set headers) and `since` (resume after this message id).
//!
//! Parsed by hand rather than by a deserializer, so that a bad value becomes a close
//! reason the browser can read instead of a plain-text 400 before the upgrade.

/// The parameters the server reads; every other parameter is ignored, and a later
/// occurrence of a name wins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HandshakeQuery {
    pub token: Option<String>,
    pub since: Option<String>,
}

impl HandshakeQuery {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut query = Self::default();
        for pair in raw.unwrap_or_default().split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "token" => query.token = Some(value.to_owned()),
                "since" => query.since = Some(value.to_owned()),
                _ => {}
            }
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_handshake_query_parses_without_panic(raw in any::<Option<String>>()) {
            let _ = HandshakeQuery::parse(raw.as_deref());
        }

        #[test]
        fn token_and_since_are_found_among_other_parameters(
            token in "[A-Za-z0-9._-]{1,64}",
            since in "[0-9]{1,16}",
            noise in proptest::collection::vec("x[a-z]{0,7}=[a-z0-9]{0,8}", 0..4),
        ) {
            let mut pairs = noise;
            pairs.insert(0, format!("token={token}"));
            pairs.push(format!("since={since}"));
            let query = HandshakeQuery::parse(Some(&pairs.join("&")));
            prop_assert_eq!(query.token, Some(token));
            prop_assert_eq!(query.since, Some(since));
        }
    }
}
