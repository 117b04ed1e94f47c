//! Blocking: a participant blocks a conversation and the other side can send nothing, over
//! HTTP and both WebSocket protocols, until the block is lifted; both inbox items say it is
//! blocked, and the blocker's says by whom. The jobs system still reaches both.

#![allow(clippy::unwrap_used)]

use testkit as support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, native_client, service_token};

async fn block(server: &Server, user: &str, conversation: u64, method: Method) -> (u16, Value) {
    let path = format!("/v1/conversations/{conversation}/block");
    server.call(method, user, &path, Value::Null).await
}

async fn send(server: &Server, user: &str, conversation: u64, text: &str) -> (u16, Value) {
    let path = format!("/v1/conversations/{conversation}/messages");
    server.post(user, &path, json!({"text": text})).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_refuses_the_other_sides_sends_until_it_is_lifted() {
    let server = Server::start();
    let conversation = server.open_conversation("job-block", "carla", "wei").await;
    assert_eq!(send(&server, "wei", conversation, "hello").await.0, 201);

    let (status, answer) = block(&server, "carla", conversation, Method::PUT).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((&answer["blocked"], &answer["blocked_by"]), (&json!(true), &json!("carla")));
    let (status, problem) = send(&server, "wei", conversation, "are you there?").await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "urn:chat:problem:blocked");
    let mut socket = native_client(&server, "wei").await;
    socket
        .send_json(
            json!({"type": "send", "ref": "s1", "conversation_id": conversation, "text": "hi?"}),
        )
        .await;
    let refused = socket.frame_of("error").await;
    assert_eq!((&refused["ref"], &refused["code"]), (&json!("s1"), &json!("blocked")));

    // Both sides see it blocked; only the blocker sees by whom.
    let theirs = server.inbox_item_when("wei", conversation, |item| item["blocked"] == true).await;
    assert!(theirs.get("blocked_by").is_none(), "{theirs}");
    let mine = server.inbox_item_when("carla", conversation, |item| item["blocked"] == true).await;
    assert_eq!(mine["blocked_by"], "carla");
    let (_, seen) = server.get("wei", &format!("/v1/conversations/{conversation}")).await;
    assert_eq!((&seen["blocked"], seen.get("blocked_by")), (&json!(true), None));

    // Only the blocker lifts it; repeating changes nothing; the jobs system still writes.
    let (status, still) = block(&server, "wei", conversation, Method::DELETE).await;
    assert_eq!((status, &still["blocked"]), (200, &json!(true)), "{still}");
    assert_eq!(block(&server, "carla", conversation, Method::PUT).await.0, 200);
    let system = server
        .http
        .post(server.url(&format!("/v1/conversations/{conversation}/messages")))
        .bearer_auth(service_token())
        .json(&json!({"type": "SYSTEM", "text": "The job was paused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(system.status(), 201);
    assert_eq!(send(&server, "carla", conversation, "one last thing").await.0, 201);
    let history = server.history("carla", conversation).await;
    assert!(!json!(history).to_string().contains("are you there?"), "a refused send landed");

    let (status, lifted) = block(&server, "carla", conversation, Method::DELETE).await;
    assert_eq!(status, 200, "{lifted}");
    assert!(lifted.get("blocked").is_none(), "{lifted}");
    assert_eq!(send(&server, "wei", conversation, "thanks").await.0, 201);
    server.inbox_item_when("wei", conversation, |item| item.get("blocked").is_none()).await;
    let (status, _) = block(&server, "mallory", conversation, Method::PUT).await;
    assert_eq!(status, 404, "an outsider blocks nothing");
}
