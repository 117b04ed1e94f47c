//! Turns result lines into the tables of BENCHMARKS.md: medians over runs, chat next to
//! Centrifugo, and their ratio.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use crate::stats::median;

#[derive(Debug, Clone, Args)]
pub(crate) struct ReportArgs {
    /// Result lines, as the scenarios print them.
    #[arg(long)]
    results: PathBuf,
}

fn number(value: &Value, path: &[&str]) -> f64 {
    path.iter().fold(value, |value, key| &value[*key]).as_f64().unwrap_or(0.0)
}

/// Median of one metric over the runs of one target.
fn median_of(runs: &[&Value], path: &[&str]) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(|run| number(run, path)).collect();
    median(&mut values)
}

fn ratio(chat: f64, baseline: f64) -> String {
    if baseline == 0.0 { "–".into() } else { format!("{:.2}×", chat / baseline) }
}

pub(crate) fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let lines: Vec<Value> =
        text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    // scenario key -> target -> runs
    let mut groups: BTreeMap<String, BTreeMap<String, Vec<&Value>>> = BTreeMap::new();
    for line in &lines {
        let backend = line["backend"].as_str().unwrap_or("embedded");
        let key = match line["scenario"].as_str() {
            Some("connections") => format!("connections {} ({backend})", line["connections"]),
            Some("fanout") => format!(
                "fanout {} conversations × {} subscribers, {} msg/s for {} s, {} B ({backend})",
                line["conversations"],
                line["subscribers_per_conversation"],
                line["rate"],
                line["seconds"],
                line["payload"]
            ),
            Some("projector") => "projector catch-up (kafka+cassandra)".to_owned(),
            // The write path has its own section, below.
            _ => continue,
        };
        let target = line["target"].as_str().unwrap_or("?").to_owned();
        groups.entry(key).or_default().entry(target).or_default().push(line);
    }
    let mut out = std::io::stdout().lock();
    crate::write_report::render(&mut out, &lines)?;
    crate::write_report::render_clients(&mut out, &lines)?;
    crate::write_report::render_seed_sends(&mut out, &lines)?;
    for (key, targets) in &groups {
        let runs = targets.values().map(Vec::len).max().unwrap_or(0);
        writeln!(out, "\n**{key}** (median of {runs} runs)\n")?;
        let chat = targets.get("chat").map(Vec::as_slice).unwrap_or_default();
        let baseline = targets.get("centrifugo").map(Vec::as_slice).unwrap_or_default();
        if key.starts_with("projector") {
            writeln!(out, "| | chat |\n|---|---:|")?;
            for (name, path) in [
                ("backlog (events)", &["initial_lag"][..]),
                ("catch-up time (s)", &["caught_up_seconds"][..]),
                ("events per second, start to caught up", &["events_per_second"][..]),
                ("events per second once started", &["working_events_per_second"][..]),
            ] {
                writeln!(out, "| {name} | {:.1} |", median_of(chat, path))?;
            }
            lag_over_time(&mut out, chat)?;
            continue;
        }
        if baseline.is_empty() {
            writeln!(out, "| | chat |\n|---|---:|")?;
            for (name, path) in [
                ("deliveries per second", &["deliveries_per_second"][..]),
                ("send→receive p50 (ms)", &["latency_ms", "p50"][..]),
                ("send→receive p99 (ms)", &["latency_ms", "p99"][..]),
                ("publish ack p50 (ms)", &["ack_ms", "p50"][..]),
                ("publish ack p99 (ms)", &["ack_ms", "p99"][..]),
            ] {
                writeln!(out, "| {name} | {:.1} |", median_of(chat, path))?;
            }
            continue;
        }
        let metrics: &[(&str, &[&str])] = if key.starts_with("connections") {
            &[
                ("connections alive", &["alive"]),
                ("server memory per connection (KiB)", &["kib_per_connection"]),
                ("server RSS with all connections (MiB)", &["rss_after_kib"]),
            ]
        } else {
            &[
                ("deliveries per second", &["deliveries_per_second"]),
                ("deliveries / expected", &["deliveries"]),
                ("send→receive p50 (ms)", &["latency_ms", "p50"]),
                ("send→receive p99 (ms)", &["latency_ms", "p99"]),
                ("send→receive p99.9 (ms)", &["latency_ms", "p999"]),
                ("publish ack p99 (ms)", &["ack_ms", "p99"]),
                ("server CPU per delivery (µs)", &["server_cpu_us_per_delivery"]),
                ("time to publish the schedule (s)", &["publish_seconds"]),
                ("publishes that failed", &["publish_errors"]),
            ]
        };
        writeln!(out, "| | chat | Centrifugo | chat / Centrifugo |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
        for (name, path) in metrics {
            let mut chat_value = median_of(chat, path);
            let mut baseline_value = median_of(baseline, path);
            if path == &["rss_after_kib"] {
                chat_value /= 1024.0;
                baseline_value /= 1024.0;
            }
            if *name == "deliveries / expected" {
                let expected = |runs: &[&Value]| median_of(runs, &["expected_deliveries"]);
                let show =
                    |value: f64, runs: &[&Value]| format!("{value:.0} / {:.0}", expected(runs));
                writeln!(
                    out,
                    "| {name} | {} | {} | |",
                    show(chat_value, chat),
                    show(baseline_value, baseline)
                )?;
                continue;
            }
            writeln!(
                out,
                "| {name} | {chat_value:.1} | {baseline_value:.1} | {} |",
                ratio(chat_value, baseline_value)
            )?;
        }
    }
    Ok(())
}

/// The lag samples of the run with the median catch-up time, as one line.
fn lag_over_time(out: &mut impl Write, runs: &[&Value]) -> anyhow::Result<()> {
    let mut ordered: Vec<&&Value> = runs.iter().collect();
    ordered.sort_by(|a, b| {
        number(a, &["caught_up_seconds"]).total_cmp(&number(b, &["caught_up_seconds"]))
    });
    let Some(run) = ordered.get(ordered.len() / 2) else { return Ok(()) };
    let samples: Vec<String> = run["samples"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|sample| {
            format!("{:.2} s: {}", number(sample, &["seconds"]), number(sample, &["lag"]))
        })
        .collect();
    writeln!(out, "\nLag over time (the median run): {}.", samples.join(", "))?;
    Ok(())
}
