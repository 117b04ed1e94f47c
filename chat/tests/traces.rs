//! One trace per message across processes: a real OpenTelemetry Collector (built from Go
//! modules by `infra/otelcol/build`) receives OTLP from the server, and the spans it writes
//! must show the request (HTTP or WebSocket), the append, the projector's fold and store
//! write, and the fanout's delivery, each the child of the one before. Then: a collector
//! that goes away costs the sends nothing.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, Shape, seed_client, token};

/// The collector, listening for OTLP over HTTP on loopback and writing spans to a file.
struct Collector {
    child: Child,
    endpoint: String,
    grpc_endpoint: String,
    spans_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Collector {
    /// The collector `CHAT_OTELCOL` names (scripts/test builds it first), or one built now.
    fn start() -> Self {
        let program = support::tool("CHAT_OTELCOL", "otelcol/build");
        let dir = tempfile::tempdir().unwrap();
        let spans_file = dir.path().join("spans.jsonl");
        let (http, grpc) = (free_port(), free_port());
        let config = format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{http}\n      grpc:\n        endpoint: 127.0.0.1:{grpc}\n\
             exporters:\n  file:\n    path: {}\n    flush_interval: 100ms\n\
             service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n",
            spans_file.display()
        );
        let config_file = dir.path().join("collector.yaml");
        std::fs::write(&config_file, config).unwrap();
        let child = Command::new(program)
            .arg(format!("--config={}", config_file.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err()
        {
            assert!(Instant::now() < deadline, "the collector did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{http}"),
            grpc_endpoint: format!("http://127.0.0.1:{grpc}"),
            spans_file,
            _dir: dir,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every span written so far, with its process's `service.name`.
    fn spans(&self) -> Vec<Span> {
        let text = std::fs::read_to_string(&self.spans_file).unwrap_or_default();
        let mut spans = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            // The collector may be writing the last line right now.
            let Ok(document) = serde_json::from_str::<Value>(line) else { continue };
            for resource in document["resourceSpans"].as_array().into_iter().flatten() {
                let service = attributes(&resource["resource"]["attributes"])
                    .remove("service.name")
                    .unwrap_or_default();
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        spans.push(Span {
                            service: service.clone(),
                            trace: span["traceId"].as_str().unwrap_or_default().to_owned(),
                            id: span["spanId"].as_str().unwrap_or_default().to_owned(),
                            parent: span["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                            name: span["name"].as_str().unwrap_or_default().to_owned(),
                            kind: span["kind"].as_u64().unwrap_or_default(),
                            attributes: attributes(&span["attributes"]),
                        });
                    }
                }
            }
        }
        spans
    }

    /// Waits until `found` is satisfied by the spans written.
    fn until<T>(&self, what: &str, found: impl Fn(&[Span]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if let Some(found) = found(&spans) {
                return found;
            }
            assert!(Instant::now() < deadline, "{what} within 30 s; spans: {spans:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// OTLP span kinds.
const SERVER: u64 = 2;
const CLIENT: u64 = 3;
const PRODUCER: u64 = 4;
const CONSUMER: u64 = 5;

#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: u64,
    attributes: HashMap<String, String>,
}

fn attributes(list: &Value) -> HashMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|attribute| {
            let value = &attribute["value"];
            let text = value["stringValue"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| value["intValue"].as_str().map(str::to_owned))
                .or_else(|| value["intValue"].as_i64().map(|n| n.to_string()))?;
            Some((attribute["key"].as_str()?.to_owned(), text))
        })
        .collect()
}

fn traced_server(collector: &Collector) -> Server {
    Server::start_shaped(
        Shape::default()
            .with("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone())
            .with("OTEL_BSP_SCHEDULE_DELAY", "100"),
    )
}

/// The expected role of a span's process: `chat dev` runs every role.
fn service(role: &str) -> String {
    if support::on_cluster() { format!("chat-{role}") } else { "chat-dev".into() }
}

/// Checks the chain under `root` in its trace: root → the append → the projector's span
/// (→ its store write) and the fanout's span, which queued the message for `deliveries`
/// connections.
fn chain(spans: &[Span], root: &Span, deliveries: usize) -> Result<(), String> {
    let in_trace: Vec<&Span> = spans.iter().filter(|span| span.trace == root.trace).collect();
    let children_of = |parent: &Span, kind: u64| -> Vec<&Span> {
        in_trace
            .iter()
            .copied()
            .filter(|span| span.parent == parent.id && span.kind == kind)
            .collect()
    };
    let check =
        |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("{what}: {in_trace:#?}")) };
    let producers = children_of(root, PRODUCER);
    check(producers.len() == 1, "one append under the request")?;
    let producer = producers[0];
    let attribute = |span: &Span, key: &str| span.attributes.get(key).cloned();
    // Sends over a socket are appended by the fanout node that took them.
    check(producer.service == root.service, "the append in the process that took the send")?;
    check(producer.name.starts_with("send "), "the append named send <topic>")?;
    check(attribute(producer, "messaging.operation.type").as_deref() == Some("send"), "send")?;
    for key in ["messaging.system", "messaging.destination.name", "messaging.kafka.offset"] {
        check(producer.attributes.contains_key(key), key)?;
    }
    let consumers = children_of(producer, CONSUMER);
    let projector = consumers.iter().find(|span| {
        span.service == service("projector")
            && span.attributes.contains_key("messaging.batch.message_count")
    });
    let Some(projector) = projector else { return Err(format!("a projector span: {in_trace:#?}")) };
    check(
        attribute(projector, "messaging.operation.type").as_deref() == Some("process"),
        "process",
    )?;
    check(
        attribute(projector, "messaging.kafka.offset")
            == attribute(producer, "messaging.kafka.offset"),
        "the projector took in the record the append wrote",
    )?;
    check(children_of(projector, CLIENT).len() == 1, "the store write under the projector's span")?;
    let fanout = consumers.iter().find(|span| {
        span.service == service("fanout") && span.attributes.contains_key("chat.deliveries")
    });
    let Some(fanout) = fanout else { return Err(format!("a fanout span: {in_trace:#?}")) };
    check(
        attribute(fanout, "chat.deliveries") == Some(deliveries.to_string()),
        &format!("queued for {deliveries} connections"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_follows_a_message_from_the_request_to_the_socket() {
    let collector = Collector::start();
    let server = traced_server(&collector);
    let conversation = server.open_conversation("job-traced", "ines", "jon").await;
    let mut jon = seed_client(&server, "jon", conversation, None).await;

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let sent = server
        .http
        .post(server.url(&format!("/v1/conversations/{conversation}/messages")))
        .bearer_auth(token("ines"))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .json(&json!({"text": "over HTTP", "idempotency_key": "traced-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    assert_eq!(jon.frame_of("message").await["message"]["message_text"], "over HTTP");

    let mut ines = seed_client(&server, "ines", conversation, None).await;
    ines.send_json(json!({"message": "over the socket", "type": "TEXT"})).await;
    loop {
        let frame = jon.frame_of("message").await;
        if frame["message"]["message_text"] == "over the socket" {
            break;
        }
    }

    let http_root = collector.until("the HTTP request's span", |spans| {
        spans
            .iter()
            .find(|span| {
                span.trace == trace_id && span.kind == SERVER && span.name.starts_with("POST ")
            })
            .cloned()
    });
    assert_eq!(http_root.parent, "b7ad6b7169203331", "a child of the caller's traceparent");
    assert_eq!(http_root.service, service("ingest"));
    assert_eq!(
        http_root.attributes.get("http.route").map(String::as_str),
        Some("/v1/conversations/{id}/messages")
    );
    assert_eq!(
        http_root.attributes.get("http.response.status_code").map(String::as_str),
        Some("201")
    );
    collector.until("the HTTP message's whole chain", |spans| chain(spans, &http_root, 1).ok());

    let socket_root = collector.until("the WebSocket frame's span", |spans| {
        spans.iter().find(|span| span.kind == SERVER && span.name == "WebSocket send").cloned()
    });
    assert_eq!(socket_root.service, service("fanout"));
    assert_ne!(socket_root.trace, trace_id, "a frame starts a trace of its own");
    // Both are subscribed by now.
    collector
        .until("the WebSocket message's whole chain", |spans| chain(spans, &socket_root, 2).ok());
}

async fn metric(server: &Server, line_prefix: &str) -> f64 {
    let mut total = 0.0;
    for (_, address) in server.targets() {
        let page = server.http.get(format!("http://{address}/metrics")).send().await.unwrap();
        let page = page.text().await.unwrap();
        total += page
            .lines()
            .filter(|line| line.starts_with(line_prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_carry_on_when_the_collector_goes_away() {
    let mut collector = Collector::start();
    let server = traced_server(&collector);
    let conversation = server.open_conversation("job-untraced", "kai", "lou").await;
    server.send("kai", conversation, "while the collector listens").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&server, "chat_trace_spans_exported_total").await == 0.0 {
        assert!(Instant::now() < deadline, "no span exported within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    collector.stop();
    let mut slowest = Duration::ZERO;
    for n in 0..30 {
        let started = Instant::now();
        server.send("kai", conversation, &format!("collector gone {n}")).await;
        slowest = slowest.max(started.elapsed());
    }
    // A send held behind the exporter waits out its 10 s timeout; a loaded machine's
    // slowest ordinary send (an fsync behind other work) stays well under 5 s.
    assert!(slowest < Duration::from_secs(5), "a send waited on the collector: {slowest:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.history("lou", conversation).await.len() < 31 {
        assert!(Instant::now() < deadline, "every send reaches history");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&server, "chat_trace_spans_dropped_total{reason=\"export_failed\"}").await == 0.0 {
        assert!(Instant::now() < deadline, "failed exports are counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_the_collector_over_grpc_too() {
    let collector = Collector::start();
    let server = Server::start_shaped(
        Shape::default()
            .with("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint.clone())
            .with("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .with("OTEL_BSP_SCHEDULE_DELAY", "100"),
    );
    let conversation = server.open_conversation("job-grpc", "mia", "ned").await;
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let sent = server
        .http
        .post(server.url(&format!("/v1/conversations/{conversation}/messages")))
        .bearer_auth(token("mia"))
        .header("traceparent", format!("00-{trace_id}-eee19b7ec3c1b174-01"))
        .json(&json!({"text": "over gRPC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    collector.until("the request's span, exported over gRPC", |spans| {
        spans.iter().find(|span| span.trace == trace_id && span.kind == SERVER).cloned()
    });
}
