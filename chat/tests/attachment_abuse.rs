//! Attachments attacked for resources, as any participant could: dozens of decompression
//! bombs at once, downloads nobody reads, floods of uploads, uploads never sent, and names
//! and photos that say more than they should. The server keeps serving others, its memory
//! stays under the attachment budget, and each limit answers with its own problem. On the
//! cluster the files live in an S3-compatible server (s3s-fs) of the test's own.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::io::{Cursor, Write as _};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{Value, json};
use support::{Role, Server, Shape, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Memory attachments may take (a quarter for bodies in flight, the rest for previews).
const ATTACHMENT_MEMORY: u64 = 64 << 20;

fn png_chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    chunk
}

fn squeezed(zeros: usize) -> Vec<u8> {
    let mut packer = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0_u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let step = left.min(block.len());
        packer.write_all(&block[..step]).unwrap();
        left -= step;
    }
    packer.finish().unwrap()
}

/// A 1-bit palette PNG of zero rows: a few KiB that decode to `width` x `height` pixels of
/// three bytes each; with `icc_bytes`, a colour profile that inflates to that many bytes.
fn png_bomb(width: u32, height: u32, icc_bytes: usize) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[1, 3, 0, 0, 0]);
    let row = 1 + width.div_ceil(8) as usize;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &header));
    if icc_bytes > 0 {
        let mut profile = b"icc\0\0".to_vec();
        profile.extend(squeezed(icc_bytes));
        png.extend(png_chunk(b"iCCP", &profile));
    }
    png.extend(png_chunk(b"PLTE", b"\0\0\0\xff\xff\xff"));
    png.extend(png_chunk(b"IDAT", &squeezed(row * height as usize)));
    png.extend(png_chunk(b"IEND", b""));
    png
}

/// A JPEG whose Exif says where it was taken and that it is shown turned a quarter.
fn located_photo() -> Vec<u8> {
    let photo = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 32, Rgb([200, 100, 50])));
    let mut jpeg = Cursor::new(Vec::new());
    photo.write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    let secret = b"GPS-SECRET-48.8584N\0";
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x02".to_vec();
    // ImageDescription (ASCII, stored after the directory), then Orientation 6.
    tiff.extend_from_slice(&[0x01, 0x0E, 0, 2]);
    tiff.extend_from_slice(&u32::try_from(secret.len()).unwrap().to_be_bytes());
    tiff.extend_from_slice(&38_u32.to_be_bytes());
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]);
    tiff.extend_from_slice(&[0, 0, 0, 0]);
    tiff.extend_from_slice(secret);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(tiff);
    let length = u16::try_from(exif.len() + 2).unwrap().to_be_bytes();
    let mut located = jpeg[..2].to_vec();
    located.extend_from_slice(&[0xFF, 0xE1, length[0], length[1]]);
    located.extend(exif);
    located.extend_from_slice(&jpeg[2..]);
    located
}

fn upload_path(conversation: u64, name: &str) -> String {
    let name: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }
        })
        .collect();
    format!("/v1/conversations/{conversation}/attachments?name={name}")
}

async fn upload(
    server: &Server,
    user: &str,
    conversation: u64,
    name: impl AsRef<str>,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let response = server
        .http
        .post(server.url(&upload_path(conversation, name.as_ref())))
        .bearer_auth(token(user))
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn download(server: &Server, user: &str, path: &str) -> reqwest::Response {
    server.http.get(server.url(path)).bearer_auth(token(user)).send().await.unwrap()
}

/// The sum of a metric's samples with `label` on the first ingest process.
async fn metric(server: &Server, name: &str, label: &str) -> f64 {
    let page = server.http.get(server.internal_url(Role::Ingest, 0, "/metrics")).send().await;
    let text = page.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// (resident, peak resident) KiB of a process.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find_map(|line| line.strip_prefix(name)).unwrap();
        line.trim().trim_end_matches("kB").trim().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn code(problem: &Value) -> &str {
    problem["type"].as_str().unwrap_or_default().trim_start_matches("urn:chat:problem:")
}

#[tokio::test(flavor = "multi_thread")]
async fn dozens_of_decompression_bombs_at_once_stay_within_the_memory_budget() {
    let server = Server::start_shaped(
        Shape { object_store: true, ..Shape::default() }
            .with("CHAT_ATTACHMENT_MEMORY", ATTACHMENT_MEMORY.to_string())
            .with("CHAT_UPLOAD_RATE", "0"),
    );
    let conversation = server.open_conversation("bombs", "ana", "bo").await;
    let pid = server.pids(Role::Ingest)[0];
    let (before, _) = memory_kib(pid);
    // Previewable (6.25 MP, 19 MB decoded each), over the preview limit (84 MP, 252 MB
    // each, and what the server held at once before), and a profile of 200 MiB.
    let previewable = png_bomb(2_500, 2_500, 0);
    let giant = png_bomb(12_000, 7_000, 0);
    let profiled = png_bomb(2_500, 2_500, 200 << 20);
    let mut bombs = Vec::new();
    for i in 0..36 {
        let (user, bytes) = match i % 3 {
            0 => ("ana", previewable.clone()),
            1 => ("bo", giant.clone()),
            _ => ("ana", profiled.clone()),
        };
        bombs.push(upload(&server, user, conversation, format!("bomb{i}.png"), bytes));
    }
    // Others chat on meanwhile.
    let started = Instant::now();
    let chatting = async {
        server.send("bo", conversation, "still here?").await;
        started.elapsed()
    };
    let (answers, answered_in) = tokio::join!(join_all(bombs), chatting);
    let (after, peak) = memory_kib(pid);
    let growth = peak.saturating_sub(before);
    println!("36 bombs: rss {before} KiB, peak {peak} KiB (+{growth}), after {after} KiB");
    println!("a send during the storm was answered in {answered_in:?}");
    for (status, body) in &answers {
        assert!(matches!(status, 201 | 503), "{status} {body}");
    }
    let previewed = answers.iter().filter(|(_, body)| body["thumbnail_url"].is_string()).count();
    let measured = answers.iter().filter(|(_, body)| body["width"] == json!(12_000)).count();
    assert!(previewed >= 1, "no bomb was decoded at all: the test proves nothing");
    assert!(measured >= 1, "images over the preview limit are kept, measured, not decoded");
    // The budget, and as much again for the runtime, the allocator and thread stacks.
    let bound = 2 * ATTACHMENT_MEMORY / 1024;
    assert!(growth < bound, "peak resident memory grew by {growth} KiB (bound {bound} KiB)");
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_nobody_reads_are_closed_and_counted_per_user() {
    let server = Server::start_shaped(
        Shape { object_store: true, ..Shape::default() }
            .with("CHAT_WRITE_TIMEOUT", "5s")
            .with("CHAT_DOWNLOADS_PER_USER", "4"),
    );
    let conversation = server.open_conversation("unread", "ana", "bo").await;
    let size = 8 << 20;
    let (status, file) = upload(&server, "ana", conversation, "big.txt", vec![b'a'; size]).await;
    assert_eq!(status, 201, "{file}");
    let path = file["url"].as_str().unwrap().to_owned();
    let address = server.http_address(0);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut socket = socket.connect(address.parse().unwrap()).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
            token("bo")
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        // The answer's head has come: the download is in flight, and nobody reads on.
        let mut head = vec![0_u8; 1024];
        let read = socket.read(&mut head).await.unwrap();
        assert!(head[..read].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
        stalled.push(socket);
    }
    let refused = download(&server, "bo", &path).await;
    assert_eq!(refused.status(), 429, "a fifth download of the same user");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(download(&server, "ana", &path).await.status(), 200, "other users are served");
    // Long enough for the write timeout to find each of them taking nothing.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for mut socket in stalled {
        let mut received = 0;
        let mut buffer = vec![0_u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, socket.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(read)) => received += read,
                Err(_) => panic!("a stalled download stayed open for a minute"),
            }
        }
        assert!(received < size, "the whole file reached a reader that had stopped reading");
    }
    // Closed downloads are counted out.
    assert_eq!(download(&server, "bo", &path).await.bytes().await.unwrap().len(), size);
    assert!(metric(&server, "chat_limit_refusals_total", "downloads_in_flight").await >= 1.0);
    assert!(metric(&server, "chat_http_connections_dropped_total", "write_timeout").await >= 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn floods_of_uploads_get_429_and_full_quotas_413() {
    let server = Server::start_shaped(
        Shape { object_store: true, ..Shape::default() }
            .with("CHAT_UPLOAD_RATE", "0.5")
            .with("CHAT_UPLOAD_BURST", "5")
            .with("CHAT_CONVERSATION_FILE_QUOTA", "1000"),
    );
    let first = server.open_conversation("quota-1", "ana", "bo").await;
    let second = server.open_conversation("quota-2", "bo", "cy").await;
    let mut answers = Vec::new();
    for i in 0..4 {
        answers.push(upload(&server, "ana", first, &format!("n{i}.txt"), vec![b'x'; 300]).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [201, 201, 201, 413], "{answers:?}");
    assert_eq!(code(&answers[3].1), "quota_exceeded");
    assert!(answers[3].1["detail"].as_str().unwrap().contains("conversation"));

    let flood = (0..12).map(|i| upload(&server, "bo", second, format!("f{i}.txt"), b"hi".to_vec()));
    let flood = join_all(flood).await;
    let stored = flood.iter().filter(|(status, _)| *status == 201).count();
    let limited =
        flood.iter().filter(|(status, body)| *status == 429 && code(body) == "rate_limited");
    assert_eq!((stored, limited.count()), (5, 7), "{flood:?}");
    assert!(metric(&server, "chat_limit_refusals_total", "upload_rate").await >= 7.0);
    assert!(metric(&server, "chat_limit_refusals_total", "file_quota").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_no_message_carries_are_swept_and_sent_ones_stay() {
    let server = Server::start_shaped(
        Shape { object_store: true, ..Shape::default() }.with("CHAT_UNSENT_UPLOAD_TTL", "2s"),
    );
    let conversation = server.open_conversation("sweep", "ana", "bo").await;
    let (_, sent) = upload(&server, "ana", conversation, "sent.txt", b"kept".to_vec()).await;
    let (_, left) = upload(&server, "ana", conversation, "left.txt", b"dropped".to_vec()).await;
    let (status, answer) = server
        .post(
            "ana",
            &format!("/v1/conversations/{conversation}/messages"),
            json!({"type": "FILE", "attachment": sent}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let left_path = left["url"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while download(&server, "bo", left_path).await.status() != 404 {
        assert!(Instant::now() < deadline, "an unsent upload outlived its time by half a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = download(&server, "bo", sent["url"].as_str().unwrap()).await;
    assert_eq!(kept.status(), 200, "a sent upload was swept");
    assert_eq!(kept.bytes().await.unwrap().as_ref(), b"kept");
    let (status, refused) = server
        .post(
            "ana",
            &format!("/v1/conversations/{conversation}/messages"),
            json!({"type": "FILE", "attachment": left}),
        )
        .await;
    assert_eq!(status, 422, "a swept upload cannot be sent: {refused}");
    assert!(metric(&server, "chat_attachments_swept_total", "").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_cannot_hide_a_type_and_photos_lose_their_location() {
    let server = Server::start_shaped(Shape { object_store: true, ..Shape::default() });
    let conversation = server.open_conversation("honest", "ana", "bo").await;
    let (status, photo) =
        upload(&server, "ana", conversation, "holiday\u{202E}gpj.exe", located_photo()).await;
    assert_eq!(status, 201, "{photo}");
    assert_eq!(photo["name"], "holidaygpj.jpg", "no override, the sniffed type's extension");
    assert_eq!((photo["width"].clone(), photo["height"].clone()), (json!(32), json!(64)), "turned");
    let original = download(&server, "bo", photo["url"].as_str().unwrap()).await;
    let disposition = original.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.ends_with("holidaygpj.jpg"), "{disposition}");
    let bytes = original.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("GPS-SECRET"), "the location reached the other participant");
    assert!(text.contains("Exif"), "the orientation is kept");
    let shown = image::load_from_memory(&bytes).unwrap();
    assert_eq!((shown.width(), shown.height()), (64, 32), "the pixels themselves are untouched");

    let (_, notes) = upload(&server, "ana", conversation, "notes.html", b"hello".to_vec()).await;
    assert_eq!(notes["name"], "notes.txt");
    let saved = download(&server, "bo", notes["url"].as_str().unwrap()).await;
    let disposition = saved.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;") && disposition.ends_with("notes.txt"));
}
