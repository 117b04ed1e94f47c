//! Idle connections: how much server memory each subscribed WebSocket costs.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::target::Target;

/// Connections opened at once.
const CONCURRENCY: usize = 64;

pub(crate) async fn run(
    target: &Target,
    count: usize,
    per_conversation: usize,
) -> anyhow::Result<Value> {
    let per_conversation = per_conversation.max(1);
    let ids = target.conversations(count.div_ceil(per_conversation)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.rss_kib()?;
    let started = Instant::now();
    let opened: Vec<anyhow::Result<_>> = stream::iter(0..count)
        .map(|n| {
            let index = n / per_conversation;
            target.subscribe(ids[index], index)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let open_seconds = started.elapsed().as_secs_f64();
    let mut readers = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    for subscriber in opened {
        match subscriber {
            // Keep reading, so the connection answers pings and stays healthy.
            Ok(mut subscriber) => readers.push(tokio::spawn(async move {
                while subscriber.next_stamps().await.is_some() {}
            })),
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        anyhow::bail!("{failed} of {count} connections failed; the first: {error}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = target.rss_kib()?;
    let alive = readers.iter().filter(|reader| !reader.is_finished()).count();
    for reader in &readers {
        reader.abort();
    }
    let per_connection = after.saturating_sub(before) as f64 / alive.max(1) as f64;
    Ok(json!({
        "scenario": "connections",
        "target": target.kind.name(),
        "label": target.label,
        "backend": target.backend,
        "connections": count,
        "alive": alive,
        "failed": failed,
        "open_seconds": open_seconds,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": per_connection,
    }))
}
