//! What an attacker tried from outside, each refused: connections that never finish a
//! request (slowloris), close frames longer than a control frame may be, JSON arrays where
//! objects are specified, tokens not valid yet, and `/dev/token` under an operator's secret.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{Client, Role, SECRET, Seen, Server, Shape, native_client, seed_client, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the socket; false if it is still open after `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0_u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The sum of a metric's samples with `label` on the first process of `role`.
async fn metric(server: &Server, role: Role, name: &str, label: &str) -> f64 {
    let page = server.http.get(server.internal_url(role, 0, "/metrics")).send().await.unwrap();
    let text = page.text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_that_never_finish_a_request_are_closed() {
    let server = Server::start_shaped(Shape::default().with("CHAT_READ_TIMEOUT", "1s"));
    let http = server.http_address(0);
    let ws = server.ws_url("").trim_start_matches("ws://").to_owned();
    let mut sockets = Vec::new();
    for n in 0..50 {
        let address = if n % 2 == 0 { &http } else { &ws };
        let mut socket = TcpStream::connect(address).await.unwrap();
        match n % 3 {
            // Nothing at all.
            0 => {}
            // A WebSocket upgrade missing its last header line.
            1 => socket
                .write_all(
                    b"GET /v1/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n",
                )
                .await
                .unwrap(),
            // A large header that never ends.
            _ => socket
                .write_all(format!("GET / HTTP/1.1\r\nx-pad: {}", "p".repeat(20_000)).as_bytes())
                .await
                .unwrap(),
        }
        sockets.push(socket);
    }
    // Prompt clients are served meanwhile.
    let conversation = server.open_conversation("job-slow", "ana", "ben").await;
    let started = Instant::now();
    for (n, socket) in sockets.iter_mut().enumerate() {
        let within = Duration::from_secs(10).saturating_sub(started.elapsed());
        assert!(closed_within(socket, within).await, "socket {n} was still open after 10 s");
    }
    let mut ben = seed_client(&server, "ben", conversation, None).await;
    server.send("ana", conversation, "still served").await;
    match ben.next(Duration::from_secs(10)).await {
        Seen::Frame(frame) => assert_eq!(frame["message"]["message_text"], "still served"),
        Seen::Closed(code, reason) => panic!("closed {code}: {reason}"),
    }
    let name = "chat_http_connections_dropped_total";
    let mut dropped = metric(&server, Role::Ingest, name, "read_timeout").await;
    if ws != http {
        dropped += metric(&server, Role::Fanout, name, "read_timeout").await;
    }
    assert!(dropped >= 50.0, "{dropped} connections counted as dropped, 50 were");
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_unfinished_handshakes_is_bounded_and_others_are_served() {
    const FLOOD: usize = 900;
    const LIMIT: usize = 200;
    let server = Server::start_shaped(
        Shape::default()
            .with("CHAT_MAX_UNFINISHED_CONNECTIONS", LIMIT.to_string())
            .with("CHAT_READ_TIMEOUT", "60s"),
    );
    let ws = server.ws_url("").trim_start_matches("ws://").to_owned();
    let pid = server.pids(Role::Fanout)[0];
    let conversation = server.open_conversation("job-flood", "ana", "ben").await;
    let before = resident_kib(pid);
    let head = format!(
        "GET /v1/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nx-pad: {}\r\n",
        "p".repeat(2048)
    );
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let mut socket = TcpStream::connect(&ws).await.unwrap();
        socket.write_all(head.as_bytes()).await.unwrap();
        flood.push(socket);
    }
    // A prompt client gets through the flood, on the WebSocket and over HTTP.
    let mut ben = seed_client(&server, "ben", conversation, None).await;
    server.send("ana", conversation, "through the flood").await;
    match ben.next(Duration::from_secs(10)).await {
        Seen::Frame(frame) => assert_eq!(frame["message"]["message_text"], "through the flood"),
        Seen::Closed(code, reason) => panic!("closed {code}: {reason}"),
    }
    // The oldest gave way: at most LIMIT of the flood are still open.
    let mut closed = 0;
    for socket in &mut flood {
        if closed_within(socket, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    assert!(closed >= FLOOD - LIMIT, "only {closed} of {FLOOD} unfinished connections were closed");
    let grown = resident_kib(pid).saturating_sub(before);
    assert!(grown < 64 * 1024, "the flood grew the server by {grown} KiB");
    let evicted =
        metric(&server, Role::Fanout, "chat_http_connections_dropped_total", "unfinished_limit");
    assert!(evicted.await >= (FLOOD - LIMIT) as f64);
    // The gauge sees the survivors waiting, and (nearly) none once they hang up: this
    // test's own HTTP client may keep a spare connection that never sent a request (its
    // pool opens one while an idle one frees up), and that one rightly counts as waiting.
    let waiting = metric(&server, Role::Fanout, "chat_http_connections_unfinished", "").await;
    assert!(
        waiting > 0.0 && waiting <= LIMIT as f64,
        "{waiting} connections counted as waiting, {} of the flood are open",
        FLOOD - closed
    );
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = metric(&server, Role::Fanout, "chat_http_connections_unfinished", "").await;
        if waiting <= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} still counted as waiting after the flood left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_close_frame_fits_its_reason_so_the_code_arrives() {
    let server = Server::start();
    let conversation = server.open_conversation("job-close", "ana", "ben").await;
    // `alg: none`: the JWT library's message made a 198-byte close payload.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"ana","exp":4102444800}"#);
    let unsigned = format!("{header}.{claims}.");
    let mut forged = Client::connect(&server.ws_url(&format!("/v1/ws?token={unsigned}"))).await;
    let (code, reason) = forged.closed().await;
    assert_eq!(code, 4401, "{reason}");
    assert!(reason.len() <= 123);

    // A non-participant with a 128-character user id.
    let outsider = "o".repeat(128);
    let path = format!("/ws/chat/{conversation}/?token={}", token(&outsider));
    let (code, _) = Client::connect(&server.ws_url(&path)).await.closed().await;
    assert_eq!(code, 4404);

    // A cookie from a long foreign origin.
    let origin = format!("https://{}.example", "evil".repeat(50));
    let cookie = format!("chat_token={}", token("ana"));
    let mut hijack = Client::connect_with(
        &server.ws_url("/v1/ws"),
        &[("origin", origin.as_str()), ("cookie", cookie.as_str())],
    )
    .await;
    let (code, reason) = hijack.closed().await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.len() <= 123);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_arrays_are_refused_where_objects_are_specified() {
    let server = Server::start();
    let conversation = server.open_conversation("job-arrays", "ana", "ben").await;
    let messages = format!("/v1/conversations/{conversation}/messages");
    let kept = server.send("ana", conversation, "before").await;
    let attempts = [
        (messages.clone(), json!(["text"])),
        (messages.clone(), json!(["t", "TEXT", null, "key"])),
        (messages.clone(), json!({"text": "x", "type": "FILE", "attachment": ["u", "n", "m"]})),
        (format!("/v1/conversations/{conversation}/read"), json!([kept])),
    ];
    for (path, body) in attempts {
        let (status, problem) = server.post("ana", &path, body.clone()).await;
        assert_eq!(status, 400, "{body} on {path}: {problem}");
        assert_eq!(problem["type"], "urn:chat:problem:invalid_json", "{problem}");
    }
    let opened = server
        .http
        .put(server.url("/v1/jobs/job-array-open/conversation"))
        .bearer_auth(support::service_token())
        .json(&json!(["carla", "dan"]))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 400);

    let mut ana = native_client(&server, "ana").await;
    ana.send_json(json!(["send", "r1", conversation, "over the native socket"])).await;
    let refused = ana.frame_of("error").await;
    assert_eq!(refused["code"], "invalid_json", "{refused}");
    let mut seed = seed_client(&server, "ana", conversation, None).await;
    seed.send_json(json!(["over the seed socket", "TEXT"])).await;
    let refused = seed.frame_of("error").await;
    assert_eq!(refused["code"], "invalid_json", "{refused}");

    // Nothing was created: once a proper message sent after them is in history, history
    // holds the two proper messages and nothing between them.
    server.send("ana", conversation, "after").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let history = loop {
        let history = server.history("ben", conversation).await;
        if history.iter().any(|message| message["text"] == "after") {
            break history;
        }
        assert!(Instant::now() < deadline, "history never showed the last message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let texts: Vec<&Value> = history.iter().map(|message| &message["text"]).collect();
    assert_eq!(texts, [&json!("before"), &json!("after")], "{history:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_not_valid_yet_are_refused() {
    let server = Server::start();
    let conversation = server.open_conversation("job-nbf", "ana", "ben").await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"sub": "ana", "exp": now + 7200, "nbf": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let later = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
    let answer =
        server.http.get(server.url("/v1/conversations")).bearer_auth(&later).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let path = format!("/ws/chat/{conversation}/?token={later}");
    let (code, reason) = Client::connect(&server.ws_url(&path)).await.closed().await;
    assert_eq!(code, 4401, "{reason}");
}

/// `chat dev` on a fresh data directory, with the test's secret or without one.
struct Dev {
    child: Child,
    address: String,
    _data: tempfile::TempDir,
}

impl Dev {
    fn start(server: &Server, operator_secret: bool, env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut command = server.command("dev");
        if !operator_secret {
            command.env_remove("CHAT_JWT_SECRET");
        }
        command.envs(env.iter().copied()).args([
            "--listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
            "--no-demo",
        ]);
        let mut child =
            command.arg("--data-dir").arg(data.path()).stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let address = first.split("http://").nth(1).unwrap().split_whitespace().next().unwrap();
        // The banner says what `/dev/token` does.
        let said =
            lines.by_ref().take(8).map(Result::unwrap).find(|line| line.contains("/dev/token"));
        assert!(said.is_some(), "the banner does not mention /dev/token");
        std::thread::spawn(move || for _ in lines {});
        Self { child, address: address.to_owned(), _data: data }
    }

    async fn mint(&self, body: Value) -> (u16, Value) {
        let answer = reqwest::Client::new()
            .post(format!("http://{}/dev/token", self.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_tokens_are_minted_only_with_the_generated_secret() {
    // `/dev/token` exists in `chat dev` only, which this test starts itself on either run.
    let server = Server::start();
    let generated = Dev::start(&server, false, &[]);
    let (status, body) = generated.mint(json!({"sub": "jobs", "service": true})).await;
    assert_eq!(status, 200, "{body}");

    // With an operator's secret the route is not there at all...
    let operated = Dev::start(&server, true, &[]);
    let (status, _) = operated.mint(json!({"sub": "x", "service": true})).await;
    assert_eq!(status, 404);
    // ...and with --serve-dev-tokens it mints users, never the service role.
    let opted = Dev::start(&server, true, &[("CHAT_SERVE_DEV_TOKENS", "true")]);
    let (status, problem) = opted.mint(json!({"sub": "x", "service": true})).await;
    assert_eq!(status, 403, "{problem}");
    let (status, body) = opted.mint(json!({"sub": "x"})).await;
    assert_eq!(status, 200, "{body}");
    let minted = body["token"].as_str().unwrap();
    let caller = auth::Verifier::hs256(SECRET.as_bytes()).unwrap().verify(minted).unwrap();
    assert!(!caller.service);
    let (status, _) = opted.mint(json!(["x", true])).await;
    assert_eq!(status, 422, "an array is not a token request");
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_and_giant_json_get_clear_refusals() {
    let server = Server::start();
    let conversation = server.open_conversation("job-nested", "ana", "ben").await;
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let deep_object = format!("{{\"text\":{}1{}}}", "[".repeat(5_000), "]".repeat(5_000));
    let path = server.url(&format!("/v1/conversations/{conversation}/messages"));
    for body in [nested, deep_object.clone()] {
        let answer = server
            .http
            .post(&path)
            .bearer_auth(token("ana"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400);
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["type"], "urn:chat:problem:invalid_json", "{problem}");
    }
    let giant = json!({"text": "g".repeat(200_000)});
    let answer =
        server.http.post(&path).bearer_auth(token("ana")).json(&giant).send().await.unwrap();
    assert_eq!(answer.status(), 413);

    let mut ana = native_client(&server, "ana").await;
    ana.send_text(deep_object).await;
    assert_eq!(ana.frame_of("error").await["code"], "invalid_json");
    // Still served after the refusal; then a frame over the limit closes with 1009.
    ana.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    assert_eq!(ana.frame_of("subscribed").await["conversation_id"], conversation);
    ana.send_text("x".repeat(40_000)).await;
    assert_eq!(ana.closed().await.0, 1009);
}

/// Every subscribe authorizes and sends signals to every fanout node, so a connection
/// that churns subscriptions at wire speed would make the whole tier busy. Past its burst
/// it gets `rate_limited` answers, and stays usable.
#[tokio::test(flavor = "multi_thread")]
async fn subscription_churn_is_refused_past_its_burst_and_the_connection_keeps_serving() {
    const CHANGES: usize = 1_000;
    let server = Server::start_shaped(
        Shape::default()
            .with("CHAT_MAX_SUBSCRIPTIONS", "10")
            .with("CHAT_SUBSCRIPTION_CHANGES", "20"),
    );
    let conversation = server.open_conversation("job-churn", "ana", "ben").await;
    let mut ana = native_client(&server, "ana").await;
    let started = Instant::now();
    for n in 0..CHANGES {
        let kind = if n % 2 == 0 { "subscribe" } else { "unsubscribe" };
        ana.send_json(json!({"type": kind, "conversation_id": conversation})).await;
    }
    let (mut accepted, mut refused) = (0, 0);
    while accepted + refused < CHANGES {
        match ana.next(Duration::from_secs(10)).await {
            Seen::Frame(frame) => match frame["type"].as_str() {
                Some("subscribed" | "unsubscribed") => accepted += 1,
                Some("error") => {
                    assert_eq!(frame["code"], "rate_limited", "{frame}");
                    refused += 1;
                }
                _ => {}
            },
            Seen::Closed(code, reason) => panic!("closed {code} {reason} after {accepted}"),
        }
    }
    // A burst of twice the subscription limit plus ten, then 20 a second.
    let allowed = 30 + (started.elapsed().as_secs_f64() * 20.0).ceil() as usize + 1;
    assert!(accepted <= allowed, "{accepted} changes accepted, at most {allowed} expected");
    assert!(accepted >= 30, "the burst is served: {accepted}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    ana.send_json(json!({"type": "unsubscribe", "conversation_id": conversation})).await;
    ana.frame_of("unsubscribed").await;
    ana.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    ana.frame_of("subscribed").await;
    let id = server.send("ben", conversation, "after the churn").await;
    let message = ana.frame_of("message").await;
    assert_eq!(message["message"]["id"], id);
    // Counted where the socket is served (the fanout node, on the cluster).
    let fanout = server.internal_url(Role::Fanout, 0, "/metrics");
    let metrics = server.http.get(fanout).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines().any(|line| line
            .starts_with("chat_limit_refusals_total{limit=\"subscription_changes\"}")
            && !line.ends_with(" 0")),
        "the refusals are counted"
    );
}

/// A flood of finished handshakes from many users at once (every token valid, so no
/// per-user limit applies): all are admitted, each costs bounded memory, and a
/// conversation's participants keep chatting in the middle of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_connections_from_many_users_costs_bounded_memory_and_others_chat_on() {
    const USERS: usize = 1_500;
    // All at once, more handshakes may be unfinished than the default cap of 1,024 (whose
    // evictions have their own test): room for all of them, so that only the per-user
    // limits could refuse one.
    let server = Server::start_shaped(
        Shape::default().with("CHAT_MAX_UNFINISHED_CONNECTIONS", (2 * USERS).to_string()),
    );
    let pid = server.pids(Role::Fanout)[0];
    let conversation = server.open_conversation("job-many", "ana", "ben").await;
    let mut ana = native_client(&server, "ana").await;
    ana.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    ana.frame_of("subscribed").await;
    let before = resident_kib(pid);
    let url = server.ws_url("/v1/ws?token=");
    let mut opening = Vec::new();
    for n in 0..USERS {
        let url = format!("{url}{}", token(&format!("flood-{n}")));
        opening.push(tokio::spawn(async move { Client::try_connect(&url).await }));
    }
    // While the flood arrives, the participants chat.
    let sent = server.send("ben", conversation, "through the flood").await;
    let message = ana.frame_of("message").await;
    assert_eq!(message["message"]["id"], sent);
    let mut flood = Vec::new();
    for task in opening {
        flood.push(task.await.unwrap());
    }
    let admitted = flood.iter().filter(|client| client.is_some()).count();
    assert_eq!(admitted, USERS, "every valid connection is admitted");
    let after = resident_kib(pid);
    let per_connection = after.saturating_sub(before) / USERS as u64;
    println!("{USERS} users: rss {before} -> {after} KiB, {per_connection} KiB each");
    assert!(per_connection <= 64, "{per_connection} KiB per connection");
    let sent = server.send("ben", conversation, "after the flood").await;
    assert_eq!(ana.frame_of("message").await["message"]["id"], sent);
}

/// The web app's assets: gzip when asked, 304 for a version the browser holds, and a
/// policy under which the page runs only its own script (so text that slipped into the DOM
/// as markup still could not run).
#[tokio::test(flavor = "multi_thread")]
async fn the_web_app_is_compressed_revalidated_and_confined_by_its_policy() {
    use std::io::Read;
    let server = Server::start();
    let dev = Dev::start(&server, false, &[]);
    let http = reqwest::Client::new();
    let url = format!("http://{}/app.js", dev.address);
    let plain = http.get(&url).send().await.unwrap();
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let policy = plain.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("object-src 'none'"),
        "{policy}"
    );
    let plain = plain.text().await.unwrap();
    let zipped = http.get(&url).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.unwrap();
    assert!(zipped.len() * 2 < plain.len(), "{} of {} bytes", zipped.len(), plain.len());
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&zipped[..]).read_to_string(&mut unzipped).unwrap();
    assert_eq!(unzipped, plain);
    let held = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(held.status(), 304);
    assert!(held.bytes().await.unwrap().is_empty());
    let page = http.get(format!("http://{}/", dev.address)).send().await.unwrap();
    assert_ne!(page.headers()["etag"].to_str().unwrap(), etag, "each asset has its own tag");
    assert!(page.headers().contains_key("content-security-policy"));
}
