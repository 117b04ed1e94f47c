//! What image work (stripping, measuring, decoding previews) may take from the process: a
//! memory budget every decode reserves from, a few threads of its own, and how long an
//! upload waits for them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{SaveError, StoreError};
use crate::budget::{Budget, Refused};
use crate::inspect::{self, Refusal, Thumbnail};
use crate::workers::Workers;

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
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
    ) -> Result<T, SaveError> {
        let done = self.workers.run(work).await;
        let done = done.map_err(|_| StoreError("inspecting the file failed".into()))?;
        Ok(done?)
    }

    /// A thumbnail, decoded within the preview budget; `None` when the image needs more
    /// memory than the whole budget.
    pub(super) async fn thumbnail(
        &self,
        bytes: Bytes,
        format: image::ImageFormat,
        cost: u64,
    ) -> Result<Option<Thumbnail>, SaveError> {
        let previews = self;
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
}
