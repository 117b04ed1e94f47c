//! fanout: the WebSocket servers.
//!
//! A [`Hub`] per process tails the log and the signal bus and fills the bounded queues of
//! the connections subscribed to each conversation; each connection writes its queue to its
//! socket. Sends arriving on a socket go through the same `ingest` code as the HTTP API.
//! Resuming from a message id replays what the client missed (from the store, then from the
//! hub's memory) and continues live without a gap or a duplicate.
//!
//! Two protocols share the machinery: the seed's (`/ws/chat/{id}/`) and the native one
//! (`/v1/ws`). Nothing here writes to the store.

mod catch_up;
mod config;
mod connection;
mod delivery;
mod hub;
mod local_presence;
mod loops;
pub mod metrics;
mod native;
pub mod presence;
mod receipts;
mod resume;
mod seed;
mod send_task;
mod session;
mod subscribers;
mod typing;

use std::sync::Arc;

use auth::{AuthError, Caller, Verifier};
use axum::Router;
use axum::extract::{Path, RawQuery, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use eventlog::SignalBus;
use ingest::Ingest;
use schemas::handshake::HandshakeQuery;
use schemas::native::close;
use schemas::{ConversationId, MessageId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use viewstore::ReadModel;

pub use config::FanoutConfig;
pub use hub::Hub;
pub use subscribers::ConnectionTicket;

use crate::native::NativeProtocol;
use crate::seed::SeedProtocol;
use crate::session::{Close, Mailbox, Protocol, Services};

#[derive(Clone)]
pub struct FanoutState {
    services: Services,
    verifier: Arc<Verifier>,
}

impl std::fmt::Debug for FanoutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanoutState").finish_non_exhaustive()
    }
}

impl FanoutState {
    /// `shutdown` closes every connection with 1012 ("reconnect and resume"), spread over
    /// the drain period.
    pub fn new(
        hub: Arc<Hub>,
        ingest: Arc<Ingest>,
        read_model: Arc<dyn ReadModel>,
        signals: Arc<dyn SignalBus>,
        verifier: Arc<Verifier>,
        shutdown: CancellationToken,
    ) -> Self {
        let connections = TaskTracker::new();
        let services = Services { hub, ingest, read_model, signals, shutdown, connections };
        Self { services, verifier }
    }

    /// Resolves once shutdown was requested and every connection has closed.
    pub async fn drained(&self) {
        self.services.shutdown.cancelled().await;
        self.services.connections.close();
        self.services.connections.wait().await;
    }
}

/// The WebSocket routes.
pub fn router(state: FanoutState) -> Router {
    Router::new()
        .route("/ws/chat/{conversation_id}/", get(seed_socket))
        .route("/ws/chat/{conversation_id}", get(seed_socket))
        .route("/v1/ws", get(native_socket))
        .with_state(state)
}

fn authenticate(
    state: &FanoutState,
    headers: &HeaderMap,
    query: &HandshakeQuery,
) -> Result<Caller, Close> {
    let origins = &state.services.hub.config().origins;
    let verified = auth::find_ws_token(headers, query.token.as_deref(), origins)
        .and_then(|credentials| state.verifier.verify(credentials.token()));
    verified.map_err(|error| {
        auth::metrics::count_refusal(&error);
        match error {
            AuthError::ForeignOrigin(_) => Close::new(close::FORBIDDEN, error.to_string()),
            other => Close::new(close::UNAUTHENTICATED, other.to_string()),
        }
    })
}

fn configure(upgrade: WebSocketUpgrade, state: &FanoutState) -> WebSocketUpgrade {
    // The protocol-level cap: frames over the configured limit are refused with 1009 by the
    // session; this hard cap only bounds what the socket buffers before that check.
    let hard_cap = state.services.hub.config().max_frame_bytes * 4;
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
}

/// Accepts the upgrade and closes at once with `reason`, so browsers see why.
fn refuse(upgrade: WebSocketUpgrade, reason: Close) -> Response {
    metrics::refused(reason.code);
    upgrade.on_upgrade(move |socket| async move {
        use axum::extract::ws::{CloseFrame, Message};
        let mut socket = socket;
        let frame = CloseFrame { code: reason.code, reason: reason.reason.into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
    })
}

/// The upgrade with the connection limits applied, the authenticated caller and the
/// handshake's query; or the response that refuses the connection with a reason.
fn handshake(
    state: &FanoutState,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    upgrade: WebSocketUpgrade,
) -> Result<(WebSocketUpgrade, Caller, HandshakeQuery), Box<Response>> {
    let upgrade = configure(upgrade, state);
    let query = HandshakeQuery::parse(raw_query);
    match authenticate(state, headers, &query) {
        Ok(caller) => Ok((upgrade, caller, query)),
        Err(reason) => Err(Box::new(refuse(upgrade, reason))),
    }
}

async fn seed_socket(
    State(state): State<FanoutState>,
    Path(conversation): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (upgrade, caller, query) = match handshake(&state, &headers, raw.as_deref(), upgrade) {
        Ok(parts) => parts,
        Err(refusal) => return *refusal,
    };
    let Ok(conversation) = conversation.parse::<ConversationId>() else {
        return refuse(
            upgrade,
            Close::new(close::NOT_FOUND, "conversation ids are positive integers"),
        );
    };
    let since = match query.since.as_deref().map(str::parse::<MessageId>).transpose() {
        Ok(since) => since,
        Err(error) => {
            return refuse(upgrade, Close::new(close::BAD_REQUEST, format!("since {error}")));
        }
    };
    // Authorize and register before upgrading: once the client sees the socket open, every
    // later message of the conversation reaches it.
    let services = state.services;
    let record = match services.ingest.authorize(&caller, conversation).await {
        Ok(record) => record,
        Err(refused) => {
            refused.log_if_internal();
            return refuse(upgrade, seed::refusal(&refused));
        }
    };
    let mailbox = match Mailbox::admit(&services.hub, &caller.user_id, SeedProtocol::NAME) {
        Ok(mailbox) => mailbox,
        Err(reason) => return refuse(upgrade, reason),
    };
    let participants = [record.client.id, record.worker.id];
    let plan =
        services.hub.subscribe(conversation, participants, mailbox.subscriber.clone(), since);
    let protocol = SeedProtocol::new(conversation, since, plan);
    upgrade.on_upgrade(move |socket| {
        session::run(socket, services, caller, mailbox, protocol, async |protocol, session| {
            protocol.start(session).await
        })
    })
}

async fn native_socket(
    State(state): State<FanoutState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (upgrade, caller, _) = match handshake(&state, &headers, raw.as_deref(), upgrade) {
        Ok(parts) => parts,
        Err(refusal) => return *refusal,
    };
    // Inbox updates are registered before upgrading, so none is missed after `ready`.
    let services = state.services;
    let change_rate = services.hub.config().subscription_change_rate();
    let protocol = NativeProtocol::new(caller.user_id.clone(), change_rate);
    let mailbox = match Mailbox::admit(&services.hub, &caller.user_id, NativeProtocol::NAME) {
        Ok(mailbox) => mailbox,
        Err(reason) => return refuse(upgrade, reason),
    };
    services.hub.register_user(&caller.user_id, mailbox.subscriber.clone());
    upgrade.on_upgrade(move |socket| {
        session::run(socket, services, caller, mailbox, protocol, async |protocol, session| {
            protocol.start(session).await
        })
    })
}
