//! Send-heavy chat over the seed endpoint, open loop: both participants of every
//! conversation connected (two sockets per conversation) and sending, each message
//! delivered to both. Latency runs from the scheduled send time to each delivery; a run
//! holds its rate when nothing is lost and the p99 stays under 100 ms.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::stats::quantile;
use crate::target::{Target, now_nanos};

pub(crate) struct SeedPlan {
    pub conversations: usize,
    pub rate: u32,
    pub duration: Duration,
    pub payload: usize,
}

/// How long deliveries may trail the last send.
const DRAIN: Duration = Duration::from_secs(3);
/// How long the projections may take to show every message afterwards.
const PROJECTION_WAIT: Duration = Duration::from_secs(30);

/// Polls the inboxes until the unread counts of all participants add up to `sent`.
async fn projected_within(
    target: &Target,
    ids: &[u64],
    sent: usize,
    wait: Duration,
) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    while started.elapsed() < wait {
        let counts: Vec<u64> = stream::iter(ids.iter().enumerate().flat_map(|(index, id)| {
            [(*id, format!("bench-client-{index}")), (*id, format!("bench-worker-{index}"))]
        }))
        .map(|(id, user)| async move { target.unread(id, &user).await.unwrap_or(0) })
        .buffer_unordered(32)
        .collect()
        .await;
        if counts.iter().sum::<u64>() >= sent as u64 {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
}

/// What one socket saw: delivery latencies in microseconds, and sends it could not make.
struct Seen {
    latencies: Vec<u64>,
    failed_sends: usize,
}

pub(crate) async fn run(target: &Target, plan: &SeedPlan) -> anyhow::Result<Value> {
    let ids = target.conversations(plan.conversations).await?;
    let sockets: Vec<_> = stream::iter(ids.iter().enumerate().flat_map(|(index, id)| {
        [
            (index, *id, format!("bench-client-{index}")),
            (index, *id, format!("bench-worker-{index}")),
        ]
    }))
    .map(|(_, id, user)| async move { target.seed_socket(id, &user).await })
    .buffered(64)
    .collect()
    .await;
    let count = sockets.len();
    let total = (f64::from(plan.rate) * plan.duration.as_secs_f64()) as usize;
    let filler = "x".repeat(plan.payload);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = target.cpu_seconds()?;
    let start = Instant::now() + Duration::from_millis(200);
    let start_epoch = now_nanos() + 200_000_000;
    let end = start + plan.duration + DRAIN;
    let mut tasks = Vec::with_capacity(count);
    for (slot, socket) in sockets.into_iter().enumerate() {
        let (mut sink, mut reader) = socket?.split();
        let filler = filler.clone();
        let rate = f64::from(plan.rate);
        tasks.push(tokio::spawn(async move {
            // Sends `slot`, `slot + count`, ... of the schedule, each at its planned time.
            let sender = async {
                let mut failed = 0;
                for n in (slot..total).step_by(count) {
                    let offset = Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until((start + offset).into()).await;
                    let stamp = start_epoch + offset.as_nanos();
                    let frame = json!({"message": format!("{stamp} {filler}"), "type": "TEXT"});
                    if sink.send(Message::text(frame.to_string())).await.is_err() {
                        failed += 1;
                    }
                }
                failed
            };
            let receiver = async {
                let mut latencies = Vec::new();
                let marker = "\"message_text\":\"";
                loop {
                    let frame = tokio::time::timeout_at(end.into(), reader.next()).await;
                    let Ok(Some(Ok(Message::Text(text)))) = frame else {
                        if matches!(frame, Ok(Some(Ok(_)))) {
                            continue;
                        }
                        break;
                    };
                    let now = now_nanos();
                    if let Some(at) = text.find(marker).map(|at| at + marker.len()) {
                        let digits = text[at..].split(|c: char| !c.is_ascii_digit()).next();
                        if let Some(stamp) = digits.and_then(|d| d.parse::<u128>().ok()) {
                            latencies.push((now.saturating_sub(stamp) / 1000) as u64);
                        }
                    }
                }
                latencies
            };
            let (failed_sends, latencies) = tokio::join!(sender, receiver);
            Seen { latencies, failed_sends }
        }));
    }
    let mut latencies = Vec::with_capacity(total * 2);
    let mut failed_sends = 0;
    for task in tasks {
        let seen = task.await?;
        latencies.extend(seen.latencies);
        failed_sends += seen.failed_sends;
    }
    let cpu_seconds = target.cpu_seconds()? - cpu_before;
    let sent = total - failed_sends;
    let projected_after = projected_within(target, &ids, sent, PROJECTION_WAIT).await?;
    latencies.sort_unstable();
    let expected = total * 2;
    let ms = |micros: u64| micros as f64 / 1000.0;
    let p99 = ms(quantile(&latencies, 0.99));
    Ok(json!({
        "scenario": "seed-sends",
        "target": target.kind.name(),
        "label": target.label,
        "backend": target.backend,
        "conversations": plan.conversations,
        "connections": count,
        "rate": plan.rate,
        "seconds": plan.duration.as_secs(),
        "payload": plan.payload,
        "sent": sent,
        // Seconds after the last delivery until the projections held every message (each
        // is unread for the other participant); null if they did not within 30 s.
        "projected_after_seconds": projected_after,
        "deliveries": latencies.len(),
        "expected_deliveries": expected,
        "lost": expected.saturating_sub(latencies.len()),
        "held": latencies.len() >= expected && p99 <= 100.0,
        "latency_ms": {"p50": ms(quantile(&latencies, 0.5)), "p99": p99,
                       "p999": ms(quantile(&latencies, 0.999)), "max": ms(latencies.last().copied().unwrap_or(0))},
        "server_cpu_seconds": cpu_seconds,
        "server_cpu_us_per_send": cpu_seconds * 1e6 / total.max(1) as f64,
    }))
}
