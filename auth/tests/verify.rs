//! Token verification: signature, expiry, pinned algorithm, claims.

#![allow(clippy::unwrap_used)]

use auth::{AuthError, Verifier, mint_hs256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &[u8] = b"test-secret-that-is-long-enough-for-hs256";
const PRIVATE_PEM: &[u8] = include_bytes!("keys/test-rsa-private.pem");
const PUBLIC_PEM: &[u8] = include_bytes!("keys/test-rsa-public.pem");

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign_rs256(claims: &serde_json::Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_rsa_pem(PRIVATE_PEM).unwrap()).unwrap()
}

#[test]
fn hs256_round_trip_carries_identity_and_role() {
    let verifier = Verifier::hs256(SECRET).unwrap();
    let token = mint_hs256(SECRET, "alice", Some("Alice"), false, 60).unwrap();
    let caller = verifier.verify(&token).unwrap();
    assert_eq!(caller.user_id.as_str(), "alice");
    assert_eq!(caller.name, "Alice");
    assert!(!caller.service);
    let service = mint_hs256(SECRET, "jobs", None, true, 60).unwrap();
    let caller = verifier.verify(&service).unwrap();
    assert!(caller.service);
    assert_eq!(caller.name, "jobs");
}

#[test]
fn forged_expired_and_garbage_tokens_are_refused() {
    let verifier = Verifier::hs256(SECRET).unwrap();
    let forged =
        mint_hs256(b"another-secret-that-is-long-enough-too!", "alice", None, false, 60).unwrap();
    assert!(matches!(verifier.verify(&forged), Err(AuthError::Invalid(_))));
    let claims = json!({"sub": "alice", "exp": now() - 3600});
    let expired =
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET).unwrap())
            .unwrap();
    assert_eq!(verifier.verify(&expired), Err(AuthError::Expired));
    assert!(matches!(verifier.verify("not.a.jwt"), Err(AuthError::Invalid(_))));
    assert!(matches!(verifier.verify(""), Err(AuthError::Invalid(_))));
}

#[test]
fn alg_none_is_refused() {
    let verifier = Verifier::hs256(SECRET).unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"alice","exp":{}}}"#, now() + 60));
    let token = format!("{header}.{claims}.");
    assert!(verifier.verify(&token).is_err());
}

#[test]
fn algorithm_is_pinned_both_ways() {
    let hs = Verifier::hs256(SECRET).unwrap();
    let rs_token = sign_rs256(&json!({"sub": "alice", "exp": now() + 60}), None);
    assert!(matches!(hs.verify(&rs_token), Err(AuthError::WrongAlgorithm { .. })));
    // The classic confusion attack: HS256 signed with the RSA public key as the secret.
    let rs = Verifier::rs256_pem(PUBLIC_PEM).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "mallory", "exp": now() + 60}),
        &EncodingKey::from_secret(PUBLIC_PEM).unwrap(),
    )
    .unwrap();
    assert!(matches!(rs.verify(&confused), Err(AuthError::WrongAlgorithm { .. })));
    assert_eq!(rs.verify(&rs_token).unwrap().user_id.as_str(), "alice");
}

#[test]
fn jwks_selects_the_key_by_kid() {
    let private = EncodingKey::from_rsa_pem(PRIVATE_PEM).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&private, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let jwks = serde_json::to_vec(&json!({ "keys": [jwk] })).unwrap();
    let verifier = Verifier::rs256_jwks(&jwks).unwrap();
    let claims = json!({"sub": "bob", "exp": now() + 60});
    assert_eq!(verifier.verify(&sign_rs256(&claims, Some("k1"))).unwrap().user_id.as_str(), "bob");
    assert!(verifier.verify(&sign_rs256(&claims, Some("k2"))).is_err());
    assert!(verifier.verify(&sign_rs256(&claims, None)).is_ok());
}

#[test]
fn bad_claims_and_weak_secrets_are_refused() {
    assert!(matches!(Verifier::hs256(b"short"), Err(AuthError::Config(_))));
    let verifier = Verifier::hs256(SECRET).unwrap();
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let bad_sub =
        encode(&Header::default(), &json!({"sub": "a b", "exp": now() + 60}), &key).unwrap();
    assert!(matches!(verifier.verify(&bad_sub), Err(AuthError::Invalid(_))));
    let no_exp = encode(&Header::default(), &json!({"sub": "alice"}), &key).unwrap();
    assert!(verifier.verify(&no_exp).is_err());
    let no_sub = encode(&Header::default(), &json!({"exp": now() + 60}), &key).unwrap();
    assert!(verifier.verify(&no_sub).is_err());
}

#[test]
fn tokens_not_valid_yet_are_refused_beyond_the_leeway() {
    let verifier = Verifier::hs256(SECRET).unwrap();
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let sign = |claims: serde_json::Value| encode(&Header::default(), &claims, &key).unwrap();
    let leeway = auth::CLOCK_LEEWAY_SECONDS;
    let later = sign(json!({"sub": "alice", "exp": now() + 7200, "nbf": now() + 3600}));
    assert_eq!(verifier.verify(&later), Err(AuthError::NotYetValid));
    let issued_later = sign(json!({"sub": "alice", "exp": now() + 7200, "iat": now() + 3600}));
    assert_eq!(verifier.verify(&issued_later), Err(AuthError::NotYetValid));
    // A clock a little ahead of ours is tolerated, up to the leeway.
    let skewed = sign(json!({
        "sub": "alice", "exp": now() + 60, "nbf": now() + leeway / 2, "iat": now() + leeway / 2
    }));
    assert_eq!(verifier.verify(&skewed).unwrap().user_id.as_str(), "alice");
    let past =
        sign(json!({"sub": "alice", "exp": now() + 60, "nbf": now() - 10, "iat": now() - 10}));
    assert!(verifier.verify(&past).is_ok());
    // The claims have to be numbers.
    let text_nbf = sign(json!({"sub": "alice", "exp": now() + 60, "nbf": "soon"}));
    assert!(matches!(verifier.verify(&text_nbf), Err(AuthError::Invalid(_))));
    let text_iat = sign(json!({"sub": "alice", "exp": now() + 60, "iat": "now"}));
    assert!(matches!(verifier.verify(&text_iat), Err(AuthError::Invalid(_))));
}
