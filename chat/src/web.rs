//! The web app, and the development-only token endpoint it signs in with.

use std::io::Write;
use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flate2::Compression;
use flate2::write::GzEncoder;
use ingest::IngestError;
use schemas::http::Problem;
use schemas::limits::Invalid;
use schemas::native::ErrorCode;
use schemas::object::JsonObject;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The static web app: compressed once at start-up, revalidated by ETag, and under a
/// content security policy that lets the page run only its own script.
pub(crate) fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, (path, asset)| {
        router.route(path, get(move |headers: HeaderMap| async move { asset.serve(&headers) }))
    })
}

/// Only the page's own script, styles and connections; images also from the object URLs
/// of downloaded attachments and the stylesheet's inline icons.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

const SCRIPT: &str = "text/javascript; charset=utf-8";

/// Each asset by its path. The app's scripts share one scope and run in the order
/// index.html lists them; the client's are ES modules. The service worker comes last: it
/// is written from the others (see `service_worker`).
static ASSETS: LazyLock<Vec<(&'static str, Asset)>> = LazyLock::new(|| {
    let mut assets = vec![
        ("/", Asset::new("text/html; charset=utf-8", include_str!("../../web/index.html"))),
        ("/app.css", Asset::new("text/css; charset=utf-8", include_str!("../../web/app.css"))),
        ("/app.js", Asset::new(SCRIPT, include_str!("../../web/app.js"))),
        ("/conversation.js", Asset::new(SCRIPT, include_str!("../../web/conversation.js"))),
        ("/attachments.js", Asset::new(SCRIPT, include_str!("../../web/attachments.js"))),
        ("/outbox.js", Asset::new(SCRIPT, include_str!("../../web/outbox.js"))),
        ("/message-actions.js", Asset::new(SCRIPT, include_str!("../../web/message-actions.js"))),
        ("/push-store.js", Asset::new(SCRIPT, include_str!("../../web/push-store.js"))),
        ("/push.js", Asset::new(SCRIPT, include_str!("../../web/push.js"))),
        ("/socket.js", Asset::new(SCRIPT, include_str!("../../web/socket.js"))),
        ("/main.js", Asset::new(SCRIPT, include_str!("../../web/main.js"))),
        ("/client-global.js", Asset::new(SCRIPT, include_str!("../../web/client-global.js"))),
        // The typed client, as compiled and checked in (web/client/test/run holds it to
        // the sources).
        ("/client/index.js", Asset::new(SCRIPT, include_str!("../../web/client/build/index.js"))),
        ("/client/client.js", Asset::new(SCRIPT, include_str!("../../web/client/build/client.js"))),
        ("/client/outbox.js", Asset::new(SCRIPT, include_str!("../../web/client/build/outbox.js"))),
    ];
    let worker = service_worker(&assets);
    assets.push(("/sw.js", worker));
    assets
});

/// web/sw.js after the two constants it takes from here: the paths of the app shell it
/// caches, and a digest of their contents as its cache's version. Any change to the app
/// changes the worker's bytes, so browsers install it afresh and it caches the new shell.
fn service_worker(shell: &[(&'static str, Asset)]) -> Asset {
    let paths: Vec<&str> = shell.iter().map(|(path, _)| *path).collect();
    let mut digest = Sha256::new();
    for (_, asset) in shell {
        digest.update(asset.etag.as_bytes());
    }
    let version: String = digest.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let paths = serde_json::to_string(&paths).unwrap_or_else(|_| "[]".into());
    let source = format!(
        "// Written by chat/src/web.rs: the app shell's paths and its version.\n\
         const SHELL = {paths};\nconst SHELL_VERSION = \"{version}\";\n{}",
        include_str!("../../web/sw.js")
    );
    Asset::new(SCRIPT, source)
}

struct Asset {
    content_type: &'static str,
    plain: Bytes,
    gzip: Option<Bytes>,
    etag: String,
}

impl Asset {
    fn new(content_type: &'static str, contents: impl Into<Bytes>) -> Self {
        let plain: Bytes = contents.into();
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let gzip = encoder.write_all(&plain).and_then(|()| encoder.finish()).ok().map(Bytes::from);
        let digest = Sha256::digest(&plain);
        let etag = format!(
            "\"{}\"",
            digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()
        );
        Self { content_type, plain, gzip, etag }
    }

    /// 304 when the browser holds this version; gzip when it takes gzip. `no-cache` means
    /// "ask first", so a new release is picked up by the next load.
    fn serve(&self, request: &HeaderMap) -> Response {
        let etag = HeaderValue::from_str(&self.etag).unwrap_or(HeaderValue::from_static("\"\""));
        let common = [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, etag),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        ];
        let held = request
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == self.etag));
        if held {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        let content_type = (header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        let takes_gzip =
            request.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).is_some_and(
                |accepted| accepted.split(',').any(|coding| coding.trim().starts_with("gzip")),
            );
        match &self.gzip {
            Some(gzip) if takes_gzip => {
                let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                (common, [content_type, encoding], gzip.clone()).into_response()
            }
            _ => (common, [content_type], self.plain.clone()).into_response(),
        }
    }
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
        Err(error) => {
            // The cause is for the operator; the caller learns only that minting failed.
            tracing::error!(%error, "minting a dev token failed");
            ingest::problem_response(&Problem {
                problem_type: format!("urn:chat:problem:{}", ErrorCode::Internal.as_str()),
                title: "Internal Server Error".into(),
                status: StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
                detail: "the token could not be minted".into(),
                instance: None,
            })
        }
    }
}
