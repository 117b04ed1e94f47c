//! Memory set aside for attachments, process-wide and in bytes: what an upload's body and an
//! image's decode will take is reserved before it is taken, so any number of concurrent
//! uploads (decompression bombs among them) costs at most the budget. A reservation that does
//! not fit waits its turn for a bounded time; one larger than the whole budget is told so at
//! once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Permits are KiB, so a budget of up to 4 TiB fits the semaphore's `u32` count.
const UNIT: u64 = 1024;

/// A number of bytes that may be held at once.
#[derive(Debug, Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    units: u32,
}

/// Held while the reserved bytes are in use; dropping it gives them back.
#[derive(Debug)]
pub struct Reservation {
    _held: OwnedSemaphorePermit,
}

/// Why a reservation was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("needs {needed} bytes; the whole budget is {budget}")]
    LargerThanBudget { needed: u64, budget: u64 },
    #[error("the budget stayed taken for {0:?}")]
    Busy(Duration),
}

impl Budget {
    pub fn new(bytes: u64) -> Self {
        let units = u32::try_from(bytes / UNIT).unwrap_or(u32::MAX).max(1);
        Self { permits: Arc::new(Semaphore::new(units as usize)), units }
    }

    /// The whole budget, in bytes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.units) * UNIT
    }

    /// Bytes not reserved right now.
    #[cfg(test)]
    fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// Reserves `bytes`, waiting at most `patience` for them to be free. Waiters are served
    /// in order, so a large reservation is not starved by small ones.
    pub async fn reserve(&self, bytes: u64, patience: Duration) -> Result<Reservation, Refused> {
        let units = bytes.div_ceil(UNIT).max(1);
        let Some(units) = u32::try_from(units).ok().filter(|units| *units <= self.units) else {
            return Err(Refused::LargerThanBudget { needed: bytes, budget: self.bytes() });
        };
        let permits = Arc::clone(&self.permits).acquire_many_owned(units);
        match tokio::time::timeout(patience, permits).await {
            Ok(Ok(permit)) => Ok(Reservation { _held: permit }),
            // The semaphore is never closed; treat it as busy all the same.
            Ok(Err(_)) | Err(_) => Err(Refused::Busy(patience)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reservations_wait_for_each_other_and_never_exceed_the_budget() {
        let budget = Budget::new(10 * 1024 * 1024);
        let first = budget.reserve(6 * 1024 * 1024, Duration::from_secs(1)).await.unwrap();
        assert_eq!(budget.available(), 4 * 1024 * 1024);
        let waited = budget.reserve(6 * 1024 * 1024, Duration::from_secs(1)).await;
        assert_eq!(waited.unwrap_err(), Refused::Busy(Duration::from_secs(1)));
        assert!(matches!(
            budget.reserve(11 * 1024 * 1024, Duration::from_secs(1)).await,
            Err(Refused::LargerThanBudget { .. })
        ));
        let later = {
            let budget = budget.clone();
            tokio::spawn(
                async move { budget.reserve(6 * 1024 * 1024, Duration::from_secs(5)).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert!(later.await.unwrap().is_ok(), "served once the first gave its bytes back");
        assert_eq!(budget.available(), 10 * 1024 * 1024, "and given back when dropped");
    }
}
