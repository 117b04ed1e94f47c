//! The write path's table in BENCHMARKS.md: keyed sends through ingest next to Kafka's own
//! producer at the same offered rates, per rate the medians over runs and their ratios;
//! then the highest rates each kept up with, and the projector next to a plain CQL writer.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

use crate::stats::median;

fn number(value: &Value, path: &[&str]) -> f64 {
    path.iter().fold(value, |value, key| &value[*key]).as_f64().unwrap_or(0.0)
}

fn median_of(runs: &[&Value], path: &[&str]) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(|run| number(run, path)).collect();
    median(&mut values)
}

fn ratio(value: f64, baseline: f64) -> String {
    if baseline <= 0.0 { "–".into() } else { format!("{:.1}×", value / baseline) }
}

/// One offered rate's result lines: chat's sends, Kafka's producer, the lag after the burst.
#[derive(Default)]
struct AtRate<'a> {
    chat: Vec<&'a Value>,
    producer: Vec<&'a Value>,
    lag: Vec<&'a Value>,
}

/// Renders the write-path section from every result line; nothing when there are none.
pub(crate) fn render(out: &mut impl Write, lines: &[Value]) -> anyhow::Result<()> {
    let mut by_rate: BTreeMap<u64, AtRate<'_>> = BTreeMap::new();
    for line in lines {
        let rate = number(line, &["rate"]) as u64;
        match (line["scenario"].as_str(), line["target"].as_str()) {
            (Some("sends"), Some("chat")) => by_rate.entry(rate).or_default().chat.push(line),
            (Some("sends"), Some("kafka-producer")) => {
                by_rate.entry(rate).or_default().producer.push(line)
            }
            (Some("burst-lag"), _) => by_rate.entry(rate).or_default().lag.push(line),
            _ => {}
        }
    }
    if by_rate.is_empty() {
        return Ok(());
    }
    let runs = by_rate.values().map(|at| at.chat.len()).max().unwrap_or(0);
    writeln!(
        out,
        "\n**keyed sends through ingest, RF 3, next to Kafka's producer** (median of {runs} runs)\n"
    )?;
    writeln!(
        out,
        "| offered/s | chat acked (≤ 5 s) | chat ack p50 / p99 / p99.9 (ms) | deliveries | producer p50 / p99 / p99.9 (ms) | p50 ratio | p99 ratio | projections caught up after the 10 s burst |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for (rate, AtRate { chat, producer, lag }) in &by_rate {
        let acked = median_of(chat, &["kept_up_fraction"]) * 100.0;
        let (p50, p99, p999) = (
            median_of(chat, &["ack_ms", "p50"]),
            median_of(chat, &["ack_ms", "p99"]),
            median_of(chat, &["ack_ms", "p999"]),
        );
        let (r50, r99, r999) = (
            median_of(producer, &["ack_ms", "p50"]),
            median_of(producer, &["ack_ms", "p99"]),
            median_of(producer, &["ack_ms", "p999"]),
        );
        let caught_up = if lag.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.1} s", median_of(lag, &["caught_up_seconds"]))
        };
        writeln!(
            out,
            "| {rate} | {acked:.1} % | {p50:.1} / {p99:.1} / {p999:.1} | {:.0} | {r50:.1} / {r99:.1} / {r999:.1} | {} | {} | {caught_up} |",
            median_of(chat, &["deliveries"]),
            ratio(p50, r50),
            ratio(p99, r99)
        )?;
    }
    let kept_up = by_rate
        .iter()
        .filter(|(_, at)| !at.chat.is_empty() && median_of(&at.chat, &["kept_up_fraction"]) >= 0.98)
        .map(|(rate, _)| *rate)
        .max();
    let producer_max: Vec<&Value> =
        lines.iter().filter(|line| line["scenario"] == "producer-max").collect();
    if !producer_max.is_empty() {
        let max = median_of(&producer_max, &["records_per_second"]);
        let chat = kept_up.map_or("none of the rates".to_owned(), |rate| format!("{rate}/s"));
        writeln!(
            out,
            "\nHighest rate kept up with (≥ 98 % acknowledged within 5 s): chat {chat}; Kafka's producer, unthrottled: {max:.0} records/s."
        )?;
    }
    let plain: Vec<&Value> = lines.iter().filter(|line| line["scenario"] == "cql-rows").collect();
    let projector: Vec<&Value> =
        lines.iter().filter(|line| line["scenario"] == "projector").collect();
    if !plain.is_empty() && !projector.is_empty() {
        let (ours, theirs) = (
            median_of(&projector, &["working_events_per_second"]),
            median_of(&plain, &["messages_per_second"]),
        );
        writeln!(
            out,
            "\nProjector catching up on a backlog: {ours:.0} events/s once started; a plain CQL writer of the same rows: {theirs:.0} messages/s ({} of it).",
            ratio(ours, theirs)
        )?;
    }
    Ok(())
}

/// Sends from a fixed population of clients (each one kept-alive connection, one request at
/// a time, after a warm-up): per (clients, keyed) the medians, next to Kafka's producer at
/// the same rate in the same run.
pub(crate) fn render_clients(out: &mut impl Write, lines: &[Value]) -> anyhow::Result<()> {
    let mut shapes: BTreeMap<(u64, u64, bool), Vec<&Value>> = BTreeMap::new();
    for line in lines.iter().filter(|line| line["scenario"] == "clients") {
        let key = (
            number(line, &["rate"]) as u64,
            number(line, &["connections"]) as u64,
            line["keyed"].as_bool().unwrap_or(true),
        );
        shapes.entry(key).or_default().push(line);
    }
    if shapes.is_empty() {
        return Ok(());
    }
    let runs = shapes.values().map(Vec::len).max().unwrap_or(0);
    writeln!(
        out,
        "
**sends from many clients** (one kept-alive connection each, one request at a time, {} s warm-up; median of {runs} runs)
",
        shapes.values().flatten().map(|line| number(line, &["warm_up_seconds"]) as u64).max().unwrap_or(0)
    )?;
    writeln!(
        out,
        "| offered/s | clients | keyed | acked/s (≤ 5 s) | ack p50 / p99 (ms) | producer p50 / p99 (ms) | p50 ratio | server CPU per send (µs) |"
    )?;
    writeln!(out, "|---:|---:|:---:|---:|---:|---:|---:|---:|")?;
    for ((rate, clients, keyed), runs) in &shapes {
        let producer: Vec<&Value> = lines
            .iter()
            .filter(|line| line["scenario"] == "sends" && line["target"] == "kafka-producer")
            .filter(|line| number(line, &["rate"]) as u64 == *rate)
            .collect();
        let (p50, p99) = (median_of(runs, &["ack_ms", "p50"]), median_of(runs, &["ack_ms", "p99"]));
        let (r50, r99) =
            (median_of(&producer, &["ack_ms", "p50"]), median_of(&producer, &["ack_ms", "p99"]));
        let cpu_us = median_of(runs, &["server_cpu_seconds"]) * 1e6
            / median_of(runs, &["acknowledged"]).max(1.0);
        writeln!(
            out,
            "| {rate} | {clients} | {} | {:.0} | {p50:.1} / {p99:.1} | {r50:.1} / {r99:.1} | {} | {cpu_us:.0} |",
            if *keyed { "yes" } else { "no" },
            median_of(runs, &["kept_up_per_second"]),
            ratio(p50, r50)
        )?;
    }
    Ok(())
}

/// The send-heavy table: both participants sending over the seed endpoint on `chat dev`,
/// per rate the medians over runs, and the highest rate held in every run.
pub(crate) fn render_seed_sends(out: &mut impl Write, lines: &[Value]) -> anyhow::Result<()> {
    let mut by_rate: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for line in lines.iter().filter(|line| line["scenario"] == "seed-sends") {
        by_rate.entry(number(line, &["rate"]) as u64).or_default().push(line);
    }
    if by_rate.is_empty() {
        return Ok(());
    }
    let runs = by_rate.values().map(Vec::len).max().unwrap_or(0);
    writeln!(
        out,
        "\n**send-heavy: 200 conversations, both participants sending over `/ws/chat/{{id}}/`, 400 connections** (median of {runs} runs)\n"
    )?;
    writeln!(
        out,
        "| offered sends/s | held (runs) | send→receive p50 / p99 / p99.9 (ms) | lost deliveries | projected after (s) | server CPU per send (µs) |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|")?;
    for (rate, at) in &by_rate {
        let held = at.iter().filter(|line| line["held"] == true).count();
        writeln!(
            out,
            "| {rate} | {held} of {} | {:.1} / {:.1} / {:.1} | {:.0} | {:.2} | {:.0} |",
            at.len(),
            median_of(at, &["latency_ms", "p50"]),
            median_of(at, &["latency_ms", "p99"]),
            median_of(at, &["latency_ms", "p999"]),
            median_of(at, &["lost"]),
            median_of(at, &["projected_after_seconds"]),
            median_of(at, &["server_cpu_us_per_send"]),
        )?;
    }
    // The rate up to which every step held in every run: one miss on the way up ends it.
    let held = by_rate
        .iter()
        .take_while(|(_, at)| at.iter().all(|line| line["held"] == true))
        .map(|(rate, _)| *rate)
        .last();
    let held = held.map_or("none of the rates".to_owned(), |rate| format!("{rate} sends/s"));
    writeln!(
        out,
        "\nHeld (nothing lost, p99 ≤ 100 ms) at every step up to and including: {held}."
    )?;
    Ok(())
}
