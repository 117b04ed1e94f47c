//! Exactly one message per idempotency key.
//!
//! Before appending, a send claims its key in the directory. A retry that finds the key
//! completed answers with the recorded message; one that finds it pending waits for the
//! owner. A claim left pending longer than `key_stale_after` belongs to a sender that died:
//! it may or may not have appended before dying, so the retry first waits until the
//! projections cover everything appended so far in the conversation's partition, then looks
//! for a message with the key there; only if there is none does it take the claim over.
//! A live owner never appends after its claim goes stale, because appends give up after
//! `append_timeout`, which is shorter. As a last line of defence the projections keep only
//! the first message of a key, and the directory keeps the smallest id recorded for it.

use std::time::Duration;

use schemas::{ConversationId, MessageId, Timestamp};
use uuid::Uuid;
use viewstore::KeyClaim;

use crate::error::IngestError;
use crate::service::Ingest;

const POLL: Duration = Duration::from_millis(25);

impl Ingest {
    /// Claims `key`; `Some(id)` when an earlier send already produced message `id`.
    pub(crate) async fn claim_key(
        &self,
        conversation: ConversationId,
        key: &str,
    ) -> Result<Option<MessageId>, IngestError> {
        let owner = Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + self.config.key_wait;
        loop {
            let claim = self
                .directory
                .claim_key(conversation, key, &owner, Timestamp::now(), self.config.key_stale_after)
                .await?;
            match claim {
                KeyClaim::Claimed => return Ok(None),
                KeyClaim::Completed(id) => return Ok(Some(id)),
                KeyClaim::Pending { stale: false, .. } => {}
                KeyClaim::Pending { owner: stale_owner, stale: true } => {
                    if let Some(id) = self.settle_stale_key(conversation, key, deadline).await? {
                        return Ok(Some(self.directory.complete_key(conversation, key, id).await?));
                    }
                    let taken = self
                        .directory
                        .take_over_key(conversation, key, &stale_owner, &owner, Timestamp::now())
                        .await?;
                    match taken {
                        KeyClaim::Claimed => return Ok(None),
                        KeyClaim::Completed(id) => return Ok(Some(id)),
                        KeyClaim::Pending { .. } => {}
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(IngestError::Unavailable(
                    "a send with this idempotency key is still in progress".into(),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the dead owner of a stale claim appended its message: waits until the
    /// projections have caught up with the partition's current end, then asks them.
    async fn settle_stale_key(
        &self,
        conversation: ConversationId,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<MessageId>, IngestError> {
        let partitions = self.log.partitions();
        let partition = conversation.partition(partitions) as usize;
        let end = self.log.end_offsets().await?.get(partition).copied().unwrap_or(0);
        if end > 0 {
            loop {
                let marks = self.read_model.watermarks(partitions).await?;
                let projected = marks.get(partition).copied().flatten();
                if projected.is_some_and(|offset| offset + 1 >= end) {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(IngestError::Unavailable(
                        "projections are behind; cannot settle an abandoned idempotency key yet"
                            .into(),
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(self.read_model.message_with_key(conversation, key).await?)
    }
}
