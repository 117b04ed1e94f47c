//! The shared Kafka + Cassandra of the cluster tests: names of each test's own, an
//! S3-compatible server per test that needs one, and the test tools built from source.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    cfg!(feature = "cluster")
}

pub(crate) fn cluster_names() -> ClusterNames {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let sequence = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros();
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

/// An S3-compatible server (s3s-fs) on a free port over `root`, with one bucket, and the
/// variables that point a process at it (the standard `AWS_*` ones, as in production).
pub(crate) fn start_s3(root: &Path, prefix: &str) -> (Child, Vec<(&'static str, String)>) {
    let binary = tool("CHAT_S3S_FS", "s3/build");
    std::fs::create_dir_all(root.join("chat")).expect("the S3 root is created");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("a bound port has an address")
        .port();
    let (key, secret) = ("chat-test", "chat-test-secret-key");
    let child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", key, "--secret-key", secret])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    wait_until_open(&format!("127.0.0.1:{port}"));
    let env = vec![
        ("CHAT_OBJECT_STORE", format!("s3://chat/{prefix}")),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", key.into()),
        ("AWS_SECRET_ACCESS_KEY", secret.into()),
    ];
    (child, env)
}

/// Runs one of the `analytics/` scripts (Python, confluent-kafka: a reader outside Rust)
/// against the cluster's brokers, with `args` after `--brokers`.
pub fn analytics(script: &str, names: &ClusterNames, args: &[&str]) -> std::process::Output {
    let python = std::env::var("CHAT_ANALYTICS_PYTHON").expect(
        "CHAT_ANALYTICS_PYTHON must name a python with analytics/requirements.txt installed",
    );
    let script = format!("{}/../analytics/{script}", env!("CARGO_MANIFEST_DIR"));
    Command::new(python)
        .args([script.as_str(), "--brokers", &names.brokers])
        .args(args)
        .output()
        .expect("the analytics script runs")
}

/// The path of a tool the tests run: from `variable` (set by scripts/test), or built (and
/// cached) by `infra/<build>`, which prints it.
pub fn tool(variable: &str, build: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        let script = format!("{}/../infra/{build}", env!("CARGO_MANIFEST_DIR"));
        let built = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("the tool's build script runs");
        assert!(built.status.success(), "{script} failed");
        String::from_utf8(built.stdout).expect("the tool's path is UTF-8").trim().to_owned()
    })
}

fn wait_until_open(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
