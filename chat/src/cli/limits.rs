//! The flags that bound what a node takes on: request and socket limits, the listeners'
//! timeouts, how keyed sends are written, and what attachments may take.

use std::time::Duration;

use clap::Args;

/// Limits and timings of the HTTP and WebSocket front (defaults suit production).
#[derive(Debug, Clone, Args)]
pub(crate) struct LimitsArgs {
    /// Sends per second one user may sustain on one node (0: no limit).
    #[arg(long, env = "CHAT_SEND_RATE", default_value_t = 10.0, value_parser = settings::rate)]
    pub send_rate: f64,
    /// Sends one user may make at once before the rate applies.
    #[arg(long, env = "CHAT_SEND_BURST", default_value_t = 30)]
    pub send_burst: u32,
    /// How long after sending a message its sender may edit it.
    #[arg(long, env = "CHAT_EDIT_WINDOW", default_value = "15m", value_parser = settings::duration)]
    pub edit_window: Duration,
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
