//! webpush: what the chat needs of the Web Push protocol, on `web-push-native` (pure Rust
//! crypto, an `http` 1.x request that any client sends).
//!
//! - [`AllowedEndpoints`]: a subscription is a URL the server will call, so only origins on
//!   a list (by default the public browser push services) are accepted, and checked again
//!   before every request: no server-side request forgery through a subscription.
//! - [`Subscription::check`]: a browser's `PushSubscription`, its endpoint allowed and its
//!   keys valid (a point on P-256, a 16-byte secret), or a refusal that says why.
//! - [`VapidKey`]: the server's identity towards push services (RFC 8292), from a file.
//! - [`request`]: one push, encrypted (RFC 8291 `aes128gcm`), with `TTL`, `Urgency`,
//!   `Topic` and a VAPID `Authorization` whose audience is the endpoint's origin.

mod request;
mod subscription;
mod vapid;

pub use request::{MAX_PLAINTEXT, Push, PushError, Urgency, fit_text, request, topic};
pub use settings::{AllowedEndpoints, EndpointRefused, PUBLIC_PUSH_SERVICES};
pub use subscription::{Subscription, SubscriptionRefused};
pub use vapid::VapidKey;
