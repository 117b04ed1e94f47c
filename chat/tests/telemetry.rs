//! What the people running the system are promised: every role's `/metrics` exposes exactly
//! what docs/TELEMETRY.md lists and passes `promtool check metrics`; a real Prometheus
//! scraping the server sees the counters move by exactly what the test did, the lag return
//! to zero, and an exemplar naming the trace of the request that sent a message.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server, seed_client, token};

/// A tool the test command installs (Debian's `prometheus` package); its absence fails
/// the test rather than skipping it.
fn tool(name: &str) -> String {
    let variable = format!("CHAT_{}", name.to_uppercase());
    let program = std::env::var(&variable).unwrap_or_else(|_| name.to_owned());
    let runs =
        Command::new(&program).arg("--version").output().is_ok_and(|out| out.status.success());
    assert!(
        runs,
        "{program} is required (scripts/test installs Debian's prometheus package; or set {variable})"
    );
    program
}

/// The spec: metric name → (type, roles that expose it).
fn spec() -> BTreeMap<String, (String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/TELEMETRY.md"))
            .unwrap();
    text.lines()
        .filter(|line| line.starts_with("| `chat_"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), (cells[2].to_owned(), cells[4].to_owned()))
        })
        .collect()
}

/// What a scrape says it exposes: metric name → type.
fn exposed(page: &str) -> BTreeMap<String, String> {
    page.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

async fn scrape(server: &Server, address: &str, accept: Option<&str>) -> (String, String) {
    let mut request = server.http.get(format!("http://{address}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_exposes_what_the_telemetry_spec_lists() {
    let promtool = tool("promtool");
    let server = Server::start();
    let conversation = server.open_conversation("job-telemetry", "tess", "ugo").await;
    server.send("tess", conversation, "counted").await;
    let spec = spec();
    assert!(spec.len() >= 20, "the spec lists the metrics: {spec:?}");
    for (role, address) in server.targets() {
        let expected: BTreeMap<String, String> = spec
            .iter()
            .filter(|(_, (_, roles))| {
                role == "dev" || roles == "all" || roles.split(", ").any(|listed| listed == role)
            })
            .map(|(name, (kind, _))| (name.clone(), kind.clone()))
            .collect();
        // The HTTP families have a series once a request was answered: the first scrape.
        scrape(&server, &address, None).await;
        let (content_type, page) = scrape(&server, &address, None).await;
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        assert_eq!(exposed(&page), expected, "chat {role} exposes what docs/TELEMETRY.md lists");
        let mut lint = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        lint.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
        let linted = lint.wait_with_output().unwrap();
        assert!(
            linted.status.success(),
            "promtool check metrics on chat {role}: {}{}",
            String::from_utf8_lossy(&linted.stdout),
            String::from_utf8_lossy(&linted.stderr)
        );
        let (content_type, page) =
            scrape(&server, &address, Some("application/openmetrics-text; version=1.0.0")).await;
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        assert!(page.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    }
}

/// A Prometheus server on loopback scraping every process of `server` each second; killed
/// when dropped.
struct Prometheus {
    child: Child,
    address: String,
    _data: tempfile::TempDir,
}

impl Prometheus {
    fn start(server: &Server) -> Self {
        let program = tool("prometheus");
        let data = tempfile::tempdir().unwrap();
        let targets: Vec<String> =
            server.targets().into_iter().map(|(_, address)| address).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: chat\n    static_configs:\n      - targets: {}\n",
            serde_json::to_string(&targets).unwrap()
        );
        let config_file = data.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(program)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", data.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={address}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, address, _data: data }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Option<Value> {
        let query: Vec<String> =
            query.iter().map(|(name, value)| format!("{name}={}", url_encoded(value))).collect();
        let url = format!("http://{}{path}?{}", self.address, query.join("&"));
        let response = reqwest::Client::new().get(url).send().await.ok()?;
        let body: Value = response.json().await.ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }

    /// The value of a PromQL expression that yields one sample, if it does.
    async fn value(&self, expression: &str) -> Option<f64> {
        let data = self.get("/api/v1/query", &[("query", expression.to_owned())]).await?;
        data["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `expression` is `expected`, failing with what it was after a minute.
    async fn until(&self, expression: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.value(expression).await;
            if value == Some(expected) {
                return;
            }
            assert!(Instant::now() < deadline, "{expression}: {value:?}, expected {expected}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The trace ids of the exemplars of `metric` over the last ten minutes.
    async fn exemplar_traces(&self, metric: &str) -> Vec<String> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let range = [
            ("query", metric.to_owned()),
            ("start", (now - 600).to_string()),
            ("end", (now + 60).to_string()),
        ];
        let Some(data) = self.get("/api/v1/query_exemplars", &range).await else {
            return Vec::new();
        };
        let series = data.as_array().cloned().unwrap_or_default();
        series
            .iter()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .filter_map(|exemplar| exemplar["labels"]["trace_id"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Percent-encodes everything but letters and digits (enough for PromQL in a URL).
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn messages_seen(client: &mut Client, count: usize) {
    for _ in 0..count {
        let frame = client.frame_of("message").await;
        assert!(frame["message"]["message_text"].is_string(), "{frame}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sees_exactly_what_the_test_did() {
    let server = Server::start();
    let prometheus = Prometheus::start(&server);
    let conversation = server.open_conversation("job-scraped", "vera", "wim").await;
    let mut vera = seed_client(&server, "vera", conversation, None).await;
    let mut wim = seed_client(&server, "wim", conversation, None).await;

    server.send("wim", conversation, "first").await;
    server.send("vera", conversation, "second").await;
    // Sent last: an exemplar is the latest sample of its bucket.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sent = server
        .http
        .post(server.url(&format!("/v1/conversations/{conversation}/messages")))
        .bearer_auth(token("vera"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"text": "traced", "idempotency_key": "scraped-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    messages_seen(&mut vera, 3).await;
    messages_seen(&mut wim, 3).await;
    vera.close().await;
    drop(wim);

    prometheus.until(r#"sum(chat_messages_sent_total{outcome="new"})"#, 3.0).await;
    prometheus.until(r#"sum(chat_messages_sent_total{outcome="duplicate"})"#, 0.0).await;
    // Three messages, each queued for both connections.
    prometheus.until(r#"sum(chat_fanout_queued_total{kind="message"})"#, 6.0).await;
    prometheus.until(r#"sum(chat_fanout_disconnects_total{closed_by="client"})"#, 1.0).await;
    prometheus
        .until(r#"sum(chat_fanout_disconnects_total{closed_by="client",code="1005"})"#, 1.0)
        .await;
    prometheus.until(r#"sum(chat_fanout_disconnects_total{closed_by="network"})"#, 1.0).await;
    prometheus.until("sum(chat_fanout_connections)", 0.0).await;
    prometheus.until("sum(chat_fanout_subscriptions)", 0.0).await;
    prometheus.until("sum(chat_fanout_queue_depth)", 0.0).await;
    prometheus.until("max(chat_consumer_lag_records)", 0.0).await;
    prometheus.until(r#"sum(chat_projector_events_total{outcome="message"})"#, 3.0).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    for metric in
        ["chat_fanout_message_latency_seconds_bucket", "chat_http_request_duration_seconds_bucket"]
    {
        loop {
            let traces = prometheus.exemplar_traces(metric).await;
            if traces.iter().any(|trace| trace == trace_id) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no exemplar of {metric} names trace {trace_id}: {traces:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Metrics, probes and the routes between nodes are served on the internal listener only:
/// the public one (the API, the sockets, the web app) answers them 404.
#[tokio::test(flavor = "multi_thread")]
async fn the_public_listener_serves_nothing_internal() {
    let server = Server::start();
    let internal_paths = ["/metrics", "/healthz", "/readyz", "/internal/v1/node"];
    for (role, internal) in server.targets() {
        for path in ["/metrics", "/healthz", "/readyz"] {
            let answer = server.http.get(format!("http://{internal}{path}")).send().await.unwrap();
            assert_eq!(answer.status(), 200, "chat {role}: {path} on the internal listener");
        }
    }
    let public = [server.url(""), server.ws_url("").replacen("ws://", "http://", 1)];
    for base in public {
        for path in internal_paths {
            let answer = server.http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(answer.status(), 404, "{base}{path} is served publicly");
        }
        let forwarded = server
            .http
            .post(format!("{base}/internal/v1/partitions/0/keyed-sends"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(forwarded.status(), 404, "{base}: forwarded sends are taken publicly");
    }
}
