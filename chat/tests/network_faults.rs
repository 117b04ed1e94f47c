//! Network faults between the roles and their services, through a real fault-injection
//! proxy (Toxiproxy, built by `infra/toxiproxy/build`): every role reaches the brokers
//! through it (each broker's fault listener, see infra/local/README.md), and each role
//! reaches Cassandra through a proxy of its own. During a storm of keyed sends with
//! resuming watchers, a seeded random schedule injects latency, connection resets and
//! partitions (data silently dropped until healed) on the way to Kafka, to one broker and
//! to one role's Cassandra, mixed with `kill -9` of a random role. Afterwards the guarantees
//! of the storm hold (see `support::storm`) and every process's memory stays bounded.
//! `CHAT_TEST_SEED` replays a schedule; loopback only, bounded in time.

#![cfg(feature = "cluster-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit as support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::storm::Storm;
use support::{Dice, Role, Server, Shape};

const CONVERSATIONS: usize = 6;
const ROUNDS: usize = 10;
/// A role's resident memory may grow by this much over the rounds (buffers, caches and
/// the allocator's slack), not without bound.
const MEMORY_GROWTH_KIB: u64 = 96 * 1024;

/// A Toxiproxy server of this test's own on a free loopback port.
struct Toxiproxy {
    child: Child,
    api: String,
    http: reqwest::Client,
}

impl Toxiproxy {
    fn start() -> Self {
        let binary = support::tool("CHAT_TOXIPROXY", "toxiproxy/build");
        let port = free_port();
        let child = Command::new(binary)
            .args(["-host", "127.0.0.1", "-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("toxiproxy starts");
        Self { child, api: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.http.get(format!("{}/version", self.api)).send().await.is_err() {
            assert!(Instant::now() < deadline, "toxiproxy did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, request: reqwest::RequestBuilder, what: &str) {
        let response = request.send().await.unwrap_or_else(|e| panic!("toxiproxy {what}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "toxiproxy {what}: {status} {body}");
    }

    async fn proxy(&self, name: &str, listen: &str, upstream: &str) {
        let body = json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true});
        let request = self.http.post(format!("{}/proxies", self.api)).json(&body);
        self.call(request, &format!("create {name}")).await;
    }

    /// Adds `toxic` (named after its type) to both directions of each proxy.
    async fn add(&self, proxies: &[String], toxic: &Toxic) {
        for proxy in proxies {
            for stream in ["upstream", "downstream"] {
                let body = json!({
                    "name": format!("{}-{stream}", toxic.kind),
                    "type": toxic.kind,
                    "stream": stream,
                    "toxicity": 1.0,
                    "attributes": toxic.attributes,
                });
                let request =
                    self.http.post(format!("{}/proxies/{proxy}/toxics", self.api)).json(&body);
                self.call(request, &format!("add {} to {proxy}", toxic.kind)).await;
            }
        }
    }

    async fn remove(&self, proxies: &[String], toxic: &Toxic) {
        for proxy in proxies {
            for stream in ["upstream", "downstream"] {
                let url = format!("{}/proxies/{proxy}/toxics/{}-{stream}", self.api, toxic.kind);
                self.call(self.http.delete(url), &format!("remove {} from {proxy}", toxic.kind))
                    .await;
            }
        }
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Toxic {
    kind: &'static str,
    attributes: Value,
}

impl Toxic {
    fn latency(millis: u64) -> Self {
        Self { kind: "latency", attributes: json!({"latency": millis, "jitter": millis / 4}) }
    }

    /// Every connection is reset (RST) as soon as data arrives, new ones too.
    fn reset() -> Self {
        Self { kind: "reset_peer", attributes: json!({"timeout": 0}) }
    }

    /// Data is dropped without a word until the toxic is removed; then the connections
    /// that saw it are closed.
    fn partition() -> Self {
        Self { kind: "timeout", attributes: json!({"timeout": 0}) }
    }
}

/// One step of the schedule.
#[derive(Debug)]
enum Fault {
    Kafka { toxic: &'static str, proxies: Vec<String>, for_millis: u64 },
    Cassandra { toxic: &'static str, role: Role, for_millis: u64 },
    Kill { role: Role, index: usize },
}

fn toxic_named(name: &str, dice: &mut Dice) -> Toxic {
    match name {
        "latency" => Toxic::latency(50 + dice.below(250) as u64),
        "reset" => Toxic::reset(),
        _ => Toxic::partition(),
    }
}

fn draw(dice: &mut Dice, brokers: &[String]) -> Fault {
    let toxic = ["latency", "reset", "partition"][dice.below(3)];
    let for_millis = match toxic {
        "reset" => 300 + dice.below(700) as u64,
        _ => 1_000 + dice.below(4_000) as u64,
    };
    match dice.below(4) {
        0 => Fault::Kafka { toxic, proxies: brokers.to_vec(), for_millis },
        1 => Fault::Kafka {
            toxic,
            proxies: vec![brokers[dice.below(brokers.len())].clone()],
            for_millis,
        },
        2 => {
            let role = [Role::Ingest, Role::Fanout, Role::Projector][dice.below(3)];
            Fault::Cassandra { toxic, role, for_millis }
        }
        _ => {
            let role = [Role::Ingest, Role::Fanout, Role::Projector][dice.below(3)];
            let index = if role == Role::Projector { 0 } else { dice.below(2) };
            Fault::Kill { role, index }
        }
    }
}

fn cassandra_proxy(role: Role) -> String {
    format!("cassandra-{role:?}").to_lowercase()
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_resets_and_partitions_to_kafka_and_cassandra_lose_and_double_nothing() {
    let proxy = Toxiproxy::start();
    proxy.ready().await;
    let brokers: Vec<String> =
        std::env::var("CHAT_KAFKA_BROKERS").unwrap().split(',').map(str::to_owned).collect();
    let mut through_proxy = Vec::new();
    let mut broker_proxies = Vec::new();
    for (n, broker) in brokers.iter().enumerate() {
        let port: u16 = broker.rsplit(':').next().unwrap().parse().unwrap();
        let name = format!("kafka-{n}");
        // The port each broker's fault listener advertises (infra/local/lib.sh).
        let listen = format!("127.0.0.1:{}", port + 21_000);
        proxy.proxy(&name, &listen, &format!("127.0.0.1:{}", port + 20_000)).await;
        through_proxy.push(listen);
        broker_proxies.push(name);
    }
    let cassandra = std::env::var("CHAT_CQL_NODES").unwrap();
    let cassandra = cassandra.split(',').next().unwrap().to_owned();
    let mut shape = Shape { ingests: 2, fanouts: 2, replication_factor: 3, ..Shape::default() }
        .with("CHAT_KAFKA_BROKERS", through_proxy.join(","));
    for role in [Role::Ingest, Role::Fanout, Role::Projector] {
        let listen = format!("127.0.0.1:{}", free_port());
        proxy.proxy(&cassandra_proxy(role), &listen, &cassandra).await;
        shape = shape.with_on(role, "CHAT_CQL_NODES", listen);
    }
    let mut server = Server::start_shaped(shape);
    let storm = Storm::start(&server, "faults", CONVERSATIONS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.resident_memory();

    let mut dice = Dice::seeded(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
    );
    let seed = dice.0;
    println!("network faults: seed {seed} (CHAT_TEST_SEED={seed} replays this schedule)");
    let mut injected = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..ROUNDS {
        let fault = draw(&mut dice, &broker_proxies);
        println!("network faults: round {round}: {fault:?}");
        let kind = match &fault {
            Fault::Kafka { toxic, proxies, for_millis } => {
                let applied = toxic_named(toxic, &mut dice);
                proxy.add(proxies, &applied).await;
                tokio::time::sleep(Duration::from_millis(*for_millis)).await;
                proxy.remove(proxies, &applied).await;
                let scope = if proxies.len() == 1 { "one broker" } else { "kafka" };
                format!("{toxic} to {scope}")
            }
            Fault::Cassandra { toxic, role, for_millis } => {
                let applied = toxic_named(toxic, &mut dice);
                let proxies = [cassandra_proxy(*role)];
                proxy.add(&proxies, &applied).await;
                tokio::time::sleep(Duration::from_millis(*for_millis)).await;
                proxy.remove(&proxies, &applied).await;
                format!("{toxic} to cassandra")
            }
            Fault::Kill { role, index } => {
                server.kill_one(*role, *index);
                tokio::time::sleep(Duration::from_millis(500)).await;
                tokio::task::block_in_place(|| server.restart_role(*role));
                "kill -9 of a role".to_owned()
            }
        };
        *injected.entry(kind).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
    let sends = storm.finish(&server).await;

    server.assert_memory_bounded(&before, MEMORY_GROWTH_KIB);
    println!(
        "network faults: {sends} sends acknowledged over {ROUNDS} rounds {injected:?}, 0 lost, 0 duplicated"
    );
}
