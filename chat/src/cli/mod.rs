//! Command-line and environment configuration. Every flag has a `CHAT_*` variable; values
//! are parsed and checked here, before any port is bound or any connection made.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod cluster;
mod limits;
mod notify;

pub(crate) use cluster::{ClusterArgs, KafkaSecurityArgs};
pub(crate) use limits::{FileArgs, HttpArgs, LimitsArgs, WriteArgs};
pub(crate) use notify::{NotifyArgs, PushApiArgs, WebhookArgs};

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
    /// The HTTP API (validate, authorize, append) on Kafka + CQL.
    Ingest(RoleArgs),
    /// The WebSocket endpoints (seed and native) on Kafka + CQL.
    Fanout(RoleArgs),
    /// Folds the log into the CQL projections; serves health on --listen.
    Projector(ProjectorArgs),
    /// Tells recipients who did not see a message in time (Web Push) and the jobs system
    /// (webhooks), from the log on Kafka + CQL.
    Notifier(NotifierArgs),
    /// Creates the Kafka topics and the CQL keyspace and tables (idempotent).
    Migrate(MigrateArgs),
    /// Rebuilds the projections from the log into fresh tables and compares them with the
    /// live ones.
    Replay(ReplayArgs),
    /// Webhook events the receiver did not take in time: list them, post them again.
    Webhooks(WebhooksArgs),
    /// Mint a token (HS256) for development and tests.
    Token(TokenArgs),
    /// Operate on configuration: `chat config check <role> [flags]`.
    Config(ConfigArgs),
}

#[derive(Debug, Args)]
pub(crate) struct WebhooksArgs {
    #[command(subcommand)]
    pub action: WebhooksAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksAction {
    /// The parked events: id, type, when parked, the receiver's last answer.
    List(DeadLetterArgs),
    /// Post parked events again (`--id`, repeatable, or `--all`); each one taken leaves the
    /// list.
    Redeliver(RedeliverArgs),
}

/// Where the dead-letter log is: the cluster's topic when Kafka is named, else the data
/// directory of a `chat dev`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DeadLetterArgs {
    /// The data directory of the `chat dev` whose parked events to use.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers: the cluster's `<topic>.dead-letters` instead.
    #[arg(long, env = "CHAT_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The event log's topic (the dead letters are in `<topic>.dead-letters`).
    #[arg(long, env = "CHAT_TOPIC", default_value = "chat.events")]
    pub topic: String,
    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RedeliverArgs {
    /// An event to redeliver (its `webhook-id`, as `list` shows it).
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// Every parked event.
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    #[command(flatten)]
    pub webhook: WebhookArgs,
    #[command(flatten)]
    pub from: DeadLetterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Validate a role's flags, environment and key files without starting it, and print
    /// the effective configuration (secrets redacted). Exits non-zero when invalid.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Also connect to Kafka and the database with these settings, and say for each what
    /// worked and what did not (exits non-zero when one did not).
    #[arg(long)]
    pub connect: bool,
    #[command(subcommand)]
    pub role: CheckedRole,
}

/// The role whose configuration to check, with the flags it would start with.
#[derive(Debug, Subcommand)]
pub(crate) enum CheckedRole {
    Dev(DevArgs),
    Ingest(RoleArgs),
    Fanout(RoleArgs),
    Projector(ProjectorArgs),
    Notifier(NotifierArgs),
    Migrate(MigrateArgs),
}

/// How tokens are verified. Exactly one of the four.
#[derive(Debug, Clone, Args)]
pub(crate) struct JwtArgs {
    /// HS256 shared secret (at least 32 bytes). `chat dev` makes one under the data
    /// directory when neither this nor a public key is given. In production prefer
    /// `--jwt-secret-file`: a variable shows in the process's environment.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// HS256: a file holding the shared secret (one line; a Secret mount).
    #[arg(long, env = "CHAT_JWT_SECRET_FILE", conflicts_with = "jwt_secret")]
    pub jwt_secret_file: Option<PathBuf>,
    /// RS256: PEM file with the public key tokens are verified with.
    #[arg(long, env = "CHAT_JWT_PUBLIC_KEY_FILE", conflicts_with_all = ["jwt_secret", "jwt_secret_file"])]
    pub jwt_public_key_file: Option<PathBuf>,
    /// RS256: JWKS file with the public keys tokens are verified with (chosen by `kid`).
    #[arg(long, env = "CHAT_JWT_JWKS_FILE", conflicts_with_all = ["jwt_secret", "jwt_secret_file", "jwt_public_key_file"])]
    pub jwt_jwks_file: Option<PathBuf>,
}

impl JwtArgs {
    /// The HS256 secret, from the variable or the file, if one is configured.
    pub(crate) fn secret(&self) -> anyhow::Result<Option<String>> {
        match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(file)) => read_secret_file("CHAT_JWT_SECRET_FILE", file).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Whether tokens are verified with a key the operator configured.
    pub(crate) fn configured(&self) -> bool {
        self.jwt_secret.is_some()
            || self.jwt_secret_file.is_some()
            || self.jwt_public_key_file.is_some()
            || self.jwt_jwks_file.is_some()
    }
}

/// The one line a secret file holds, refused by the setting's name when unreadable or empty.
pub(crate) fn read_secret_file(setting: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let secret =
        settings::Secret::read_file(path).map_err(|error| anyhow::anyhow!("{setting}: {error}"))?;
    Ok(secret.expose().to_owned())
}

#[derive(Debug, Clone, Args)]
pub(crate) struct LogArgs {
    /// Log filter, in `tracing` syntax (`info`, `chat=debug,fanout=trace`).
    #[arg(long = "log", env = "CHAT_LOG", default_value = "info,scylla=warn,librdkafka=warn")]
    pub filter: String,
    /// Log lines as text for people, or one JSON object per line for log pipelines.
    #[arg(long = "log-format", env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RoleArgs {
    /// Address to serve the API and the WebSockets on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address to serve `/metrics`, `/healthz`, `/readyz` and the routes between nodes on:
    /// for the cluster's network only, never the public one.
    #[arg(long, env = "CHAT_INTERNAL_LISTEN", default_value = "127.0.0.1:9080")]
    pub internal_listen: SocketAddr,
    /// Where other nodes reach this one's internal listener (`host:port`), e.g. the pod
    /// IP; defaults to `--internal-listen` when that names a host.
    #[arg(long, env = "CHAT_ADVERTISE")]
    pub advertise: Option<String>,
    /// Key (at least 32 bytes) that signs keyed sends forwarded between nodes. Defaults to
    /// one derived from the HS256 token secret; required when tokens are RS256.
    #[arg(long, env = "CHAT_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret (one line; a Secret mount).
    #[arg(long, env = "CHAT_CLUSTER_SECRET_FILE", conflicts_with = "cluster_secret")]
    pub cluster_secret_file: Option<PathBuf>,
    /// A file holding a second cluster secret forwarded sends are also accepted under
    /// (never signed with): the overlap that rotates the cluster secret without a refused
    /// send (RUNBOOK, "Rotating the cluster secret").
    #[arg(long, env = "CHAT_CLUSTER_SECRET_ACCEPTED_FILE")]
    pub cluster_secret_accepted_file: Option<PathBuf>,
    /// The log's writer group the ingest nodes share partitions through (default:
    /// `<topic>.writers`).
    #[arg(long, env = "CHAT_WRITER_GROUP")]
    pub writer_group: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub files: FileArgs,
    #[command(flatten)]
    pub push: PushApiArgs,
    /// Origins allowed to open cookie-authenticated WebSockets (comma-separated).
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = settings::origin)]
    pub allowed_origins: Vec<String>,
    #[command(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ProjectorArgs {
    /// Address to serve `/metrics`, `/healthz` and `/readyz` on (the projector has no
    /// public endpoints).
    #[arg(long, env = "CHAT_INTERNAL_LISTEN", default_value = "127.0.0.1:9082")]
    pub internal_listen: SocketAddr,
    /// Consumer group shared by every projector of a deployment.
    #[arg(long, env = "CHAT_PROJECTOR_GROUP", default_value = "chat-projector")]
    pub group: String,
    /// On SIGTERM, how long the batch in hand gets to be written and committed; the
    /// process exits at most 2 s after it.
    #[arg(long, env = "CHAT_DRAIN", default_value = "5s", value_parser = settings::duration_or_zero)]
    pub drain: Duration,
    /// A stable name for this projector replica (e.g. its pod name): restarted under the
    /// same name, it takes its partitions back at once (Kafka static membership).
    #[arg(long, env = "CHAT_PROJECTOR_INSTANCE")]
    pub instance: Option<String>,
    /// Most records folded per store write. A batch takes only what has arrived, so a large
    /// bound costs no latency; under a backlog it amortises the round trips to the store.
    #[arg(long, env = "CHAT_PROJECTOR_BATCH", default_value_t = projector::runner::DEFAULT_BATCH as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct NotifierArgs {
    /// Address to serve `/metrics`, `/healthz` and `/readyz` on (the notifier has no
    /// public endpoints).
    #[arg(long, env = "CHAT_INTERNAL_LISTEN", default_value = "127.0.0.1:9083")]
    pub internal_listen: SocketAddr,
    /// Consumer group shared by every notifier of a deployment.
    #[arg(long = "notifier-group", env = "CHAT_NOTIFIER_GROUP", default_value = "chat-notifier")]
    pub group: String,
    /// The fanout's presence TTL: a fanout node not heard from this long is gone, and its
    /// users with it (keep it equal to the fanout's).
    #[arg(long, env = "CHAT_PRESENCE_TTL", default_value = "30s", value_parser = settings::duration)]
    pub presence_ttl: Duration,
    /// On SIGTERM, how long deliveries in flight get; what is not done by then is done
    /// again by the next member (offsets were not committed past it).
    #[arg(long, env = "CHAT_DRAIN", default_value = "5s", value_parser = settings::duration_or_zero)]
    pub drain: Duration,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct MigrateArgs {
    /// Partitions of the event topic; fixed once it exists.
    #[arg(long, env = "CHAT_PARTITIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    /// Replicas of each topic partition; writes need a majority of them in sync
    /// (`min.insync.replicas` 2 of 3). At most the number of brokers: a single-broker
    /// development cluster takes 1.
    #[arg(long, env = "CHAT_REPLICATION_FACTOR", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub replication_factor: u32,
    /// Hours the event topic keeps records; 0 keeps them forever (the log is the truth).
    #[arg(long, env = "CHAT_RETENTION_HOURS", default_value_t = 0)]
    pub retention_hours: u64,
    /// CQL replication: a factor (`3`: SimpleStrategy, or NetworkTopologyStrategy in
    /// `CHAT_CQL_LOCAL_DC` when that is set) or datacenters (`dc1:3,dc2:3`).
    #[arg(long, env = "CHAT_CQL_REPLICATION", default_value = "1")]
    pub cql_replication: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ReplayArgs {
    /// Keyspace to rebuild into (created, or emptied first if it is a replay keyspace).
    #[arg(long, env = "CHAT_REPLAY_KEYSPACE")]
    pub into_keyspace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DevArgs {
    /// Address to serve HTTP, WebSockets and the web app on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address to serve `/metrics`, `/healthz` and `/readyz` on.
    #[arg(long, env = "CHAT_INTERNAL_LISTEN", default_value = "127.0.0.1:9080")]
    pub internal_listen: SocketAddr,
    /// Where the log and the store are kept.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Partitions of the log; fixed once the log exists.
    #[arg(long, env = "CHAT_PARTITIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    /// Origins allowed to open cookie-authenticated WebSockets (comma-separated). The
    /// server's own origin is always allowed.
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = settings::origin)]
    pub allowed_origins: Vec<String>,
    /// Do not create the demo conversation on first start.
    #[arg(long, env = "CHAT_NO_DEMO")]
    pub no_demo: bool,
    /// Serve `/dev/token` (user tokens only, never the service role) even when tokens are
    /// signed with `CHAT_JWT_SECRET`; by default it is served only with the generated dev
    /// secret, whose tokens no other deployment accepts.
    #[arg(long, env = "CHAT_SERVE_DEV_TOKENS")]
    pub serve_dev_tokens: bool,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub files: FileArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    pub http: HttpArgs,
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
