//! Authorization as a property: random users try random operations, with random resume
//! positions and page cursors, on conversations they are not in, over HTTP and both
//! WebSocket protocols. Nothing they receive carries another conversation's text or
//! participants, and every answer is the one for a conversation that does not exist (with
//! the id swapped), so probing ids reveals nothing. Seeded, so a failure replays.

#![allow(clippy::unwrap_used)]

use testkit as support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use support::{Client, Dice, Seen, Server, native_client, token};

/// A small deterministic generator (xorshift64*): the test needs variety, not quality.
const USERS: [&str; 6] = ["ana", "ben", "cai", "dora", "eli", "fay"];
/// An id no conversation of the test has.
const MISSING: u64 = 9_000_000_001;

struct World {
    conversations: BTreeMap<u64, (&'static str, &'static str)>,
    /// Text that only the participants of each conversation may ever see.
    secrets: BTreeMap<u64, Vec<String>>,
    /// The ids of each conversation's messages.
    messages: BTreeMap<u64, Vec<u64>>,
}

impl World {
    fn outsiders(&self, conversation: u64) -> Vec<&'static str> {
        let (client, worker) = self.conversations[&conversation];
        USERS.iter().copied().filter(|user| *user != client && *user != worker).collect()
    }

    /// Everything `user` must never see: others' texts, and the names of people they share
    /// no conversation with.
    fn forbidden_for(&self, user: &str) -> Vec<String> {
        let mut known: BTreeSet<&str> = BTreeSet::from([user]);
        for (client, worker) in self.conversations.values() {
            if *client == user || *worker == user {
                known.extend([*client, *worker]);
            }
        }
        let mut words = Vec::new();
        for (id, (client, worker)) in &self.conversations {
            if *client == user || *worker == user {
                continue;
            }
            words.extend(self.secrets[id].iter().cloned());
            for person in [client, worker] {
                if !known.contains(person) {
                    words.push(format!("\"{person}\""));
                    words.push(person.to_uppercase());
                }
            }
        }
        words
    }
}

async fn build_world(server: &Server, dice: &mut Dice) -> World {
    let mut conversations = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut messages = BTreeMap::new();
    for n in 0..5 {
        let client = USERS[dice.below(USERS.len())];
        let worker = loop {
            let worker = USERS[dice.below(USERS.len())];
            if worker != client {
                break worker;
            }
        };
        let id = server.open_conversation(&format!("job-authz-{n}"), client, worker).await;
        let mut texts = Vec::new();
        let mut ids = Vec::new();
        for m in 0..3 {
            let text = format!("secret-{id}-{m}-{:x}", dice.roll());
            ids.push(server.send(if m % 2 == 0 { client } else { worker }, id, &text).await);
            texts.push(text);
        }
        conversations.insert(id, (client, worker));
        secrets.insert(id, texts);
        messages.insert(id, ids);
    }
    World { conversations, secrets, messages }
}

/// One attempt by `user` on `conversation` (and, for edits and deletions, on `message`, a
/// message of the probed conversation), as text: status or close code, and the body or
/// frames, with the conversation's id replaced so that answers for different ids compare.
async fn attempt(
    server: &Server,
    user: &str,
    conversation: u64,
    message: u64,
    operation: usize,
    dice: &mut Dice,
) -> String {
    let bearer = token(user);
    let since = dice.roll() % (1 << 20);
    let answer = match operation {
        0 => {
            let path = format!("/v1/conversations/{conversation}/messages?limit=5&before={since}");
            http(server.http.get(server.url(&path)).bearer_auth(&bearer)).await
        }
        1 => {
            let path = format!("/v1/conversations/{conversation}/messages");
            let body = json!({"text": "probe", "idempotency_key": format!("k{since}")});
            http(server.http.post(server.url(&path)).bearer_auth(&bearer).json(&body)).await
        }
        2 => {
            let path = format!("/v1/conversations/{conversation}/read");
            let body = json!({"up_to": since});
            http(server.http.post(server.url(&path)).bearer_auth(&bearer).json(&body)).await
        }
        3 => {
            let path = format!("/v1/conversations/{conversation}");
            http(server.http.get(server.url(&path)).bearer_auth(&bearer)).await
        }
        4 => {
            let path = format!("/ws/chat/{conversation}/?token={bearer}&since={since}");
            let mut client = Client::connect(&server.ws_url(&path)).await;
            everything_until_closed(&mut client).await
        }
        5 => {
            let path = format!("/v1/conversations/{conversation}/messages/{message}");
            let body = json!({"text": "probe"});
            http(server.http.patch(server.url(&path)).bearer_auth(&bearer).json(&body)).await
        }
        6 => {
            let path = format!("/v1/conversations/{conversation}/messages/{message}");
            http(server.http.delete(server.url(&path)).bearer_auth(&bearer)).await
        }
        8 => {
            let path = format!("/v1/conversations/{conversation}/block");
            http(server.http.put(server.url(&path)).bearer_auth(&bearer)).await
        }
        7 => {
            let path = format!("/v1/conversations/{conversation}/messages/{message}/report");
            let body = json!({"reason": "spam", "detail": "probe"});
            http(server.http.post(server.url(&path)).bearer_auth(&bearer).json(&body)).await
        }
        _ => {
            let mut client = native_client(server, user).await;
            let frames = [
                json!({"type": "subscribe", "conversation_id": conversation, "since": since}),
                json!({"type": "send", "ref": "s", "conversation_id": conversation, "text": "probe"}),
                json!({"type": "read", "ref": "r", "conversation_id": conversation, "up_to": since}),
                json!({"type": "typing", "conversation_id": conversation, "is_typing": true}),
            ];
            let mut seen = Vec::new();
            for frame in frames {
                client.send_json(frame).await;
                loop {
                    match client.next(Duration::from_secs(10)).await {
                        // The caller's own inbox updates arrive whenever; only one about the
                        // probed conversation would be a leak, and is kept.
                        Seen::Frame(frame)
                            if frame["type"] == "inbox"
                                && frame["item"]["conversation_id"] != conversation =>
                        {
                            continue;
                        }
                        Seen::Frame(frame) => seen.push(frame.to_string()),
                        Seen::Closed(code, reason) => seen.push(format!("closed {code} {reason}")),
                    }
                    break;
                }
            }
            client.close().await;
            seen.join("\n")
        }
    };
    // Only where an answer names the id it was asked about, so that answers compare.
    answer
        .replace(&format!("conversation {conversation}"), "conversation <id>")
        .replace(&format!("\"conversation_id\":{conversation}"), "\"conversation_id\":<id>")
        .replace(&format!("/{conversation}/"), "/<id>/")
        .replace(&format!("message {message}"), "message <message>")
}

async fn http(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.unwrap();
    format!("{} {}", response.status().as_u16(), response.text().await.unwrap())
}

async fn everything_until_closed(client: &mut Client) -> String {
    let mut seen = Vec::new();
    loop {
        match client.next(Duration::from_secs(10)).await {
            Seen::Frame(frame) => seen.push(frame.to_string()),
            Seen::Closed(code, reason) => {
                seen.push(format!("closed {code} {reason}"));
                return seen.join("\n");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outsiders_learn_nothing_about_a_conversation_not_even_that_it_exists() {
    let mut dice = Dice::seeded(0x5eed);
    let seed = dice.0;
    let server = Server::start();
    let world = build_world(&server, &mut dice).await;
    let mut tried = 0;
    for &conversation in world.conversations.keys() {
        for user in world.outsiders(conversation) {
            let forbidden = world.forbidden_for(user);
            for _ in 0..2 {
                let operation = dice.below(10);
                // The same dice for both, so the probe and its control differ only in the id.
                let mut twin = Dice(dice.roll());
                let mut control_dice = Dice(twin.0);
                let ids = &world.messages[&conversation];
                let message = ids[dice.below(ids.len())];
                let answer =
                    attempt(&server, user, conversation, message, operation, &mut twin).await;
                let control =
                    attempt(&server, user, MISSING, message, operation, &mut control_dice).await;
                for word in &forbidden {
                    assert!(
                        !answer.contains(word.as_str()),
                        "seed {seed}: {user} saw {word} through operation {operation}: {answer}"
                    );
                }
                assert_eq!(
                    answer, control,
                    "seed {seed}: operation {operation} by {user} tells conversation \
                     {conversation} apart from a missing one"
                );
                tried += 1;
            }
        }
    }
    assert!(tried >= 20, "only {tried} attempts");

    // The inbox, paged with random cursors, lists only the caller's own conversations.
    for user in USERS {
        let mut listed = BTreeSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let query = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
            let (status, page) =
                server.get(user, &format!("/v1/conversations?limit=1{query}")).await;
            assert_eq!(status, 200, "{page}");
            for item in page["items"].as_array().unwrap() {
                listed.insert(item["conversation_id"].as_u64().unwrap());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let own: BTreeSet<u64> = world
            .conversations
            .iter()
            .filter(|(_, (client, worker))| *client == user || *worker == user)
            .map(|(id, _)| *id)
            .collect();
        assert!(listed.iter().all(|id| own.contains(id)), "{user} listed {listed:?}, owns {own:?}");
        let forged = format!("/v1/conversations?cursor={:x}", dice.roll());
        let (status, page) = server.get(user, &forged).await;
        let text = page.to_string();
        for word in world.forbidden_for(user) {
            assert!(!text.contains(word.as_str()), "a forged cursor showed {user} {word}");
        }
        assert!(status == 200 || status == 400 || status == 422, "{status}: {page}");
    }
}
