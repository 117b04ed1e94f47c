//! Where uploads are kept: any `object_store` backend, the local filesystem for `chat dev`
//! and S3-compatible storage for the cluster. One conversation's files live under one
//! prefix, so they can be listed and deleted together:
//!
//! ```text
//! attachments/{conversation}/{upload id}/original    the bytes as uploaded
//! attachments/{conversation}/{upload id}/thumbnail   images only
//! attachments/{conversation}/{upload id}/meta.json   written last: its presence means complete
//! ```

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use schemas::events::Attachment;
use schemas::{ConversationId, UserId};
use serde::{Deserialize, Serialize};

use crate::inspect::{Refusal, inspect};

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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which rendition of an upload to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    Original,
    Thumbnail,
}

/// A file read back: its bytes and how to label them.
#[derive(Debug, Clone)]
pub struct Download {
    pub bytes: Bytes,
    pub mime_type: String,
    pub name: String,
}

/// What `meta.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    attachment: Attachment,
    thumbnail_type: Option<String>,
    uploader: UserId,
}

/// The uploads of every conversation.
#[derive(Debug, Clone)]
pub struct Attachments {
    store: Arc<dyn ObjectStore>,
    location: String,
}

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
        Ok(Self { store, location: location.to_owned() })
    }

    /// Where the files are (for banners and logs).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Sniffs and keeps `bytes` as `name`, sent by `uploader` into `conversation`; answers
    /// the description a message carries.
    pub async fn save(
        &self,
        conversation: ConversationId,
        uploader: &UserId,
        name: &str,
        bytes: Bytes,
    ) -> Result<Attachment, SaveError> {
        let sniffing = bytes.clone();
        let inspected = tokio::task::spawn_blocking(move || inspect(&sniffing))
            .await
            .map_err(|error| StoreError(format!("inspecting the file failed: {error}")))??;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let folder = folder(conversation, &id);
        let size = bytes.len() as u64;
        self.put(&folder.clone().join("original"), bytes).await?;
        let mut attachment = Attachment {
            url: format!("/v1/conversations/{conversation}/attachments/{id}"),
            name: name.to_owned(),
            mime_type: inspected.mime_type.to_owned(),
            size: Some(size),
            upload_id: Some(id.clone()),
            ..Attachment::default()
        };
        let mut thumbnail_type = None;
        if let Some(picture) = inspected.image {
            self.put(&folder.clone().join("thumbnail"), Bytes::from(picture.thumbnail)).await?;
            thumbnail_type = Some(picture.thumbnail_type.to_owned());
            attachment.width = Some(picture.width);
            attachment.height = Some(picture.height);
            attachment.thumbnail_url =
                Some(format!("/v1/conversations/{conversation}/attachments/{id}/thumbnail"));
        }
        let meta =
            Meta { attachment: attachment.clone(), thumbnail_type, uploader: uploader.clone() };
        let meta = serde_json::to_vec(&meta).map_err(failed)?;
        self.put(&folder.clone().join("meta.json"), Bytes::from(meta)).await?;
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

    /// One rendition of a complete upload of `conversation`, if there is one.
    pub async fn read(
        &self,
        conversation: ConversationId,
        upload_id: &str,
        rendition: Rendition,
    ) -> Result<Option<Download>, StoreError> {
        let Some(meta) = self.meta(conversation, upload_id).await? else { return Ok(None) };
        let (file, mime_type) = match (rendition, meta.thumbnail_type) {
            (Rendition::Original, _) => ("original", meta.attachment.mime_type),
            (Rendition::Thumbnail, Some(mime_type)) => ("thumbnail", mime_type),
            (Rendition::Thumbnail, None) => return Ok(None),
        };
        let Some(bytes) = self.get(&folder(conversation, upload_id).join(file)).await? else {
            return Ok(None);
        };
        Ok(Some(Download { bytes, mime_type, name: meta.attachment.name }))
    }

    /// Deletes every file of `conversation`; answers how many objects went.
    pub async fn delete_conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<usize, StoreError> {
        let prefix = Path::from("attachments").join(conversation.to_string());
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(failed)?;
        for object in &objects {
            self.store.delete(&object.location).await.map_err(failed)?;
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
}

fn folder(conversation: ConversationId, upload_id: &str) -> Path {
    Path::from("attachments").join(conversation.to_string()).join(upload_id)
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

    #[tokio::test]
    async fn an_upload_is_kept_described_read_back_and_deleted_with_its_conversation() {
        let directory = tempfile::tempdir().unwrap();
        let store = Attachments::open(&format!("file://{}", directory.path().display())).unwrap();
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
        assert_eq!(original.bytes, png());
        let thumbnail = store.read(conversation, &id, Rendition::Thumbnail).await.unwrap().unwrap();
        assert_eq!(thumbnail.mime_type, "image/jpeg");

        let text = store.save(conversation, &ana, "notes.txt", Bytes::from("hi")).await.unwrap();
        let text_id = text.upload_id.unwrap();
        assert!(store.read(conversation, &text_id, Rendition::Thumbnail).await.unwrap().is_none());
        let refused = store.save(conversation, &ana, "x.html", Bytes::from("<html>")).await;
        assert!(matches!(refused, Err(SaveError::Refused(_))));

        assert_eq!(store.delete_conversation(conversation).await.unwrap(), 5);
        assert_eq!(store.describe(conversation, &id).await.unwrap(), None);
    }

    #[test]
    fn locations_other_than_files_and_s3_are_refused() {
        assert!(Attachments::open("ftp://host/files").is_err());
        assert!(Attachments::open("s3://").is_err());
    }
}
