//! Joining a consumer group again after its membership was lost.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{EventLog, SubscribeSpec, Subscription};

const FIRST_WAIT: Duration = Duration::from_millis(200);
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Subscribes to `group`, retrying with backoff until it works or `shutdown` fires. The
/// group resumes after its last commit, so nothing is skipped.
pub async fn join_group(
    log: &dyn EventLog,
    group: &str,
    shutdown: &CancellationToken,
) -> Option<Box<dyn Subscription>> {
    let mut wait = FIRST_WAIT;
    loop {
        match log.subscribe(SubscribeSpec::Group(group.to_owned())).await {
            Ok(subscription) => return Some(subscription),
            Err(error) => tracing::warn!(%error, group, "cannot join the consumer group; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}
