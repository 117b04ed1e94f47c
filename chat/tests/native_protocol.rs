//! The native WebSocket API `/v1/ws`: many conversations on one connection, acknowledged
//! sends, read receipts, typing, presence and live inbox updates.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::time::Duration;

use serde_json::json;
use support::{Server, native_client};

#[tokio::test(flavor = "multi_thread")]
async fn a_ping_is_answered_with_a_pong_carrying_its_ref() {
    let server = Server::start();
    let mut ana = native_client(&server, "ana").await;
    ana.send_json(json!({"type": "ping", "ref": "hb-1"})).await;
    assert_eq!(ana.frame_of("pong").await, json!({"type": "pong", "ref": "hb-1"}));
    ana.send_json(json!({"type": "ping"})).await;
    assert_eq!(ana.frame_of("pong").await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_connection_carries_many_conversations_with_acks() {
    let server = Server::start();
    let first = server.open_conversation("job-n1", "carla", "wei").await;
    let second = server.open_conversation("job-n2", "carla", "zoe").await;
    let mut carla = native_client(&server, "carla").await;
    let mut wei = native_client(&server, "wei").await;
    for conversation in [first, second] {
        carla.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
        assert_eq!(carla.frame_of("subscribed").await["conversation_id"], conversation);
    }
    wei.send_json(json!({"type": "subscribe", "conversation_id": first})).await;
    wei.frame_of("subscribed").await;

    carla
        .send_json(json!({"type": "send", "ref": "r1", "conversation_id": first, "text": "to wei"}))
        .await;
    let ack = carla.frame_of("ack").await;
    assert_eq!(ack["ref"], "r1");
    let id = ack["message_id"].as_u64().unwrap();
    let delivered = wei.frame_of("message").await;
    assert_eq!(delivered["conversation_id"], first);
    assert_eq!(delivered["message"]["id"], id);
    assert_eq!(delivered["message"]["text"], "to wei");

    carla
        .send_json(
            json!({"type": "send", "ref": "r2", "conversation_id": second, "text": "to zoe"}),
        )
        .await;
    let own = carla.frame_of("message").await;
    // Carla sees her first message, then her second, each in its conversation.
    let next =
        if own["message"]["text"] == "to wei" { carla.frame_of("message").await } else { own };
    assert_eq!(next["conversation_id"], second);
    wei.quiet_for("message", Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_typing_presence_and_inbox_reach_the_other_side() {
    let server = Server::start();
    let conversation = server.open_conversation("job-n3", "carla", "wei").await;
    let mut carla = native_client(&server, "carla").await;
    carla.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    carla.frame_of("subscribed").await;
    let mut wei = native_client(&server, "wei").await;
    wei.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    wei.frame_of("subscribed").await;
    let online = carla.frame_of("presence").await;
    assert_eq!(online["user_id"], "wei");
    assert_eq!(online["status"], "online");

    wei.send_json(json!({"type": "typing", "conversation_id": conversation, "is_typing": true}))
        .await;
    let typing = carla.frame_of("typing").await;
    assert_eq!(
        (typing["user_id"].as_str(), typing["is_typing"].as_bool()),
        (Some("wei"), Some(true))
    );

    wei.send_json(
        json!({"type": "send", "ref": "m", "conversation_id": conversation, "text": "hi"}),
    )
    .await;
    let id = wei.frame_of("ack").await["message_id"].as_u64().unwrap();
    // Earlier inbox frames (the conversation's start) may still be on their way.
    let inbox = loop {
        let frame = carla.frame_of("inbox").await;
        if frame["item"]["last_message_id"] == id {
            break frame;
        }
    };
    assert_eq!(inbox["item"]["conversation_id"], conversation);
    assert_eq!(inbox["item"]["unread_count"], 1);

    carla
        .send_json(
            json!({"type": "read", "ref": "rd", "conversation_id": conversation, "up_to": id}),
        )
        .await;
    assert_eq!(carla.frame_of("ack").await["up_to"], id);
    let receipt = wei.frame_of("read").await;
    assert_eq!(
        (receipt["reader_id"].as_str(), receipt["up_to"].as_u64()),
        (Some("carla"), Some(id))
    );
    let cleared = loop {
        let frame = carla.frame_of("inbox").await;
        if frame["item"]["last_read_id"] == id {
            break frame;
        }
    };
    assert_eq!(cleared["item"]["unread_count"], 0);

    // Typing withdraws itself when not repeated.
    let stopped = carla.frame_of("typing").await;
    assert_eq!(stopped["is_typing"], false);

    wei.close().await;
    let offline = carla.frame_of("presence").await;
    assert_eq!(offline["status"], "offline");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_device_of_a_user_gets_its_badge_and_receipts_live() {
    let server = Server::start_shaped(support::Shape { fanouts: 2, ..support::Shape::default() });
    let other = usize::from(support::on_cluster());
    let conversation = server.open_conversation("job-devices", "carla", "wei").await;
    let mut phone = native_client(&server, "carla").await;
    phone.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    phone.frame_of("subscribed").await;
    // The laptop is on another node and shows only the inbox.
    let url = server.ws_url_on(other, &format!("/v1/ws?token={}", support::token("carla")));
    let mut laptop = support::Client::connect(&url).await;
    assert_eq!(laptop.frame().await["type"], "ready");

    let id = server.send("wei", conversation, "hello").await;
    for device in [&mut phone, &mut laptop] {
        let unread = loop {
            let frame = device.frame_of("inbox").await;
            if frame["item"]["last_message_id"] == id {
                break frame["item"]["unread_count"].clone();
            }
        };
        assert_eq!(unread, 1);
    }

    laptop.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    laptop.frame_of("subscribed").await;
    phone
        .send_json(
            json!({"type": "read", "ref": "r", "conversation_id": conversation, "up_to": id}),
        )
        .await;
    assert_eq!(phone.frame_of("ack").await["up_to"], id);
    let (mut receipt, mut badge) = (None, None);
    while receipt.is_none() || badge.is_none() {
        let frame = laptop.frame().await;
        match frame["type"].as_str() {
            Some("read") => receipt = Some((frame["reader_id"].clone(), frame["up_to"].clone())),
            Some("inbox") if frame["item"]["last_read_id"] == id => {
                badge = Some(frame["item"]["unread_count"].clone());
            }
            _ => {}
        }
    }
    assert_eq!(receipt, Some((json!("carla"), json!(id))));
    assert_eq!(badge, Some(json!(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_are_answered_with_errors_on_an_open_connection() {
    let server = Server::start();
    let conversation = server.open_conversation("job-n4", "carla", "wei").await;
    let other = server.open_conversation("job-n5", "zoe", "wei").await;
    let mut carla = native_client(&server, "carla").await;

    carla.send_text("[1,2".into()).await;
    assert_eq!(carla.frame_of("error").await["code"], "invalid_json");
    carla.send_json(json!({"type": "dance"})).await;
    assert_eq!(carla.frame_of("error").await["code"], "invalid_json");
    carla.send_json(json!({"type": "subscribe", "conversation_id": "seven"})).await;
    assert_eq!(carla.frame_of("error").await["code"], "invalid_json");
    // Someone else's conversation answers as one that does not exist.
    carla.send_json(json!({"type": "subscribe", "conversation_id": other})).await;
    assert_eq!(carla.frame_of("error").await["code"], "not_found");
    carla.send_json(json!({"type": "subscribe", "conversation_id": 4_242_424})).await;
    assert_eq!(carla.frame_of("error").await["code"], "not_found");
    carla
        .send_json(json!({"type": "send", "ref": "x", "conversation_id": other, "text": "sneaky"}))
        .await;
    let refused = carla.frame_of("error").await;
    assert_eq!((refused["ref"].as_str(), refused["code"].as_str()), (Some("x"), Some("not_found")));
    carla
        .send_json(
            json!({"type": "send", "ref": "y", "conversation_id": conversation, "text": " "}),
        )
        .await;
    assert_eq!(carla.frame_of("error").await["code"], "invalid_input");
    carla
        .send_json(json!({"type": "typing", "conversation_id": conversation, "is_typing": true}))
        .await;
    assert_eq!(carla.frame_of("error").await["code"], "forbidden");
    let marker = server.send("zoe", other, "marker").await;
    server.inbox_item_when("zoe", other, |item| item["last_message_id"] == marker).await;
    assert_eq!(server.history("zoe", other).await.len(), 1, "a refused send was written");
}

/// Presence means "connected to the chat": a user looking at their inbox, or at another
/// conversation, is online in every conversation they take part in; the offline frame says
/// when they were last seen.
#[tokio::test(flavor = "multi_thread")]
async fn presence_is_being_connected_and_offline_says_when_last_seen() {
    let server = Server::start();
    let conversation = server.open_conversation("job-connected", "carla", "wei").await;
    let elsewhere = server.open_conversation("job-elsewhere", "wei", "zoe").await;
    let mut carla = native_client(&server, "carla").await;
    carla.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    carla.frame_of("subscribed").await;

    // Wei opens the app on the inbox only: no subscription to the conversation with carla.
    let connected_at = schemas::Timestamp::now();
    let mut wei = native_client(&server, "wei").await;
    let online = carla.frame_of("presence").await;
    assert_eq!(
        (online["conversation_id"].as_u64(), online["user_id"].as_str(), online["status"].as_str()),
        (Some(conversation), Some("wei"), Some("online"))
    );
    // Looking at another conversation and leaving it changes nothing.
    wei.send_json(json!({"type": "subscribe", "conversation_id": elsewhere})).await;
    wei.frame_of("subscribed").await;
    wei.send_json(json!({"type": "unsubscribe", "conversation_id": elsewhere})).await;
    wei.frame_of("unsubscribed").await;
    // Presence is a state: the snapshot after `subscribed` and the live change may both say
    // "online" when wei connects while carla subscribes; only a change would be wrong.
    carla.none_within(Duration::from_millis(800), went_offline).await;

    // A second subscriber learns it from the snapshot after `subscribed`.
    let mut tab = native_client(&server, "carla").await;
    tab.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    tab.frame_of("subscribed").await;
    assert_eq!(tab.frame_of("presence").await["status"], "online");

    wei.close().await;
    let offline = carla.frame_of("presence").await;
    assert_eq!(
        (offline["user_id"].as_str(), offline["status"].as_str()),
        (Some("wei"), Some("offline"))
    );
    let last_seen = offline["at"].as_str().and_then(schemas::Timestamp::parse_rfc3339).unwrap();
    assert!(last_seen.millis() >= connected_at.millis(), "last seen is when wei left");
}

#[tokio::test(flavor = "multi_thread")]
async fn presence_follows_a_users_last_connection_across_nodes() {
    let mut server = Server::start_shaped(
        support::Shape { fanouts: 2, ..support::Shape::default() }.with("CHAT_PRESENCE_TTL", "3s"),
    );
    let other = usize::from(support::on_cluster());
    let conversation = server.open_conversation("job-presence", "carla", "wei").await;
    let connect = |node: usize, user: &str| {
        let url = server.ws_url_on(node, &format!("/v1/ws?token={}", support::token(user)));
        async move {
            let mut client = support::Client::connect(&url).await;
            assert_eq!(client.frame().await["type"], "ready");
            client.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
            client.frame_of("subscribed").await;
            client
        }
    };
    let mut carla = connect(0, "carla").await;
    let first = connect(other, "wei").await;
    assert_eq!(carla.frame_of("presence").await["status"], "online");
    let second = connect(0, "wei").await;
    first.close().await;
    // Wei is still connected through the second connection: no offline may appear (a
    // repeated "online", from the snapshot racing the live change, is the same state).
    carla.none_within(Duration::from_millis(1500), went_offline).await;
    second.close().await;
    let offline = carla.frame_of("presence").await;
    assert_eq!(
        (offline["user_id"].as_str(), offline["status"].as_str()),
        (Some("wei"), Some("offline"))
    );

    if support::on_cluster() {
        // A node that dies takes its users offline on the other nodes after the TTL, and
        // stops their typing there too: nobody is left to withdraw it.
        let mut third = connect(1, "wei").await;
        assert_eq!(carla.frame_of("presence").await["status"], "online");
        third
            .send_json(
                json!({"type": "typing", "conversation_id": conversation, "is_typing": true}),
            )
            .await;
        assert_eq!(carla.frame_of("typing").await["is_typing"], true);
        server.kill_one(support::Role::Fanout, 1);
        let (mut offline, mut stopped) = (false, false);
        while !(offline && stopped) {
            let frame = carla.frame().await;
            match frame["type"].as_str() {
                Some("presence") => offline |= frame["status"] == "offline",
                Some("typing") => stopped |= frame["is_typing"] == false,
                _ => {}
            }
        }
    }
}

fn went_offline(frame: &serde_json::Value) -> bool {
    frame["type"] == "presence" && frame["status"] == "offline"
}
