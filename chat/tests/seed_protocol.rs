//! The seed-compatible endpoint `/ws/chat/{id}/`, over real sockets to the real binary.

#![allow(clippy::unwrap_used)]

use testkit as support;

use serde_json::json;
use support::{Client, Server, seed_client, token};

#[tokio::test(flavor = "multi_thread")]
async fn client_and_worker_chat_in_the_seed_format() {
    let server = Server::start();
    let conversation = server.open_conversation("job-seed", "carla", "wei").await;
    let mut carla = seed_client(&server, "carla", conversation, None).await;
    let mut wei = seed_client(&server, "wei", conversation, None).await;

    carla.send_json(json!({"message": "Can we start tomorrow?", "type": "TEXT"})).await;
    for client in [&mut carla, &mut wei] {
        let frame = client.frame().await;
        assert_eq!(frame["type"], "message");
        let message = &frame["message"];
        assert!(message["id"].is_u64(), "id must be a number: {frame}");
        assert_eq!(message["conversation_id"], conversation.to_string());
        assert_eq!(message["sender_id"], "carla");
        assert_eq!(message["sender_name"], "CARLA");
        assert_eq!(message["message_text"], "Can we start tomorrow?");
        assert_eq!(message["message_type"], "TEXT");
        assert!(message["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(message["is_read"], false);
    }
    wei.send_json(json!({"message": "Yes, 9am works", "type": "TEXT"})).await;
    let to_carla = carla.frame().await;
    let to_wei = wei.frame().await;
    assert_eq!(to_carla, to_wei);
    assert_eq!(to_carla["message"]["sender_id"], "wei");

    // The seed's front ends omit "type" sometimes; TEXT is the default.
    carla.send_json(json!({"message": "no type"})).await;
    assert_eq!(wei.frame().await["message"]["message_type"], "TEXT");
}

#[tokio::test(flavor = "multi_thread")]
async fn strangers_and_anonymous_callers_are_closed_with_a_reason() {
    let server = Server::start();
    let conversation = server.open_conversation("job-private", "carla", "wei").await;

    let mut stranger = seed_client(&server, "mallory", conversation, None).await;
    let (code, reason) = stranger.closed().await;
    // As for a conversation that does not exist: existence is not revealed.
    assert_eq!(code, 4404, "{reason}");
    assert_eq!(reason, format!("no conversation {conversation}"));

    let url = server.ws_url(&format!("/ws/chat/{conversation}/"));
    let (code, _) = Client::connect(&url).await.closed().await;
    assert_eq!(code, 4401);

    let forged =
        auth::mint_hs256(b"some-other-secret-of-at-least-32-bytes!!", "carla", None, false, 60)
            .unwrap();
    let expired = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let claims = json!({"sub": "carla", "exp": jsonwebtoken::get_current_timestamp() - 3600});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(support::SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    for (label, bad) in [("forged", forged), ("expired", expired), ("garbage", "x.y.z".to_owned())]
    {
        let url = server.ws_url(&format!("/ws/chat/{conversation}/?token={bad}"));
        let (code, reason) = Client::connect(&url).await.closed().await;
        assert_eq!(code, 4401, "{label} token: {reason}");
    }

    let mut unknown = seed_client(&server, "carla", 777_777, None).await;
    assert_eq!(unknown.closed().await.0, 4404);

    let bad_since = server
        .ws_url(&format!("/ws/chat/{conversation}/?token={}&since=yesterday", token("carla")));
    assert_eq!(Client::connect(&bad_since).await.closed().await.0, 4400);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_get_error_frames_and_change_nothing() {
    let server = Server::start();
    let conversation = server.open_conversation("job-bad-frames", "carla", "wei").await;
    let mut carla = seed_client(&server, "carla", conversation, None).await;

    carla.send_text("{not json".into()).await;
    let error = carla.frame().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "invalid_json");

    carla.send_json(json!({"message": 42, "type": "TEXT"})).await;
    assert_eq!(carla.frame().await["code"], "invalid_json");

    carla.send_json(json!({"message": "x".repeat(5000), "type": "TEXT"})).await;
    let too_long = carla.frame().await;
    assert_eq!(too_long["code"], "invalid_input");
    assert!(too_long["detail"].as_str().unwrap().contains("4096"), "{too_long}");

    carla.send_json(json!({"message": "hi", "type": "SYSTEM"})).await;
    assert_eq!(carla.frame().await["code"], "invalid_input");

    carla.send_json(json!({"message": "still fine", "type": "TEXT"})).await;
    let fine = carla.frame_of("message").await;
    assert_eq!(fine["message"]["message_text"], "still fine");
    let id = fine["message"]["id"].clone();
    server.inbox_item_when("carla", conversation, |item| item["last_message_id"] == id).await;
    assert_eq!(
        server.history("carla", conversation).await.len(),
        1,
        "a refused frame wrote something"
    );

    // A frame over the 16 KiB limit closes the connection with 1009.
    carla.send_text(format!(r#"{{"message": "{}"}}"#, "y".repeat(20_000))).await;
    let (code, reason) = carla.closed().await;
    assert_eq!(code, 1009, "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_handshakes_must_come_from_an_allowed_origin() {
    let server = Server::start();
    let conversation = server.open_conversation("job-cookie", "carla", "wei").await;
    let url = server.ws_url(&format!("/ws/chat/{conversation}/"));
    let cookie = format!("chat_token={}", token("carla"));
    let own_origin = support::ORIGIN;

    let mut allowed =
        Client::connect_with(&url, &[("cookie", &cookie), ("origin", own_origin)]).await;
    allowed.send_json(json!({"message": "via cookie"})).await;
    assert_eq!(allowed.frame().await["message"]["message_text"], "via cookie");

    let mut hijack =
        Client::connect_with(&url, &[("cookie", &cookie), ("origin", "https://evil.example")])
            .await;
    let (code, reason) = hijack.closed().await;
    assert_eq!(code, 4403);
    assert!(reason.contains("origin"), "{reason}");
}
