//! The command line's defaults checked against the libraries' own: a role started without
//! flags runs exactly what `FanoutConfig::default()`, `WriterTiming::default()` and
//! `IngestConfig::default()` describe (what the crates' tests and embedders run), so a
//! default changed in one place fails here until it is changed in both. README's tables are
//! checked against the command line in `readme_flags.rs`.

use clap::Parser;

use crate::cli::{Cli, Command, DevArgs, RoleArgs};

fn dev_defaults() -> DevArgs {
    match Cli::try_parse_from(["chat", "dev"]).map(|cli| cli.command) {
        Ok(Command::Dev(args)) => args,
        other => panic!("chat dev without flags: {other:?}"),
    }
}

fn fanout_defaults() -> RoleArgs {
    match Cli::try_parse_from([
        "chat",
        "fanout",
        "--kafka-brokers",
        "k:9092",
        "--cql-nodes",
        "c:9042",
    ])
    .map(|cli| cli.command)
    {
        Ok(Command::Fanout(args)) => args,
        other => panic!("chat fanout without flags: {other:?}"),
    }
}

#[test]
fn the_fanout_runs_the_fanout_crates_defaults() {
    let expected = format!("{:?}", fanout::FanoutConfig::default());
    let dev = dev_defaults();
    assert_eq!(format!("{:?}", crate::wiring::fanout_config(&dev.limits, Vec::new())), expected);
    let role = fanout_defaults();
    assert_eq!(format!("{:?}", crate::wiring::fanout_config(&role.limits, Vec::new())), expected);
}

#[test]
fn keyed_sends_run_the_writer_protocols_default_timing() {
    let defaults = ingest::writer::WriterTiming::default();
    assert_eq!(dev_defaults().write.timing(), defaults);
    assert_eq!(fanout_defaults().write.timing(), defaults);
}

#[test]
fn sends_are_limited_at_the_ingest_crates_default_rate() {
    let limits = dev_defaults().limits;
    let rate = ingest::IngestConfig::default().send_rate.expect("a default send rate");
    assert_eq!((limits.send_rate, limits.send_burst), (rate.per_second, rate.burst));
    assert_eq!(limits.edit_window, ingest::IngestConfig::default().edit_window);
}
