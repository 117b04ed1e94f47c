//! Extractors whose failures are problem+json like every other error of the API.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use schemas::ConversationId;
use schemas::limits::Invalid;
use schemas::object::JsonObject;
use serde::de::DeserializeOwned;

use crate::error::IngestError;
use crate::state::IngestState;

/// The caller, from `Authorization: Bearer <jwt>`.
pub(crate) struct Authenticated(pub(crate) auth::Caller);

impl FromRequestParts<IngestState> for Authenticated {
    type Rejection = IngestError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &IngestState,
    ) -> Result<Self, IngestError> {
        let verified = auth::find_http_token(&parts.headers)
            .and_then(|credentials| state.verifier.verify(credentials.token()));
        verified.map(Self).map_err(|error| {
            auth::metrics::count_refusal(&error);
            error.into()
        })
    }
}

/// A JSON body; malformed JSON, wrong types, unknown members and anything but an object
/// (serde would take an array for a struct) are `invalid_json`.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = IngestError;

    async fn from_request(request: Request, state: &S) -> Result<Self, IngestError> {
        match Json::<JsonObject<T>>::from_request(request, state).await {
            Ok(Json(JsonObject(value))) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> IngestError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return IngestError::TooLarge("request body over the limit".into());
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            IngestError::InvalidJson("expected Content-Type: application/json".into())
        }
        other => IngestError::InvalidJson(other.body_text()),
    }
}

/// Query parameters; a wrong type is `invalid_json` naming the parameter.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = IngestError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, IngestError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_problem(&rejection)),
        }
    }
}

fn query_problem(rejection: &QueryRejection) -> IngestError {
    IngestError::InvalidJson(rejection.body_text())
}

/// The conversation id in a route's path.
pub(crate) fn parse_conversation(text: &str) -> Result<ConversationId, IngestError> {
    text.parse()
        .map_err(|error| IngestError::Invalid(Invalid::new("conversation_id", format!("{error}"))))
}
