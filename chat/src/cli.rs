//! Command-line and environment configuration. Every flag has a `CHAT_*` variable; values
//! are parsed and checked here, before any port is bound or any connection made.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// The HTTP API (validate, authorize, append) on Kafka + CQL.
    Ingest(RoleArgs),
    /// The WebSocket endpoints (seed and native) on Kafka + CQL.
    Fanout(RoleArgs),
    /// Folds the log into the CQL projections; serves health on --listen.
    Projector(ProjectorArgs),
    /// Creates the Kafka topics and the CQL keyspace and tables (idempotent).
    Migrate(MigrateArgs),
    /// Rebuilds the projections from the log into fresh tables and compares them with the
    /// live ones.
    Replay(ReplayArgs),
    /// Mint a token (HS256) for development and tests.
    Token(TokenArgs),
    /// Operate on configuration: `chat config check <role> [flags]`.
    Config(ConfigArgs),
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

/// Limits and timings of the HTTP and WebSocket front (defaults suit production).
#[derive(Debug, Clone, Args)]
pub(crate) struct LimitsArgs {
    /// Sends per second one user may sustain on one node (0: no limit).
    #[arg(long, env = "CHAT_SEND_RATE", default_value_t = 10.0, value_parser = settings::rate)]
    pub send_rate: f64,
    /// Sends one user may make at once before the rate applies.
    #[arg(long, env = "CHAT_SEND_BURST", default_value_t = 30)]
    pub send_burst: u32,
    /// WebSocket connections one user may hold on one node.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_USER", default_value_t = 20)]
    pub max_connections_per_user: usize,
    /// Conversations one native connection may subscribe to.
    #[arg(long, env = "CHAT_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub max_subscriptions: usize,
    /// Subscribes and unsubscribes per second one native connection may make (0: no
    /// limit); bursts up to twice `--max-subscriptions` plus ten.
    #[arg(long, env = "CHAT_SUBSCRIPTION_CHANGES", default_value_t = 20.0, value_parser = settings::rate)]
    pub subscription_changes: f64,
    /// Frames queued per connection before it counts as too slow (4008).
    #[arg(long, env = "CHAT_WS_QUEUE", default_value_t = 1024)]
    pub ws_queue: usize,
    /// How often idle connections are pinged.
    #[arg(long, env = "CHAT_WS_PING", default_value = "20s", value_parser = settings::duration)]
    pub ws_ping: Duration,
    /// A connection that sent nothing, not even a pong, for this long is closed (1001).
    #[arg(long, env = "CHAT_WS_IDLE", default_value = "60s", value_parser = settings::duration)]
    pub ws_idle: Duration,
    /// A frame the client does not take within this long closes it as too slow (4008).
    #[arg(long, env = "CHAT_WS_WRITE_TIMEOUT", default_value = "10s", value_parser = settings::duration)]
    pub ws_write_timeout: Duration,
    /// Kernel send buffer per connection, in bytes (default: the kernel's autotuning).
    #[arg(long, env = "CHAT_SOCKET_SEND_BUFFER")]
    pub socket_send_buffer: Option<u32>,
    /// A fanout node silent this long is presumed gone and its users offline elsewhere.
    #[arg(long, env = "CHAT_PRESENCE_TTL", default_value = "30s", value_parser = settings::duration)]
    pub presence_ttl: Duration,
    /// On SIGTERM, connections close (1012) spread over this long; the process exits at
    /// most 2 s after it, whatever is left.
    #[arg(long, env = "CHAT_DRAIN", default_value = "5s", value_parser = settings::duration_or_zero)]
    pub drain: Duration,
}

/// How the HTTP listener treats slow and idle clients (slowloris and its kin).
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpArgs {
    /// A connection's first request head, and every request body, must arrive within this
    /// long; the connection is closed otherwise.
    #[arg(long, env = "CHAT_READ_TIMEOUT", default_value = "10s", value_parser = settings::duration)]
    pub read_timeout: Duration,
    /// An idle keep-alive connection (or a later request head) gets this long. Keep it above
    /// the load balancer's idle timeout, so the balancer never reuses a closing connection.
    #[arg(long, env = "CHAT_KEEP_ALIVE_TIMEOUT", default_value = "75s", value_parser = settings::duration)]
    pub keep_alive_timeout: Duration,
    /// The largest request head (request line and headers) in bytes; larger gets 431.
    #[arg(long, env = "CHAT_MAX_HEADER_BYTES", default_value_t = 32 * 1024,
          value_parser = clap::value_parser!(u32).range(8192..=1024 * 1024))]
    pub max_header_bytes: u32,
    /// Connections that have not sent a whole first request yet; beyond this many the
    /// oldest of them is closed.
    #[arg(long, env = "CHAT_MAX_UNFINISHED_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_unfinished_connections: u32,
    /// A connection whose peer takes none of what is written to it for this long is closed
    /// (a download nobody reads, a socket whose peer is gone).
    #[arg(long, env = "CHAT_WRITE_TIMEOUT", default_value = "30s", value_parser = settings::duration)]
    pub write_timeout: Duration,
}

impl HttpArgs {
    pub(crate) fn limits(&self) -> crate::server::HttpLimits {
        crate::server::HttpLimits {
            write_timeout: self.write_timeout,
            read_timeout: self.read_timeout,
            keep_alive_timeout: self.keep_alive_timeout,
            max_header_bytes: self.max_header_bytes as usize,
            max_unfinished: self.max_unfinished_connections as usize,
        }
    }
}

/// How keyed sends are written (exactly once per idempotency key).
#[derive(Debug, Clone, Args)]
pub(crate) struct WriteArgs {
    /// An append not acknowledged by then fails; the log gives up on the record at the same
    /// moment, so a failed append is never written later.
    #[arg(long, env = "CHAT_APPEND_TIMEOUT", default_value = "10s", value_parser = settings::duration)]
    pub append_timeout: Duration,
    /// How long a node's lease on a partition's keyed sends lasts without renewal: after a
    /// node dies, its partitions take this long to get a new writer. At least 1.65 times
    /// the append timeout.
    #[arg(long, env = "CHAT_WRITER_LEASE", default_value = "20s", value_parser = settings::duration)]
    pub writer_lease: Duration,
}

impl WriteArgs {
    /// The writer timing these flags describe.
    pub(crate) fn timing(&self) -> ingest::writer::WriterTiming {
        ingest::writer::WriterTiming::for_lease(self.append_timeout, self.writer_lease)
    }
}

/// Where attachments are kept, and how large they may be.
#[derive(Debug, Clone, Args)]
pub(crate) struct FileArgs {
    /// Object storage for attachments: `file:///directory` or `s3://bucket[/prefix]` (S3
    /// configured by the standard `AWS_*` variables). `chat dev` keeps them under
    /// `<data-dir>/objects` by default; the roles refuse uploads without it.
    #[arg(long, env = "CHAT_OBJECT_STORE", value_parser = settings::object_store)]
    pub object_store: Option<String>,
    /// Largest attachment taken, in bytes (413 beyond).
    #[arg(long, env = "CHAT_MAX_ATTACHMENT_BYTES", default_value_t = ingest::DEFAULT_MAX_UPLOAD_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=schemas::limits::MAX_ATTACHMENT_BYTES))]
    pub max_attachment_bytes: u64,
    /// Bytes of memory attachments may take on this node: three quarters for decoding image
    /// previews, a quarter for the bodies of uploads in flight (beyond, uploads wait, then
    /// get 503).
    #[arg(long, env = "CHAT_ATTACHMENT_MEMORY", default_value_t = 256 << 20,
          value_parser = clap::value_parser!(u64).range(16 << 20..))]
    pub attachment_memory: u64,
    /// Uploads per second one user may sustain on one node (0: no limit).
    #[arg(long, env = "CHAT_UPLOAD_RATE", default_value_t = 1.0, value_parser = settings::rate)]
    pub upload_rate: f64,
    /// Uploads one user may make at once before the rate applies.
    #[arg(long, env = "CHAT_UPLOAD_BURST", default_value_t = 20)]
    pub upload_burst: u32,
    /// Bytes of files one conversation may keep (413 beyond).
    #[arg(long, env = "CHAT_CONVERSATION_FILE_QUOTA", default_value_t = 1 << 30)]
    pub conversation_file_quota: u64,
    /// Bytes of files one user may keep, all conversations together (413 beyond).
    #[arg(long, env = "CHAT_USER_FILE_QUOTA", default_value_t = 5 << 30)]
    pub user_file_quota: u64,
    /// Uploads no message carries within this long are removed.
    #[arg(long, env = "CHAT_UNSENT_UPLOAD_TTL", default_value = "24h", value_parser = settings::duration)]
    pub unsent_upload_ttl: Duration,
    /// Downloads one user may have in flight on one node (429 beyond).
    #[arg(long, env = "CHAT_DOWNLOADS_PER_USER", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub downloads_per_user: u32,
    /// Downloads one node serves at once (429 beyond).
    #[arg(long, env = "CHAT_MAX_DOWNLOADS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_downloads: u32,
}

impl FileArgs {
    /// The store at `object_store`, or at `fallback` when none is configured.
    pub(crate) fn open(
        &self,
        fallback: Option<String>,
    ) -> anyhow::Result<Option<attachments::Attachments>> {
        let Some(location) = self.object_store.clone().or(fallback) else { return Ok(None) };
        let previews =
            attachments::Previews::new(self.attachment_memory / 4 * 3, Duration::from_secs(20))
                .map_err(|error| anyhow::anyhow!("starting the image threads: {error}"))?;
        let store = attachments::Attachments::open(&location, previews)
            .map_err(|error| anyhow::anyhow!("opening the object store: {error}"))?;
        let quotas = attachments::Quotas {
            per_conversation: self.conversation_file_quota,
            per_user: self.user_file_quota,
        };
        Ok(Some(store.with_quotas(quotas)))
    }

    /// What uploads and downloads may take from the node.
    pub(crate) fn limits(&self) -> ingest::FileLimits {
        ingest::FileLimits {
            max_upload_bytes: usize::try_from(self.max_attachment_bytes).unwrap_or(usize::MAX),
            upload_memory: self.attachment_memory / 4,
            upload_rate: (self.upload_rate > 0.0)
                .then_some(ingest::Rate { per_second: self.upload_rate, burst: self.upload_burst }),
            downloads_per_user: self.downloads_per_user as usize,
            downloads: self.max_downloads as usize,
        }
    }
}

/// Where the cluster is.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClusterArgs {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "CHAT_KAFKA_BROKERS")]
    pub kafka_brokers: String,
    /// The topic that is the event log.
    #[arg(long, env = "CHAT_TOPIC", default_value = "chat.events")]
    pub topic: String,
    /// The topic for typing, presence and inbox signals.
    #[arg(long, env = "CHAT_SIGNALS_TOPIC", default_value = "chat.signals")]
    pub signals_topic: String,
    /// CQL contact points, `host:port[,host:port...]`.
    #[arg(long, env = "CHAT_CQL_NODES", value_delimiter = ',', required = true)]
    pub cql_nodes: Vec<String>,
    /// The keyspace of the directory and the projections.
    #[arg(long, env = "CHAT_KEYSPACE", default_value = "chat")]
    pub keyspace: String,
    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,
    #[command(flatten)]
    pub cql_security: CqlSecurityArgs,
}

/// How every Kafka client of a role authenticates and encrypts. Secrets come from files
/// (a Kubernetes Secret mount), never from a flag or a variable.
#[derive(Debug, Clone, Args)]
pub(crate) struct KafkaSecurityArgs {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[arg(long, env = "CHAT_KAFKA_SECURITY_PROTOCOL", default_value = "plaintext")]
    pub kafka_security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (with a `sasl_*` protocol).
    #[arg(long, env = "CHAT_KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    /// The SASL user.
    #[arg(long, env = "CHAT_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// A file holding the SASL user's password (one line).
    #[arg(long, env = "CHAT_KAFKA_SASL_PASSWORD_FILE")]
    pub kafka_sasl_password_file: Option<PathBuf>,
    /// CA certificates (PEM) the brokers' certificates must chain to (default: the
    /// system's).
    #[arg(long, env = "CHAT_KAFKA_SSL_CA_FILE")]
    pub kafka_ssl_ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), for mutual TLS.
    #[arg(long, env = "CHAT_KAFKA_SSL_CERT_FILE")]
    pub kafka_ssl_cert_file: Option<PathBuf>,
    /// This client's private key (PEM, unencrypted), for mutual TLS.
    #[arg(long, env = "CHAT_KAFKA_SSL_KEY_FILE")]
    pub kafka_ssl_key_file: Option<PathBuf>,
    /// Further librdkafka properties, `name=value` (repeat the flag, or separate them by
    /// `;` in the variable). Those the guarantees rest on are refused by name.
    #[arg(long = "kafka-option", env = "CHAT_KAFKA_OPTIONS", value_delimiter = ';')]
    pub kafka_options: Vec<String>,
}

impl KafkaSecurityArgs {
    pub(crate) fn settings(&self) -> eventlog::kafka_security::KafkaSecuritySettings {
        eventlog::kafka_security::KafkaSecuritySettings {
            protocol: Some(self.kafka_security_protocol.clone()),
            sasl_mechanism: self.kafka_sasl_mechanism.clone(),
            sasl_username: self.kafka_sasl_username.clone(),
            sasl_password_file: self.kafka_sasl_password_file.clone(),
            ssl_ca_file: self.kafka_ssl_ca_file.clone(),
            ssl_cert_file: self.kafka_ssl_cert_file.clone(),
            ssl_key_file: self.kafka_ssl_key_file.clone(),
            options: self.kafka_options.clone(),
        }
    }
}

/// How the roles' CQL sessions authenticate, encrypt and route.
#[derive(Debug, Clone, Args)]
pub(crate) struct CqlSecurityArgs {
    /// The database role.
    #[arg(long, env = "CHAT_CQL_USERNAME")]
    pub cql_username: Option<String>,
    /// A file holding the role's password (one line).
    #[arg(long, env = "CHAT_CQL_PASSWORD_FILE")]
    pub cql_password_file: Option<PathBuf>,
    /// CA certificates (PEM) the nodes' certificates must chain to; setting it turns TLS on.
    #[arg(long, env = "CHAT_CQL_SSL_CA_FILE")]
    pub cql_ssl_ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), for mutual TLS.
    #[arg(long, env = "CHAT_CQL_SSL_CERT_FILE")]
    pub cql_ssl_cert_file: Option<PathBuf>,
    /// This client's private key (PEM, unencrypted), for mutual TLS.
    #[arg(long, env = "CHAT_CQL_SSL_KEY_FILE")]
    pub cql_ssl_key_file: Option<PathBuf>,
    /// This process's datacenter: requests go to its nodes, `LOCAL_QUORUM` is a quorum of it.
    #[arg(long, env = "CHAT_CQL_LOCAL_DC")]
    pub cql_local_dc: Option<String>,
}

impl CqlSecurityArgs {
    pub(crate) fn settings(&self) -> viewstore::cql::CqlSecuritySettings {
        viewstore::cql::CqlSecuritySettings {
            username: self.cql_username.clone(),
            password_file: self.cql_password_file.clone(),
            ssl_ca_file: self.cql_ssl_ca_file.clone(),
            ssl_cert_file: self.cql_ssl_cert_file.clone(),
            ssl_key_file: self.cql_ssl_key_file.clone(),
            local_dc: self.cql_local_dc.clone(),
        }
    }
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
