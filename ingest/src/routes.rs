//! The HTTP API under `/v1`, plus health endpoints.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use schemas::MessageId;
use schemas::http::{
    EditMessageRequest, HistoryQuery, InboxCursor, InboxPage, InboxQuery, MarkReadRequest, Me,
    MessagePage, OpenConversationRequest, ReportRequest, SendMessageRequest,
};
use schemas::limits::Invalid;

use crate::error::{IngestError, problem_response};
use crate::extract::{Authenticated, JsonBody, QueryParams, parse_conversation};
use crate::service::MessageDraft;
use crate::state::IngestState;
use crate::uploads;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// The HTTP API, ready to serve or to merge with the WebSocket routes.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/v1/jobs/{job_id}/conversation", put(open_conversation))
        .route("/v1/conversations", get(inbox))
        .route("/v1/conversations/{id}", get(conversation))
        .route("/v1/conversations/{id}/block", put(block).delete(unblock))
        .route("/v1/conversations/{id}/messages", post(send_message).get(history))
        .route(
            "/v1/conversations/{id}/messages/{message_id}",
            patch(edit_message).delete(delete_message),
        )
        .route("/v1/conversations/{id}/messages/{message_id}/report", post(report_message))
        .route("/v1/conversations/{id}/read", post(mark_read))
        .route("/v1/conversations/{id}/attachments", post(uploads::upload))
        .route("/v1/conversations/{id}/attachments/{upload_id}", get(uploads::download))
        .route("/v1/conversations/{id}/attachments/{upload_id}/thumbnail", get(uploads::thumbnail))
        .route("/v1/me", get(me))
        .route("/v1/openapi.json", get(openapi))
        .merge(crate::push::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::trace::propagate))
        .with_state(state)
}

async fn open_conversation(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(job_id): Path<String>,
    JsonBody(request): JsonBody<OpenConversationRequest>,
) -> Result<Response, IngestError> {
    let (record, created) = state.ingest.open_conversation(&caller, &job_id, request).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(record.to_http())).into_response())
}

async fn conversation(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, IngestError> {
    let conversation = state.ingest.conversation_for(&caller, parse_conversation(&id)?).await?;
    Ok(Json(conversation).into_response())
}

async fn block(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, IngestError> {
    let answer = state.ingest.set_blocked(&caller, parse_conversation(&id)?, true).await?;
    Ok(Json(answer).into_response())
}

async fn unblock(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, IngestError> {
    let answer = state.ingest.set_blocked(&caller, parse_conversation(&id)?, false).await?;
    Ok(Json(answer).into_response())
}

async fn send_message(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SendMessageRequest>,
) -> Result<Response, IngestError> {
    let draft = MessageDraft {
        text: request.text,
        message_type: request.message_type,
        attachment: request.attachment,
        idempotency_key: request.idempotency_key,
    };
    let sent = state.ingest.send_message(&caller, parse_conversation(&id)?, draft).await?;
    let status = if sent.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(sent)).into_response())
}

/// `{id}/messages/{message_id}`: both ids of the path, checked.
fn message_path(
    id: &str,
    message_id: &str,
) -> Result<(schemas::ConversationId, MessageId), IngestError> {
    let message_id = message_id
        .parse::<u64>()
        .ok()
        .and_then(|id| MessageId::new(id).ok())
        .ok_or_else(|| Invalid::new("message_id", "not a message id"))?;
    Ok((parse_conversation(id)?, message_id))
}

async fn edit_message(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path((id, message_id)): Path<(String, String)>,
    JsonBody(request): JsonBody<EditMessageRequest>,
) -> Result<Response, IngestError> {
    let (conversation, message_id) = message_path(&id, &message_id)?;
    let accepted =
        state.ingest.edit_message(&caller, conversation, message_id, request.text).await?;
    Ok(Json(accepted).into_response())
}

async fn delete_message(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Response, IngestError> {
    let (conversation, message_id) = message_path(&id, &message_id)?;
    state.ingest.delete_message(&caller, conversation, message_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn report_message(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path((id, message_id)): Path<(String, String)>,
    JsonBody(request): JsonBody<ReportRequest>,
) -> Result<Response, IngestError> {
    let (conversation, message_id) = message_path(&id, &message_id)?;
    let accepted = state.ingest.report_message(&caller, conversation, message_id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

async fn mark_read(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<MarkReadRequest>,
) -> Result<Response, IngestError> {
    let mark = state.ingest.mark_read(&caller, parse_conversation(&id)?, request.up_to).await?;
    Ok(Json(mark).into_response())
}

fn page_size(limit: Option<usize>, default: usize) -> Result<usize, IngestError> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        Some(_) => Err(Invalid::new("limit", format!("must be 1 to {MAX_PAGE}")).into()),
    }
}

async fn history(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Response, IngestError> {
    let conversation = parse_conversation(&id)?;
    let limit = page_size(query.limit, DEFAULT_PAGE)?;
    state.ingest.authorize(&caller, conversation).await?;
    let read_model = state.ingest.read_model();
    let mut messages =
        read_model.messages(conversation, MessageId::ZERO, query.before, limit + 1, true).await?;
    let more = messages.len() > limit;
    if more {
        messages.remove(0);
    }
    let view = read_model.view(conversation).await?;
    let page = MessagePage {
        next_before: if more { messages.first().map(|message| message.id) } else { None },
        messages: messages
            .iter()
            .map(|message| {
                let is_read = view.as_ref().is_some_and(|view| view.is_read(message));
                message.to_http(is_read)
            })
            .collect(),
    };
    Ok(Json(page).into_response())
}

async fn inbox(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    QueryParams(query): QueryParams<InboxQuery>,
) -> Result<Response, IngestError> {
    let limit = page_size(query.limit, 20)?;
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(
            InboxCursor::decode(text)
                .ok_or_else(|| Invalid::new("cursor", "not a cursor this API returned"))?,
        ),
    };
    let mut views = state.ingest.read_model().inbox(&caller.user_id, cursor, limit + 1).await?;
    let more = views.len() > limit;
    views.truncate(limit);
    let page = InboxPage {
        next_cursor: if more {
            views.last().map(|view| view.inbox_cursor().encode())
        } else {
            None
        },
        items: views.iter().filter_map(|view| view.inbox_item(&caller.user_id)).collect(),
    };
    Ok(Json(page).into_response())
}

async fn me(Authenticated(caller): Authenticated) -> Json<Me> {
    Json(Me { user_id: caller.user_id, name: caller.name, service: caller.service })
}

async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

async fn method_not_allowed() -> Response {
    problem_response(&schemas::http::Problem {
        problem_type: "urn:chat:problem:method_not_allowed".into(),
        title: "Method Not Allowed".into(),
        status: 405,
        detail: "this resource does not support that method".into(),
        instance: None,
    })
}

/// The answer for paths no route knows, as problem+json.
pub async fn not_found() -> Response {
    IngestError::NotFound("no such resource".into()).into_response()
}
