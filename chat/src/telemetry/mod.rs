//! Logging for the whole process, initialised once in `main`. Logs go to stderr so that
//! stdout carries only what a command prints for people or scripts (the banner, a token).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogArgs;

pub(crate) fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.filter).unwrap_or_else(|error| {
        eprintln!("chat: ignoring log filter {:?}: {error}", args.filter);
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
