//! Projector lag on Kafka + CQL: how far the projections trail the log, sampled until they
//! catch up. Run after loading a backlog with the projector stopped, then start it: the
//! result is the projector's catch-up rate in events per second.

use std::time::{Duration, Instant};

use eventlog::EventLog;
use eventlog::kafka::{KafkaConfig, KafkaEventLog};
use serde_json::{Value, json};
use viewstore::ReadModel;
use viewstore::cql::{CqlConfig, CqlStore};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LagArgs {
    #[arg(long, env = "CHAT_KAFKA_BROKERS")]
    kafka_brokers: String,
    #[arg(long, env = "CHAT_TOPIC")]
    topic: String,
    #[arg(long, env = "CHAT_CQL_NODES", value_delimiter = ',')]
    cql_nodes: Vec<String>,
    #[arg(long, env = "CHAT_KEYSPACE")]
    keyspace: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    #[arg(long, default_value = "")]
    label: String,
}

/// Events in the log that the projections do not reflect yet.
async fn lag(log: &KafkaEventLog, store: &CqlStore) -> anyhow::Result<u64> {
    let ends = log.end_offsets().await?;
    let marks = store.watermarks(log.partitions()).await?;
    Ok(ends
        .iter()
        .zip(marks)
        .map(|(end, mark)| end.saturating_sub(mark.map_or(0, |mark| mark + 1)))
        .sum())
}

pub(crate) async fn run(args: &LagArgs) -> anyhow::Result<Value> {
    let log = KafkaEventLog::connect(
        KafkaConfig::new(args.kafka_brokers.clone(), args.topic.clone()).with_env_security()?,
    )
    .await?;
    let store = CqlStore::connect(
        &CqlConfig::new(args.cql_nodes.clone(), args.keyspace.clone()).with_env_security()?,
    )
    .await?;
    let started = Instant::now();
    let initial = lag(&log, &store).await?;
    let mut samples = vec![json!({"seconds": 0.0, "lag": initial})];
    let deadline = started + Duration::from_secs(args.timeout);
    let mut caught_up = None;
    // The last moment the projector had not yet moved (it is still starting: joining its
    // group, connecting): the working rate is measured from there.
    let mut idle_until = 0.0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let current = lag(&log, &store).await?;
        let seconds = started.elapsed().as_secs_f64();
        samples.push(json!({"seconds": seconds, "lag": current}));
        if current >= initial {
            idle_until = seconds;
        }
        if current == 0 {
            caught_up = Some(seconds);
            break;
        }
    }
    Ok(json!({
        "scenario": "projector",
        "target": "chat",
        "label": args.label,
        "initial_lag": initial,
        "caught_up_seconds": caught_up,
        "events_per_second": caught_up.map(|seconds| initial as f64 / seconds.max(0.001)),
        "working_events_per_second":
            caught_up.map(|seconds| initial as f64 / (seconds - idle_until).max(0.001)),
        "samples": samples,
    }))
}
