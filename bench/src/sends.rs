//! The write path, open loop: sends offered at a fixed rate over many conversations, each
//! with a fresh idempotency key as real clients send them, latency measured from the
//! scheduled time. One connection per conversation counts the deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::schedule::open_loop;
use crate::stats::quantile;
use crate::target::{Target, now_nanos};

pub(crate) struct SendPlan {
    pub conversations: usize,
    pub rate: u32,
    pub duration: Duration,
    pub payload: usize,
    pub keyed: bool,
    /// Subscribe one connection per conversation to count deliveries.
    pub deliveries: bool,
    /// Clients sending, each over one connection, one request at a time (0: a connection
    /// per request in flight).
    pub connections: usize,
    /// Sends offered, not recorded, before the measured ones (at the same rate).
    pub warm_up: Duration,
}

/// A send acknowledged later than this after its scheduled time did not keep up.
const KEPT_UP_WITHIN: Duration = Duration::from_secs(5);
/// How long deliveries may trail the last acknowledgement.
const DRAIN: Duration = Duration::from_secs(5);

pub(crate) async fn run(target: &Target, plan: &SendPlan) -> anyhow::Result<Value> {
    let ids = target.conversations(plan.conversations).await?;
    let delivered = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watched = if plan.deliveries { ids.len() } else { 0 };
    let subscribers: Vec<_> = stream::iter(ids.iter().take(watched).enumerate())
        .map(|(index, id)| target.subscribe(*id, index))
        .buffer_unordered(64)
        .collect()
        .await;
    let mut readers = Vec::new();
    for subscriber in subscribers {
        let mut subscriber = subscriber?;
        let (delivered, mut stopped) = (Arc::clone(&delivered), stopped.clone());
        readers.push(tokio::spawn(async move {
            let stop = stopped.changed();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    stamps = subscriber.next_stamps() => match stamps {
                        Some(stamps) => delivered.fetch_add(stamps.len(), Ordering::Relaxed),
                        None => break,
                    },
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let filler = "x".repeat(plan.payload);
    let run = now_nanos();
    // Sends `count` at the plan's rate, keys named `<run>-<phase><n>`.
    let offer = |count: usize, phase: &'static str| {
        let (filler, ids) = (&filler, &ids);
        open_loop(plan.rate, count, move |n, stamp| {
            let (target, filler) = (target.clone(), filler.clone());
            let index = n % ids.len();
            let id = ids[index];
            let key = plan.keyed.then(|| format!("{run}-{phase}{n}"));
            async move { target.publish_keyed(id, index, stamp, &filler, key.as_deref()).await }
        })
    };
    if !plan.warm_up.is_zero() {
        offer((f64::from(plan.rate) * plan.warm_up.as_secs_f64()) as usize, "warm-").await;
        delivered.store(0, Ordering::Relaxed);
    }
    // The server's CPU of the measured sends only.
    let cpu_before = target.cpu_seconds()?;
    let total = (f64::from(plan.rate) * plan.duration.as_secs_f64()) as usize;
    let outcomes = offer(total, "").await;
    let (finished, mut acks, errors) = (outcomes.took, outcomes.answered, outcomes.failed);
    let deadline = Instant::now() + DRAIN;
    while plan.deliveries
        && delivered.load(Ordering::Relaxed) < acks.len()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_seconds = target.cpu_seconds()? - cpu_before;
    let _ = stop.send(true);
    for reader in readers {
        let _ = reader.await;
    }
    acks.sort_unstable();
    let kept_up =
        acks.iter().filter(|micros| **micros <= KEPT_UP_WITHIN.as_micros() as u64).count();
    let ms = |micros: u64| micros as f64 / 1000.0;
    let seconds = plan.duration.as_secs_f64();
    // A fixed population of clients is a load shape of its own (its own table).
    let scenario = if plan.connections > 0 { "clients" } else { "sends" };
    Ok(json!({
        "scenario": scenario,
        "target": target.kind.name(),
        "label": target.label,
        "backend": target.backend,
        "keyed": plan.keyed,
        "conversations": plan.conversations,
        "connections": plan.connections,
        "warm_up_seconds": plan.warm_up.as_secs(),
        "rate": plan.rate,
        "seconds": plan.duration.as_secs(),
        "payload": plan.payload,
        "offered": total,
        "acknowledged": acks.len(),
        "errors": errors,
        "kept_up_per_second": kept_up as f64 / seconds,
        "kept_up_fraction": kept_up as f64 / total.max(1) as f64,
        "finished_seconds": finished.as_secs_f64(),
        "deliveries": delivered.load(Ordering::Relaxed),
        "ack_ms": {"p50": ms(quantile(&acks, 0.5)), "p99": ms(quantile(&acks, 0.99)),
                   "p999": ms(quantile(&acks, 0.999)), "max": ms(acks.last().copied().unwrap_or(0))},
        "server_cpu_seconds": cpu_seconds,
    }))
}
