//! One push: the payload encrypted for one subscription, and the headers push services read.

use std::time::Duration;

use http::HeaderValue;
use schemas::ConversationId;
use schemas::notify::PushPayload;
use web_push_native::{Auth, WebPushBuilder};

use crate::subscription::Subscription;
use crate::vapid::VapidKey;

/// The most plaintext one push carries: 4096 bytes of `aes128gcm` body less its header (86
/// bytes with the key id), padding delimiter and tag (RFC 8291 section 4).
pub const MAX_PLAINTEXT: usize = 3993;

/// RFC 8030 section 5.3: how soon the push service should wake the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// A push to send.
#[derive(Debug, Clone, Copy)]
pub struct Push<'a> {
    pub subscription: &'a Subscription,
    pub payload: &'a PushPayload,
    /// How long the push service keeps it for an offline device.
    pub ttl: Duration,
    pub urgency: Urgency,
    /// Pushes with the same topic replace each other while undelivered.
    pub topic: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the payload is {0} bytes, more than a push carries ({MAX_PLAINTEXT})")]
    TooLarge(usize),
    #[error("cannot build the push: {0}")]
    Build(String),
}

/// The `Topic` of a conversation's pushes: at most 32 base64url characters (RFC 8030).
pub fn topic(conversation: ConversationId) -> String {
    format!("c{}", conversation.get())
}

/// Cuts `payload.text` (on a character boundary, with an ellipsis) until the payload's JSON
/// is at most `max` bytes. Escapes count: a text of quotes is twice its length in JSON.
pub fn fit_text(payload: &mut PushPayload, max: usize) {
    let size = |payload: &PushPayload| serde_json::to_vec(payload).map_or(usize::MAX, |v| v.len());
    if size(payload) <= max {
        return;
    }
    let text = std::mem::take(&mut payload.text);
    let ends: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
    // The longest prefix that fits: sizes grow with the prefix, so bisect.
    let (mut low, mut high) = (0, ends.len());
    while low < high {
        let middle = (low + high).div_ceil(2);
        payload.text = format!("{}…", &text[..ends[middle]]);
        if size(payload) <= max {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    payload.text = if low == 0 { String::new() } else { format!("{}…", &text[..ends[low]]) };
}

/// The HTTP request for `push`, signed with `key` for `subject` (`mailto:` or `https:`).
pub fn request(
    push: &Push<'_>,
    key: &VapidKey,
    subject: &str,
) -> Result<http::Request<Vec<u8>>, PushError> {
    let body =
        serde_json::to_vec(push.payload).map_err(|error| PushError::Build(error.to_string()))?;
    if body.len() > MAX_PLAINTEXT {
        return Err(PushError::TooLarge(body.len()));
    }
    let subscription = push.subscription;
    let uri: http::Uri = subscription
        .endpoint
        .as_str()
        .parse()
        .map_err(|error: http::uri::InvalidUri| PushError::Build(error.to_string()))?;
    let mut request = WebPushBuilder::new(
        uri,
        subscription.public_key,
        Auth::clone_from_slice(&subscription.auth),
    )
    .with_valid_duration(push.ttl)
    .build(body)
    .map_err(|error| PushError::Build(error.to_string()))?;
    let authorization = key.authorization(&subscription.endpoint, subject, push.ttl)?;
    let headers = request.headers_mut();
    let value =
        |text: &str| HeaderValue::try_from(text).map_err(|e| PushError::Build(e.to_string()));
    headers.insert("urgency", value(push.urgency.as_str())?);
    headers.insert("topic", value(push.topic)?);
    headers.insert(http::header::AUTHORIZATION, value(&authorization)?);
    Ok(request)
}

impl From<String> for PushError {
    fn from(reason: String) -> Self {
        Self::Build(reason)
    }
}

#[cfg(test)]
mod tests {
    use schemas::MessageId;
    use web_push_native::p256::SecretKey;

    use super::*;
    use crate::AllowedEndpoints;

    fn payload(text: &str) -> PushPayload {
        PushPayload {
            id: "n-1".into(),
            kind: "message".into(),
            conversation_id: ConversationId::new(7).unwrap(),
            message_id: MessageId::try_from(2048).unwrap(),
            sender_name: "Alice".into(),
            text: text.into(),
            count: 1,
            unread_count: 1,
        }
    }

    #[test]
    fn a_long_text_is_cut_to_fit_whatever_it_escapes_to() {
        for text in
            ["a".repeat(10_000), "\"".repeat(5_000), "é".repeat(5_000), "\u{1}".repeat(2_000)]
        {
            let mut fitted = payload(&text);
            fit_text(&mut fitted, MAX_PLAINTEXT);
            let size = serde_json::to_vec(&fitted).unwrap().len();
            assert!(size <= MAX_PLAINTEXT, "{size} bytes");
            assert!(size > MAX_PLAINTEXT - 12, "cut no more than needed: {size}");
            assert!(fitted.text.ends_with('…'));
        }
        let mut short = payload("hello");
        fit_text(&mut short, MAX_PLAINTEXT);
        assert_eq!(short.text, "hello");
    }

    #[test]
    fn a_push_is_encrypted_for_its_subscription_with_the_headers_push_services_read() {
        let browser = SecretKey::from_slice(&[7; 32]).unwrap();
        let auth = [3u8; 16];
        let allowed = AllowedEndpoints::parse("http://127.0.0.1:9").unwrap();
        let subscription = Subscription {
            endpoint: allowed.check("http://127.0.0.1:9/push/1").unwrap(),
            public_key: browser.public_key(),
            auth,
        };
        let sent = payload("hello");
        let push = Push {
            subscription: &subscription,
            payload: &sent,
            ttl: Duration::from_secs(600),
            urgency: Urgency::Normal,
            topic: &topic(sent.conversation_id),
        };
        let request = request(&push, &VapidKey::generate(), "mailto:ops@example.com").unwrap();
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("ttl"), "600");
        assert_eq!(header("urgency"), "normal");
        assert_eq!(header("topic"), "c7");
        assert_eq!(header("content-encoding"), "aes128gcm");
        assert!(header("authorization").starts_with("vapid t="));
        let plain = web_push_native::decrypt(
            request.body().clone(),
            &browser,
            &Auth::clone_from_slice(&auth),
        )
        .unwrap();
        assert_eq!(serde_json::from_slice::<PushPayload>(&plain).unwrap(), sent);

        let mut huge = payload(&"x".repeat(5000));
        huge.sender_name = "y".repeat(10);
        let refused = self::request(
            &Push { payload: &huge, ..push },
            &VapidKey::generate(),
            "mailto:ops@example.com",
        );
        assert!(matches!(refused, Err(PushError::TooLarge(_))));
    }
}
