//! Fanout throughput and latency, open loop: messages are published on a fixed schedule
//! whatever the server does, and latency is measured from the scheduled time (so a slow
//! server cannot hide its delays by slowing the generator down).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::schedule::open_loop;
use crate::stats::quantile;
use crate::target::{Target, now_nanos};

pub(crate) struct Plan {
    pub conversations: usize,
    pub subscribers: usize,
    pub rate: u32,
    pub duration: Duration,
    pub payload: usize,
}

/// How long deliveries may trail the last publish before the run ends.
const DRAIN: Duration = Duration::from_secs(5);

pub(crate) async fn run(target: &Target, plan: &Plan) -> anyhow::Result<Value> {
    let ids = target.conversations(plan.conversations).await?;
    let counted = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wanted: Vec<(u64, usize)> = ids
        .iter()
        .enumerate()
        .flat_map(|(index, id)| std::iter::repeat_n((*id, index), plan.subscribers))
        .collect();
    let subscribers: Vec<_> = stream::iter(wanted)
        .map(|(id, index)| target.subscribe(id, index))
        .buffer_unordered(64)
        .collect()
        .await;
    let mut readers = Vec::new();
    for subscriber in subscribers {
        let mut subscriber = subscriber?;
        let counted = Arc::clone(&counted);
        let mut stopped = stopped.clone();
        readers.push(tokio::spawn(async move {
            let mut mine: Vec<u64> = Vec::new();
            // One stop future for the whole run: re-arming it per frame showed in the profile.
            let stop = stopped.changed();
            tokio::pin!(stop);
            loop {
                let stamps = tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    stamps = subscriber.next_stamps() => stamps,
                };
                let Some(stamps) = stamps else { break };
                let now = now_nanos();
                counted.fetch_add(stamps.len(), Ordering::Relaxed);
                mine.extend(
                    stamps.into_iter().map(|stamp| (now.saturating_sub(stamp) / 1000) as u64),
                );
            }
            mine
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = target.rss_kib()?;
    let cpu_before = target.cpu_seconds()?;

    let total = (f64::from(plan.rate) * plan.duration.as_secs_f64()) as usize;
    let filler = "x".repeat(plan.payload);
    let outcomes = open_loop(plan.rate, total, |n, stamp| {
        let (target, filler) = (target.clone(), filler.clone());
        let index = n % ids.len();
        let id = ids[index];
        async move { target.publish(id, index, stamp, &filler).await }
    })
    .await;
    let published = outcomes.took;
    let expected = total * plan.subscribers;
    let deadline = Instant::now() + DRAIN;
    while counted.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_after = target.rss_kib()?;
    let cpu_seconds = target.cpu_seconds()? - cpu_before;
    let _ = stop.send(true);
    let mut delivered = Vec::with_capacity(expected);
    for reader in readers {
        delivered.extend(reader.await.unwrap_or_default());
    }
    delivered.sort_unstable();
    let (mut ack, errors) = (outcomes.answered, outcomes.failed);
    ack.sort_unstable();
    let ms = |micros: u64| micros as f64 / 1000.0;
    Ok(json!({
        "scenario": "fanout",
        "target": target.kind.name(),
        "label": target.label,
        "backend": target.backend,
        "conversations": plan.conversations,
        "subscribers_per_conversation": plan.subscribers,
        "rate": plan.rate,
        "seconds": plan.duration.as_secs(),
        "payload": plan.payload,
        "published": total - errors,
        "publish_errors": errors,
        "publish_seconds": published.as_secs_f64(),
        "deliveries": delivered.len(),
        "expected_deliveries": expected,
        "deliveries_per_second": delivered.len() as f64 / published.as_secs_f64(),
        "latency_ms": {"p50": ms(quantile(&delivered, 0.5)), "p99": ms(quantile(&delivered, 0.99)),
                       "p999": ms(quantile(&delivered, 0.999)), "max": ms(delivered.last().copied().unwrap_or(0))},
        "ack_ms": {"p50": ms(quantile(&ack, 0.5)), "p99": ms(quantile(&ack, 0.99))},
        "server_cpu_seconds": cpu_seconds,
        "server_cpu_us_per_delivery": cpu_seconds * 1e6 / delivered.len().max(1) as f64,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
    }))
}
