//! Test support: the real `chat dev` binary on a free port, and thin HTTP and WebSocket
//! clients that speak to it over real sockets.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

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

/// A running `chat dev` with its own data directory.
pub struct Server {
    child: Option<Child>,
    pub data_dir: tempfile::TempDir,
    pub address: String,
    pub http: reqwest::Client,
}

impl Server {
    pub fn start() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut server =
            Self { child: None, data_dir, address: String::new(), http: reqwest::Client::new() };
        server.launch("127.0.0.1:0");
        server
    }

    /// Starts the binary on `listen` and waits for its banner.
    fn launch(&mut self, listen: &str) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .args(["dev", "--no-demo", "--partitions", "4", "--listen", listen, "--data-dir"])
            .arg(self.data_dir.path())
            .env("CHAT_JWT_SECRET", SECRET)
            .env("CHAT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chat binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("banner").expect("banner line");
        let address = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected banner: {first}"))
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.address = address;
        self.child = Some(child);
    }

    /// `kill -9`, then start again on the same port with the same data.
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        let listen = self.address.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may take a moment to be free again.
            if std::net::TcpListener::bind(&listen).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.launch(&listen);
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.address)
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

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn token(user: &str) -> String {
    auth::mint_hs256(SECRET.as_bytes(), user, Some(&user.to_uppercase()), false, 3600).unwrap()
}

pub fn service_token() -> String {
    auth::mint_hs256(SECRET.as_bytes(), "jobs", Some("Jobs"), true, 3600).unwrap()
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
            let item = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("nothing arrived in time");
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
