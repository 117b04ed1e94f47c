//! chat-bench: a load generator for the chat and, for comparison, Centrifugo.
//!
//! Every scenario is bounded in time and count, targets loopback only, and prints one JSON
//! line of results; `bench/run` runs the scenarios several times against both servers and
//! writes BENCHMARKS.md from those lines (`chat-bench report`).

mod connections;
mod cql_rows;
mod fanout;
mod lag;
mod report;
mod schedule;
mod seed_sends;
mod sends;
mod stats;
mod target;
mod write_report;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::target::{Kind, Target};

#[derive(Debug, Parser)]
#[command(name = "chat-bench", about = "Load generator for chat and Centrifugo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Opens idle subscribed WebSocket connections and reports the server's memory per
    /// connection.
    Connections(ConnectionsArgs),
    /// Holds a share of the connections for `connections --processes` (internal).
    #[command(hide = true)]
    Hold(HoldArgs),
    /// Publishes at a fixed rate (open loop) to conversations with many subscribers and
    /// reports deliveries per second and send-to-receive latency.
    Fanout(FanoutArgs),
    /// Offers sends at a fixed rate (open loop), each with a fresh idempotency key, and
    /// reports acknowledgement latency and how much of the offered rate was acknowledged.
    Sends(SendsArgs),
    /// Both participants of many conversations sending over the seed endpoint (open loop),
    /// every message delivered to both: latency and losses at one rate.
    SeedSends(SeedSendsArgs),
    /// Samples the projector's lag behind the log until it reaches zero (Kafka + CQL).
    Lag(lag::LagArgs),
    /// Writes the projector's rows straight to CQL (the projector's baseline).
    CqlRows(cql_rows::CqlRowsArgs),
    /// Renders BENCHMARKS.md tables from result lines.
    Report(report::ReportArgs),
}

#[derive(Debug, Clone, Args)]
struct TargetArgs {
    /// `chat` or `centrifugo`.
    #[arg(long)]
    target: Kind,
    /// Base HTTP URL (chat: the ingest API; centrifugo: its HTTP server).
    #[arg(long)]
    http: String,
    /// Base WebSocket URL (chat: the fanout; centrifugo: its HTTP server).
    #[arg(long)]
    ws: String,
    /// chat: the HS256 secret to mint tokens with; centrifugo: the HTTP API key.
    #[arg(long)]
    secret: String,
    /// The server's process id, to read its resident memory.
    #[arg(long)]
    server_pid: u32,
    /// Label written into the result line (e.g. the run number).
    #[arg(long, default_value = "")]
    label: String,
    /// What the server runs on, written into the result line (`embedded`, `kafka+cassandra`).
    #[arg(long, default_value = "embedded")]
    backend: String,
}

#[derive(Debug, Clone, Args)]
struct ConnectionsArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Connections per conversation (channel).
    #[arg(long, default_value_t = 100)]
    per_conversation: usize,
    /// Generator processes to spread the connections over (each has its own open-file
    /// limit).
    #[arg(long, default_value_t = 1)]
    processes: usize,
}

#[derive(Debug, Clone, Args)]
struct HoldArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_delimiter = ',')]
    ids: Vec<u64>,
    #[arg(long)]
    per_conversation: usize,
    #[arg(long)]
    first: usize,
    #[arg(long)]
    count: usize,
}

#[derive(Debug, Clone, Args)]
struct FanoutArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Conversations (channels) published to.
    #[arg(long, default_value_t = 50)]
    conversations: usize,
    /// Subscribed connections per conversation.
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    /// Messages published per second, over all conversations.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long to publish, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes of filler in each message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
}

#[derive(Debug, Clone, Args)]
struct SendsArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Conversations sent to (each with one subscribed connection counting deliveries).
    #[arg(long, default_value_t = 200)]
    conversations: usize,
    /// Sends offered per second, over all conversations.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long to offer, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes of filler in each message.
    #[arg(long, default_value_t = 400)]
    payload: usize,
    /// Send without idempotency keys.
    #[arg(long)]
    unkeyed: bool,
    /// Do not subscribe connections to count deliveries (the fanout need not run).
    #[arg(long)]
    no_deliveries: bool,
    /// Clients sending, each over one kept-alive connection with one request at a time, as
    /// browsers send (0: a new connection for every request in flight).
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// Seconds of sends at the same rate before the measured ones (not recorded).
    #[arg(long, default_value_t = 0)]
    warm_up: u64,
}

#[derive(Debug, Clone, Args)]
struct SeedSendsArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Conversations, each with both participants connected.
    #[arg(long, default_value_t = 200)]
    conversations: usize,
    /// Sends per second, over all connections.
    #[arg(long, default_value_t = 5000)]
    rate: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes of filler in each message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
}

pub(crate) fn emit(line: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Report(args) = &cli.command {
        return report::run(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Connections(args) => emit(
                &connections::run(&args.target, args.count, args.per_conversation, args.processes)
                    .await?,
            ),
            Command::Hold(args) => {
                let target = Target::new(&args.target).await?;
                let share = connections::Share {
                    ids: args.ids,
                    per_conversation: args.per_conversation.max(1),
                    first: args.first,
                    count: args.count,
                };
                anyhow::ensure!(
                    (share.first + share.count).div_ceil(share.per_conversation) <= share.ids.len(),
                    "hold: not enough conversation ids for the share"
                );
                connections::hold(&target, &share).await
            }
            Command::Fanout(args) => {
                let target = Target::new(&args.target).await?;
                let plan = fanout::Plan {
                    conversations: args.conversations,
                    subscribers: args.subscribers,
                    rate: args.rate,
                    duration: Duration::from_secs(args.seconds),
                    payload: args.payload,
                };
                emit(&fanout::run(&target, &plan).await?)
            }
            Command::Sends(args) => {
                let target = Target::new(&args.target).await?;
                let plan = sends::SendPlan {
                    conversations: args.conversations,
                    rate: args.rate,
                    duration: Duration::from_secs(args.seconds),
                    payload: args.payload,
                    keyed: !args.unkeyed,
                    deliveries: !args.no_deliveries,
                    connections: args.connections,
                    warm_up: Duration::from_secs(args.warm_up),
                };
                let target = target.with_senders(args.connections)?;
                emit(&sends::run(&target, &plan).await?)
            }
            Command::SeedSends(args) => {
                let target = Target::new(&args.target).await?;
                let plan = seed_sends::SeedPlan {
                    conversations: args.conversations,
                    rate: args.rate,
                    duration: Duration::from_secs(args.seconds),
                    payload: args.payload,
                };
                emit(&seed_sends::run(&target, &plan).await?)
            }
            Command::Lag(args) => emit(&lag::run(&args).await?),
            Command::CqlRows(args) => emit(&cql_rows::run(&args).await?),
            Command::Report(_) => Ok(()),
        }
    })
}
