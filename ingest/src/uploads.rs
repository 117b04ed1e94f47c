//! Uploading and downloading attachments, participants only.
//!
//! `POST /v1/conversations/{id}/attachments?name=…` takes the file as the raw request body
//! (so a browser can report progress) and answers the [`Attachment`] a message then
//! carries. `GET …/attachments/{upload_id}` (and `/thumbnail`) serves it back so that it can
//! never run as script here: the sniffed type, `nosniff`, a sandboxing CSP, and
//! `Content-Disposition: attachment` for everything but images.

use attachments::{Rendition, SaveError};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use schemas::Attachment;
use schemas::http::UploadQuery;
use schemas::limits;

use crate::error::IngestError;
use crate::extract::{Authenticated, QueryParams, parse_conversation};
use crate::metrics::Limit;
use crate::state::IngestState;

pub(crate) async fn upload(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IngestError> {
    let conversation = parse_conversation(&id)?;
    let name = file_name(query.name.as_deref())?;
    let files = &state.files;
    let limit = files.limits.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit));
    }
    state.ingest.authorize(&caller, conversation).await?;
    let store = state.ingest.attachments()?;
    files.take_upload(&caller.user_id)?;
    // A body of unknown length may be as large as the limit.
    let _body_memory = files.reserve_body(declared.unwrap_or(limit as u64)).await?;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|error| {
        // The limit, or a body that stopped arriving in time.
        let error = error.into_inner();
        if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large(limit)
        } else {
            IngestError::InvalidJson(format!("the upload did not arrive whole: {error}"))
        }
    })?;
    let saved = store.save(conversation, &caller.user_id, &name, bytes).await;
    let attachment: Attachment = saved.map_err(|error| match error {
        SaveError::Refused(refusal) => IngestError::UnsupportedType(refusal.to_string()),
        SaveError::OverQuota(detail) => {
            crate::metrics::refused(Limit::FileQuota);
            IngestError::QuotaExceeded(detail)
        }
        SaveError::Busy => {
            crate::metrics::refused(Limit::PreviewMemory);
            IngestError::Busy(error.to_string())
        }
        SaveError::Store(error) => IngestError::Unavailable(error.to_string()),
    })?;
    crate::metrics::uploaded(attachment.size.unwrap_or_default());
    Ok((StatusCode::CREATED, Json(attachment)).into_response())
}

pub(crate) async fn download(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path((id, upload_id)): Path<(String, String)>,
) -> Result<Response, IngestError> {
    serve(&state, &caller, &id, &upload_id, Rendition::Original).await
}

pub(crate) async fn thumbnail(
    State(state): State<IngestState>,
    Authenticated(caller): Authenticated,
    Path((id, upload_id)): Path<(String, String)>,
) -> Result<Response, IngestError> {
    serve(&state, &caller, &id, &upload_id, Rendition::Thumbnail).await
}

async fn serve(
    state: &IngestState,
    caller: &auth::Caller,
    id: &str,
    upload_id: &str,
    rendition: Rendition,
) -> Result<Response, IngestError> {
    let conversation = parse_conversation(id)?;
    state.ingest.authorize(caller, conversation).await?;
    let ticket = state.files.start_download(&caller.user_id)?;
    let found = state.ingest.attachments()?.read(conversation, upload_id, rendition).await;
    let Some(file) = found.map_err(|error| IngestError::Unavailable(error.to_string()))? else {
        return Err(IngestError::NotFound(format!("no attachment {upload_id} here")));
    };
    let content_type = if file.mime_type.starts_with("text/") {
        format!("{}; charset=utf-8", file.mime_type)
    } else {
        file.mime_type.clone()
    };
    // Previewed images are shown in the page; anything else is a download.
    let disposition = if file.inline { "inline" } else { "attachment" };
    let headers = [
        (header::CONTENT_TYPE, value(&content_type)),
        (header::CONTENT_LENGTH, HeaderValue::from(file.size)),
        (header::CONTENT_DISPOSITION, value(&format!("{disposition}; {}", filename(&file.name)))),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        // An upload never changes; only its participants may see it.
        (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable")),
    ];
    // Streamed as the store gives it; the ticket is counted out when the body is dropped,
    // sent or abandoned (the listener closes connections whose peer stops reading).
    let body = file.body.map(move |chunk| {
        let _counted = &ticket;
        chunk.map_err(std::io::Error::other)
    });
    Ok((headers, Body::from_stream(body)).into_response())
}

fn too_large(limit: usize) -> IngestError {
    IngestError::TooLarge(format!("uploads are at most {limit} bytes"))
}

/// The name shown for an upload: the last path segment of what the client called it (a
/// browser sends only the base name; a path is never kept), `file` when absent.
fn file_name(given: Option<&str>) -> Result<String, IngestError> {
    let base = given.unwrap_or("file").rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let name = if base.is_empty() { "file" } else { base };
    limits::display_name("name", name)?;
    Ok(name.to_owned())
}

/// `filename*=UTF-8''…` (RFC 6266 / 8187): every byte outside the unreserved set escaped,
/// so no name can break out of the header.
fn filename(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("filename*=UTF-8''{encoded}")
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_told_apart_from_one_cut_short() {
        // A body of unknown length (chunked), so the Content-Length check cannot catch it.
        let chunks =
            futures_util::stream::iter((0..2).map(|_| Ok::<_, std::io::Error>(vec![0_u8; 600])));
        let error = axum::body::to_bytes(Body::from_stream(chunks), 1000).await.unwrap_err();
        assert!(error.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some());
    }

    #[test]
    fn names_lose_their_path_and_headers_cannot_be_broken() {
        assert_eq!(file_name(Some("C:\\Users\\ana\\plan.pdf")).unwrap(), "plan.pdf");
        assert_eq!(file_name(Some("../../etc/passwd")).unwrap(), "passwd");
        assert_eq!(file_name(None).unwrap(), "file");
        assert_eq!(file_name(Some("dir/")).unwrap(), "file");
        assert_eq!(filename("a b\";\r\nx.png"), "filename*=UTF-8''a%20b%22%3B%0D%0Ax.png");
        assert_eq!(filename("Ωmega.txt"), "filename*=UTF-8''%CE%A9mega.txt");
    }
}
