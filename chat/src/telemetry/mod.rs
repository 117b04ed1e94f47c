//! Telemetry for the whole process, set up once in `main` and by each role: logs (to
//! stderr, so stdout carries only what a command prints for people or scripts: the banner,
//! a token), and the metrics registry with `/metrics` and the HTTP middleware.

pub(crate) mod http;
pub(crate) mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

pub(crate) fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.filter).unwrap_or_else(|error| {
        eprintln!("chat: ignoring log filter {:?}: {error}", args.filter);
        EnvFilter::new("info")
    });
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line, the current span's fields flattened into it.
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(true).init(),
    }
}
