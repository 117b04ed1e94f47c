//! The two servers under test, behind one interface: create conversations (channels),
//! subscribe a connection, publish a stamped message, and recognise a delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TargetArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    Chat,
    Centrifugo,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Centrifugo => "centrifugo",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub kind: Kind,
    http: String,
    ws: String,
    secret: String,
    pid: u32,
    pub label: String,
    pub backend: String,
    client: reqwest::Client,
    /// Sends go through these when the load has a fixed number of clients: each one
    /// connection, one request at a time, as a browser's tab sends (empty: any number of
    /// connections, as many as requests in flight).
    senders: Arc<Vec<Sender>>,
    /// Tokens already minted, by user.
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

/// One client of a fixed population: its own connection, one request at a time.
#[derive(Debug)]
struct Sender {
    client: reqwest::Client,
    busy: tokio::sync::Mutex<()>,
}

/// Opens a WebSocket with a small read buffer. The default (128 KiB) is zeroed on every
/// read: with thousands of connections that memset was over a quarter of the generator's
/// CPU, taken from the server under test on a shared machine.
async fn connect(
    url: String,
) -> Result<
    (
        WebSocketStream<MaybeTlsStream<TcpStream>>,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let config = WebSocketConfig::default().read_buffer_size(4096);
    tokio_tungstenite::connect_async_with_config(url, Some(config), true).await
}

pub(crate) fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

impl Target {
    pub(crate) async fn new(args: &TargetArgs) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        Ok(Self {
            kind: args.target,
            http: args.http.trim_end_matches('/').to_owned(),
            ws: args.ws.trim_end_matches('/').to_owned(),
            secret: args.secret.clone(),
            pid: args.server_pid,
            label: args.label.clone(),
            backend: args.backend.clone(),
            client,
            senders: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// The server's resident memory, in KiB.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("reading the memory of process {}", self.pid))?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).context("no VmRSS")?;
        Ok(line.split_whitespace().nth(1).context("no VmRSS value")?.parse()?)
    }

    /// CPU time the server has used so far (user + system), in seconds.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("reading the CPU time of process {}", self.pid))?;
        // Fields after the command name (which may hold spaces) in parentheses; utime and
        // stime are the 14th and 15th fields, in USER_HZ ticks (100 a second on Linux).
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed stat")?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| -> anyhow::Result<f64> {
            Ok(fields.get(index).context("short stat")?.parse::<u64>()? as f64)
        };
        Ok((ticks(11)? + ticks(12)?) / 100.0)
    }

    fn token(&self, user: &str, service: bool) -> anyhow::Result<String> {
        let mut tokens = self.tokens.lock().map_err(|_| anyhow::anyhow!("token cache poisoned"))?;
        if let Some(token) = tokens.get(user) {
            return Ok(token.clone());
        }
        let token = auth::mint_hs256(self.secret.as_bytes(), user, Some(user), service, 86_400)?;
        tokens.insert(user.to_owned(), token.clone());
        Ok(token)
    }

    /// Creates `count` conversations (channels) and returns their ids.
    pub(crate) async fn conversations(&self, count: usize) -> anyhow::Result<Vec<u64>> {
        if self.kind == Kind::Centrifugo {
            return Ok((1..=count as u64).collect());
        }
        let service = self.token("bench-jobs", true)?;
        let run = now_nanos();
        let mut ids = Vec::with_capacity(count);
        for index in 0..count {
            let response = self
                .client
                .put(format!("{}/v1/jobs/bench-{run}-{index}/conversation", self.http))
                .bearer_auth(&service)
                .json(&json!({"client_id": format!("bench-client-{index}"),
                              "worker_id": format!("bench-worker-{index}")}))
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("creating a conversation answered {}", response.status());
            }
            let body: Value = response.json().await?;
            ids.push(body["conversation_id"].as_u64().context("no conversation_id")?);
        }
        Ok(ids)
    }

    /// How many messages `user` has not read in conversation `id`, per the projections
    /// (chat only).
    pub(crate) async fn unread(&self, id: u64, user: &str) -> anyhow::Result<u64> {
        let token = self.token(user, false)?;
        let page: Value = self
            .client
            .get(format!("{}/v1/conversations?limit=200", self.http))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let items = page["items"].as_array().context("no inbox items")?;
        let item = items.iter().find(|item| item["conversation_id"] == id);
        Ok(item.and_then(|item| item["unread_count"].as_u64()).unwrap_or(0))
    }

    /// A seed-protocol socket on conversation `id` for `user` (chat only).
    pub(crate) async fn seed_socket(
        &self,
        id: u64,
        user: &str,
    ) -> anyhow::Result<WebSocketStream<MaybeTlsStream<TcpStream>>> {
        let token = self.token(user, false)?;
        let (socket, _) = connect(format!("{}/ws/chat/{id}/?token={token}", self.ws)).await?;
        Ok(socket)
    }

    /// Opens a connection subscribed to conversation `id` (the `index`-th created).
    pub(crate) async fn subscribe(&self, id: u64, index: usize) -> anyhow::Result<Subscriber> {
        match self.kind {
            Kind::Chat => {
                let token = self.token(&format!("bench-client-{index}"), false)?;
                let url = format!("{}/ws/chat/{id}/?token={token}", self.ws);
                let (socket, _) = connect(url).await?;
                Ok(Subscriber { kind: self.kind, socket })
            }
            Kind::Centrifugo => {
                let url = format!("{}/connection/websocket", self.ws);
                let (mut socket, _) = connect(url).await?;
                socket.send(Message::text(r#"{"id":1,"connect":{"name":"bench"}}"#)).await?;
                let subscribe = json!({"id": 2, "subscribe": {"channel": format!("chat-{id}")}});
                socket.send(Message::text(subscribe.to_string())).await?;
                let mut subscriber = Subscriber { kind: self.kind, socket };
                subscriber.await_reply(2).await?;
                Ok(subscriber)
            }
        }
    }

    /// Publishes one message stamped with `stamp` (nanoseconds since the epoch).
    pub(crate) async fn publish(
        &self,
        id: u64,
        index: usize,
        stamp: u128,
        filler: &str,
    ) -> anyhow::Result<()> {
        self.publish_keyed(id, index, stamp, filler, None).await
    }

    /// Publishes one message, with an idempotency key when given (chat only).
    /// Sends from now on come from `count` clients, each with one connection and one
    /// request at a time (0: any number of connections).
    pub(crate) fn with_senders(mut self, count: usize) -> anyhow::Result<Self> {
        let senders = (0..count)
            .map(|_| {
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
                Ok(Sender { client, busy: tokio::sync::Mutex::new(()) })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.senders = Arc::new(senders);
        Ok(self)
    }

    pub(crate) async fn publish_keyed(
        &self,
        id: u64,
        index: usize,
        stamp: u128,
        filler: &str,
        key: Option<&str>,
    ) -> anyhow::Result<()> {
        // A fixed population: the send waits for its client's previous one, as a user's
        // next message waits in the browser (the wait counts: latency is from the schedule).
        let sender = (!self.senders.is_empty()).then(|| &self.senders[index % self.senders.len()]);
        let _turn = match sender {
            Some(sender) => Some(sender.busy.lock().await),
            None => None,
        };
        let client = sender.map_or(&self.client, |sender| &sender.client);
        let response = match self.kind {
            Kind::Chat => {
                let token = self.token(&format!("bench-worker-{index}"), false)?;
                let mut body = json!({"text": format!("{stamp} {filler}")});
                if let Some(key) = key {
                    body["idempotency_key"] = json!(key);
                }
                client
                    .post(format!("{}/v1/conversations/{id}/messages", self.http))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await?
            }
            Kind::Centrifugo => {
                client
                    .post(format!("{}/api/publish", self.http))
                    .header("X-API-Key", &self.secret)
                    .json(&json!({"channel": format!("chat-{id}"), "data": {"t": stamp.to_string(), "f": filler}}))
                    .send()
                    .await?
            }
        };
        if !response.status().is_success() {
            bail!("publishing answered {}", response.status());
        }
        Ok(())
    }
}

pub(crate) struct Subscriber {
    kind: Kind,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Subscriber {
    /// Centrifugo answers commands in JSON lines; waits for the reply to command `id`.
    async fn await_reply(&mut self, id: u64) -> anyhow::Result<()> {
        while let Some(frame) = self.socket.next().await {
            let Message::Text(text) = frame? else { continue };
            for line in text.lines() {
                let reply: Value = serde_json::from_str(line)?;
                if reply.get("error").is_some() {
                    bail!("centrifugo refused: {reply}");
                }
                if reply["id"] == id {
                    return Ok(());
                }
            }
        }
        bail!("connection closed before reply {id}")
    }

    /// The stamps of the deliveries in the next frame (answering pings on the way);
    /// `None` once the connection is closed.
    pub(crate) async fn next_stamps(&mut self) -> Option<Vec<u128>> {
        loop {
            let frame = self.socket.next().await?.ok()?;
            let Message::Text(text) = frame else { continue };
            let mut stamps = Vec::new();
            for line in text.lines() {
                if self.kind == Kind::Centrifugo && line.trim() == "{}" {
                    // Centrifugo's ping: answer with a pong.
                    let _ = self.socket.send(Message::text("{}")).await;
                    continue;
                }
                // The generator must not be the bottleneck: find the stamp without parsing
                // the whole frame.
                let marker = match self.kind {
                    Kind::Chat => "\"message_text\":\"",
                    Kind::Centrifugo => "\"t\":\"",
                };
                if let Some(start) = line.find(marker).map(|at| at + marker.len()) {
                    let digits =
                        line[start..].split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
                    stamps.extend(digits.parse::<u128>().ok());
                }
            }
            if !stamps.is_empty() {
                return Some(stamps);
            }
        }
    }
}
