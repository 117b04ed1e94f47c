//! The one error type of the write path and the HTTP API, and its problem+json rendering.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemas::http::Problem;
use schemas::limits::Invalid;
use schemas::native::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    InvalidJson(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The other participant blocked the conversation.
    #[error("{0}")]
    Blocked(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// An upload whose bytes are of a type that cannot be sent.
    #[error("{0}")]
    UnsupportedType(String),
    /// Over a per-user rate or limit (what, e.g. "sends"); retry after the given time.
    #[error("too many {0}; retry in {wait} ms", wait = .1.as_millis())]
    RateLimited(&'static str, std::time::Duration),
    /// Over a storage quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// This node is at a limit of its own (memory for uploads, previews); retrying soon is
    /// safe, and the message says which.
    #[error("{0}")]
    Busy(String),
    /// Log or store trouble; the message is for logs, not for clients.
    #[error("{0}")]
    Unavailable(String),
}

impl IngestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidJson(_) => ErrorCode::InvalidJson,
            Self::Invalid(_) => ErrorCode::InvalidInput,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Blocked(_) => ErrorCode::Blocked,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::UnsupportedType(_) => ErrorCode::UnsupportedType,
            Self::RateLimited(..) => ErrorCode::RateLimited,
            Self::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            Self::Busy(_) | Self::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Blocked(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) | Self::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the client is told. Internal failures are described generically; their
    /// details go to the log once, where [`IntoResponse`] renders them.
    pub fn public_detail(&self) -> String {
        match self {
            Self::Unavailable(_) => "the chat backend is unavailable; retrying is safe".into(),
            other => other.to_string(),
        }
    }

    /// Logs the cause of an internal failure (once per failed request or frame; every path
    /// that answers with an [`IngestError`] calls this, the HTTP one in [`IntoResponse`]).
    pub fn log_if_internal(&self) {
        if let Self::Unavailable(cause) = self {
            tracing::error!(cause, "request failed on the backend");
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            problem_type: format!("urn:chat:problem:{}", self.code().as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.public_detail(),
            instance: None,
        }
    }
}

impl From<viewstore::StoreError> for IngestError {
    fn from(error: viewstore::StoreError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<eventlog::LogError> for IngestError {
    fn from(error: eventlog::LogError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<keyed_writer::WriteError> for IngestError {
    fn from(error: keyed_writer::WriteError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<auth::AuthError> for IngestError {
    fn from(error: auth::AuthError) -> Self {
        Self::Unauthenticated(error.to_string())
    }
}

/// Renders any [`Problem`] as an RFC 9457 response; every route of every role answers its
/// problems through this, so that they all carry the same headers.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let mut response = problem_response(&self.problem());
        if let Self::RateLimited(_, wait) = &self {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
