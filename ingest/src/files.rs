//! What uploads and downloads may take from a node: a per-user upload rate, memory for the
//! bodies of uploads in flight, downloads in flight per user and per process, and the sweeper
//! of uploads no message carried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attachments::{Attachments, Budget};
use parking_lot::Mutex;
use schemas::UserId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::metrics::{self, Limit};
use crate::rate::{Rate, RateLimiter};

/// Largest upload when the deployment does not say (`CHAT_MAX_ATTACHMENT_BYTES`).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// How long an upload waits for memory for its body before it is told to come back.
const BODY_PATIENCE: Duration = Duration::from_secs(10);

/// The limits, as configured.
#[derive(Debug, Clone)]
pub struct FileLimits {
    /// Largest attachment taken (413 beyond).
    pub max_upload_bytes: usize,
    /// Bytes of upload bodies held at once, all users together.
    pub upload_memory: u64,
    /// Uploads per user; `None` for no limit.
    pub upload_rate: Option<Rate>,
    /// Downloads one user may have in flight.
    pub downloads_per_user: usize,
    /// Downloads the process serves at once.
    pub downloads: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            upload_memory: 64 << 20,
            upload_rate: Some(Rate { per_second: 1.0, burst: 20 }),
            downloads_per_user: 8,
            downloads: 512,
        }
    }
}

/// The limits in force: buckets, budgets and counts shared by every request of the node.
#[derive(Debug)]
pub struct FileGate {
    pub(crate) limits: FileLimits,
    bodies: Budget,
    uploads: Option<RateLimiter>,
    downloads: Arc<Mutex<InFlight>>,
}

#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    per_user: HashMap<UserId, usize>,
}

/// Held while a download's body is being sent; dropping it (the body sent, or the
/// connection gone) counts the download out.
#[derive(Debug)]
pub(crate) struct DownloadTicket {
    user: UserId,
    downloads: Arc<Mutex<InFlight>>,
}

impl Drop for DownloadTicket {
    fn drop(&mut self) {
        let mut downloads = self.downloads.lock();
        downloads.total = downloads.total.saturating_sub(1);
        if let Some(count) = downloads.per_user.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                downloads.per_user.remove(&self.user);
            }
        }
    }
}

impl FileGate {
    pub fn new(limits: FileLimits) -> Self {
        Self {
            bodies: Budget::new(limits.upload_memory),
            uploads: limits.upload_rate.map(RateLimiter::new),
            downloads: Arc::default(),
            limits,
        }
    }

    /// Takes one upload from `user`'s allowance.
    pub(crate) fn take_upload(&self, user: &UserId) -> Result<(), IngestError> {
        let Some(limiter) = &self.uploads else { return Ok(()) };
        limiter.take(user, Instant::now()).map_err(|wait| {
            metrics::refused(Limit::UploadRate);
            IngestError::RateLimited("uploads", wait)
        })
    }

    /// Reserves memory for a body of at most `bytes`.
    pub(crate) async fn reserve_body(
        &self,
        bytes: u64,
    ) -> Result<attachments::budget::Reservation, IngestError> {
        self.bodies.reserve(bytes, BODY_PATIENCE).await.map_err(|refused| {
            metrics::refused(Limit::UploadMemory);
            IngestError::Busy(format!("uploads are queued here ({refused}); retry shortly"))
        })
    }

    /// Counts a download in, unless `user` or the process already has as many as allowed.
    pub(crate) fn start_download(&self, user: &UserId) -> Result<DownloadTicket, IngestError> {
        let mut downloads = self.downloads.lock();
        let mine = downloads.per_user.get(user).copied().unwrap_or(0);
        if mine >= self.limits.downloads_per_user || downloads.total >= self.limits.downloads {
            drop(downloads);
            metrics::refused(Limit::DownloadsInFlight);
            return Err(IngestError::RateLimited("downloads at once", Duration::from_secs(1)));
        }
        downloads.total += 1;
        *downloads.per_user.entry(user.clone()).or_default() += 1;
        Ok(DownloadTicket { user: user.clone(), downloads: Arc::clone(&self.downloads) })
    }
}

/// Sweeps, every so often until `shutdown`, the uploads no message carried within
/// `unsent_for` of their upload.
pub fn sweep_unsent(
    attachments: Attachments,
    unsent_for: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    // Often enough that an upload outlives its time by at most a quarter of it, never more
    // than ten minutes; nodes sweep independently (a delete of what is gone is harmless).
    let every = (unsent_for / 4).clamp(Duration::from_millis(250), Duration::from_secs(600));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            match attachments.sweep(unsent_for).await {
                Ok(swept) => {
                    metrics::swept(swept.uploads, swept.bytes);
                    if swept.uploads > 0 {
                        tracing::info!(
                            uploads = swept.uploads,
                            bytes = swept.bytes,
                            "swept unsent uploads"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "sweeping unsent uploads failed; next time"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_counted_per_user_and_in_all_and_out_when_done() {
        let gate = FileGate::new(FileLimits {
            downloads_per_user: 2,
            downloads: 3,
            ..FileLimits::default()
        });
        let (ana, bo) = (UserId::new("ana").unwrap(), UserId::new("bo").unwrap());
        let first = gate.start_download(&ana).unwrap();
        let _second = gate.start_download(&ana).unwrap();
        assert!(gate.start_download(&ana).is_err(), "ana's third");
        let _third = gate.start_download(&bo).unwrap();
        assert!(gate.start_download(&bo).is_err(), "the process's fourth");
        drop(first);
        assert!(gate.start_download(&ana).is_ok(), "counted out when done");
    }
}
