//! chat: one binary for every role of the chat backend.
//!
//! `chat dev` runs everything in one process on the embedded backend; `chat ingest`,
//! `chat fanout` and `chat projector` run the roles separately on Kafka + CQL; `chat
//! migrate` and `chat replay` operate the cluster; `chat token` mints development tokens.
//! The cluster commands are built in with the `cluster` feature (production images and the
//! cluster tests); without it they refuse in one line, and the build needs no C libraries
//! beyond SQLite's.
//! Configuration comes from flags or `CHAT_*` environment variables and is validated
//! before any port is bound.

#[cfg(test)]
mod architecture_map;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
mod config_check;
#[cfg(test)]
mod default_drift;
mod dev;
mod health;
mod jwt;
#[cfg(test)]
mod manifest_settings;
#[cfg(feature = "cluster")]
mod migrate;
#[cfg(test)]
mod readme_flags;
#[cfg(feature = "cluster")]
mod replay;
mod server;
mod telemetry;
mod token;
mod web;
mod webhooks;
mod wiring;
#[cfg(not(feature = "cluster"))]
mod without_cluster;

#[cfg(not(feature = "cluster"))]
use crate::without_cluster::{cluster, migrate, replay};

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, ConfigAction, WebhooksAction};

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let result = match cli.command {
        Command::Config(config) => {
            let ConfigAction::Check(check) = &config.action;
            let role_matches = matches
                .subcommand_matches("config")
                .and_then(|config| config.subcommand_matches("check"))
                .and_then(|check| check.subcommand().map(|(_, role)| role.clone()));
            config_check::run(&check.role, check.connect, &role_matches.unwrap_or_default())
        }
        Command::Token(args) => token::run(&args),
        Command::Dev(args) => with_runtime(&args.log.clone(), "dev", dev::run(args)),
        Command::Ingest(args) => {
            with_runtime(&args.log.clone(), "ingest", cluster::run_ingest(args))
        }
        Command::Fanout(args) => {
            with_runtime(&args.log.clone(), "fanout", cluster::run_fanout(args))
        }
        Command::Projector(args) => {
            with_runtime(&args.log.clone(), "projector", cluster::run_projector(args))
        }
        Command::Notifier(args) => {
            with_runtime(&args.log.clone(), "notifier", cluster::run_notifier(args))
        }
        Command::Migrate(args) => with_runtime(&args.log.clone(), "migrate", migrate::run(args)),
        Command::Replay(args) => with_runtime(&args.log.clone(), "replay", replay::run(args)),
        Command::Webhooks(args) => {
            let log = match &args.action {
                WebhooksAction::List(args) => args.log.clone(),
                WebhooksAction::Redeliver(args) => args.from.log.clone(),
            };
            with_runtime(&log, "webhooks", webhooks::run(args.action))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn with_runtime(
    log: &cli::LogArgs,
    role: &str,
    work: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let telemetry = telemetry::init(log, role)?;
    let result = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(work);
    telemetry.shutdown();
    result
}
