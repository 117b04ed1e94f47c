//! `chat webhooks list|redeliver`: the webhook events the receiver did not take within
//! their retry window, parked on the dead-letter log, shown and posted again. A redelivered
//! event keeps its id (`webhook-id`), so a receiver that did get it before drops it.

use std::io::Write;

use anyhow::Context;
use notifier::{Attempt, DeadLetters, Parked, WebhookSender};

use crate::cli::{DeadLetterArgs, RedeliverArgs, WebhooksAction};

pub(crate) async fn run(action: WebhooksAction) -> anyhow::Result<()> {
    match action {
        WebhooksAction::List(args) => list(&args).await,
        WebhooksAction::Redeliver(args) => redeliver(&args).await,
    }
}

/// The dead-letter log: a cluster's topic when one is named, else `chat dev`'s file.
async fn open(args: &DeadLetterArgs) -> anyhow::Result<DeadLetters> {
    if let Some(brokers) = &args.kafka_brokers {
        return crate::cluster::dead_letters(
            brokers,
            &args.kafka_security,
            &args.topic,
            "webhooks",
        )
        .await;
    }
    crate::dev::dead_letters(&args.data_dir)
}

async fn list(args: &DeadLetterArgs) -> anyhow::Result<()> {
    let parked = open(args)
        .await?
        .parked()
        .await
        .map_err(|e| anyhow::anyhow!("reading the dead letters: {e}"))?;
    let mut out = std::io::stdout().lock();
    for event in &parked {
        writeln!(out, "{}", summary(event))?;
    }
    writeln!(out, "{} parked", parked.len())?;
    Ok(())
}

fn summary(parked: &Parked) -> String {
    format!(
        "{}  {}  parked {}  ({})",
        parked.id, parked.event.kind, parked.parked_at, parked.reason
    )
}

async fn redeliver(args: &RedeliverArgs) -> anyhow::Result<()> {
    if args.ids.is_empty() && !args.all {
        anyhow::bail!("name the events to redeliver (--id, repeatable) or pass --all");
    }
    let settings = args
        .webhook
        .settings()?
        .context("CHAT_WEBHOOK_URL and CHAT_WEBHOOK_SECRET_FILE say where to redeliver")?;
    let dead_letters = open(&args.from).await?;
    let parked = dead_letters
        .parked()
        .await
        .map_err(|e| anyhow::anyhow!("reading the dead letters: {e}"))?;
    let chosen: Vec<&Parked> =
        parked.iter().filter(|event| args.all || args.ids.contains(&event.id)).collect();
    if let Some(id) = args.ids.iter().find(|id| !parked.iter().any(|event| &event.id == *id)) {
        anyhow::bail!("no parked event {id} (already redelivered, or never parked)");
    }
    let sender = WebhookSender::new(settings, notifier::Outbound::new(), None);
    let (mut taken, mut failed) = (0, 0);
    let mut out = std::io::stdout().lock();
    for event in chosen {
        match sender.attempt(&event.id, &event.event).await {
            Attempt::Accepted => {
                dead_letters
                    .redelivered(event)
                    .await
                    .map_err(|e| anyhow::anyhow!("recording a redelivery: {e}"))?;
                taken += 1;
                writeln!(out, "{}  redelivered", event.id)?;
            }
            Attempt::Failed { reason, .. } => {
                failed += 1;
                writeln!(out, "{}  still not taken: {reason}", event.id)?;
            }
        }
    }
    writeln!(out, "{taken} redelivered, {failed} still parked")?;
    if failed > 0 {
        anyhow::bail!("{failed} events were not taken");
    }
    Ok(())
}
