//! Where uploads are kept: any `object_store` backend, the local filesystem for `chat dev`
//! and S3-compatible storage for the cluster. One conversation's files live under one
//! prefix, so they can be listed, counted and deleted together; two small indexes make the
//! per-user quota and the sweeper of unsent uploads a listing of one prefix each:
//!
//! ```text
//! attachments/{conversation}/{upload id}/original    the bytes kept (images without metadata)
//! attachments/{conversation}/{upload id}/thumbnail   previewed images only
//! attachments/{conversation}/{upload id}/meta.json   written last: its presence means complete
//! by-user/{uploader}/{conversation}.{upload id}.{bytes}   empty: what each user stores
//! unsent/{conversation}/{upload id}   its uploader and size; removed when a message carries it
//! ```

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
#[cfg(feature = "s3")]
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
#[cfg(feature = "s3")]
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use schemas::events::Attachment;
use schemas::{ConversationId, UserId};
use serde::{Deserialize, Serialize};

use crate::inspect::{self, Refusal, Sniffed, Thumbnail};
use crate::names;
use crate::strip;

mod housekeeping;
mod previews;
#[cfg(test)]
mod tests;

pub use housekeeping::{Quotas, Swept};
pub use previews::Previews;

/// The store could not be reached or refused an operation.
#[derive(Debug, thiserror::Error)]
#[error("object storage: {0}")]
pub struct StoreError(String);

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

/// Why a file was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}")]
    OverQuota(String),
    /// Previews are all taken for now: try again in a moment.
    #[error("too many images are being processed; try again in a moment")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which rendition of an upload to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    Original,
    Thumbnail,
}

/// A file read back: its bytes as they come from the store, and how to label them.
pub struct Download {
    pub body: BoxStream<'static, Result<Bytes, StoreError>>,
    pub size: u64,
    pub mime_type: String,
    pub name: String,
    /// Whether a browser may show it in the page: previewed images only (an image too large
    /// to preview here is not decoded in anyone's page either).
    pub inline: bool,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .field("mime_type", &self.mime_type)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What `meta.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    attachment: Attachment,
    thumbnail_type: Option<String>,
    uploader: UserId,
}

/// The uploads of every conversation.
/// `s3://bucket[/prefix]` (`rest` is what follows the scheme).
#[cfg(feature = "s3")]
fn open_s3(location: &str, rest: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StoreError(format!("{location}: the bucket is missing")));
    }
    let s3 = AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(failed)?;
    Ok(match prefix.trim_matches('/') {
        "" => Arc::new(s3),
        prefix => Arc::new(PrefixStore::new(s3, prefix)),
    })
}

#[cfg(not(feature = "s3"))]
fn open_s3(location: &str, _rest: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Err(StoreError(format!(
        "{location}: this build has no S3 client (build chat with `--features cluster`)"
    )))
}

#[derive(Debug, Clone)]
pub struct Attachments {
    store: Arc<dyn ObjectStore>,
    location: String,
    previews: Previews,
    quotas: Option<Quotas>,
}

impl Attachments {
    /// Opens `location`: `file:///absolute/directory` (created if missing) or
    /// `s3://bucket[/prefix]`, configured by the standard `AWS_*` variables
    /// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP` for a plain-HTTP endpoint); images are worked on within `previews`.
    pub fn open(location: &str, previews: Previews) -> Result<Self, StoreError> {
        let store: Arc<dyn ObjectStore> = if let Some(directory) = location.strip_prefix("file://")
        {
            std::fs::create_dir_all(directory).map_err(failed)?;
            Arc::new(LocalFileSystem::new_with_prefix(directory).map_err(failed)?)
        } else if let Some(rest) = location.strip_prefix("s3://") {
            open_s3(location, rest)?
        } else {
            return Err(StoreError(format!(
                "{location}: expected file:///directory or s3://bucket[/prefix]"
            )));
        };
        Ok(Self { store, location: location.to_owned(), previews, quotas: None })
    }

    /// Refuses uploads beyond `quotas`.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = Some(quotas);
        self
    }

    /// Where the files are (for banners and logs).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Sniffs and keeps `bytes` as `name`, sent by `uploader` into `conversation`; answers
    /// the description a message carries. Images are kept without their metadata, and get
    /// a thumbnail when they can be previewed.
    pub async fn save(
        &self,
        conversation: ConversationId,
        uploader: &UserId,
        name: &str,
        bytes: Bytes,
    ) -> Result<Attachment, SaveError> {
        let sniffed = inspect::sniff(&bytes)?;
        self.check_quotas(conversation, uploader, bytes.len() as u64).await?;
        let (kept, image) = match sniffed {
            Sniffed::Document { .. } => (bytes, None),
            Sniffed::Image { container, format, .. } => {
                let cleaned = self.previews.run(move || {
                    let cleaned = strip::strip(container, &bytes)
                        .map_err(|malformed| Refusal::BrokenImage(malformed.to_string()))?;
                    let header = inspect::header(&cleaned, format)?;
                    Ok((Bytes::from(cleaned), header))
                });
                let (cleaned, header) = cleaned.await?;
                let thumbnail = match header.preview_cost {
                    Some(cost) => self.previews.thumbnail(cleaned.clone(), format, cost).await?,
                    None => None,
                };
                (cleaned, Some((header, thumbnail)))
            }
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let size = kept.len() as u64;
        let folder = folder(conversation, &id);
        // The indexes first, so that whatever a crash leaves behind is found by the sweeper.
        self.index_upload(conversation, uploader, &id, size).await?;
        self.put(&folder.clone().join("original"), kept).await?;
        let mut attachment = Attachment {
            url: format!("/v1/conversations/{conversation}/attachments/{id}"),
            name: names::for_download(name, sniffed.mime_type()),
            mime_type: sniffed.mime_type().to_owned(),
            size: Some(size),
            upload_id: Some(id.clone()),
            ..Attachment::default()
        };
        let mut thumbnail_type = None;
        if let Some((header, thumbnail)) = image {
            attachment.width = Some(header.width);
            attachment.height = Some(header.height);
            if let Some(Thumbnail { bytes, mime_type }) = thumbnail {
                self.put(&folder.clone().join("thumbnail"), Bytes::from(bytes)).await?;
                thumbnail_type = Some(mime_type.to_owned());
                attachment.thumbnail_url =
                    Some(format!("/v1/conversations/{conversation}/attachments/{id}/thumbnail"));
            }
        }
        let meta =
            Meta { attachment: attachment.clone(), thumbnail_type, uploader: uploader.clone() };
        let meta = serde_json::to_vec(&meta).map_err(failed)?;
        self.put(&folder.join("meta.json"), Bytes::from(meta)).await?;
        Ok(attachment)
    }

    /// The description of a complete upload of `conversation`, if there is one.
    pub async fn describe(
        &self,
        conversation: ConversationId,
        upload_id: &str,
    ) -> Result<Option<Attachment>, StoreError> {
        Ok(self.meta(conversation, upload_id).await?.map(|meta| meta.attachment))
    }

    /// One rendition of a complete upload of `conversation`, if there is one, streamed from
    /// the store.
    pub async fn read(
        &self,
        conversation: ConversationId,
        upload_id: &str,
        rendition: Rendition,
    ) -> Result<Option<Download>, StoreError> {
        let Some(meta) = self.meta(conversation, upload_id).await? else { return Ok(None) };
        let inline = meta.thumbnail_type.is_some();
        let (file, mime_type) = match (rendition, meta.thumbnail_type) {
            (Rendition::Original, _) => ("original", meta.attachment.mime_type),
            (Rendition::Thumbnail, Some(mime_type)) => ("thumbnail", mime_type),
            (Rendition::Thumbnail, None) => return Ok(None),
        };
        let found = match self.store.get(&folder(conversation, upload_id).join(file)).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(failed(error)),
        };
        let size = found.meta.size;
        let body = found.into_stream().map_err(failed).boxed();
        Ok(Some(Download { body, size, mime_type, name: meta.attachment.name, inline }))
    }

    async fn meta(
        &self,
        conversation: ConversationId,
        upload_id: &str,
    ) -> Result<Option<Meta>, StoreError> {
        if !schemas::limits::valid_upload_id(upload_id) {
            return Ok(None);
        }
        let Some(bytes) = self.get(&folder(conversation, upload_id).join("meta.json")).await?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(failed)
    }

    async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.store.put(path, PutPayload::from_bytes(bytes)).await.map(drop).map_err(failed)
    }

    async fn get(&self, path: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.store.get(path).await {
            Ok(found) => found.bytes().await.map(Some).map_err(failed),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(failed(error)),
        }
    }

    /// Deletes `path`; one that is already gone is fine (sweeps and deletes repeat).
    async fn delete(&self, path: &Path) -> Result<(), StoreError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(failed(error)),
        }
    }
}

fn conversation_prefix(conversation: ConversationId) -> Path {
    Path::from("attachments").join(conversation.to_string())
}

fn folder(conversation: ConversationId, upload_id: &str) -> Path {
    conversation_prefix(conversation).join(upload_id)
}
