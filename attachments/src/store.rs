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
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use schemas::events::Attachment;
use schemas::{ConversationId, UserId};
use serde::{Deserialize, Serialize};

use crate::budget::{Budget, Refused};
use crate::inspect::{self, Refusal, Sniffed, Thumbnail};
use crate::names;
use crate::strip;
use crate::workers::Workers;

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

/// What an `unsent` marker holds: enough to undo the upload's `by-user` entry even when a
/// node died before its description was written.
#[derive(Debug, Serialize, Deserialize)]
struct Unsent {
    uploader: UserId,
    bytes: u64,
}

/// How much one conversation and one user may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub per_conversation: u64,
    pub per_user: u64,
}

/// What image work (stripping, measuring, decoding previews) may take from the process.
#[derive(Debug, Clone)]
pub struct Previews {
    /// Bytes every decode in flight reserves from.
    memory: Budget,
    /// Decodes at once (each takes a core until it is done).
    slots: Arc<tokio::sync::Semaphore>,
    /// The threads all image work runs on, one per slot.
    workers: Arc<Workers>,
    /// How long an upload waits for memory and a slot before it is told to come back.
    patience: Duration,
}

impl Previews {
    /// Decodes within `memory` bytes, on half the process's cores (at least one).
    pub fn new(memory: u64, patience: Duration) -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let slots = cores.div_ceil(2);
        Ok(Self {
            memory: Budget::new(memory),
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            workers: Arc::new(Workers::start(slots, "chat-images")?),
            patience,
        })
    }

    /// Runs image work on the image threads.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
    ) -> Result<T, SaveError> {
        let done = self.workers.run(work).await;
        let done = done.map_err(|_| StoreError("inspecting the file failed".into()))?;
        Ok(done?)
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub uploads: u64,
    pub bytes: u64,
}

/// The uploads of every conversation.
#[derive(Debug, Clone)]
pub struct Attachments {
    store: Arc<dyn ObjectStore>,
    location: String,
    previews: Previews,
    quotas: Option<Quotas>,
}

/// Defaults for a store opened without settings (tests, tools): 256 MiB of previews.
const DEFAULT_PREVIEW_MEMORY: u64 = 256 << 20;

impl Attachments {
    /// Opens `location`: `file:///absolute/directory` (created if missing) or
    /// `s3://bucket[/prefix]`, configured by the standard `AWS_*` variables
    /// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP` for a plain-HTTP endpoint).
    pub fn open(location: &str) -> Result<Self, StoreError> {
        let store: Arc<dyn ObjectStore> = if let Some(directory) = location.strip_prefix("file://")
        {
            std::fs::create_dir_all(directory).map_err(failed)?;
            Arc::new(LocalFileSystem::new_with_prefix(directory).map_err(failed)?)
        } else if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError(format!("{location}: the bucket is missing")));
            }
            let s3 =
                AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(failed)?;
            match prefix.trim_matches('/') {
                "" => Arc::new(s3),
                prefix => Arc::new(PrefixStore::new(s3, prefix)),
            }
        } else {
            return Err(StoreError(format!(
                "{location}: expected file:///directory or s3://bucket[/prefix]"
            )));
        };
        let previews =
            Previews::new(DEFAULT_PREVIEW_MEMORY, Duration::from_secs(20)).map_err(failed)?;
        Ok(Self { store, location: location.to_owned(), previews, quotas: None })
    }

    /// Decodes previews within `previews`.
    pub fn with_previews(mut self, previews: Previews) -> Self {
        self.previews = previews;
        self
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
                    Some(cost) => self.preview(cleaned.clone(), format, cost).await?,
                    None => None,
                };
                (cleaned, Some((header, thumbnail)))
            }
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let size = kept.len() as u64;
        let folder = folder(conversation, &id);
        // The indexes first, so that whatever a crash leaves behind is found by the sweeper.
        let marker = Unsent { uploader: uploader.clone(), bytes: size };
        let marker = serde_json::to_vec(&marker).map_err(failed)?;
        self.put(&unsent(conversation, &id), Bytes::from(marker)).await?;
        self.put(&by_user(uploader, conversation, &id, size), Bytes::new()).await?;
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

    /// A thumbnail, decoded within the preview budget; `None` when the image needs more
    /// memory than the whole budget.
    async fn preview(
        &self,
        bytes: Bytes,
        format: image::ImageFormat,
        cost: u64,
    ) -> Result<Option<Thumbnail>, SaveError> {
        let previews = &self.previews;
        let reserved = match previews.memory.reserve(cost, previews.patience).await {
            Ok(reserved) => reserved,
            Err(Refused::LargerThanBudget { .. }) => return Ok(None),
            Err(Refused::Busy(_)) => return Err(SaveError::Busy),
        };
        let slot =
            tokio::time::timeout(previews.patience, Arc::clone(&previews.slots).acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or(SaveError::Busy)?;
        let thumbnail = previews.run(move || {
            let _held = (reserved, slot);
            inspect::thumbnail(&bytes, format, cost)
        });
        Ok(Some(thumbnail.await?))
    }

    async fn check_quotas(
        &self,
        conversation: ConversationId,
        uploader: &UserId,
        adding: u64,
    ) -> Result<(), SaveError> {
        let Some(quotas) = self.quotas else { return Ok(()) };
        let kept = self.sizes(&conversation_prefix(conversation)).await?;
        if kept.saturating_add(adding) > quotas.per_conversation {
            return Err(SaveError::OverQuota(format!(
                "this conversation keeps at most {} bytes of files ({kept} kept)",
                quotas.per_conversation
            )));
        }
        let mut entries = self.store.list(Some(&Path::from("by-user").join(uploader.as_str())));
        let mut kept = 0_u64;
        while let Some(entry) = entries.try_next().await.map_err(failed)? {
            kept =
                kept.saturating_add(entry.location.filename().and_then(entry_bytes).unwrap_or(0));
        }
        if kept.saturating_add(adding) > quotas.per_user {
            return Err(SaveError::OverQuota(format!(
                "you keep at most {} bytes of files ({kept} kept)",
                quotas.per_user
            )));
        }
        Ok(())
    }

    /// Bytes of files (originals and thumbnails, not descriptions) under `prefix`.
    async fn sizes(&self, prefix: &Path) -> Result<u64, StoreError> {
        let mut objects = self.store.list(Some(prefix));
        let mut sum = 0_u64;
        while let Some(object) = objects.try_next().await.map_err(failed)? {
            if object.location.filename() != Some("meta.json") {
                sum = sum.saturating_add(object.size);
            }
        }
        Ok(sum)
    }

    /// The description of a complete upload of `conversation`, if there is one.
    pub async fn describe(
        &self,
        conversation: ConversationId,
        upload_id: &str,
    ) -> Result<Option<Attachment>, StoreError> {
        Ok(self.meta(conversation, upload_id).await?.map(|meta| meta.attachment))
    }

    /// Marks an upload as carried by a message, so the sweeper keeps it. Called before the
    /// message is appended: a send that then fails leaves an upload kept for nothing
    /// (counted in its conversation's quota), never a message whose file was swept.
    pub async fn mark_sent(
        &self,
        conversation: ConversationId,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.delete(&unsent(conversation, upload_id)).await
    }

    /// Removes the uploads no message carried within `unsent_for` of their upload.
    pub async fn sweep(&self, unsent_for: Duration) -> Result<Swept, StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
        let markers: Vec<_> =
            self.store.list(Some(&Path::from("unsent"))).try_collect().await.map_err(failed)?;
        let mut swept = Swept::default();
        for marker in markers {
            let age = now.saturating_sub(marker.last_modified.timestamp_millis());
            if u128::try_from(age).unwrap_or(0) < unsent_for.as_millis() {
                continue;
            }
            let Some((conversation, upload_id)) = unsent_entry(&marker.location) else {
                continue;
            };
            // The description goes first: from then on the upload cannot be sent, and a
            // sweep cut short is finished by the next one (the marker goes last).
            let folder = folder(conversation, &upload_id);
            self.delete(&folder.clone().join("meta.json")).await?;
            for file in ["original", "thumbnail"] {
                let path = folder.clone().join(file);
                if let Ok(object) = self.store.head(&path).await {
                    swept.bytes += object.size;
                }
                self.delete(&path).await?;
            }
            self.forget_unsent(conversation, &upload_id).await?;
            swept.uploads += 1;
        }
        Ok(swept)
    }

    /// Removes an upload's `unsent` marker and the `by-user` entry it names.
    async fn forget_unsent(
        &self,
        conversation: ConversationId,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let marker = unsent(conversation, upload_id);
        let found = self.get(&marker).await?;
        if let Some(Unsent { uploader, bytes }) =
            found.and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            self.delete(&by_user(&uploader, conversation, upload_id, bytes)).await?;
        }
        self.delete(&marker).await
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

    /// Deletes every file of `conversation`; answers how many objects went.
    pub async fn delete_conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<usize, StoreError> {
        let markers = Path::from("unsent").join(conversation.to_string());
        let markers: Vec<_> =
            self.store.list(Some(&markers)).try_collect().await.map_err(failed)?;
        for marker in &markers {
            if let Some((_, upload_id)) = unsent_entry(&marker.location) {
                self.forget_unsent(conversation, &upload_id).await?;
            }
        }
        let prefix = conversation_prefix(conversation);
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(failed)?;
        for object in &objects {
            // Sent uploads have no marker left; their descriptions name their uploaders.
            if object.location.filename() == Some("meta.json") {
                let bytes = self.get(&object.location).await?.unwrap_or_default();
                if let Ok(meta) = serde_json::from_slice::<Meta>(&bytes)
                    && let Some(upload_id) = meta.attachment.upload_id.as_deref()
                {
                    let size = meta.attachment.size.unwrap_or_default();
                    self.delete(&by_user(&meta.uploader, conversation, upload_id, size)).await?;
                }
            }
            self.delete(&object.location).await?;
        }
        Ok(objects.len())
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

fn by_user(user: &UserId, conversation: ConversationId, upload_id: &str, bytes: u64) -> Path {
    Path::from("by-user").join(user.as_str()).join(format!("{conversation}.{upload_id}.{bytes}"))
}

fn unsent(conversation: ConversationId, upload_id: &str) -> Path {
    Path::from("unsent").join(conversation.to_string()).join(upload_id)
}

/// The size a `by-user` entry records.
fn entry_bytes(name: &str) -> Option<u64> {
    name.rsplit('.').next()?.parse().ok()
}

/// The upload an `unsent` marker names (`unsent/{conversation}/{upload id}`).
fn unsent_entry(marker: &Path) -> Option<(ConversationId, String)> {
    let parts: Vec<_> = marker.parts().collect();
    let [_, conversation, upload_id] = parts.as_slice() else { return None };
    let conversation = ConversationId::new(conversation.as_ref().parse().ok()?).ok()?;
    let upload_id = upload_id.as_ref();
    schemas::limits::valid_upload_id(upload_id).then(|| (conversation, upload_id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Bytes {
        let image = image::DynamicImage::new_rgb8(640, 480);
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        Bytes::from(bytes.into_inner())
    }

    fn opened(directory: &tempfile::TempDir) -> Attachments {
        Attachments::open(&format!("file://{}", directory.path().display())).unwrap()
    }

    async fn whole(download: Download) -> Bytes {
        let chunks: Vec<Bytes> = download.body.try_collect().await.unwrap();
        Bytes::from(chunks.concat())
    }

    #[tokio::test]
    async fn an_upload_is_kept_described_read_back_and_deleted_with_its_conversation() {
        let directory = tempfile::tempdir().unwrap();
        let store = opened(&directory);
        let conversation = ConversationId::new(7).unwrap();
        let other = ConversationId::new(8).unwrap();
        let ana = UserId::new("ana").unwrap();
        let saved = store.save(conversation, &ana, "plan.png", png()).await.unwrap();
        let id = saved.upload_id.clone().unwrap();
        assert_eq!((saved.width, saved.height), (Some(640), Some(480)));
        assert_eq!(saved.mime_type, "image/png");
        assert_eq!(saved.url, format!("/v1/conversations/7/attachments/{id}"));
        assert_eq!(store.describe(conversation, &id).await.unwrap(), Some(saved.clone()));
        assert_eq!(store.describe(other, &id).await.unwrap(), None, "another conversation's");
        assert_eq!(store.describe(conversation, "../../etc").await.unwrap(), None);
        let original = store.read(conversation, &id, Rendition::Original).await.unwrap().unwrap();
        assert!(original.inline);
        let kept = whole(original).await;
        let shown = image::load_from_memory(&kept).unwrap();
        assert_eq!(shown.to_rgb8(), image::load_from_memory(&png()).unwrap().to_rgb8());
        let thumbnail = store.read(conversation, &id, Rendition::Thumbnail).await.unwrap().unwrap();
        assert_eq!(thumbnail.mime_type, "image/jpeg");

        let text = store.save(conversation, &ana, "notes.html", Bytes::from("hi")).await.unwrap();
        assert_eq!(text.name, "notes.txt", "saved under the sniffed type's extension");
        let text_id = text.upload_id.unwrap();
        assert!(store.read(conversation, &text_id, Rendition::Thumbnail).await.unwrap().is_none());
        let refused = store.save(conversation, &ana, "x.html", Bytes::from("<html>")).await;
        assert!(matches!(refused, Err(SaveError::Refused(_))));

        assert_eq!(store.delete_conversation(conversation).await.unwrap(), 5);
        assert_eq!(store.describe(conversation, &id).await.unwrap(), None);
        let left: Vec<_> = store.store.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "indexes went with the files: {left:?}");
    }

    #[tokio::test]
    async fn quotas_count_what_a_conversation_and_a_user_keep() {
        let directory = tempfile::tempdir().unwrap();
        let store = opened(&directory).with_quotas(Quotas { per_conversation: 250, per_user: 350 });
        let (one, two) = (ConversationId::new(1).unwrap(), ConversationId::new(2).unwrap());
        let ana = UserId::new("ana").unwrap();
        let bo = UserId::new("bo").unwrap();
        let file = Bytes::from("x".repeat(100));
        store.save(one, &ana, "a.txt", file.clone()).await.unwrap();
        store.save(one, &bo, "b.txt", file.clone()).await.unwrap();
        let full = store.save(one, &ana, "c.txt", file.clone()).await.unwrap_err();
        assert!(matches!(&full, SaveError::OverQuota(text) if text.contains("conversation")));
        store.save(two, &ana, "d.txt", file.clone()).await.unwrap();
        store.save(ConversationId::new(3).unwrap(), &ana, "e.txt", file.clone()).await.unwrap();
        let user = store.save(ConversationId::new(4).unwrap(), &ana, "f.txt", file).await;
        assert!(matches!(&user, Err(SaveError::OverQuota(text)) if text.contains("you keep")));
    }

    #[tokio::test]
    async fn uploads_no_message_carries_are_swept_and_sent_ones_kept() {
        let directory = tempfile::tempdir().unwrap();
        let store =
            opened(&directory).with_quotas(Quotas { per_conversation: 1 << 20, per_user: 1 << 20 });
        let conversation = ConversationId::new(5).unwrap();
        let ana = UserId::new("ana").unwrap();
        let sent = store.save(conversation, &ana, "sent.png", png()).await.unwrap();
        let unsent = store.save(conversation, &ana, "left.png", png()).await.unwrap();
        let (sent_id, unsent_id) = (sent.upload_id.unwrap(), unsent.upload_id.unwrap());
        store.mark_sent(conversation, &sent_id).await.unwrap();
        assert_eq!(store.sweep(Duration::from_secs(3600)).await.unwrap(), Swept::default());
        let swept = store.sweep(Duration::ZERO).await.unwrap();
        assert_eq!(swept.uploads, 1);
        assert!(swept.bytes > png().len() as u64 / 2, "the original and thumbnail: {swept:?}");
        assert!(store.describe(conversation, &unsent_id).await.unwrap().is_none());
        assert!(store.read(conversation, &unsent_id, Rendition::Original).await.unwrap().is_none());
        assert!(store.describe(conversation, &sent_id).await.unwrap().is_some());
        assert_eq!(store.sweep(Duration::ZERO).await.unwrap(), Swept::default(), "done once");
        let by_user: Vec<_> =
            store.store.list(Some(&Path::from("by-user"))).try_collect().await.unwrap();
        assert_eq!(by_user.len(), 1, "the swept upload no longer counts against its uploader");
    }

    #[tokio::test]
    async fn an_upload_cut_short_before_its_description_is_swept_with_its_indexes() {
        let directory = tempfile::tempdir().unwrap();
        let store = opened(&directory);
        let conversation = ConversationId::new(6).unwrap();
        let saved = store.save(conversation, &UserId::new("ana").unwrap(), "a.png", png()).await;
        let id = saved.unwrap().upload_id.unwrap();
        // As if the node had died before writing the description.
        store.store.delete(&folder(conversation, &id).join("meta.json")).await.unwrap();
        assert_eq!(store.sweep(Duration::ZERO).await.unwrap().uploads, 1);
        let left: Vec<_> = store.store.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "nothing of it is left to count against anyone: {left:?}");
    }

    #[tokio::test]
    async fn an_image_larger_than_the_preview_budget_is_kept_without_a_thumbnail() {
        let directory = tempfile::tempdir().unwrap();
        let previews = Previews::new(1 << 20, Duration::from_secs(1)).unwrap();
        let store = opened(&directory).with_previews(previews);
        let conversation = ConversationId::new(9).unwrap();
        let saved = store.save(conversation, &UserId::new("ana").unwrap(), "big", png()).await;
        let saved = saved.unwrap();
        assert_eq!((saved.width, saved.height, saved.thumbnail_url), (Some(640), Some(480), None));
        assert_eq!(saved.name, "big.png");
        let id = saved.upload_id.unwrap();
        let original = store.read(conversation, &id, Rendition::Original).await.unwrap().unwrap();
        assert!(!original.inline, "served as a file, not shown in the page");
    }

    #[test]
    fn locations_other_than_files_and_s3_are_refused() {
        assert!(Attachments::open("ftp://host/files").is_err());
        assert!(Attachments::open("s3://").is_err());
    }
}
