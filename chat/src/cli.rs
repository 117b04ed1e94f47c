//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chat", version, about = "Job chat on an event log")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Every role in one process on the embedded, durable backend, serving the web app.
    Dev(DevArgs),
    /// Mint a token (HS256) for development and tests.
    Token(TokenArgs),
}

/// How tokens are verified. Exactly one of the three.
#[derive(Debug, Clone, Args)]
pub(crate) struct JwtArgs {
    /// HS256 shared secret (at least 32 bytes). `chat dev` makes one under the data
    /// directory when neither this nor a public key is given.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// RS256: PEM file with the public key tokens are verified with.
    #[arg(long, env = "CHAT_JWT_PUBLIC_KEY_FILE", conflicts_with = "jwt_secret")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// RS256: JWKS file with the public keys tokens are verified with (chosen by `kid`).
    #[arg(long, env = "CHAT_JWT_JWKS_FILE", conflicts_with_all = ["jwt_secret", "jwt_public_key_file"])]
    pub jwt_jwks_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct LogArgs {
    /// Log filter, in `tracing` syntax (`info`, `chat=debug,fanout=trace`).
    #[arg(long = "log", env = "CHAT_LOG", default_value = "info")]
    pub filter: String,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DevArgs {
    /// Address to serve HTTP and WebSockets on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the log and the store are kept.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Partitions of the log; fixed once the log exists.
    #[arg(long, env = "CHAT_PARTITIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    /// Origins allowed to open cookie-authenticated WebSockets (comma-separated). The
    /// server's own origin is always allowed.
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Do not create the demo conversation on first start.
    #[arg(long, env = "CHAT_NO_DEMO")]
    pub no_demo: bool,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct TokenArgs {
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Display name (`name` claim).
    #[arg(long)]
    pub name: Option<String>,
    /// Mark the token as the jobs system (`role: "service"`).
    #[arg(long)]
    pub service: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl: u64,
    /// HS256 secret; defaults to the one `chat dev` keeps in its data directory.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The data directory of the `chat dev` whose secret to use.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}
