//! Token verification and minting.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header,
};
use schemas::UserId;
use serde::{Deserialize, Serialize};

/// The `role` claim that marks the jobs system.
pub const SERVICE_ROLE: &str = "service";

/// How far the clocks of the token's issuer and of this node may disagree: `exp` is honoured
/// this long after it passed, `nbf` and `iat` this long before they arrive.
pub const CLOCK_LEEWAY_SECONDS: u64 = 30;

/// HS256 secrets shorter than this are refused: they can be brute-forced offline.
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    /// Display name from the `name` claim, or the user id.
    pub name: String,
    /// The jobs system (`role: "service"`): may open conversations and post SYSTEM messages.
    pub service: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send `Authorization: Bearer <jwt>`, `?token=<jwt>` or a chat_token cookie")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("token is not signed with {expected}")]
    WrongAlgorithm { expected: &'static str },
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("cookie authentication from origin {0:?} is not allowed")]
    ForeignOrigin(Option<String>),
    #[error("key configuration: {0}")]
    Config(String),
}

impl AuthError {
    /// A short, bounded name for the kind of refusal (a metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAlgorithm { .. } => "wrong_algorithm",
            Self::Invalid(_) => "invalid",
            Self::ForeignOrigin(_) => "foreign_origin",
            Self::Config(_) => "config",
        }
    }
}

enum Keys {
    Single(DecodingKey),
    /// RS256 keys by `kid`; a token without `kid` is accepted only when there is one key.
    Set(Vec<(Option<String>, DecodingKey)>),
}

/// Verifies tokens with one algorithm, fixed at construction: a token whose header names
/// another algorithm (including `none`) is refused before any signature check.
pub struct Verifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn hs256(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::Config(format!(
                "the HS256 secret must be at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| AuthError::Config(e.to_string()))?;
        Ok(Self::new(Algorithm::HS256, Keys::Single(key)))
    }

    pub fn rs256_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let key = DecodingKey::from_rsa_pem(pem)
            .map_err(|e| AuthError::Config(format!("not an RSA public key in PEM: {e}")))?;
        Ok(Self::new(Algorithm::RS256, Keys::Single(key)))
    }

    pub fn rs256_jwks(json: &[u8]) -> Result<Self, AuthError> {
        let set: JwkSet = serde_json::from_slice(json)
            .map_err(|e| AuthError::Config(format!("not a JWKS document: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| AuthError::Config(format!("unusable key in JWKS: {e}")))?;
            if key.family() == jsonwebtoken::AlgorithmFamily::Rsa {
                keys.push((jwk.common.key_id.clone(), key));
            }
        }
        if keys.is_empty() {
            return Err(AuthError::Config("the JWKS holds no RSA key".into()));
        }
        Ok(Self::new(Algorithm::RS256, Keys::Set(keys)))
    }

    fn new(algorithm: Algorithm, keys: Keys) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = CLOCK_LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { algorithm, keys, validation }
    }

    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            _ => "HS256",
        }
    }

    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != self.algorithm {
            return Err(AuthError::WrongAlgorithm { expected: self.algorithm_name() });
        }
        let key = self.key_for(header.kid.as_deref())?;
        let data =
            decode::<Claims>(token, key, &self.validation).map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Invalid(error.to_string()),
            })?;
        // A token issued in the future comes from a broken clock or a forger's; the library
        // checks `nbf` but not `iat`.
        if data.claims.iat.is_some_and(|iat| iat > now_seconds() + CLOCK_LEEWAY_SECONDS) {
            return Err(AuthError::NotYetValid);
        }
        caller_from(data.claims)
    }

    fn key_for(&self, kid: Option<&str>) -> Result<&DecodingKey, AuthError> {
        match &self.keys {
            Keys::Single(key) => Ok(key),
            Keys::Set(keys) => {
                let found = match kid {
                    Some(kid) => keys.iter().find(|(id, _)| id.as_deref() == Some(kid)),
                    None if keys.len() == 1 => keys.first(),
                    None => None,
                };
                found.map(|(_, key)| key).ok_or_else(|| {
                    AuthError::Invalid("no key in the JWKS matches the token's kid".into())
                })
            }
        }
    }
}

fn caller_from(claims: Claims) -> Result<Caller, AuthError> {
    let user_id = UserId::new(claims.sub).map_err(|e| AuthError::Invalid(format!("sub {e}")))?;
    let name = match claims.name {
        Some(name) if schemas::limits::display_name("name", &name).is_ok() => name,
        Some(_) => {
            return Err(AuthError::Invalid(
                "name claim is blank, too long or has control characters".into(),
            ));
        }
        None => user_id.to_string(),
    };
    let service = claims.role.as_deref() == Some(SERVICE_ROLE);
    Ok(Caller { user_id, name, service })
}

/// Mints an HS256 token valid for `ttl_seconds` (for `chat token` and tests).
pub fn mint_hs256(
    secret: &[u8],
    sub: &str,
    name: Option<&str>,
    service: bool,
    ttl_seconds: u64,
) -> Result<String, AuthError> {
    let now = now_seconds();
    let claims = Claims {
        sub: sub.to_owned(),
        name: name.map(str::to_owned),
        exp: now + ttl_seconds,
        iat: Some(now),
        role: service.then(|| SERVICE_ROLE.to_owned()),
    };
    let key = EncodingKey::from_secret(secret).map_err(|e| AuthError::Config(e.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| AuthError::Config(e.to_string()))
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
