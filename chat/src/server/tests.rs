//! The listener on a real socket: Nagle off, and clients that never finish a request.

use std::time::Instant;

use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn accepted_sockets_have_nagle_off() -> anyhow::Result<()> {
    let listener = bind("127.0.0.1:0".parse()?, None)?;
    let address = listener.local_addr()?;
    let mut listener = without_nagle(listener);
    let _client = TcpStream::connect(address).await?;
    let (accepted, _) = listener.accept().await;
    assert!(accepted.nodelay()?, "TCP_NODELAY must be set on accepted sockets");
    Ok(())
}

fn limits() -> HttpLimits {
    HttpLimits {
        read_timeout: Duration::from_millis(400),
        keep_alive_timeout: Duration::from_millis(800),
        max_header_bytes: 8 * 1024,
        max_unfinished: 16,
        write_timeout: Duration::from_secs(30),
    }
}

/// Bytes of the endless download the write-timeout test never reads.
const HUGE: usize = 256 << 20;

struct Served {
    address: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn serve_test_app(limits: HttpLimits) -> anyhow::Result<Served> {
    let listener = bind("127.0.0.1:0".parse()?, None)?;
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/huge",
            get(|| async {
                let chunks = futures_util::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![7_u8; 64 * 1024]))
                });
                Body::from_stream(futures_util::StreamExt::take(chunks, HUGE / (64 * 1024)))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        );
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let internal = Site { listener: bind("127.0.0.1:0".parse()?, None)?, app: Router::new() };
    let public = Some(Site { listener, app });
    let task = tokio::spawn(async move {
        serve(public, internal, &limits, token, Duration::ZERO, Vec::new()).await
    });
    Ok(Served { address, shutdown, task })
}

/// Reads until the server closes the socket (or `within` passes); true when it closed.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn get_ok(address: SocketAddr) -> anyhow::Result<String> {
    let mut socket = TcpStream::connect(address).await?;
    socket.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await?;
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn connections_that_never_finish_a_request_head_are_closed() -> anyhow::Result<()> {
    let served = serve_test_app(limits()).await?;
    let started = Instant::now();
    let mut silent = TcpStream::connect(served.address).await?;
    let mut unfinished = TcpStream::connect(served.address).await?;
    // A WebSocket upgrade missing its last header line.
    unfinished
        .write_all(b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n")
        .await?;
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await, "a silent socket stays open");
    assert!(
        closed_within(&mut unfinished, Duration::from_secs(3)).await,
        "an unfinished head stays open"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(350), "closed before the read timeout: {waited:?}");
    assert!(get_ok(served.address).await?.ends_with("ok"));
    served.shutdown.cancel();
    served.task.await??;
    Ok(())
}

#[tokio::test]
async fn the_oldest_unfinished_connection_makes_way_for_a_prompt_client() -> anyhow::Result<()> {
    let served =
        serve_test_app(HttpLimits { read_timeout: Duration::from_secs(30), ..limits() }).await?;
    let mut hoarded = Vec::new();
    for _ in 0..16 {
        hoarded.push(TcpStream::connect(served.address).await?);
    }
    // Each new connection evicts the oldest waiting one, so a prompt client is served even
    // while a flood keeps every slot full.
    for _ in 0..4 {
        assert!(get_ok(served.address).await?.ends_with("ok"));
    }
    assert!(
        closed_within(&mut hoarded[0], Duration::from_secs(2)).await,
        "the oldest was not evicted"
    );
    assert!(
        !closed_within(&mut hoarded[15], Duration::from_millis(200)).await,
        "the newest was evicted"
    );
    served.shutdown.cancel();
    served.task.await??;
    Ok(())
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() -> anyhow::Result<()> {
    let served = serve_test_app(limits()).await?;
    let mut socket = TcpStream::connect(served.address).await?;
    socket.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n").await?;
    let mut buffer = [0_u8; 1024];
    let read = socket.read(&mut buffer).await?;
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    // Past its first request, the keep-alive timeout (longer than the read timeout) applies.
    assert!(
        !closed_within(&mut socket, Duration::from_millis(500)).await,
        "closed at the read timeout"
    );
    assert!(
        closed_within(&mut socket, Duration::from_secs(3)).await,
        "an idle connection stays open"
    );
    served.shutdown.cancel();
    served.task.await??;
    Ok(())
}

#[tokio::test]
async fn oversized_heads_and_trickled_bodies_are_refused() -> anyhow::Result<()> {
    let served = serve_test_app(limits()).await?;
    let mut huge = TcpStream::connect(served.address).await?;
    let filler = "a".repeat(16 * 1024);
    huge.write_all(format!("GET /ok HTTP/1.1\r\nhost: x\r\nx-filler: {filler}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    let _ = huge.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");

    let mut trickle = TcpStream::connect(served.address).await?;
    trickle.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab").await?;
    let started = Instant::now();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if trickle.write_all(b"c").await.is_err() {
            break;
        }
    }
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "a trickled body was not refused: {answer:.80}");
    assert!(started.elapsed() < Duration::from_secs(3));
    served.shutdown.cancel();
    served.task.await??;
    Ok(())
}

#[tokio::test]
async fn a_large_body_that_keeps_arriving_gets_the_time_it_needs() -> anyhow::Result<()> {
    // 64 KiB in four chunks 350 ms apart: 1.05 s, past the 400 ms read timeout, but each
    // chunk earns a second at the minimum rate of 16 KiB/s.
    let served = serve_test_app(limits()).await?;
    let mut upload = TcpStream::connect(served.address).await?;
    let chunk = "u".repeat(16 * 1024);
    upload.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 65536\r\n\r\n").await?;
    for _ in 0..4 {
        upload.write_all(chunk.as_bytes()).await?;
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    let mut head = vec![0; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), upload.read(&mut head)).await??;
    let head = String::from_utf8_lossy(&head[..read]);
    assert!(head.starts_with("HTTP/1.1 200"), "a steady upload was cut off: {head}");
    served.shutdown.cancel();
    served.task.await??;
    Ok(())
}

#[tokio::test]
async fn a_request_answered_before_its_body_was_read_closes_its_connection() -> anyhow::Result<()> {
    let served = serve_test_app(limits()).await?;
    let answer = |path: &str| {
        let request = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello");
        async move {
            let mut socket = TcpStream::connect(served.address).await?;
            socket.write_all(request.as_bytes()).await?;
            let mut head = vec![0; 512];
            let read =
                tokio::time::timeout(Duration::from_secs(3), socket.read(&mut head)).await??;
            anyhow::Ok(String::from_utf8_lossy(&head[..read]).to_lowercase())
        }
    };
    // The router refuses a POST to /ok (GET only) without reading it; /echo reads it.
    let refused = answer("/ok").await?;
    assert!(refused.contains("connection: close"), "{refused}");
    let read = answer("/echo").await?;
    assert!(read.starts_with("http/1.1 200") && !read.contains("connection: close"), "{read}");
    served.shutdown.cancel();
    served.task.await??;
    Ok(())
}

#[tokio::test]
async fn shutdown_lets_the_request_in_progress_finish() -> anyhow::Result<()> {
    let served = serve_test_app(limits()).await?;
    let mut socket = TcpStream::connect(served.address).await?;
    socket.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    served.shutdown.cancel();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await?;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow"), "{answer}");
    served.task.await??;
    assert!(TcpStream::connect(served.address).await.is_err(), "still accepting after shutdown");
    Ok(())
}

/// While a role drains, the public site takes nothing new, and the internal one keeps
/// answering probes and the routes between nodes until the role's tasks have ended.
#[tokio::test]
async fn the_internal_site_outlives_the_public_one_until_the_tasks_end() -> anyhow::Result<()> {
    let public = bind("127.0.0.1:0".parse()?, None)?;
    let internal = bind("127.0.0.1:0".parse()?, None)?;
    let (public_address, internal_address) = (public.local_addr()?, internal.local_addr()?);
    let ok = || Router::new().route("/ok", get(|| async { "ok" }));
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = finished.await;
    });
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let served = tokio::spawn(async move {
        let (public, internal) =
            (Site { listener: public, app: ok() }, Site { listener: internal, app: ok() });
        serve(Some(public), internal, &limits(), token, Duration::from_secs(30), vec![task]).await
    });
    assert!(get_ok(public_address).await?.starts_with("HTTP/1.1 200"));
    shutdown.cancel();
    let refused = async {
        while TcpStream::connect(public_address).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused).await?;
    let answer = get_ok(internal_address).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "probes are answered while draining: {answer}");
    let _ = finish.send(());
    tokio::time::timeout(Duration::from_secs(5), served).await???;
    assert!(TcpStream::connect(internal_address).await.is_err(), "the internal site closed last");
    Ok(())
}

/// A drain bounds everything after the signal: a task that never ends is cut at the drain
/// plus its margin, not waited for (virtual time: the bound is the server's, not a guess).
#[tokio::test(start_paused = true)]
async fn a_task_that_never_ends_is_cut_at_the_drain_plus_its_margin() -> anyhow::Result<()> {
    let public = Site { listener: bind("127.0.0.1:0".parse()?, None)?, app: Router::new() };
    let internal = Site { listener: bind("127.0.0.1:0".parse()?, None)?, app: Router::new() };
    let forever = tokio::spawn(std::future::pending::<()>());
    let shutdown = CancellationToken::new();
    let drain = Duration::from_secs(20);
    let token = shutdown.clone();
    let served = tokio::spawn(async move {
        serve(Some(public), internal, &limits(), token, drain, vec![forever]).await
    });
    tokio::task::yield_now().await;
    let started = tokio::time::Instant::now();
    shutdown.cancel();
    served.await??;
    assert_eq!(started.elapsed(), drain + DRAIN_MARGIN);
    Ok(())
}

#[tokio::test]
async fn a_download_nobody_reads_is_closed_after_the_write_timeout() -> anyhow::Result<()> {
    let served =
        serve_test_app(HttpLimits { write_timeout: Duration::from_millis(500), ..limits() })
            .await?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(16 * 1024)?;
    let mut reader = socket.connect(served.address).await?;
    reader.write_all(b"GET /huge HTTP/1.1\r\nhost: x\r\n\r\n").await?;
    // Reads nothing while the server fills the buffers and then waits on the peer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut received = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(read)) => received += read,
            Err(_) => anyhow::bail!("the stalled download was still open after {received} bytes"),
        }
    }
    assert!(received < HUGE / 4, "{received} bytes: the server kept writing to a stalled peer");
    // Prompt readers are served as before.
    assert!(get_ok(served.address).await?.ends_with("ok"));
    served.shutdown.cancel();
    served.task.await??;
    Ok(())
}
