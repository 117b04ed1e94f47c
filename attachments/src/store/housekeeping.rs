//! What keeps the store from filling up: quotas per conversation and per user, counted by
//! listing (a conversation's prefix, and an empty `by-user` entry per upload), and the
//! sweeper of uploads no message carried (an `unsent` marker per upload, removed when a
//! message carries it).

use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use schemas::{ConversationId, UserId};
use serde::{Deserialize, Serialize};

use super::{Attachments, Meta, SaveError, StoreError, conversation_prefix, failed, folder};

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

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub uploads: u64,
    /// Bytes of their originals, as their markers recorded them.
    pub bytes: u64,
}

impl Attachments {
    /// Writes a new upload's `unsent` marker and `by-user` entry.
    pub(super) async fn index_upload(
        &self,
        conversation: ConversationId,
        uploader: &UserId,
        upload_id: &str,
        bytes: u64,
    ) -> Result<(), StoreError> {
        let marker = Unsent { uploader: uploader.clone(), bytes };
        let marker = serde_json::to_vec(&marker).map_err(failed)?;
        self.put(&unsent(conversation, upload_id), Bytes::from(marker)).await?;
        self.put(&by_user(uploader, conversation, upload_id, bytes), Bytes::new()).await
    }

    pub(super) async fn check_quotas(
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
                self.delete(&folder.clone().join(file)).await?;
            }
            swept.bytes += self.forget_unsent(conversation, &upload_id).await?;
            swept.uploads += 1;
        }
        Ok(swept)
    }

    /// Removes an upload's `unsent` marker and the `by-user` entry it names; answers the
    /// bytes the marker recorded (0 for a marker that cannot be read).
    async fn forget_unsent(
        &self,
        conversation: ConversationId,
        upload_id: &str,
    ) -> Result<u64, StoreError> {
        let marker = unsent(conversation, upload_id);
        let found = self.get(&marker).await?;
        let mut forgotten = 0;
        if let Some(Unsent { uploader, bytes }) =
            found.and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            self.delete(&by_user(&uploader, conversation, upload_id, bytes)).await?;
            forgotten = bytes;
        }
        self.delete(&marker).await?;
        Ok(forgotten)
    }

    /// Deletes a sent upload of `conversation` (its message was deleted for everyone): the
    /// description first, so nobody is served it from then on, then its files and its
    /// place in the uploader's quota. Nothing to do for an upload already gone.
    pub async fn delete_upload(
        &self,
        conversation: ConversationId,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let folder = folder(conversation, upload_id);
        let meta = self.get(&folder.clone().join("meta.json")).await?;
        self.delete(&folder.clone().join("meta.json")).await?;
        for file in ["original", "thumbnail"] {
            self.delete(&folder.clone().join(file)).await?;
        }
        if let Some(meta) = meta.and_then(|bytes| serde_json::from_slice::<Meta>(&bytes).ok()) {
            let size = meta.attachment.size.unwrap_or_default();
            self.delete(&by_user(&meta.uploader, conversation, upload_id, size)).await?;
        }
        self.forget_unsent(conversation, upload_id).await.map(drop)
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
