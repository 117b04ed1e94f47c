//! Idle connections: how much server memory each subscribed WebSocket costs.
//!
//! The open-file limit is per process, so a server can hold about as many connections as
//! one generator process can open. To fill the server to its limit, the generator splits
//! the connections over several processes: this one and `chat-bench hold` helpers, which
//! open their share, report it, and keep it open until their stdin closes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::TargetArgs;
use crate::target::Target;

/// Connections opened at once, per process.
const CONCURRENCY: usize = 64;

/// Which connections a process opens: indexes `first..first + count` of the whole set,
/// `per_conversation` to each conversation of `ids`.
#[derive(Debug, Clone)]
pub(crate) struct Share {
    pub ids: Vec<u64>,
    pub per_conversation: usize,
    pub first: usize,
    pub count: usize,
}

/// Open connections that keep reading (so they answer pings and stay healthy).
struct Held {
    readers: Vec<JoinHandle<()>>,
    failed: usize,
    first_error: Option<anyhow::Error>,
}

impl Held {
    fn alive(&self) -> usize {
        self.readers.iter().filter(|reader| !reader.is_finished()).count()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

async fn open(target: &Target, share: &Share) -> Held {
    let opened: Vec<anyhow::Result<_>> = stream::iter(share.first..share.first + share.count)
        .map(|n| {
            let index = n / share.per_conversation;
            target.subscribe(share.ids[index], index)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut held = Held { readers: Vec::with_capacity(share.count), failed: 0, first_error: None };
    for subscriber in opened {
        match subscriber {
            Ok(mut subscriber) => held.readers.push(tokio::spawn(async move {
                while subscriber.next_stamps().await.is_some() {}
            })),
            Err(error) => {
                held.failed += 1;
                held.first_error.get_or_insert(error);
            }
        }
    }
    held
}

/// A helper process holding one share.
struct Helper {
    child: Child,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Helper {
    fn spawn(args: &TargetArgs, share: &Share) -> anyhow::Result<Self> {
        let ids: Vec<String> = share.ids.iter().map(u64::to_string).collect();
        let mut child = Command::new(std::env::current_exe()?)
            .arg("hold")
            .args(["--target", args.target.name(), "--http", &args.http, "--ws", &args.ws])
            .args(["--secret", &args.secret, "--server-pid", &args.server_pid.to_string()])
            .args(["--ids", &ids.join(","), "--per-conversation"])
            .arg(share.per_conversation.to_string())
            .args(["--first", &share.first.to_string(), "--count", &share.count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a helper process")?;
        let stdout = child.stdout.take().context("helper without stdout")?;
        Ok(Self { child, lines: BufReader::new(stdout).lines() })
    }

    async fn report(&mut self) -> anyhow::Result<Value> {
        let line = self.lines.next_line().await?.context("a helper stopped without a report")?;
        Ok(serde_json::from_str(&line)?)
    }
}

/// `chat-bench hold`: opens `share`, prints what it opened, holds the connections until
/// stdin closes, then prints how many were still alive.
pub(crate) async fn hold(target: &Target, share: &Share) -> anyhow::Result<()> {
    let held = open(target, share).await;
    let error = held.first_error.as_ref().map(ToString::to_string);
    crate::emit(&json!({"opened": held.readers.len(), "failed": held.failed, "error": error}))?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while stdin.next_line().await?.is_some() {}
    crate::emit(&json!({"alive": held.alive()}))
}

pub(crate) async fn run(
    args: &TargetArgs,
    count: usize,
    per_conversation: usize,
    processes: usize,
) -> anyhow::Result<Value> {
    let target = Target::new(args).await?;
    let per_conversation = per_conversation.max(1);
    let ids = target.conversations(count.div_ceil(per_conversation)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.rss_kib()?;
    let started = Instant::now();
    let processes = processes.clamp(1, count.max(1));
    let share_of = |part: usize| {
        let first = count * part / processes;
        Share {
            ids: ids.clone(),
            per_conversation,
            first,
            count: count * (part + 1) / processes - first,
        }
    };
    let mut helpers = (1..processes)
        .map(|part| Helper::spawn(args, &share_of(part)))
        .collect::<Result<Vec<_>, _>>()?;
    let own = open(&target, &share_of(0)).await;
    let (mut failed, mut first_error) =
        (own.failed, own.first_error.as_ref().map(ToString::to_string));
    for helper in &mut helpers {
        let report = helper.report().await?;
        failed += report["failed"].as_u64().unwrap_or(0) as usize;
        if first_error.is_none() {
            first_error = report["error"].as_str().map(str::to_owned);
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    if let Some(error) = first_error {
        anyhow::bail!("{failed} of {count} connections failed; the first: {error}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = target.rss_kib()?;
    let mut alive = own.alive();
    drop(own);
    for helper in &mut helpers {
        drop(helper.child.stdin.take());
        alive += helper.report().await?["alive"].as_u64().unwrap_or(0) as usize;
        helper.child.wait().await?;
    }
    let per_connection = after.saturating_sub(before) as f64 / alive.max(1) as f64;
    Ok(json!({
        "scenario": "connections",
        "target": target.kind.name(),
        "label": target.label,
        "backend": target.backend,
        "connections": count,
        "processes": processes,
        "alive": alive,
        "failed": failed,
        "open_seconds": open_seconds,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": per_connection,
    }))
}
