//! The HTTP client pushes and webhooks go out on: hyper with rustls on the `ring` provider
//! and the system's CA certificates. Its own TLS, so that the light default build (which
//! `chat dev` is) reaches the public push services too, without the AWS-LC C build the
//! cluster's S3 client brings. It follows no redirect: a redirect would lead a request
//! where the allow-list did not look.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one request may take, from connecting to the end of the answer's head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most of an answer's body read (to keep the connection for the next request); the rest
/// is dropped with the connection.
const MAX_ANSWER: usize = 64 * 1024;

/// What a receiver answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

#[derive(Clone)]
pub struct Outbound {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbound")
    }
}

impl Outbound {
    pub fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(Arc::clone(&provider)) {
            Ok(builder) => builder,
            Err(error) => {
                tracing::warn!(%error, "no CA certificates on this system: pushes and webhooks over https will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map(|config| {
                        config
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth()
                    });
                match config {
                    Ok(config) => {
                        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
                    }
                    Err(error) => {
                        unreachable!("ring supports the default protocol versions: {error}")
                    }
                }
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        Self { client: Client::builder(TokioExecutor::new()).build(connector) }
    }

    /// Sends `request`; an error says why no answer came (refused, timed out, TLS).
    pub async fn send(&self, request: Request<Vec<u8>>) -> Result<Answer, String> {
        let request = request.map(|body| Full::new(Bytes::from(body)));
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))?
            .map_err(|error| error.to_string())?;
        let (parts, body) = response.into_parts();
        // Read what a polite receiver sends (the connection is then reused); a long or slow
        // body is cut off with the connection.
        let _ =
            tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_ANSWER).collect()).await;
        Ok(Answer { status: parts.status, headers: parts.headers })
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Self::new()
    }
}
