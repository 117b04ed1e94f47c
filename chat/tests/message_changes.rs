//! Messages people take back: edits by their sender within the edit window, deletions for
//! everyone (by the sender, or by the jobs system for moderation). Each is an event on the
//! log: history and the inbox follow it, native subscribers get it after the message, a
//! resume replays what happened while away, the seed endpoint shows no garbage, and a
//! replay of the log rebuilds the same projections.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, Shape, native_client, seed_client, service_token};

fn message_path(conversation: u64, message: u64) -> String {
    format!("/v1/conversations/{conversation}/messages/{message}")
}

async fn edit(
    server: &Server,
    user: &str,
    conversation: u64,
    message: u64,
    text: &str,
) -> (u16, Value) {
    let path = message_path(conversation, message);
    server.call(Method::PATCH, user, &path, json!({"text": text})).await
}

async fn delete(server: &Server, user: &str, conversation: u64, message: u64) -> u16 {
    let path = message_path(conversation, message);
    server.call(Method::DELETE, user, &path, Value::Null).await.0
}

/// The history entry of `message` once the projection shows `ready`.
async fn in_history(
    server: &Server,
    user: &str,
    conversation: u64,
    message: u64,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..500 {
        let history = server.history(user, conversation).await;
        if let Some(found) = history.into_iter().find(|m| m["id"] == message)
            && ready(&found)
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("message {message} never showed as expected");
}

async fn subscribed(
    server: &Server,
    user: &str,
    conversation: u64,
    since: Option<u64>,
) -> support::Client {
    let mut client = native_client(server, user).await;
    let mut frame = json!({"type": "subscribe", "conversation_id": conversation});
    if let Some(since) = since {
        frame["since"] = since.into();
    }
    client.send_json(frame).await;
    client
}

/// Frames up to `subscribed`, without presence and inbox noise.
async fn caught_up(client: &mut support::Client) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = client.frame().await;
        match frame["type"].as_str() {
            Some("subscribed") => return frames,
            Some("message" | "message_changed" | "read") => frames.push(frame),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_reaches_history_the_inbox_and_live_subscribers_after_its_message() {
    let server = Server::start();
    let conversation = server.open_conversation("job-edit", "carla", "wei").await;
    let mut carla = subscribed(&server, "carla", conversation, None).await;
    caught_up(&mut carla).await;
    let mut seed = seed_client(&server, "carla", conversation, None).await;
    let first = server.send("wei", conversation, "price: 100").await;
    let last = server.send("wei", conversation, "price: 1000").await;
    assert_eq!(carla.frame_of("message").await["message"]["id"], first);
    assert_eq!(carla.frame_of("message").await["message"]["id"], last);
    seed.frame_of("message").await;
    seed.frame_of("message").await;

    let (status, accepted) = edit(&server, "wei", conversation, last, "price: 150").await;
    assert_eq!(status, 200, "{accepted}");
    assert!(accepted["position"].as_u64().unwrap() > last, "{accepted}");
    let changed = carla.frame_of("message_changed").await;
    assert_eq!(changed["message_id"], last);
    assert_eq!(changed["position"], accepted["position"]);
    assert_eq!(changed["change"]["kind"], "edited");
    assert_eq!(changed["change"]["text"], "price: 150");
    let shown =
        in_history(&server, "carla", conversation, last, |m| m["text"] == "price: 150").await;
    assert!(shown["edited_at"].is_string(), "{shown}");
    let item = server
        .inbox_item_when("carla", conversation, |item| item["last_message_text"] == "price: 150")
        .await;
    assert_eq!(item["unread_count"], 2, "an edit is not a new message");
    // The seed protocol has no frame for it: nothing arrives, no duplicate.
    seed.none_within(Duration::from_millis(500), |_| true).await;

    // Only the sender edits, outsiders learn nothing, and bad requests change nothing.
    assert_eq!(edit(&server, "carla", conversation, last, "mine now").await.0, 403);
    let (status, outsider) = edit(&server, "mallory", conversation, last, "x").await;
    assert_eq!(status, 404, "{outsider}");
    assert_eq!(edit(&server, "wei", conversation, last + 1024 * 50, "x").await.0, 404);
    assert_eq!(edit(&server, "wei", conversation, last, "   ").await.0, 422);
    let other = server.open_conversation("job-edit-2", "carla", "wei").await;
    assert_eq!(edit(&server, "wei", other, last, "x").await.0, 404, "a message of another");
    let (status, bad) = server
        .call(Method::PATCH, "wei", &message_path(conversation, last), json!({"txt": "x"}))
        .await;
    assert_eq!(status, 400, "{bad}");
    let shown = server.history("carla", conversation).await;
    assert_eq!(shown.iter().filter(|m| m["text"] == "price: 150").count(), 1, "{shown:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_after_the_window_is_refused() {
    let server = Server::start_shaped(Shape::default().with("CHAT_EDIT_WINDOW", "1s"));
    let conversation = server.open_conversation("job-window", "carla", "wei").await;
    let sent = server.send("wei", conversation, "too late").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, problem) = edit(&server, "wei", conversation, sent, "fixed").await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("1 s"), "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_message_is_a_tombstone_no_longer_unread_and_its_file_is_gone() {
    let server = Server::start_shaped(Shape { object_store: true, ..Shape::default() });
    let conversation = server.open_conversation("job-delete", "carla", "wei").await;
    let first = server.send("wei", conversation, "hello").await;
    let upload = server
        .http
        .post(server.url(&format!("/v1/conversations/{conversation}/attachments?name=n.txt")))
        .bearer_auth(support::token("wei"))
        .body("call me on 555-0100")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let attachment: Value = upload.json().await.unwrap();
    let file_url = attachment["url"].as_str().unwrap().to_owned();
    let body = json!({"type": "FILE", "text": "my number", "attachment": attachment});
    let (status, sent) =
        server.post("wei", &format!("/v1/conversations/{conversation}/messages"), body).await;
    assert_eq!(status, 201, "{sent}");
    let secret = sent["id"].as_u64().unwrap();
    server.inbox_item_when("carla", conversation, |item| item["unread_count"] == 2).await;
    let mut carla = subscribed(&server, "carla", conversation, None).await;
    caught_up(&mut carla).await;

    assert_eq!(delete(&server, "carla", conversation, secret).await, 403, "not hers");
    assert_eq!(delete(&server, "wei", conversation, secret).await, 204);
    let changed = carla.frame_of("message_changed").await;
    assert_eq!(
        (changed["message_id"].as_u64(), &changed["change"]["kind"]),
        (Some(secret), &json!("deleted"))
    );
    let tombstone =
        in_history(&server, "carla", conversation, secret, |m| m["deleted"] == true).await;
    assert_eq!(tombstone["text"], "");
    assert!(tombstone.get("attachment").is_none(), "{tombstone}");
    assert_eq!(tombstone["sender_id"], "wei");
    let item = server
        .inbox_item_when("carla", conversation, |item| item["last_message_id"] == first)
        .await;
    assert_eq!(item["unread_count"], 1, "{item}");
    assert_eq!(item["last_message_text"], "hello");
    let (status, _) = server.get("carla", &file_url).await;
    assert_eq!(status, 404, "the file of a deleted message is removed");
    // Deleting again changes nothing; an edit of a tombstone is refused.
    assert_eq!(delete(&server, "wei", conversation, secret).await, 204);
    assert_eq!(edit(&server, "wei", conversation, secret, "back").await.0, 409);

    // The jobs system's moderators delete anyone's message.
    let moderated = server
        .http
        .delete(server.url(&message_path(conversation, first)))
        .bearer_auth(service_token())
        .send()
        .await
        .unwrap();
    assert_eq!(moderated.status(), 204);
    let item = server
        .inbox_item_when("carla", conversation, |item| item["last_message_id"].is_null())
        .await;
    assert_eq!(item["unread_count"], 0, "{item}");
    let history = server.history("carla", conversation).await;
    assert!(history.iter().all(|m| m["deleted"] == true), "{history:?}");
    let text = json!(history).to_string();
    assert!(!text.contains("555-0100") && !text.contains("hello"), "{text}");

    // On the cluster, a replay of the log rebuilds the same views and histories.
    if server.cluster.is_some() {
        let report = server.replay_agrees();
        assert!(report.contains("1 equal"), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_replays_the_changes_made_while_away_in_log_order() {
    let mut server = Server::start();
    let conversation = server.open_conversation("job-resume-edit", "carla", "wei").await;
    let kept = server.send("wei", conversation, "see you at 9").await;
    let gone = server.send("wei", conversation, "my address is 1 Main St").await;
    let seen = server.send("wei", conversation, "bring the tools").await;
    server.inbox_item_when("carla", conversation, |item| item["last_message_id"] == seen).await;

    // Carla's phone saw everything up to `seen`, then went offline.
    assert_eq!(edit(&server, "wei", conversation, kept, "see you at 10").await.0, 200);
    assert_eq!(delete(&server, "wei", conversation, gone).await, 204);
    let mut phone = subscribed(&server, "carla", conversation, Some(seen)).await;
    let frames = caught_up(&mut phone).await;
    let changes: Vec<_> =
        frames.iter().map(|f| (f["type"].clone(), f["message_id"].clone())).collect();
    assert_eq!(
        changes,
        [(json!("message_changed"), json!(kept)), (json!("message_changed"), json!(gone))],
        "{frames:?}"
    );
    assert_eq!(frames[0]["change"]["text"], "see you at 10");

    // From the store, after a restart (the hub's memory is gone): the same, and a client
    // starting from nothing sees the messages as they are now, then the changes.
    in_history(&server, "carla", conversation, gone, |m| m["deleted"] == true).await;
    server.crash_and_restart();
    let mut phone = subscribed(&server, "carla", conversation, Some(seen)).await;
    let again = caught_up(&mut phone).await;
    assert_eq!(again, frames, "the store replays what the memory did");
    let mut fresh = subscribed(&server, "carla", conversation, Some(0)).await;
    let all = caught_up(&mut fresh).await;
    let texts: Vec<_> = all
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("see you at 10"), json!(""), json!("bring the tools")]);
    assert!(!all.iter().any(|f| f.to_string().contains("1 Main St")), "{all:?}");

    // The seed endpoint replays messages as they are now and leaves the deleted one out.
    let mut seed = seed_client(&server, "carla", conversation, Some(0)).await;
    let first = seed.frame_of("message").await;
    let second = seed.frame_of("message").await;
    assert_eq!(
        (first["message"]["message_text"].clone(), second["message"]["id"].clone()),
        (json!("see you at 10"), json!(seen))
    );
    seed.none_within(Duration::from_millis(300), |frame| frame["type"] == "message").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_names_a_message_of_the_other_side_and_a_known_reason() {
    let server = Server::start();
    let conversation = server.open_conversation("job-report-checks", "carla", "wei").await;
    let theirs = server.send("wei", conversation, "spam spam").await;
    let mine = server.send("carla", conversation, "hello").await;
    let report =
        |message: u64| format!("/v1/conversations/{conversation}/messages/{message}/report");
    let (status, accepted) = server.post("carla", &report(theirs), json!({"reason": "spam"})).await;
    assert_eq!(status, 202, "{accepted}");
    assert!(accepted["position"].as_u64().unwrap() > mine);
    let refusals = [
        ("carla", report(mine), json!({"reason": "spam"}), 422),
        ("carla", report(theirs), json!({"reason": "boring"}), 400),
        ("carla", report(theirs), json!({"reason": "other", "detail": "x".repeat(1001)}), 422),
        ("carla", report(theirs + 1024 * 40), json!({"reason": "other"}), 404),
        ("mallory", report(theirs), json!({"reason": "spam"}), 404),
    ];
    for (user, path, body, expected) in refusals {
        let (status, problem) = server.post(user, &path, body).await;
        assert_eq!(status, expected, "{user} {path}: {problem}");
    }
    // A report changes nothing anyone sees.
    let item =
        server.inbox_item_when("carla", conversation, |item| item["last_message_id"] == mine).await;
    assert_eq!(item["unread_count"], 1);
    assert_eq!(server.history("carla", conversation).await.len(), 2);
}
