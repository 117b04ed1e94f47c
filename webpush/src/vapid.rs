//! The server's VAPID key (RFC 8292): push services know the sender by it, and a browser
//! subscribed with its public half accepts pushes signed with it only.
//!
//! The token is a JWT signed ES256 (RFC 7518: ECDSA on P-256 with SHA-256, the signature
//! `r || s`) with the P-256 implementation web-push-native encrypts with, rather than a
//! general JWT library: one algorithm, three claims, and a dozen fewer crates to build.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;
use web_push_native::p256::ecdsa::signature::Signer;
use web_push_native::p256::ecdsa::{Signature, SigningKey};
use web_push_native::p256::elliptic_curve::rand_core::OsRng;
use web_push_native::p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use web_push_native::p256::{PublicKey, SecretKey};

/// Longest a VAPID token may be valid (RFC 8292 section 2: at most 24 hours).
pub(crate) const MAX_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

pub struct VapidKey {
    signing: SigningKey,
    secret: SecretKey,
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
        Self::from_secret(SecretKey::random(&mut OsRng))
    }

    /// Reads a key file: a PEM private key, PKCS#8 (`openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`) or SEC1 (`openssl ecparam -name prime256v1 -genkey`), or
    /// the base64url private scalar that web-push tools print.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let secret = if text.starts_with("-----BEGIN EC PRIVATE KEY") {
            SecretKey::from_sec1_pem(text)
                .map_err(|_| "not a P-256 private key in SEC1 PEM".to_owned())?
        } else if text.starts_with("-----BEGIN") {
            SecretKey::from_pkcs8_pem(text)
                .map_err(|_| "not a P-256 private key in PKCS#8 PEM".to_owned())?
        } else {
            let raw = URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| "neither PEM nor base64url".to_owned())?;
            if raw.len() != 32 {
                return Err(format!("a base64url key is 32 bytes, this one is {}", raw.len()));
            }
            SecretKey::from_slice(&raw).map_err(|_| "not a P-256 private key".to_owned())?
        };
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: SecretKey) -> Self {
        let point = secret.public_key().to_sec1_bytes();
        // `to_sec1_bytes` is compressed for some curves' defaults; browsers want 65 bytes.
        let uncompressed = uncompressed(&secret.public_key()).unwrap_or(point.to_vec());
        Self {
            signing: SigningKey::from(&secret),
            secret,
            public: URL_SAFE_NO_PAD.encode(uncompressed),
        }
    }

    /// The key in PKCS#8 PEM, to keep in a file.
    pub fn to_pem(&self) -> Result<String, String> {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|error| error.to_string())
    }

    /// Base64url of the uncompressed public point (`applicationServerKey`).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `endpoint`: a JWT for the endpoint's origin
    /// (with its port), from `subject`, valid for `valid` (at most 24 hours).
    pub fn authorization(
        &self,
        endpoint: &Url,
        subject: &str,
        valid: Duration,
    ) -> Result<String, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?;
        let expires = now.saturating_add(valid.min(MAX_VALIDITY)).as_secs();
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": expires,
            "sub": subject,
        });
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.signing.sign(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(signature.to_bytes());
        Ok(format!("vapid t={signing_input}.{signature}, k={}", self.public))
    }
}

fn uncompressed(public: &PublicKey) -> Option<Vec<u8>> {
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = public.to_encoded_point(false);
    (point.len() == 65).then(|| point.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use web_push_native::p256::ecdsa::VerifyingKey;
    use web_push_native::p256::ecdsa::signature::Verifier;

    use super::*;

    /// What a push service does with the header: the claims, if the signature holds.
    fn verified(header: &str, public: &str) -> serde_json::Value {
        let (token, key) =
            header.strip_prefix("vapid t=").and_then(|rest| rest.split_once(", k=")).unwrap();
        assert_eq!(key, public);
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let verifier =
            VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(key).unwrap()).unwrap();
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
        verifier.verify(signing_input.as_bytes(), &signature).unwrap();
        let (header, claims) = signing_input.split_once('.').unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
    }

    #[test]
    fn a_key_survives_its_file_and_signs_for_the_endpoints_origin() {
        let key = VapidKey::generate();
        let again = VapidKey::parse(&key.to_pem().unwrap()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let point = URL_SAFE_NO_PAD.decode(key.public_key()).unwrap();
        assert_eq!((point.len(), point[0]), (65, 4));

        let endpoint = Url::parse("http://127.0.0.1:4567/push/abc").unwrap();
        let header = key.authorization(&endpoint, "mailto:ops@example.com", MAX_VALIDITY * 2);
        let claims = verified(&header.unwrap(), key.public_key());
        assert_eq!(claims["aud"], "http://127.0.0.1:4567");
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 24 * 60 * 60, "exp at most 24 h ahead");

        // Another key's signature does not hold.
        let other = VapidKey::generate();
        let forged = other.authorization(&endpoint, "mailto:x@example.com", MAX_VALIDITY).unwrap();
        let forged = forged.replace(other.public_key(), key.public_key());
        let result = std::panic::catch_unwind(|| verified(&forged, key.public_key()));
        assert!(result.is_err(), "a forged token verified");
    }

    #[test]
    fn keys_made_by_openssl_are_read_in_both_pem_forms() {
        // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, a test key.
        let pkcs8 = PKCS8;
        let key = VapidKey::parse(pkcs8).unwrap();
        // The same key in SEC1 (`openssl ec -in key.pem`).
        assert_eq!(VapidKey::parse(SEC1).unwrap().public_key(), key.public_key());
    }

    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgX2M10eonQDwNjaur\nibxu/ZO973GBbou4CjFLOfGBkZChRANCAAQ+7R9CF0Th8QJev4mdKSx1vJB3Dv+D\nOS3jfgSdwmFq989E/noSzGi+FYLfhHqSDqc0sY3nRBOHwA43AN2aY2dK\n-----END PRIVATE KEY-----";
    const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIF9jNdHqJ0A8DY2rq4m8bv2Tve9xgW6LuAoxSznxgZGQoAoGCCqGSM49\nAwEHoUQDQgAEPu0fQhdE4fECXr+JnSksdbyQdw7/gzkt434EncJhavfPRP56Esxo\nvhWC34R6kg6nNLGN50QTh8AONwDdmmNnSg==\n-----END EC PRIVATE KEY-----";

    #[test]
    fn a_key_file_that_is_not_a_key_is_refused() {
        for text in
            ["", "hello", "AAAA", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"]
        {
            assert!(VapidKey::parse(text).is_err(), "{text:?} accepted");
        }
    }
}
