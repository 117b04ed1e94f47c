//! auth: who is calling.
//!
//! Verifies JWT bearer tokens with one pinned algorithm (HS256 with a shared secret, or
//! RS256 with a public key or a JWKS file), turns their claims into a [`Caller`], and finds
//! the token in a request: the `Authorization` header, the `token` query parameter of a
//! WebSocket URL, or the `chat_token` cookie (accepted only from allow-listed origins, which
//! is what stops cross-site WebSocket hijacking). Also mints tokens for development.
//!
//! It decides identity only; what a caller may do is decided by the services.

mod credentials;
pub mod metrics;
mod token;

pub use credentials::{COOKIE_NAME, Credentials, OriginPolicy, find_http_token, find_ws_token};
pub use token::{
    AuthError, CLOCK_LEEWAY_SECONDS, Caller, Claims, SERVICE_ROLE, Verifier, mint_hs256,
};
