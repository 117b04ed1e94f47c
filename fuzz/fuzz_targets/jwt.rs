//! Tokens: arbitrary text, and tokens whose header and claims are arbitrary JSON but whose
//! signature is valid (so the claims are really parsed). Verification never panics, and
//! what it accepts names a valid user.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret-that-is-long-enough-for-hs256";

fn signed(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let verifier = auth::Verifier::hs256(SECRET).expect("a long secret");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verifier.verify(text);
    }
    let Some((&split, rest)) = data.split_first() else { return };
    let (header, claims) = rest.split_at(usize::from(split).min(rest.len()));
    if let Ok(caller) = verifier.verify(&signed(header, claims)) {
        assert!(schemas::UserId::new(caller.user_id.as_str()).is_ok());
    }
});
