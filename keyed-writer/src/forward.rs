//! Keyed sends carried to the node that writes their partition.
//!
//! The forwarding node has already authenticated, authorized and validated the send and
//! built its record; the writer only appends it. So the request must come from a node of the
//! deployment: its body is signed with HMAC-SHA256 under a key every node shares (the
//! cluster secret), and the writer refuses anything unsigned or signed otherwise. Replaying
//! a signed request is harmless: it carries the same idempotency key.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eventlog::NewRecord;
use hmac::{Hmac, KeyInit, Mac};
use schemas::{ChatEvent, ConversationId, Envelope, MessageId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use viewstore::ReadModel;

use super::{KeyedSend, KeyedWriters, Original, WriteError, Written};

const SIGNATURE: &str = "x-chat-signature";
/// Forwarded request bodies larger than this are refused (a record is at most a message).
const MAX_FORWARD_BYTES: usize = 256 * 1024;

/// The key forwarded sends are signed with, and, while the cluster secret is rotated, a
/// second one they are also accepted under.
#[derive(Clone)]
pub struct ForwardKey {
    signing: Arc<[u8]>,
    also_accepted: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for ForwardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardKey(..)")
    }
}

impl ForwardKey {
    /// A key from a shared secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("the cluster secret must be at least 32 bytes".into());
        }
        Ok(Self { signing: secret.into(), also_accepted: None })
    }

    /// This key, accepting also what `other` signed: the overlap a rolling change of the
    /// cluster secret needs, so no forwarded send is refused while old and new nodes run.
    pub fn also_accepting(self, other: &ForwardKey) -> Self {
        Self { also_accepted: Some(other.signing.clone()), ..self }
    }

    /// A key derived from the HS256 token secret, for deployments that verify tokens with a
    /// shared secret anyway (never the secret itself, so a forwarding signature is not a
    /// token signature).
    pub fn derived_from_token_secret(secret: &[u8]) -> Result<Self, String> {
        let mut mac = Self::new(secret)?.mac();
        mac.update(b"chat forwarded sends v1");
        Ok(Self { signing: mac.finalize().into_bytes().to_vec().into(), also_accepted: None })
    }

    fn mac(&self) -> Hmac<Sha256> {
        mac_with(&self.signing)
    }

    fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        std::iter::once(&self.signing).chain(&self.also_accepted).any(|key| {
            let mut mac = mac_with(key);
            mac.update(body);
            mac.verify_slice(&signature).is_ok()
        })
    }
}

fn mac_with(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardedSend {
    conversation_id: ConversationId,
    key: String,
    /// The record's value, base64url.
    value: String,
    headers: Vec<(String, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ForwardedAnswer {
    message_id: MessageId,
    /// True when an earlier send with the key produced the message.
    earlier: bool,
    /// When the earlier send was sent. Writers of the previous version leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ForwardRefusal {
    detail: String,
}

fn path(partition: u32) -> String {
    format!("/internal/v1/partitions/{partition}/keyed-sends")
}

/// The client side.
pub(crate) struct Forwarder {
    key: ForwardKey,
    client: reqwest::Client,
    /// Completes the answers of writers that do not say when an earlier send was sent.
    read_model: Arc<dyn ReadModel>,
}

impl Forwarder {
    pub(crate) fn new(key: ForwardKey, timeout: Duration, read_model: Arc<dyn ReadModel>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { key, client, read_model }
    }

    pub(crate) async fn forward(
        &self,
        address: &str,
        partition: u32,
        send: &KeyedSend,
    ) -> Result<Written, WriteError> {
        let body = ForwardedSend {
            conversation_id: send.conversation,
            key: send.key.clone(),
            value: URL_SAFE_NO_PAD.encode(&send.record.value),
            headers: send.record.headers.clone(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| WriteError::Unavailable(e.to_string()))?;
        let signature = self.key.sign(&body);
        let url = format!("http://{address}{}", path(partition));
        let response = self
            .client
            .post(url)
            .header(SIGNATURE, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            // The writer may be gone (a takeover is under way): look again.
            .map_err(|_| WriteError::NotHere)?;
        let status = response.status();
        if status == StatusCode::MISDIRECTED_REQUEST {
            return Err(WriteError::NotHere);
        }
        if status.is_success() {
            let answer: ForwardedAnswer = response
                .json()
                .await
                .map_err(|error| WriteError::Unavailable(format!("writer's answer: {error}")))?;
            return match (answer.earlier, answer.sent_at) {
                (false, _) => Ok(Written::Appended(answer.message_id)),
                (true, Some(sent_at)) => {
                    Ok(Written::Earlier(Original { id: answer.message_id, sent_at }))
                }
                (true, None) => self.earlier_from_projections(send, answer.message_id).await,
            };
        }
        let detail = match response.json::<ForwardRefusal>().await {
            Ok(refusal) => refusal.detail,
            Err(_) => status.to_string(),
        };
        Err(WriteError::Unavailable(format!("the writer at {address} answered {status}: {detail}")))
    }

    /// An earlier send named by a writer of the previous version (during a rolling upgrade),
    /// timed from the projections; until they have it the client is asked to retry.
    async fn earlier_from_projections(
        &self,
        send: &KeyedSend,
        id: MessageId,
    ) -> Result<Written, WriteError> {
        let found = self.read_model.message_with_key(send.conversation, &send.key).await;
        match found {
            Ok(Some(message)) if message.id == id => Ok(Written::Earlier(Original::from(&message))),
            Ok(_) => Err(WriteError::Unavailable("the message is not in history yet".into())),
            Err(error) => Err(WriteError::Unavailable(error.to_string())),
        }
    }
}

/// Tells whether the process that held a lease is gone, from the address it advertised:
/// nothing listens there any more, or another process does. A node that does not answer
/// in time is not presumed gone (it may only be cut off); its lease lapses instead.
pub(crate) struct Prober {
    client: reqwest::Client,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
struct NodeAnswer {
    node: String,
}

impl Prober {
    pub(crate) fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { client }
    }

    pub(crate) async fn is_gone(&self, address: &str, node: &str) -> bool {
        let connected =
            tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await;
        match connected {
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => return true,
            Ok(Ok(_)) => {}
            _ => return false,
        }
        let answer = self.client.get(format!("http://{address}/internal/v1/node")).send().await;
        match answer {
            Ok(response) if response.status() == StatusCode::NOT_FOUND => true,
            Ok(response) if response.status().is_success() => {
                response.json::<NodeAnswer>().await.is_ok_and(|answer| answer.node != node)
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
struct ForwardState {
    writers: Arc<KeyedWriters>,
    key: ForwardKey,
}

/// The writer side: the route other nodes forward keyed sends to, and the one that tells
/// which node this process is.
pub fn forward_router(writers: Arc<KeyedWriters>, key: ForwardKey) -> Router {
    Router::new()
        .route("/internal/v1/node", axum::routing::get(this_node))
        .route("/internal/v1/partitions/{partition}/keyed-sends", post(take_forwarded))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORWARD_BYTES))
        .with_state(ForwardState { writers, key })
}

async fn this_node(State(state): State<ForwardState>) -> Json<NodeAnswer> {
    Json(NodeAnswer { node: state.writers.node.clone() })
}

fn refuse(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, Json(ForwardRefusal { detail: detail.into() })).into_response()
}

async fn take_forwarded(
    State(state): State<ForwardState>,
    Path(partition): Path<u32>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let signed = headers.get(SIGNATURE).and_then(|value| value.to_str().ok());
    if !signed.is_some_and(|signature| state.key.verify(&body, signature)) {
        tracing::warn!("refused a forwarded send with a missing or wrong signature");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "bad signature: the nodes do not share one cluster secret",
        );
    }
    let Ok(send) = serde_json::from_slice::<ForwardedSend>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not a forwarded send");
    };
    let Ok(value) = URL_SAFE_NO_PAD.decode(&send.value) else {
        return refuse(StatusCode::BAD_REQUEST, "the record is not base64url");
    };
    if send.conversation_id.partition(state.writers.partitions) != partition {
        return refuse(StatusCode::BAD_REQUEST, "the conversation is in another partition");
    }
    // The writer remembers when each key's message was sent, to answer its retries.
    let Ok((_, Some(ChatEvent::MessageSent(sent)))) = Envelope::decode(&value) else {
        return refuse(StatusCode::BAD_REQUEST, "the record is not a message");
    };
    let record = NewRecord { key: send.conversation_id, value, headers: send.headers };
    let conversation = send.conversation_id;
    let keyed = KeyedSend { conversation, key: send.key, sent_at: sent.sent_at, record };
    match state.writers.write_here(keyed).await {
        Ok(Written::Appended(message_id)) => {
            Json(ForwardedAnswer { message_id, earlier: false, sent_at: None }).into_response()
        }
        Ok(Written::Earlier(original)) => Json(ForwardedAnswer {
            message_id: original.id,
            earlier: true,
            sent_at: Some(original.sent_at),
        })
        .into_response(),
        Err(WriteError::NotHere) => refuse(StatusCode::MISDIRECTED_REQUEST, "not the writer"),
        Err(WriteError::Unavailable(reason)) => refuse(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shared_key_signs_a_forwarded_send() {
        let key = ForwardKey::new(&[7; 32]).unwrap();
        let other = ForwardKey::new(&[8; 32]).unwrap();
        let signature = key.sign(b"{\"a\":1}");
        assert!(key.verify(b"{\"a\":1}", &signature));
        assert!(!key.verify(b"{\"a\":2}", &signature), "a changed body fails");
        assert!(!other.verify(b"{\"a\":1}", &signature), "another key fails");
        assert!(!key.verify(b"{\"a\":1}", "not base64!"));
    }

    #[test]
    fn short_secrets_are_refused_and_derived_keys_differ_from_their_secret() {
        assert!(ForwardKey::new(&[1; 31]).is_err());
        let secret = [3_u8; 32];
        let derived = ForwardKey::derived_from_token_secret(&secret).unwrap();
        let direct = ForwardKey::new(&secret).unwrap();
        assert_ne!(derived.sign(b"x"), direct.sign(b"x"));
    }

    #[test]
    fn during_a_rotation_both_secrets_are_accepted_and_the_current_one_signs() {
        let old = ForwardKey::new(&[7; 32]).unwrap();
        let new = ForwardKey::new(&[8; 32]).unwrap();
        let stranger = ForwardKey::new(&[9; 32]).unwrap();
        let rotating = new.clone().also_accepting(&old);
        assert!(rotating.verify(b"x", &old.sign(b"x")), "what old nodes sign");
        assert!(rotating.verify(b"x", &new.sign(b"x")), "what new nodes sign");
        assert!(!rotating.verify(b"x", &stranger.sign(b"x")));
        assert_eq!(rotating.sign(b"x"), new.sign(b"x"), "signs with the current secret");
        assert!(!new.verify(b"x", &old.sign(b"x")), "no overlap without the setting");
    }
}
