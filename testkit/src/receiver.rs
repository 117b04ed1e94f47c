//! A push service and a webhook receiver of our own, on loopback: they check what a real
//! one checks (the VAPID token's signature, audience and lifetime; the Standard Webhooks
//! signature), decrypt pushes as a browser does, and answer as scripted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notifier::WebhookSecret;
use serde_json::{Value, json};
use web_push_native::p256::SecretKey;
use web_push_native::p256::ecdsa::signature::Verifier;
use web_push_native::p256::ecdsa::{Signature, VerifyingKey};
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

/// The name [`Receiver::answer`] and [`Receiver::calls`] know the webhook endpoint by.
pub const WEBHOOK: &str = "webhook";

/// A push as the browser would get it.
#[derive(Debug, Clone)]
pub struct ReceivedPush {
    pub headers: HashMap<String, String>,
    pub payload: Value,
}

/// A webhook post whose signature held.
#[derive(Debug, Clone)]
pub struct ReceivedWebhook {
    pub id: String,
    pub body: Value,
}

#[derive(Default)]
struct Received {
    vapid_key: Option<String>,
    browsers: HashMap<String, (SecretKey, [u8; 16])>,
    script: HashMap<String, VecDeque<(u16, Option<u64>)>>,
    calls: HashMap<String, Vec<std::time::Instant>>,
    pushes: HashMap<String, Vec<ReceivedPush>>,
    webhooks: Vec<ReceivedWebhook>,
    problems: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    origin: String,
    secret: WebhookSecret,
    received: Arc<Mutex<Received>>,
}

/// The running receiver; it stops when dropped.
pub struct Receiver {
    pub origin: String,
    /// The webhook signing secret, as `CHAT_WEBHOOK_SECRET_FILE` holds it.
    pub secret_text: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let origin = format!("http://{}", listener.local_addr().expect("bound address"));
        let secret_text = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>())
        );
        let secret = WebhookSecret::parse(&secret_text).expect("a valid secret");
        let shared = Shared { origin: origin.clone(), secret, received: Arc::default() };
        let app = Router::new()
            .route("/push/{name}", post(push))
            .route("/webhook", post(webhook))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { origin, secret_text, shared, task }
    }

    fn received(&self) -> std::sync::MutexGuard<'_, Received> {
        self.shared.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key pushes must be signed with (the server's `/v1/push/vapid-public-key`).
    pub fn expect_vapid_key(&self, key: &str) {
        self.received().vapid_key = Some(key.to_owned());
    }

    /// A browser's subscription to this push service, as `PushSubscription.toJSON()`.
    pub fn subscription(&self, name: &str) -> Value {
        let secret = SecretKey::from_slice(&random_bytes::<32>()).expect("a scalar");
        let auth = random_bytes::<16>();
        let point = secret.public_key().to_encoded_point(false);
        let json = json!({
            "endpoint": format!("{}/push/{name}", self.origin),
            "expirationTime": null,
            "keys": { "p256dh": URL_SAFE_NO_PAD.encode(point.as_bytes()), "auth": URL_SAFE_NO_PAD.encode(auth) }
        });
        self.received().browsers.insert(name.to_owned(), (secret, auth));
        json
    }

    /// The next answers of `name`'s endpoint (status, Retry-After seconds); then 201 (204
    /// for [`WEBHOOK`], whose answers are given after its signature was checked).
    pub fn answer(&self, name: &str, answers: &[(u16, Option<u64>)]) {
        self.received().script.entry(name.to_owned()).or_default().extend(answers.iter().copied());
    }

    /// Forgets the answers still scripted for `name`: it takes everything from now on.
    pub fn recover(&self, name: &str) {
        self.received().script.remove(name);
    }

    pub fn calls(&self, name: &str) -> usize {
        self.call_times(name).len()
    }

    /// When each request to `name`'s endpoint arrived.
    pub fn call_times(&self, name: &str) -> Vec<std::time::Instant> {
        self.received().calls.get(name).cloned().unwrap_or_default()
    }

    pub fn pushes(&self, name: &str) -> Vec<ReceivedPush> {
        self.received().pushes.get(name).cloned().unwrap_or_default()
    }

    pub fn webhooks(&self) -> Vec<ReceivedWebhook> {
        self.received().webhooks.clone()
    }

    /// What failed a check (a bad signature, an undecryptable body): tests expect none.
    pub fn problems(&self) -> Vec<String> {
        self.received().problems.clone()
    }

    /// Waits up to `within` for `done` to hold.
    pub async fn until(&self, within: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if done(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        done(self)
    }
}

/// A new VAPID private key in PEM, for `CHAT_VAPID_KEY_FILE`.
pub fn vapid_key_pem() -> String {
    webpush::VapidKey::generate().to_pem().expect("a P-256 key has a PEM form")
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    for chunk in bytes.chunks_mut(16) {
        let random = uuid::Uuid::new_v4().into_bytes();
        chunk.copy_from_slice(&random[..chunk.len()]);
    }
    bytes
}

fn header_map(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

async fn push(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut received = shared.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    received.calls.entry(name.clone()).or_default().push(std::time::Instant::now());
    let checked = check_push(&shared.origin, &received, &name, &headers, &body);
    match checked {
        Ok(payload) => {
            let (status, retry_after) =
                received.script.get_mut(&name).and_then(VecDeque::pop_front).unwrap_or((201, None));
            if (200..300).contains(&status) {
                let push = ReceivedPush { headers: header_map(&headers), payload };
                received.pushes.entry(name).or_default().push(push);
            }
            let mut response =
                StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED).into_response();
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
            }
            response
        }
        Err(problem) => {
            received.problems.push(format!("push to {name}: {problem}"));
            // As a push service answers a body over the 4096 bytes a push may carry.
            let status = if body.len() > 4096 {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            status.into_response()
        }
    }
}

fn check_push(
    origin: &str,
    received: &Received,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = header("authorization").ok_or("no Authorization")?;
    let (token, key) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .ok_or("Authorization is not vapid t=…, k=…")?;
    if received.vapid_key.as_deref() != Some(key) {
        return Err("signed with another key than the server publishes".into());
    }
    // A JWT signed ES256 with the key in `k`: what RFC 8292 asks a push service to check.
    let point = URL_SAFE_NO_PAD.decode(key).map_err(|_| "k is not base64url")?;
    let verifier = VerifyingKey::from_sec1_bytes(&point).map_err(|_| "k is not a P-256 key")?;
    let (signing_input, signature) = token.rsplit_once('.').ok_or("t is not a JWT")?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "signature not base64url")?;
    let signature = Signature::from_slice(&signature).map_err(|_| "not an ES256 signature")?;
    verifier.verify(signing_input.as_bytes(), &signature).map_err(|_| "the signature fails")?;
    let (jwt_header, claims) = signing_input.split_once('.').ok_or("t is not a JWT")?;
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "a JWT part is not base64url")?;
        serde_json::from_slice(&bytes).map_err(|e| format!("a JWT part is not JSON: {e}"))
    };
    if decode(jwt_header)?["alg"] != "ES256" {
        return Err("alg is not ES256".into());
    }
    let claims = decode(claims)?;
    if claims["aud"] != origin {
        return Err(format!("aud {} is not {origin}", claims["aud"]));
    }
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    let ahead = exp - schemas_now_seconds();
    if !(0..=24 * 60 * 60).contains(&ahead) {
        return Err(format!("exp {ahead} s ahead, not within 24 h"));
    }
    let subject = claims["sub"].as_str().ok_or("no sub")?;
    if !subject.starts_with("mailto:") && !subject.starts_with("https:") {
        return Err(format!("sub {subject:?}"));
    }
    if header("content-encoding").as_deref() != Some("aes128gcm") {
        return Err("not aes128gcm".into());
    }
    if body.len() > 4096 {
        return Err(format!("{} bytes, over 4096", body.len()));
    }
    for required in ["ttl", "urgency", "topic"] {
        header(required).ok_or(format!("no {required}"))?;
    }
    let (secret, auth) = received.browsers.get(name).ok_or("no such browser")?;
    let plain = web_push_native::decrypt(
        body.to_vec(),
        secret,
        &web_push_native::Auth::clone_from_slice(auth),
    )
    .map_err(|e| format!("cannot decrypt: {e}"))?;
    serde_json::from_slice(&plain).map_err(|e| format!("not JSON: {e}"))
}

async fn webhook(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (id, timestamp, signature) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let mut received = shared.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    received.calls.entry(WEBHOOK.to_owned()).or_default().push(std::time::Instant::now());
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        received.problems.push(format!("webhook {id}: timestamp {timestamp:?}"));
        return StatusCode::BAD_REQUEST;
    };
    let now = schemas_now_seconds();
    if (now - timestamp).abs() > 300 {
        received.problems.push(format!("webhook {id}: timestamp {timestamp} is not now"));
    }
    if !shared.secret.verify(&id, timestamp, &body, &signature) {
        received.problems.push(format!("webhook {id}: bad signature"));
        return StatusCode::UNAUTHORIZED;
    }
    if let Some((status, _)) = received.script.get_mut(WEBHOOK).and_then(VecDeque::pop_front) {
        return StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    match serde_json::from_slice(&body) {
        Ok(body) => received.webhooks.push(ReceivedWebhook { id, body }),
        Err(error) => received.problems.push(format!("webhook {id}: {error}")),
    }
    StatusCode::NO_CONTENT
}

fn schemas_now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(0))
}
