//! Standard Webhooks signatures: `v1,` and the base64 HMAC-SHA256, keyed with the secret's
//! bytes, of `{id}.{timestamp}.{body}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A webhook signing secret: `whsec_` and base64 of at least 24 bytes (the specification's
/// range is 24 to 64).
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("a webhook secret starts with whsec_ (then base64)")?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| "the part after whsec_ is not base64".to_owned())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!("a webhook secret is 24 to 64 bytes, this one is {}", bytes.len()));
        }
        Ok(Self(bytes))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes()))
    }

    /// Whether any `v1` signature of the space-separated `header` is this secret's, in
    /// constant time (what a receiver does).
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').filter_map(|part| part.strip_prefix("v1,")).any(|signature| {
            STANDARD
                .decode(signature)
                .is_ok_and(|bytes| self.mac(id, timestamp, body).verify_slice(&bytes).is_ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_is_reproduced() {
        // From the Standard Webhooks specification's reference tests.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &signature));
        assert!(!secret.verify("msg_other", 1614265330, body, &signature));
        assert!(
            secret.verify(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                body,
                &format!("v1,bm9wZQ== {signature}")
            ),
            "any of several signatures"
        );
    }

    #[test]
    fn a_secret_must_look_like_one() {
        for text in ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_AAAA"] {
            assert!(WebhookSecret::parse(text).is_err(), "{text:?} accepted");
        }
    }
}
