//! A WebSocket client that reads JSON frames and close frames, and the two protocols'
//! ways in.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::Server;
use crate::token;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that reads JSON frames and close frames.
#[derive(Debug)]
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
        let mut request = url.into_client_request().expect("a WebSocket URL");
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().expect("a valid header value"));
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
        let address = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("a ws:// URL has a host")
            .parse()
            .expect("the host is host:port");
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket.set_recv_buffer_size(4096).expect("a receive buffer size");
        let stream = socket.connect(address).await.expect("the server accepts the connection");
        let request = url.into_client_request().expect("a WebSocket URL");
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("the WebSocket handshake");
        Self { socket }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.socket.send(Message::text(value.to_string())).await.expect("the frame is sent");
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.expect("the frame is sent");
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
                    return Seen::Frame(
                        serde_json::from_str(&text).expect("the server sends JSON frames"),
                    );
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
        self.none_within(within, |frame| frame["type"] == kind).await;
    }

    /// Asserts that no frame for which `unexpected` holds arrives within `within`.
    pub async fn none_within(&mut self, within: Duration, unexpected: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value =
                        serde_json::from_str(&text).expect("the server sends JSON frames");
                    assert!(!unexpected(&frame), "unexpected frame {frame}");
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
