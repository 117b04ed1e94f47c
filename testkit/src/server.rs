//! The server under test: `chat dev` with its own data directory, or (with the `cluster`
//! feature) the roles as separate processes on a topic and keyspace of the test's own; each
//! process started from the real binary, its addresses read from its banner.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::cluster::{ClusterNames, cluster_names, on_cluster, start_s3};
use crate::{ORIGIN, SECRET};

/// The `chat` binary of this build: beside the test binaries' `deps/` directory, where
/// cargo puts it before it runs a package's integration tests (`CHAT_BIN` overrides).
fn chat_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHAT_BIN") {
        return PathBuf::from(path);
    }
    let test = std::env::current_exe().expect("the test binary knows its path");
    let deps = test.parent().expect("test binaries live in target/<profile>/deps");
    let profile = deps.parent().expect("deps is inside the profile directory");
    profile.join(format!("chat{}", std::env::consts::EXE_SUFFIX))
}

/// The roles of a clustered deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dev,
    Ingest,
    Fanout,
    Projector,
    Notifier,
}

impl Role {
    pub(crate) fn command(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Ingest => "ingest",
            Self::Fanout => "fanout",
            Self::Projector => "projector",
            Self::Notifier => "notifier",
        }
    }
}

/// One process of the server under test.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) role: Role,
    pub(crate) child: Option<Child>,
    /// The public listener (for the projector, its only one: the internal).
    pub(crate) address: String,
    /// The internal listener: metrics, probes, the routes between nodes.
    pub(crate) internal: String,
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
    /// On the cluster, start a notifier (`chat dev` runs one anyway).
    pub notifier: bool,
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
            notifier: false,
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
#[derive(Debug)]
pub struct Server {
    pub(crate) processes: Vec<Process>,
    pub(crate) env: Vec<(&'static str, String)>,
    pub(crate) role_env: Vec<(Role, &'static str, String)>,
    /// The S3-compatible server of `Shape::object_store`.
    pub(crate) s3: Option<Child>,
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
        let data_dir = tempfile::tempdir().expect("a temporary data directory");
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
            let (s3, env) = start_s3(&server.data_dir.path().join("s3"), &names.keyspace);
            server.s3 = Some(s3);
            server.env.extend(env);
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
            .expect("chat migrate runs");
        assert!(migrated.success(), "chat migrate failed");
        server.launch(Role::Projector, "127.0.0.1:0", "127.0.0.1:0");
        for _ in 0..shape.ingests {
            server.launch(Role::Ingest, "127.0.0.1:0", "127.0.0.1:0");
        }
        for _ in 0..shape.fanouts {
            server.launch(Role::Fanout, "127.0.0.1:0", "127.0.0.1:0");
        }
        if shape.notifier {
            server.launch(Role::Notifier, "127.0.0.1:0", "127.0.0.1:0");
        }
        server
    }

    /// The binary with this server's configuration in its environment.
    /// Runs `chat replay` (the cluster's log folded afresh and compared with the live
    /// projections) and answers its report, which must find no conversation different.
    pub fn replay_agrees(&self) -> String {
        let replay = self.command("replay").output().expect("chat replay runs");
        let report = String::from_utf8_lossy(&replay.stdout).into_owned();
        assert!(replay.status.success(), "chat replay failed: {report}");
        assert!(report.contains(" 0 different"), "{report}");
        report
    }

    pub fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(chat_binary());
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
                .env("CHAT_PROJECTOR_INSTANCE", format!("{}-0", names.group))
                .env("CHAT_NOTIFIER_GROUP", format!("{}-notifier", names.group));
        }
        command.envs(self.env.iter().map(|(name, value)| (*name, value.as_str())));
        command
    }

    /// Starts one process on `listen` (and `internal`) and waits for its banner.
    pub(crate) fn launch(&mut self, role: Role, listen: &str, internal: &str) {
        let mut command = self.command(role.command());
        if matches!(role, Role::Projector | Role::Notifier) {
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
        let stdout = child.stdout.take().expect("stdout is piped");
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
            Role::Projector | Role::Notifier => address.clone(),
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

    pub(crate) fn addresses(&self, role: Role) -> Vec<String> {
        let wanted = |process: &&Process| process.role == role || process.role == Role::Dev;
        self.processes.iter().filter(wanted).map(|process| process.address.clone()).collect()
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
