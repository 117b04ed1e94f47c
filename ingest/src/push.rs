//! The Web Push routes: the server's public key, and each user's own subscriptions. What is
//! stored was checked first (keys, endpoint on the allow-list), so the notifier never calls
//! a URL that was not allowed when it was registered (and checks it again before it does).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use schemas::Timestamp;
use schemas::limits::Invalid;
use schemas::notify::{PushSubscription, RemovePushSubscription, VapidPublicKey};
use viewstore::StoredPushSubscription;
use webpush::Subscription;

use crate::error::IngestError;
use crate::extract::{Authenticated, JsonBody};
use crate::state::{IngestState, PushRegistry};

/// Subscriptions kept per user (devices and browsers); registering one more drops the
/// oldest.
pub const SUBSCRIPTIONS_PER_USER: usize = 10;

pub(crate) fn routes() -> Router<IngestState> {
    Router::new()
        .route("/v1/push/vapid-public-key", get(vapid_public_key))
        .route("/v1/push/subscriptions", put(subscribe).delete(unsubscribe))
}

fn registry(state: &IngestState) -> Result<&PushRegistry, IngestError> {
    state.push.as_deref().ok_or_else(|| {
        IngestError::NotFound(
            "Web Push is not set up on this server (it needs CHAT_VAPID_KEY_FILE)".into(),
        )
    })
}

/// Public: browsers need it before they subscribe, and it is public by design.
async fn vapid_public_key(State(state): State<IngestState>) -> Result<Response, IngestError> {
    let public_key = registry(&state)?.public_key.clone();
    Ok(Json(VapidPublicKey { vapid_public_key: public_key }).into_response())
}

async fn subscribe(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    JsonBody(subscription): JsonBody<PushSubscription>,
) -> Result<Response, IngestError> {
    let registry = registry(&state)?;
    Subscription::check(&subscription, &registry.allowed)
        .map_err(|refused| Invalid::new("subscription", refused.0))?;
    let stored = StoredPushSubscription {
        endpoint: subscription.endpoint,
        p256dh: subscription.keys.p256dh,
        auth: subscription.keys.auth,
        registered_at: Timestamp::now(),
    };
    registry
        .store
        .put_push_subscription(&caller.user_id, &stored, SUBSCRIPTIONS_PER_USER)
        .await
        .map_err(|error| IngestError::Unavailable(error.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Idempotent: removing a subscription the caller does not have (any more) is no error.
async fn unsubscribe(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    JsonBody(request): JsonBody<RemovePushSubscription>,
) -> Result<Response, IngestError> {
    registry(&state)?
        .store
        .remove_push_subscription(&caller.user_id, &request.endpoint)
        .await
        .map_err(|error| IngestError::Unavailable(error.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
