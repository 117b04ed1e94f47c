//! chat: one binary for every role of the chat backend.
//!
//! `chat dev` runs everything in one process on the embedded backend; `chat token` mints
//! development tokens. Configuration comes from flags or `CHAT_*` environment variables and
//! is validated before any port is bound.

mod cli;
mod dev;
mod jwt;
mod server;
mod telemetry;
mod token;
mod web;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(args) => token::run(&args),
        Command::Dev(args) => {
            telemetry::init(&args.log);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(dev::run(args)))
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
