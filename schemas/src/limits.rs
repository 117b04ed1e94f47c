//! Size limits and the validation of values that come from outside.
//!
//! The limits are part of the contract (documented in the generated schemas), so they live
//! here next to the types rather than in the services that enforce them.

use crate::events::{Attachment, MessageType};

/// Message text, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Display names, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// What a reporter may say about a report, in bytes.
pub const MAX_REPORT_DETAIL_BYTES: usize = 1000;
/// Job ids, in bytes.
pub const MAX_JOB_ID_BYTES: usize = 128;
/// Client-generated idempotency keys, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;
/// Attachment URLs, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Attachment MIME types, in bytes.
pub const MAX_MIME_BYTES: usize = 255;
/// Attachments the chat will describe (the file itself lives in object storage).
pub const MAX_ATTACHMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Longest side of an image an attachment may describe, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 100_000;

/// An upload id: what the server mints (32 lowercase hex digits), nothing else, so it is
/// safe in an object path.
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
/// Characters of the last message kept in a conversation summary.
pub const SUMMARY_PREVIEW_CHARS: usize = 120;

/// Why a value was refused; `field` names the offending member as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

pub fn display_name(field: &'static str, name: &str) -> Result<(), Invalid> {
    if name.trim().is_empty() {
        return Err(Invalid::new(field, "must not be blank"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Invalid::new(field, format!("must be at most {MAX_NAME_BYTES} bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(())
}

pub fn job_id(job: &str) -> Result<(), Invalid> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if job.is_empty() || job.len() > MAX_JOB_ID_BYTES || !job.chars().all(allowed) {
        return Err(Invalid::new(
            "job_id",
            format!("must be 1 to {MAX_JOB_ID_BYTES} letters, digits, '.', '_', ':' or '-'"),
        ));
    }
    Ok(())
}

pub fn idempotency_key(key: &str) -> Result<(), Invalid> {
    let printable = |c: char| c.is_ascii_graphic();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.chars().all(printable) {
        return Err(Invalid::new(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} printable ASCII characters"),
        ));
    }
    Ok(())
}

/// Checks the body of a message before it is appended: text within its limit, the
/// attachment the type demands, and nothing the type forbids.
/// A report's free text: bounded, without control characters but line breaks.
pub fn report_detail(detail: &str) -> Result<(), Invalid> {
    if detail.len() > MAX_REPORT_DETAIL_BYTES {
        return Err(Invalid::new(
            "detail",
            format!("is {} bytes; the limit is {MAX_REPORT_DETAIL_BYTES}", detail.len()),
        ));
    }
    if detail.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r')) {
        return Err(Invalid::new("detail", "must not contain control characters"));
    }
    Ok(())
}

pub fn message(
    message_type: MessageType,
    text: &str,
    attachment: Option<&Attachment>,
) -> Result<(), Invalid> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Invalid::new(
            "text",
            format!("is {} bytes; the limit is {MAX_TEXT_BYTES}", text.len()),
        ));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(Invalid::new("text", "must not contain control characters"));
    }
    match (message_type, attachment) {
        (MessageType::Text | MessageType::System, Some(_)) => {
            Err(Invalid::new("attachment", "only IMAGE and FILE messages carry an attachment"))
        }
        (MessageType::Text | MessageType::System, None) if text.trim().is_empty() => {
            Err(Invalid::new("text", "must not be blank"))
        }
        (MessageType::Image | MessageType::File, None) => {
            Err(Invalid::new("attachment", "IMAGE and FILE messages need an attachment"))
        }
        (MessageType::Image | MessageType::File, Some(attachment)) => {
            self::attachment(message_type, attachment)
        }
        _ => Ok(()),
    }
}

fn attachment(message_type: MessageType, attachment: &Attachment) -> Result<(), Invalid> {
    let url = attachment.url.as_str();
    // An upload's description comes from the server, which points at itself.
    let uploaded = attachment.upload_id.is_some() && url.starts_with("/v1/conversations/");
    for (field, url) in [
        ("attachment.url", Some(url)),
        ("attachment.thumbnail_url", attachment.thumbnail_url.as_deref()),
    ] {
        let Some(url) = url else { continue };
        if url.len() > MAX_URL_BYTES {
            return Err(Invalid::new(field, format!("must be at most {MAX_URL_BYTES} bytes")));
        }
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://") || uploaded;
        if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid::new(field, "must be an http or https URL"));
        }
    }
    display_name("attachment.name", &attachment.name)?;
    let mime = attachment.mime_type.as_str();
    let mime_ok = mime.len() <= MAX_MIME_BYTES
        && mime.split_once('/').is_some_and(|(kind, sub)| !kind.is_empty() && !sub.is_empty())
        && mime.chars().all(|c| c.is_ascii_graphic());
    if !mime_ok {
        return Err(Invalid::new("attachment.mime_type", "must be a MIME type such as image/png"));
    }
    if message_type == MessageType::Image && !mime.starts_with("image/") {
        return Err(Invalid::new("attachment.mime_type", "an IMAGE needs an image/* type"));
    }
    for (field, pixels) in
        [("attachment.width", attachment.width), ("attachment.height", attachment.height)]
    {
        if pixels.is_some_and(|pixels| pixels == 0 || pixels > MAX_IMAGE_SIDE) {
            return Err(Invalid::new(field, format!("must be 1 to {MAX_IMAGE_SIDE} pixels")));
        }
    }
    if let Some(id) = &attachment.upload_id
        && !valid_upload_id(id)
    {
        return Err(Invalid::new("attachment.upload_id", "not an id an upload answered with"));
    }
    if attachment.size.is_some_and(|size| size > MAX_ATTACHMENT_BYTES) {
        return Err(Invalid::new(
            "attachment.size",
            format!("must be at most {MAX_ATTACHMENT_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The summary's preview of a message: its text, or for a file sent without text the
/// file's name after a paperclip.
pub fn message_preview(text: &str, attachment: Option<&Attachment>) -> String {
    match attachment {
        Some(attachment) if text.trim().is_empty() => preview(&format!("📎 {}", attachment.name)),
        _ => preview(text),
    }
}

/// The first [`SUMMARY_PREVIEW_CHARS`] characters of `text`, cut at a character boundary,
/// with an ellipsis when something was cut.
pub fn preview(text: &str) -> String {
    let mut chars = text.char_indices();
    match chars.nth(SUMMARY_PREVIEW_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(url: &str, mime: &str) -> Attachment {
        Attachment {
            url: url.into(),
            name: "a.png".into(),
            mime_type: mime.into(),
            size: Some(10),
            ..Attachment::default()
        }
    }

    #[test]
    fn text_is_limited_in_bytes_not_characters() {
        let at_limit = "é".repeat(MAX_TEXT_BYTES / 2);
        assert!(message(MessageType::Text, &at_limit, None).is_ok());
        let over = format!("{at_limit}x");
        let error = message(MessageType::Text, &over, None).unwrap_err();
        assert_eq!(error.field, "text");
    }

    #[test]
    fn types_demand_and_forbid_attachments() {
        let png = image("https://cdn.example/a.png", "image/png");
        assert!(message(MessageType::Text, "hi", Some(&png)).is_err());
        assert!(message(MessageType::Text, "  ", None).is_err());
        assert!(message(MessageType::Image, "", None).is_err());
        assert!(message(MessageType::Image, "", Some(&png)).is_ok());
        let pdf = image("https://cdn.example/a.pdf", "application/pdf");
        assert!(message(MessageType::Image, "", Some(&pdf)).is_err());
        assert!(message(MessageType::File, "contract", Some(&pdf)).is_ok());
        let script = image("javascript:alert(1)", "image/png");
        assert_eq!(
            message(MessageType::Image, "", Some(&script)).unwrap_err().field,
            "attachment.url"
        );
    }

    #[test]
    fn previews_cut_long_text_at_a_character_boundary() {
        assert_eq!(preview("short"), "short");
        let file = image("https://files.example/a.png", "image/png");
        assert_eq!(message_preview("", Some(&file)), "📎 a.png");
        assert_eq!(message_preview("look", Some(&file)), "look");
        let long = "ü".repeat(SUMMARY_PREVIEW_CHARS + 5);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), SUMMARY_PREVIEW_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn job_ids_and_keys_are_plain_and_bounded() {
        assert!(job_id("job-2024:17").is_ok());
        assert!(job_id("../etc").is_err());
        assert!(job_id("").is_err());
        assert!(idempotency_key("0f4c-11").is_ok());
        assert!(idempotency_key("has space").is_err());
        assert!(idempotency_key(&"k".repeat(129)).is_err());
    }
}
