//! A browser's push subscription, checked before it is stored and before it is used.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use schemas::notify::PushSubscription;
use url::Url;
use web_push_native::p256::PublicKey;

use settings::AllowedEndpoints;

/// A subscription the server may push to.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub endpoint: Url,
    /// The browser's P-256 key (RFC 8291 `ua_public`).
    pub public_key: PublicKey,
    /// The browser's authentication secret.
    pub auth: [u8; 16],
}

/// Why a subscription was refused; the text is for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SubscriptionRefused(pub String);

impl Subscription {
    /// Checks `subscription` as a browser sent it: the endpoint on `allowed`, `p256dh` a
    /// base64url P-256 point, `auth` 16 base64url bytes.
    pub fn check(
        subscription: &PushSubscription,
        allowed: &AllowedEndpoints,
    ) -> Result<Self, SubscriptionRefused> {
        let endpoint = allowed
            .check(&subscription.endpoint)
            .map_err(|refused| SubscriptionRefused(refused.to_string()))?;
        let refuse = |why: &str| SubscriptionRefused(why.to_owned());
        let point = decode(&subscription.keys.p256dh)
            .ok_or_else(|| refuse("keys.p256dh is not base64url"))?;
        let public_key = (point.len() == 65 && point[0] == 4)
            .then(|| PublicKey::from_sec1_bytes(&point).ok())
            .flatten()
            .ok_or_else(|| refuse("keys.p256dh is not an uncompressed P-256 public key"))?;
        let auth = decode(&subscription.keys.auth)
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .ok_or_else(|| refuse("keys.auth is not 16 bytes of base64url"))?;
        Ok(Self { endpoint, public_key, auth })
    }
}

/// Browsers send unpadded base64url; padded is accepted too.
fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).or_else(|_| URL_SAFE.decode(text)).ok()
}

#[cfg(test)]
mod tests {
    use schemas::notify::PushKeys;

    use super::*;

    // A key pair's public half and a secret as Chrome would send them.
    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn subscription(endpoint: &str, p256dh: &str, auth: &str) -> PushSubscription {
        PushSubscription {
            endpoint: endpoint.into(),
            keys: PushKeys { p256dh: p256dh.into(), auth: auth.into() },
        }
    }

    #[test]
    fn a_browsers_subscription_is_accepted_and_bad_keys_are_named() {
        let allowed = AllowedEndpoints::public_push_services();
        let endpoint = "https://fcm.googleapis.com/fcm/send/x";
        let checked = Subscription::check(&subscription(endpoint, P256DH, AUTH), &allowed).unwrap();
        assert_eq!(checked.endpoint.as_str(), endpoint);

        let cases = [
            (subscription("https://example.com/x", P256DH, AUTH), "allowed list"),
            (subscription(endpoint, "!!", AUTH), "p256dh is not base64url"),
            (subscription(endpoint, &P256DH[..40], AUTH), "not an uncompressed"),
            (subscription(endpoint, &format!("BS{}", &P256DH[2..]), AUTH), "not an uncompressed"),
            (subscription(endpoint, P256DH, "AAAA"), "keys.auth"),
        ];
        for (bad, why) in cases {
            let refused = Subscription::check(&bad, &allowed).unwrap_err();
            assert!(refused.0.contains(why), "{refused} does not say {why:?}");
        }
    }
}
