//! The server's VAPID key (RFC 8292): push services know the sender by it, and a browser
//! subscribed with its public half accepts pushes signed with it only.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;

/// Longest a VAPID token may be valid (RFC 8292 section 2: at most 24 hours).
pub(crate) const MAX_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

pub struct VapidKey {
    pair: ES256KeyPair,
    /// Base64url of the uncompressed public point, as browsers take it.
    public: String,
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new key, for a development data directory.
    pub fn generate() -> Self {
        Self::from_pair(ES256KeyPair::generate())
    }

    /// Reads a key file: a PKCS#8 PEM private key (`openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`), or the base64url private scalar that web-push tools print.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("-----BEGIN EC PRIVATE KEY") {
            return Err("a SEC1 key (BEGIN EC PRIVATE KEY): convert it to PKCS#8 with \
                        `openssl pkcs8 -topk8 -nocrypt -in key.pem`"
                .into());
        }
        let pair = if text.starts_with("-----BEGIN") {
            ES256KeyPair::from_pem(text)
                .map_err(|error| format!("not a P-256 private key in PEM: {error}"))?
        } else {
            let raw = URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| "neither PEM nor base64url".to_owned())?;
            // `from_bytes` takes exactly a 32-byte scalar.
            if raw.len() != 32 {
                return Err(format!("a base64url key is 32 bytes, this one is {}", raw.len()));
            }
            ES256KeyPair::from_bytes(&raw)
                .map_err(|error| format!("not a P-256 private key: {error}"))?
        };
        Ok(Self::from_pair(pair))
    }

    fn from_pair(pair: ES256KeyPair) -> Self {
        let point = pair.public_key().public_key().to_bytes_uncompressed();
        Self { public: URL_SAFE_NO_PAD.encode(point), pair }
    }

    /// The key in PEM, to keep in a file.
    pub fn to_pem(&self) -> Result<String, String> {
        self.pair.to_pem().map_err(|error| error.to_string())
    }

    /// Base64url of the uncompressed public point (`applicationServerKey`).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `endpoint`: a JWT for the endpoint's origin
    /// (with its port, unlike some libraries), from `subject`, valid for `valid` (at most
    /// 24 hours).
    pub fn authorization(
        &self,
        endpoint: &Url,
        subject: &str,
        valid: Duration,
    ) -> Result<String, String> {
        let origin = endpoint.origin().ascii_serialization();
        let valid = valid.min(MAX_VALIDITY);
        let claims = Claims::create(valid.into()).with_audience(origin).with_subject(subject);
        let token = self.pair.sign(claims).map_err(|error| error.to_string())?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

#[cfg(test)]
mod tests {
    use web_push_native::jwt_simple::algorithms::ES256PublicKey;
    use web_push_native::jwt_simple::claims::NoCustomClaims;

    use super::*;

    #[test]
    fn a_key_survives_its_file_and_signs_for_the_endpoints_origin() {
        let key = VapidKey::generate();
        let again = VapidKey::parse(&key.to_pem().unwrap()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let point = URL_SAFE_NO_PAD.decode(key.public_key()).unwrap();
        assert_eq!((point.len(), point[0]), (65, 4));

        let endpoint = Url::parse("http://127.0.0.1:4567/push/abc").unwrap();
        let header = key.authorization(&endpoint, "mailto:ops@example.com", MAX_VALIDITY * 2);
        let header = header.unwrap();
        let (token, public) =
            header.strip_prefix("vapid t=").and_then(|rest| rest.split_once(", k=")).unwrap();
        assert_eq!(public, key.public_key());
        let verifier = ES256PublicKey::from_bytes(&point).unwrap();
        let claims = verifier.verify_token::<NoCustomClaims>(token, None).unwrap();
        let audiences = claims.audiences.unwrap().into_set();
        assert!(audiences.contains("http://127.0.0.1:4567"), "{audiences:?}");
        assert_eq!(claims.subject.as_deref(), Some("mailto:ops@example.com"));
        let lifetime = claims.expires_at.unwrap() - claims.issued_at.unwrap();
        assert!(lifetime.as_secs() <= 24 * 60 * 60, "exp at most 24 h ahead");
    }

    #[test]
    fn a_key_made_by_openssl_genpkey_is_read() {
        // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, a test key.
        let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgX2M10eonQDwNjaur\nibxu/ZO973GBbou4CjFLOfGBkZChRANCAAQ+7R9CF0Th8QJev4mdKSx1vJB3Dv+D\nOS3jfgSdwmFq989E/noSzGi+FYLfhHqSDqc0sY3nRBOHwA43AN2aY2dK\n-----END PRIVATE KEY-----";
        let key = VapidKey::parse(pem).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(key.public_key()).unwrap().len(), 65);
    }

    #[test]
    fn a_sec1_key_is_refused_with_the_command_that_converts_it() {
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----";
        assert!(VapidKey::parse(sec1).unwrap_err().contains("openssl pkcs8 -topk8"));
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_refused() {
        for text in
            ["", "hello", "AAAA", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"]
        {
            assert!(VapidKey::parse(text).is_err(), "{text:?} accepted");
        }
    }
}
