//! Test support: the real `chat dev` binary on a free port, and thin HTTP and WebSocket
//! clients that speak to it over real sockets.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod storm;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "system-test-secret-that-is-at-least-32-bytes";
/// An origin every test server allows for cookie-authenticated sockets.
pub const ORIGIN: &str = "http://chat.test";

/// A small seeded generator (xorshift*), so a failing random test can be run again with
/// the seed it printed (`CHAT_TEST_SEED`).
pub struct Dice(pub u64);

impl Dice {
    /// The seed from `CHAT_TEST_SEED`, or `default`.
    pub fn seeded(default: u64) -> Self {
        let seed = std::env::var("CHAT_TEST_SEED").ok().and_then(|s| s.parse().ok());
        Self(seed.unwrap_or(default).max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The roles of a clustered deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dev,
    Ingest,
    Fanout,
    Projector,
}

impl Role {
    fn command(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Ingest => "ingest",
            Self::Fanout => "fanout",
            Self::Projector => "projector",
        }
    }
}

/// One process of the server under test.
struct Process {
    role: Role,
    child: Option<Child>,
    /// The public listener (for the projector, its only one: the internal).
    address: String,
    /// The internal listener: metrics, probes, the routes between nodes.
    internal: String,
}

/// Per-test names on the shared cluster: nothing is shared between tests.
#[derive(Debug, Clone)]
pub struct ClusterNames {
    pub brokers: String,
    pub nodes: String,
    pub topic: String,
    pub signals_topic: String,
    pub keyspace: String,
    pub group: String,
}

/// Whether this test binary runs against Kafka + Cassandra (`--features cluster-tests`,
/// with the cluster named by `CHAT_KAFKA_BROKERS` and `CHAT_CQL_NODES`).
pub fn on_cluster() -> bool {
    cfg!(feature = "cluster-tests")
}

fn cluster_names() -> ClusterNames {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let sequence = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let micros =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    let unique = format!("{}_{}_{sequence}", micros % 10_000_000_000, std::process::id());
    let brokers = std::env::var("CHAT_KAFKA_BROKERS")
        .expect("cluster tests need CHAT_KAFKA_BROKERS (start the cluster with infra/local/up)");
    let nodes = std::env::var("CHAT_CQL_NODES")
        .expect("cluster tests need CHAT_CQL_NODES (start the cluster with infra/local/up)");
    ClusterNames {
        brokers,
        nodes,
        topic: format!("t{unique}.events"),
        signals_topic: format!("t{unique}.signals"),
        keyspace: format!("t{unique}"),
        group: format!("t{unique}-projector"),
    }
}

/// How many of each role to start on the cluster, and settings for every process.
#[derive(Debug, Clone)]
pub struct Shape {
    pub ingests: usize,
    pub fanouts: usize,
    pub replication_factor: u32,
    /// Extra `CHAT_*` variables (limits, timeouts, the cluster's addresses) for every
    /// process.
    pub env: Vec<(&'static str, String)>,
    /// Variables for the processes of one role only, applied after `env`.
    pub role_env: Vec<(Role, &'static str, String)>,
    /// On the cluster, keep attachments in an S3-compatible server of this test's own
    /// (s3s-fs); `chat dev` keeps them under its data directory anyway.
    pub object_store: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            ingests: 1,
            fanouts: 1,
            replication_factor: 1,
            env: Vec::new(),
            role_env: Vec::new(),
            object_store: false,
        }
    }
}

impl Shape {
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.env.push((name, value.into()));
        self
    }

    pub fn with_on(mut self, role: Role, name: &'static str, value: impl Into<String>) -> Self {
        self.role_env.push((role, name, value.into()));
        self
    }
}

/// A running server: `chat dev` with its own data directory, or (in cluster tests) the
/// roles as separate processes on their own topic and keyspace.
pub struct Server {
    processes: Vec<Process>,
    env: Vec<(&'static str, String)>,
    role_env: Vec<(Role, &'static str, String)>,
    /// The S3-compatible server of `Shape::object_store`.
    s3: Option<Child>,
    pub data_dir: tempfile::TempDir,
    pub cluster: Option<ClusterNames>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn start() -> Self {
        Self::start_shaped(Shape::default())
    }

    /// On the cluster: migrate fresh names, then start the roles in `shape`. Without the
    /// cluster, `chat dev` (the shape is ignored).
    pub fn start_shaped(shape: Shape) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            processes: Vec::new(),
            env: shape.env,
            role_env: shape.role_env,
            s3: None,
            data_dir,
            cluster: None,
            http: reqwest::Client::new(),
        };
        if !on_cluster() {
            server.launch(Role::Dev, "127.0.0.1:0", "127.0.0.1:0");
            return server;
        }
        let names = cluster_names();
        if shape.object_store {
            server.start_s3(&names.keyspace);
        }
        server.cluster = Some(names);
        let migrated = server
            .command("migrate")
            .args([
                "--partitions",
                "4",
                "--replication-factor",
                &shape.replication_factor.to_string(),
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(migrated.success(), "chat migrate failed");
        server.launch(Role::Projector, "127.0.0.1:0", "127.0.0.1:0");
        for _ in 0..shape.ingests {
            server.launch(Role::Ingest, "127.0.0.1:0", "127.0.0.1:0");
        }
        for _ in 0..shape.fanouts {
            server.launch(Role::Fanout, "127.0.0.1:0", "127.0.0.1:0");
        }
        server
    }

    /// Starts s3s-fs on a free port over a directory of this test, with one bucket, and
    /// points every process at it (the standard `AWS_*` variables, as in production).
    fn start_s3(&mut self, prefix: &str) {
        let binary = tool("CHAT_S3S_FS", "s3/build");
        let root = self.data_dir.path().join("s3");
        std::fs::create_dir_all(root.join("chat")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (key, secret) = ("chat-test", "chat-test-secret-key");
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", key, "--secret-key", secret])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        self.s3 = Some(child);
        wait_until_open(&format!("127.0.0.1:{port}"));
        self.env.extend([
            ("CHAT_OBJECT_STORE", format!("s3://chat/{prefix}")),
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", key.into()),
            ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ]);
    }

    /// The binary with this server's configuration in its environment.
    pub fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command
            .arg(subcommand)
            .env("CHAT_JWT_SECRET", SECRET)
            .env("CHAT_LOG", std::env::var("CHAT_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .env("CHAT_ALLOWED_ORIGINS", ORIGIN)
            // Tests send in storms from one user; the rate limit has its own test.
            .env("CHAT_SEND_RATE", "0")
            .stderr(Stdio::inherit());
        if let Some(names) = &self.cluster {
            command
                .env("CHAT_KAFKA_BROKERS", &names.brokers)
                .env("CHAT_CQL_NODES", &names.nodes)
                .env("CHAT_TOPIC", &names.topic)
                .env("CHAT_SIGNALS_TOPIC", &names.signals_topic)
                .env("CHAT_KEYSPACE", &names.keyspace)
                .env("CHAT_PROJECTOR_GROUP", &names.group)
                .env("CHAT_PROJECTOR_INSTANCE", format!("{}-0", names.group));
        }
        command.envs(self.env.iter().map(|(name, value)| (*name, value.as_str())));
        command
    }

    /// Starts one process on `listen` (and `internal`) and waits for its banner.
    fn launch(&mut self, role: Role, listen: &str, internal: &str) {
        let mut command = self.command(role.command());
        if role == Role::Projector {
            command.args(["--internal-listen", listen]);
        } else {
            command.args(["--listen", listen, "--internal-listen", internal]);
        }
        command.stdout(Stdio::piped());
        let own = self.role_env.iter().filter(|(only, ..)| *only == role);
        command.envs(own.map(|(_, name, value)| (*name, value.as_str())));
        if role == Role::Dev {
            command
                .args(["--no-demo", "--partitions", "4", "--data-dir"])
                .arg(self.data_dir.path());
        }
        let mut child = command.spawn().expect("chat binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut next_line = || match lines.next() {
            Some(Ok(line)) => line,
            _ => panic!("chat {} exited before serving (see its stderr above)", role.command()),
        };
        // The `host:port` after `marker` (what follows it, a path or a parenthesis, dropped).
        let after = |line: &str, marker: &str| {
            let rest = line.split(marker).nth(1)?;
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]-".contains(c)));
            Some(rest[..end.unwrap_or(rest.len())].to_owned())
        };
        let first = next_line();
        let address =
            after(&first, "http://").unwrap_or_else(|| panic!("unexpected banner: {first}"));
        // Roles name their internal listener on the first line, `chat dev` on a line of its own.
        let internal = match role {
            Role::Projector => address.clone(),
            Role::Dev => loop {
                let line = next_line();
                if line.trim_start().starts_with("internal") {
                    break after(&line, "http://")
                        .unwrap_or_else(|| panic!("unexpected banner: {line}"));
                }
            },
            _ => after(&first, "internal: http://")
                .unwrap_or_else(|| panic!("unexpected banner: {first}")),
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.processes.push(Process { role, child: Some(child), address, internal });
    }

    fn addresses(&self, role: Role) -> Vec<String> {
        let wanted = |process: &&Process| process.role == role || process.role == Role::Dev;
        self.processes.iter().filter(wanted).map(|process| process.address.clone()).collect()
    }

    /// `kill -9` every process, then start each again on its port with the same data.
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        let previous: Vec<Process> = self.processes.drain(..).collect();
        for process in previous {
            wait_until_free(&process.address);
            wait_until_free(&process.internal);
            self.launch(process.role, &process.address, &process.internal);
        }
    }

    /// `kill -9` the `index`-th process of a role (it stays down).
    pub fn kill_one(&mut self, role: Role, index: usize) {
        let process =
            self.processes.iter_mut().filter(|p| p.role == role || p.role == Role::Dev).nth(index);
        if let Some(mut child) = process.and_then(|p| p.child.take()) {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the stopped processes of one role again on their ports.
    pub fn restart_role(&mut self, role: Role) {
        let stopped: Vec<(String, String)> = self
            .processes
            .iter()
            .filter(|p| (p.role == role || p.role == Role::Dev) && p.child.is_none())
            .map(|p| (p.address.clone(), p.internal.clone()))
            .collect();
        let actual = if self.cluster.is_some() { role } else { Role::Dev };
        self.processes.retain(|p| p.child.is_some());
        for (address, internal) in stopped {
            wait_until_free(&address);
            wait_until_free(&internal);
            self.launch(actual, &address, &internal);
        }
    }

    /// `kill -9` the processes of one role, then start them again on their ports.
    pub fn crash_and_restart_role(&mut self, role: Role) {
        let mut restarted = Vec::new();
        for process in self.processes.iter_mut().filter(|process| process.role == role) {
            if let Some(mut child) = process.child.take() {
                child.kill().unwrap();
                child.wait().unwrap();
            }
            restarted.push((process.address.clone(), process.internal.clone()));
        }
        self.processes.retain(|process| process.role != role);
        for (address, internal) in restarted {
            wait_until_free(&address);
            wait_until_free(&internal);
            self.launch(role, &address, &internal);
        }
    }

    /// How many processes of one role were started (running or stopped).
    pub fn count(&self, role: Role) -> usize {
        self.processes.iter().filter(|p| p.role == role || p.role == Role::Dev).count()
    }

    /// The process ids of one role (for signals and memory readings).
    pub fn pids(&self, role: Role) -> Vec<u32> {
        let wanted = |process: &&Process| process.role == role || process.role == Role::Dev;
        self.processes
            .iter()
            .filter(wanted)
            .filter_map(|p| p.child.as_ref().map(Child::id))
            .collect()
    }

    /// Resident memory (KiB) of every running process: (role, pid, VmRSS).
    pub fn resident_memory(&self) -> Vec<(Role, u32, u64)> {
        let running = self.processes.iter().filter_map(|p| Some((p.role, p.child.as_ref()?.id())));
        running
            .filter_map(|(role, pid)| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let rss = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
                Some((role, pid, rss.trim().trim_end_matches("kB").trim().parse().ok()?))
            })
            .collect()
    }

    /// Prints every process's memory against `before` and fails when one that was running
    /// then has grown by more than `growth_kib` (restarted processes have no earlier reading).
    #[expect(clippy::print_stdout, reason = "the readings are part of the test's report")]
    pub fn assert_memory_bounded(&self, before: &[(Role, u32, u64)], growth_kib: u64) {
        for (role, pid, rss) in self.resident_memory() {
            let start = before.iter().find(|(_, earlier, _)| *earlier == pid).map(|r| r.2);
            let from = start.map_or_else(|| "restarted".to_owned(), |kib| format!("{kib} KiB"));
            println!("memory: {role:?} pid {pid}: {from} -> {rss} KiB");
            if let Some(start) = start {
                assert!(
                    rss <= start + growth_kib,
                    "{role:?} (pid {pid}) grew from {start} to {rss} KiB"
                );
            }
        }
    }

    /// Sends SIGTERM to the processes of one role and waits (at most `within`) for them to
    /// exit; true when they all exited.
    pub fn terminate(&mut self, role: Role, within: Duration) -> bool {
        for pid in self.pids(role) {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let deadline = Instant::now() + within;
        let mut all_exited = true;
        for process in self.processes.iter_mut().filter(|p| p.role == role || p.role == Role::Dev) {
            let Some(child) = process.child.as_mut() else { continue };
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    process.child = None;
                    break;
                }
                if Instant::now() >= deadline {
                    all_exited = false;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        all_exited
    }

    pub fn kill9(&mut self) {
        for process in &mut self.processes {
            if let Some(mut child) = process.child.take() {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
    }

    /// Every process with its role's command name and internal address (what a scraper
    /// targets).
    pub fn targets(&self) -> Vec<(&'static str, String)> {
        self.processes
            .iter()
            .map(|process| (process.role.command(), process.internal.clone()))
            .collect()
    }

    /// `path` on the internal listener of the `index`-th process of `role` (`chat dev`'s
    /// without the cluster).
    pub fn internal_url(&self, role: Role, index: usize, path: &str) -> String {
        let wanted = |process: &&Process| process.role == role || process.role == Role::Dev;
        let process = self.processes.iter().filter(wanted).nth(index).expect("no such process");
        format!("http://{}{path}", process.internal)
    }

    /// The HTTP API address (of the `index`-th ingest on a cluster).
    pub fn http_address(&self, index: usize) -> String {
        self.addresses(Role::Ingest)[index].clone()
    }

    pub fn url_on(&self, index: usize, path: &str) -> String {
        format!("http://{}{path}", self.http_address(index))
    }

    pub fn ws_url_on(&self, index: usize, path: &str) -> String {
        format!("ws://{}{path}", self.addresses(Role::Fanout)[index])
    }

    pub fn url(&self, path: &str) -> String {
        self.url_on(0, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        self.ws_url_on(0, path)
    }

    pub async fn open_conversation(&self, job: &str, client: &str, worker: &str) -> u64 {
        let response = self
            .http
            .put(self.url(&format!("/v1/jobs/{job}/conversation")))
            .bearer_auth(service_token())
            .json(&json!({ "client_id": client, "worker_id": worker,
                           "client_name": client.to_uppercase(), "worker_name": worker.to_uppercase() }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "open failed: {}", response.status());
        let body: Value = response.json().await.unwrap();
        body["conversation_id"].as_u64().unwrap()
    }

    /// Sends over HTTP and returns the answer's message id.
    pub async fn send(&self, user: &str, conversation: u64, text: &str) -> u64 {
        let (status, body) = self
            .post(
                user,
                &format!("/v1/conversations/{conversation}/messages"),
                json!({ "text": text }),
            )
            .await;
        assert_eq!(status, 201, "send failed: {body}");
        body["id"].as_u64().unwrap()
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token(user))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, user: &str, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(token(user)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every message of the conversation, oldest first, walking history pages backwards.
    pub async fn history(&self, user: &str, conversation: u64) -> Vec<Value> {
        let mut all = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let query = before.map(|id| format!("&before={id}")).unwrap_or_default();
            let (status, page) = self
                .get(user, &format!("/v1/conversations/{conversation}/messages?limit=50{query}"))
                .await;
            assert_eq!(status, 200, "history failed: {page}");
            let mut messages = page["messages"].as_array().unwrap().clone();
            messages.extend(all);
            all = messages;
            match page["next_before"].as_u64() {
                Some(next) => before = Some(next),
                None => return all,
            }
        }
    }

    /// The caller's inbox item for `conversation`, once the projection shows `ready`.
    pub async fn inbox_item_when(
        &self,
        user: &str,
        conversation: u64,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, page) = self.get(user, "/v1/conversations?limit=200").await;
            assert_eq!(status, 200);
            let item = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|item| item["conversation_id"] == conversation)
                .cloned();
            if let Some(item) = item
                && ready(&item)
            {
                return item;
            }
            assert!(Instant::now() < deadline, "inbox never became ready: {page}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn wait_until_free(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpListener::bind(address).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The path of a tool the tests run: from `variable` (set by scripts/test), or built (and
/// cached) by `infra/<build>`, which prints it.
pub fn tool(variable: &str, build: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        let script = format!("{}/../infra/{build}", env!("CARGO_MANIFEST_DIR"));
        let built = Command::new(&script).stderr(Stdio::inherit()).output().unwrap();
        assert!(built.status.success(), "{script} failed");
        String::from_utf8(built.stdout).unwrap().trim().to_owned()
    })
}

fn wait_until_open(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if let Some(mut s3) = self.s3.take() {
            let _ = s3.kill();
            let _ = s3.wait();
        }
        // Each test's keyspace holds a dozen tables; dropping it keeps the database small
        // however many tests run.
        #[cfg(feature = "cluster")]
        if let Some(names) = self.cluster.take() {
            let config = viewstore::cql::CqlConfig::new(
                names.nodes.split(',').map(str::to_owned),
                names.keyspace.clone(),
            );
            let dropped = std::thread::spawn(move || {
                let config = config.with_env_security().map_err(std::io::Error::other)?;
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime
                    .block_on(viewstore::cql::drop_keyspace(&config))
                    .map_err(std::io::Error::other)
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test keyspace {}", names.keyspace);
            }
        }
    }
}

pub fn token(user: &str) -> String {
    auth::mint_hs256(SECRET.as_bytes(), user, Some(&user.to_uppercase()), false, 3600).unwrap()
}

pub fn service_token() -> String {
    auth::mint_hs256(SECRET.as_bytes(), "jobs", Some("Jobs"), true, 3600).unwrap()
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that reads JSON frames and close frames.
pub struct Client {
    socket: Socket,
}

/// What a client saw next.
#[derive(Debug)]
pub enum Seen {
    Frame(Value),
    Closed(u16, String),
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, &[]).await
    }

    pub async fn connect_with(url: &str, headers: &[(&'static str, &str)]) -> Self {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("handshake");
        Self { socket }
    }

    /// A client, or `None` when the handshake fails or takes over 5 s (a node is down).
    pub async fn try_connect(url: &str) -> Option<Self> {
        let request = url.into_client_request().ok()?;
        let connecting = tokio_tungstenite::connect_async(request);
        let (socket, _) =
            tokio::time::timeout(Duration::from_secs(5), connecting).await.ok()?.ok()?;
        Some(Self { socket })
    }

    /// A client whose socket receive buffer is tiny, so that not reading backs up at once.
    pub async fn connect_stalled(url: &str) -> Self {
        let address = url.trim_start_matches("ws://").split('/').next().unwrap().parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(address).await.unwrap();
        let request = url.into_client_request().unwrap();
        let (socket, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.unwrap();
        Self { socket }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.socket.send(Message::text(value.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// The next JSON frame or the close, within `within`.
    pub async fn next(&mut self, within: Duration) -> Seen {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Ok(item) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Seen::Closed(0, format!("nothing arrived within {within:?}"));
            };
            match item {
                Some(Ok(Message::Text(text))) => {
                    return Seen::Frame(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Seen::Closed(code, reason);
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Seen::Closed(1006, error.to_string()),
                None => return Seen::Closed(1006, "stream ended".into()),
            }
        }
    }

    pub async fn frame(&mut self) -> Value {
        match self.next(Duration::from_secs(10)).await {
            Seen::Frame(frame) => frame,
            Seen::Closed(code, reason) => panic!("closed {code}: {reason}"),
        }
    }

    /// The next frame whose `type` is `kind`, skipping others.
    pub async fn frame_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.next(Duration::from_secs(10)).await {
                Seen::Closed(code, reason) => return (code, reason),
                Seen::Frame(_) => continue,
            }
        }
    }

    /// Asserts that no frame of type `kind` arrives within `within`.
    pub async fn quiet_for(&mut self, kind: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    assert_ne!(frame["type"], kind, "unexpected frame {frame}");
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => return,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// A seed-protocol client for `conversation`, as `user`.
pub async fn seed_client(
    server: &Server,
    user: &str,
    conversation: u64,
    since: Option<u64>,
) -> Client {
    let since = since.map(|id| format!("&since={id}")).unwrap_or_default();
    Client::connect(
        &server.ws_url(&format!("/ws/chat/{conversation}/?token={}{since}", token(user))),
    )
    .await
}

/// A native-protocol client as `user`, past its `ready` frame.
pub async fn native_client(server: &Server, user: &str) -> Client {
    let mut client =
        Client::connect(&server.ws_url(&format!("/v1/ws?token={}", token(user)))).await;
    let ready = client.frame().await;
    assert_eq!(ready["type"], "ready");
    client
}
