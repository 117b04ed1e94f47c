//! Attachments end to end: a participant uploads a file (its type sniffed from the bytes,
//! whatever the client says), sends it in a message over HTTP or the native socket, and
//! both participants download it, served so it cannot run as script; outsiders, lies and
//! oversized or dangerous files are refused and change nothing. On the cluster the files
//! live in an S3-compatible server (s3s-fs) of the test's own.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{Value, json};
use support::{Server, Shape, native_client, token};

const LIMIT: usize = 300_000;

fn start() -> Server {
    Server::start_shaped(
        Shape { object_store: true, ..Shape::default() }
            .with("CHAT_MAX_ATTACHMENT_BYTES", LIMIT.to_string()),
    )
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    }));
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

async fn upload(
    server: &Server,
    user: &str,
    conversation: u64,
    name: &str,
    claimed_type: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let name: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }
        })
        .collect();
    let url = server.url(&format!("/v1/conversations/{conversation}/attachments?name={name}"));
    let response = server
        .http
        .post(url)
        .bearer_auth(token(user))
        .header("content-type", claimed_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The message `id` from `user`'s history, once the projections hold it.
async fn message(server: &Server, user: &str, conversation: u64, id: &Value) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let history = server.history(user, conversation).await;
        if let Some(found) = history.into_iter().find(|message| message["id"] == *id) {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "message {id} never reached history");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The problem code of an error answer (`urn:chat:problem:<code>`).
fn code(problem: &Value) -> &str {
    problem["type"].as_str().unwrap_or_default().trim_start_matches("urn:chat:problem:")
}

async fn download(server: &Server, user: &str, path: &str) -> reqwest::Response {
    server.http.get(server.url(path)).bearer_auth(token(user)).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn participants_send_images_and_files_and_download_them_inert() {
    let server = start();
    let conversation = server.open_conversation("job-files", "ana", "ben").await;
    let picture = png(900, 600);
    // The client calls it HTML; the bytes say PNG, and the bytes win.
    let (status, uploaded) =
        upload(&server, "ana", conversation, "site/plan.png", "text/html", picture.clone()).await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["mime_type"], "image/png");
    assert_eq!(uploaded["name"], "plan.png", "a path is cut to its last segment");
    assert_eq!((uploaded["width"].as_u64(), uploaded["height"].as_u64()), (Some(900), Some(600)));
    assert_eq!(uploaded["size"].as_u64(), Some(picture.len() as u64));

    // The client's description is replaced by what the server stored.
    let mut claimed = uploaded.clone();
    claimed["name"] = json!("innocent.txt");
    claimed["mime_type"] = json!("image/svg+xml");
    claimed["size"] = json!(1);
    let (status, sent) = server
        .post(
            "ana",
            &format!("/v1/conversations/{conversation}/messages"),
            json!({"type": "IMAGE", "attachment": claimed}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let stored = message(&server, "ben", conversation, &sent["id"]).await;
    assert_eq!(stored["attachment"], uploaded, "the stored description");

    let original = download(&server, "ben", uploaded["url"].as_str().unwrap()).await;
    assert_eq!(original.status(), 200);
    let headers = original.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("inline;"));
    assert_eq!(original.bytes().await.unwrap().to_vec(), picture);

    let thumbnail = download(&server, "ana", uploaded["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(thumbnail.status(), 200);
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let small = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (320, 213));

    // A file, sent over the native socket by the other participant.
    let (status, notes) = upload(
        &server,
        "ben",
        conversation,
        "notes \"v2\".txt",
        "application/octet-stream",
        b"bring the ladder\n".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{notes}");
    assert_eq!(notes["mime_type"], "text/plain");
    assert!(notes.get("thumbnail_url").is_none());
    let mut ben = native_client(&server, "ben").await;
    ben.send_json(json!({
        "type": "send", "ref": "f1", "conversation_id": conversation,
        "message_type": "FILE", "attachment": notes,
    }))
    .await;
    let acked = ben.frame_of("ack").await;
    assert_eq!(acked["ref"], "f1", "{acked}");
    let stored = message(&server, "ana", conversation, &acked["message_id"]).await;
    assert_eq!(stored["attachment"], notes);
    let file = download(&server, "ana", notes["url"].as_str().unwrap()).await;
    assert_eq!(file.headers()["content-type"], "text/plain; charset=utf-8");
    let disposition = file.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert_eq!(disposition, "attachment; filename*=UTF-8''notes%20%22v2%22.txt");
    assert_eq!(file.text().await.unwrap(), "bring the ladder\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn outsiders_lies_and_dangerous_or_oversized_files_are_refused() {
    let server = start();
    let conversation = server.open_conversation("job-guarded", "ana", "ben").await;
    let elsewhere = server.open_conversation("job-elsewhere", "ana", "dora").await;
    let (status, uploaded) =
        upload(&server, "ana", conversation, "a.png", "image/png", png(20, 20)).await;
    assert_eq!(status, 201, "{uploaded}");
    let url = uploaded["url"].as_str().unwrap().to_owned();
    let upload_id = uploaded["upload_id"].as_str().unwrap().to_owned();

    // Outsiders get the answer for a conversation that does not exist.
    let (status, refused) =
        upload(&server, "carl", conversation, "x.png", "image/png", png(4, 4)).await;
    assert_eq!((status, code(&refused)), (404, "not_found"), "{refused}");
    assert_eq!(download(&server, "carl", &url).await.status(), 404);
    let anonymous = server.http.get(server.url(&url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // The id is only good in its own conversation, even for someone in both.
    let moved = url.replace(
        &format!("/conversations/{conversation}/"),
        &format!("/conversations/{elsewhere}/"),
    );
    assert_eq!(download(&server, "ana", &moved).await.status(), 404);

    for (name, bytes) in [
        ("page.png", b"<html><script>alert(document.cookie)</script>".to_vec()),
        ("logo.png", b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec()),
        ("tool.png", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec()),
    ] {
        let (status, refused) =
            upload(&server, "ana", conversation, name, "image/png", bytes).await;
        assert_eq!((status, code(&refused)), (415, "unsupported_type"), "{refused}");
    }
    let (status, refused) =
        upload(&server, "ana", conversation, "big.txt", "text/plain", vec![b'a'; LIMIT + 1]).await;
    assert_eq!((status, code(&refused)), (413, "too_large"), "{refused}");
    let (status, refused) =
        upload(&server, "ana", conversation, "bad\u{7}.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(status, 422, "{refused}");

    // A message may not point at an upload of another conversation, or at none.
    let messages = format!("/v1/conversations/{elsewhere}/messages");
    let (status, refused) =
        server.post("ana", &messages, json!({"type": "IMAGE", "attachment": uploaded})).await;
    assert_eq!(status, 422, "{refused}");
    let mut invented = uploaded.clone();
    invented["upload_id"] = json!("0123456789abcdef0123456789abcdef");
    let path = format!("/v1/conversations/{conversation}/messages");
    let (status, refused) =
        server.post("ana", &path, json!({"type": "IMAGE", "attachment": invented})).await;
    assert_eq!(status, 422, "{refused}");
    let mut traversal = uploaded.clone();
    traversal["upload_id"] = json!("../../../etc/passwd");
    let (status, _) =
        server.post("ana", &path, json!({"type": "IMAGE", "attachment": traversal})).await;
    assert_eq!(status, 422);
    assert!(server.history("ana", conversation).await.is_empty(), "nothing was sent");
    assert!(server.history("ana", elsewhere).await.is_empty(), "nothing was sent");
    assert_eq!(upload_id.len(), 32);
}
