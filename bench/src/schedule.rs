//! The open-loop schedule both publishing generators use: the n-th call is due at
//! n / rate seconds and is made then whether or not earlier ones have answered, so a slow
//! server shows up as latency (measured from the scheduled time) instead of a lower rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::target::now_nanos;

/// What a schedule produced.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    /// Per answered call, µs from its scheduled time to its answer.
    pub answered: Vec<u64>,
    pub failed: usize,
    /// From the first scheduled call to the last answer.
    pub took: Duration,
}

/// Calls `call(n, stamp)` for n in 0..total at `rate` per second; `stamp` is the scheduled
/// time in ns since the epoch (what the generator writes into the message).
pub(crate) async fn open_loop<F, Fut>(rate: u32, total: usize, call: F) -> Outcomes
where
    F: Fn(usize, u128) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let start_epoch = now_nanos();
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut calls = Vec::with_capacity(total);
    for n in 0..total {
        let offset = Duration::from_secs_f64(n as f64 / f64::from(rate));
        let stamp = start_epoch + offset.as_nanos();
        let (made, outcomes) = (call(n, stamp), Arc::clone(&outcomes));
        calls.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + offset).into()).await;
            let answer = made.await;
            let micros = (now_nanos().saturating_sub(stamp) / 1000) as u64;
            let mut outcomes = outcomes.lock().await;
            match answer {
                Ok(()) => outcomes.answered.push(micros),
                Err(_) => outcomes.failed += 1,
            }
        }));
    }
    for call in calls {
        let _ = call.await;
    }
    let mut outcomes = std::mem::take(&mut *outcomes.lock().await);
    outcomes.took = start.elapsed();
    outcomes
}
