//! The web app, and the development-only token endpoint it signs in with.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
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

/// `POST /dev/token`: lets the web app sign in as anyone. Mounted by `chat dev` only, and
/// only when it verifies with its own dev secret: a development convenience, never a
/// production route.
pub(crate) fn dev_token_router(secret: Arc<String>) -> Router {
    Router::new().route("/dev/token", post(dev_token)).with_state(secret)
}

async fn dev_token(
    State(secret): State<Arc<String>>,
    Json(request): Json<DevTokenRequest>,
) -> Response {
    if schemas::UserId::new(request.sub.as_str()).is_err() {
        let problem = serde_json::json!({
            "type": "urn:chat:problem:invalid_input", "title": "Unprocessable Entity",
            "status": 422, "detail": "sub: letters, digits, '.', '_', ':', '@' or '-', 1 to 128"
        });
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/problem+json")],
            problem.to_string(),
        )
            .into_response();
    }
    match auth::mint_hs256(
        secret.as_bytes(),
        &request.sub,
        request.name.as_deref(),
        request.service,
        86_400,
    ) {
        Ok(token) => Json(serde_json::json!({ "token": token })).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
