//! The web app, and the development-only token endpoint it signs in with.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingest::IngestError;
use schemas::limits::Invalid;
use schemas::object::JsonObject;
use serde::Deserialize;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");

/// The static web app.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenRequest {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    service: bool,
}

/// What `/dev/token` may mint, and with which secret.
#[derive(Debug, Clone)]
pub(crate) struct DevTokens {
    pub secret: String,
    /// Whether the service role (which opens conversations) may be minted: only with the
    /// generated dev secret, whose tokens no other deployment accepts.
    pub service: bool,
}

/// `POST /dev/token`: lets the web app sign in as anyone. Mounted by `chat dev` only: with
/// its generated dev secret, or, with `--serve-dev-tokens`, user tokens under an operator's
/// secret. A development convenience, never a production route.
pub(crate) fn dev_token_router(tokens: DevTokens) -> Router {
    Router::new().route("/dev/token", post(dev_token)).with_state(Arc::new(tokens))
}

async fn dev_token(
    State(tokens): State<Arc<DevTokens>>,
    Json(JsonObject(request)): Json<JsonObject<DevTokenRequest>>,
) -> Response {
    if let Err(error) = schemas::UserId::new(request.sub.as_str()) {
        return IngestError::from(Invalid::new("sub", error.to_string())).into_response();
    }
    if request.service && !tokens.service {
        return IngestError::Forbidden(
            "the service role is minted only with chat dev's generated secret; use `chat token --service`"
                .into(),
        )
        .into_response();
    }
    match auth::mint_hs256(
        tokens.secret.as_bytes(),
        &request.sub,
        request.name.as_deref(),
        request.service,
        86_400,
    ) {
        Ok(token) => Json(serde_json::json!({ "token": token })).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
