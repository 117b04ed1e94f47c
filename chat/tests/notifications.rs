//! Notifications for people who are not looking: one Web Push per burst to an offline
//! recipient, checked by a push service of our own (VAPID signature, audience, lifetime,
//! decryption) and a webhook receiver that verifies every signature; none for a connected
//! or prompt reader; push services' answers honoured; nothing lost across `kill -9`.

use testkit as support;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::receiver::{Receiver, WEBHOOK, vapid_key_pem};
use support::{Role, Server, Shape, native_client};

/// A server whose notifier pushes to `receiver` after `delay`, and posts webhooks to it.
fn start(receiver: &Receiver, delay: &str, secrets: &tempfile::TempDir) -> Server {
    Server::start_shaped(shape(receiver, delay, secrets))
}

/// On the cluster: the notifier role beside the others, ingest and it sharing one key.
fn shape(receiver: &Receiver, delay: &str, secrets: &tempfile::TempDir) -> Shape {
    let secret_file: PathBuf = secrets.path().join("webhook-secret");
    std::fs::write(&secret_file, &receiver.secret_text).expect("the secret file is written");
    let key_file: PathBuf = secrets.path().join("vapid-key.pem");
    std::fs::write(&key_file, vapid_key_pem()).expect("the key file is written");
    Shape { notifier: true, ..Shape::default() }
        .with("CHAT_VAPID_KEY_FILE", key_file.display().to_string())
        .with("CHAT_VAPID_SUBJECT", "mailto:ops@chat.example")
        .with("CHAT_NOTIFY_DELAY", delay)
        .with("CHAT_PUSH_TTL", "30s")
        .with("CHAT_PUSH_ALLOWED_ENDPOINTS", receiver.origin.clone())
        .with("CHAT_WEBHOOK_URL", format!("{}/webhook", receiver.origin))
        .with("CHAT_WEBHOOK_SECRET_FILE", secret_file.display().to_string())
}

/// What most tests start from: a server notifying after `delay`, its push service knowing
/// its key, and wei's phone subscribed.
struct Setup {
    receiver: Receiver,
    server: Server,
    /// The VAPID key and webhook secret files, read again when the server restarts.
    _secrets: tempfile::TempDir,
}

async fn wei_subscribed(delay: &str) -> Setup {
    let receiver = Receiver::start().await;
    let secrets = tempfile::tempdir().expect("a directory for the secrets");
    let server = start(&receiver, delay, &secrets);
    receiver.expect_vapid_key(&vapid_key(&server).await);
    subscribe(&server, "wei", receiver.subscription("wei-phone")).await;
    Setup { receiver, server, _secrets: secrets }
}

async fn vapid_key(server: &Server) -> String {
    let response = server
        .http
        .get(server.url("/v1/push/vapid-public-key"))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status(), 200, "the key needs no token");
    let body: Value = response.json().await.expect("JSON");
    body["vapid_public_key"].as_str().expect("a key").to_owned()
}

async fn subscribe(server: &Server, user: &str, subscription: Value) {
    let (status, body) =
        server.call(Method::PUT, user, "/v1/push/subscriptions", subscription).await;
    assert_eq!(status, 204, "subscribe: {body}");
}

fn webhooks_of(receiver: &Receiver, kind: &str) -> Vec<Value> {
    let hooks = receiver.webhooks();
    hooks
        .into_iter()
        .filter(|hook| hook.body["type"] == kind)
        .map(|hook| {
            let mut body = hook.body;
            body["webhook_id"] = json!(hook.id);
            body
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_recipient_gets_one_push_per_burst_and_a_connected_one_none() {
    let Setup { receiver, server, _secrets } = wei_subscribed("1s").await;
    let conversation = server.open_conversation("job-push", "carla", "wei").await;

    let mut last = 0;
    for text in ["first", "second", "third"] {
        last = server.send("carla", conversation, text).await;
    }
    assert!(receiver.until(Duration::from_secs(15), |r| !r.pushes("wei-phone").is_empty()).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pushes = receiver.pushes("wei-phone");
    assert_eq!(pushes.len(), 1, "one push for the burst: {pushes:?}");
    let push = &pushes[0];
    assert_eq!(push.payload["type"], "message");
    assert_eq!(push.payload["conversation_id"], conversation);
    assert_eq!(push.payload["message_id"], last);
    assert_eq!(push.payload["text"], "third");
    assert_eq!(push.payload["sender_name"], "CARLA");
    assert_eq!(push.payload["count"], 3);
    assert_eq!(push.payload["unread_count"], 3);
    assert_eq!(push.headers["topic"], format!("c{conversation}"));
    assert_eq!(push.headers["urgency"], "normal");
    let ttl: u64 = push.headers["ttl"].parse().unwrap();
    assert!(ttl <= 30, "TTL {ttl}");

    // The jobs system hears of the conversation and of the unread burst, signed.
    assert!(
        receiver
            .until(Duration::from_secs(10), |r| {
                !webhooks_of(r, "message.unread").is_empty()
                    && !webhooks_of(r, "conversation.started").is_empty()
            })
            .await
    );
    let started = &webhooks_of(&receiver, "conversation.started")[0];
    assert_eq!(started["data"]["conversation_id"], conversation);
    assert_eq!(started["data"]["worker_id"], "wei");
    let unread = &webhooks_of(&receiver, "message.unread")[0];
    assert_eq!(unread["data"]["recipient_id"], "wei");
    assert_eq!(unread["data"]["message_id"], last);
    assert_eq!(unread["data"]["count"], 3);
    assert_eq!(unread["webhook_id"], push.payload["id"], "one id for one notification");

    // Wei opens the app: a message now reaches a connected recipient, and no push.
    let mut wei = native_client(&server, "wei").await;
    wei.send_json(json!({"type": "subscribe", "conversation_id": conversation})).await;
    wei.frame_of("subscribed").await;
    server.send("carla", conversation, "while you look").await;
    wei.frame_of("message").await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(receiver.pushes("wei-phone").len(), 1, "no push to a connected recipient");
    assert_eq!(webhooks_of(&receiver, "message.unread").len(), 1);
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_longest_message_is_cut_to_fit_a_push_whatever_it_escapes_to() {
    let Setup { receiver, server, _secrets } = wei_subscribed("1s").await;
    let conversation = server.open_conversation("job-long", "carla", "wei").await;
    // 4,096 bytes of text, which JSON makes 8,192: twice what a push carries.
    let text = "\"".repeat(2048) + &"é".repeat(1024);
    server.send("carla", conversation, &text).await;
    assert!(receiver.until(Duration::from_secs(15), |r| r.pushes("wei-phone").len() == 1).await);
    let shown = receiver.pushes("wei-phone")[0].payload["text"].as_str().unwrap().to_owned();
    assert!(shown.ends_with('…') && text.starts_with(shown.trim_end_matches('…')), "{shown}");
    assert!(shown.len() > 1000, "cut no more than it must: {} bytes", shown.len());
    assert_eq!(receiver.calls("wei-phone"), 1, "taken at once, no 413");
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_who_reads_within_the_delay_gets_nothing() {
    let Setup { receiver, server, _secrets } = wei_subscribed("4s").await;
    let conversation = server.open_conversation("job-prompt", "carla", "wei").await;
    let sent = server.send("carla", conversation, "quick question").await;
    let (status, _) = server
        .post("wei", &format!("/v1/conversations/{conversation}/read"), json!({"up_to": sent}))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(receiver.pushes("wei-phone").is_empty(), "read in time: no push");
    assert!(webhooks_of(&receiver, "message.unread").is_empty());
    assert_eq!(webhooks_of(&receiver, "conversation.started").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_service_answers_are_honoured() {
    let receiver = Receiver::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let server = start(&receiver, "1s", &secrets);
    receiver.expect_vapid_key(&vapid_key(&server).await);
    for device in ["gone", "busy", "broken", "picky"] {
        subscribe(&server, "wei", receiver.subscription(device)).await;
    }
    receiver.answer("gone", &[(410, None)]);
    receiver.answer("busy", &[(429, Some(1))]);
    receiver.answer("broken", &[(503, None), (502, None)]);
    receiver.answer("picky", &[(413, None)]);
    let conversation = server.open_conversation("job-answers", "carla", "wei").await;
    server.send("carla", conversation, "hello").await;
    let delivered = receiver
        .until(Duration::from_secs(20), |r| {
            r.pushes("busy").len() == 1 && r.pushes("broken").len() == 1 && r.calls("gone") == 1
        })
        .await;
    let calls = ["busy", "broken", "gone"].map(|name| receiver.calls(name));
    assert!(delivered, "calls to busy, broken, gone: {calls:?}");
    let busy = receiver.call_times("busy");
    assert_eq!(busy.len(), 2, "429 retried once");
    assert!(busy[1] - busy[0] >= Duration::from_millis(950), "after its Retry-After: 1");
    assert_eq!(receiver.calls("broken"), 3, "5xx retried until taken");
    assert_eq!(receiver.calls("picky"), 1, "413 is not retried");

    // Gone means gone: the next burst does not call it; a 413 removes nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.send("carla", conversation, "again").await;
    assert!(receiver.until(Duration::from_secs(15), |r| r.pushes("busy").len() == 2).await);
    assert!(receiver.until(Duration::from_secs(5), |r| r.calls("picky") == 2).await);
    assert_eq!(receiver.calls("gone"), 1, "a 410 removed the subscription");
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_checked_before_they_are_kept() {
    let receiver = Receiver::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let server = start(&receiver, "1s", &secrets);
    let good = receiver.subscription("phone");
    let with = |endpoint: &str, keys: Value| json!({"endpoint": endpoint, "keys": keys});
    let refused = [
        (with("https://push.example.com/x", good["keys"].clone()), 422, "allowed list"),
        (with("http://127.0.0.1:9/push/x", good["keys"].clone()), 422, "allowed list"),
        (
            with(
                &format!("{}@{}/push/x", receiver.origin.replace("http://", "http://u:p"), "x"),
                good["keys"].clone(),
            ),
            422,
            "",
        ),
        (
            with(
                good["endpoint"].as_str().unwrap(),
                json!({"p256dh": "AAAA", "auth": good["keys"]["auth"]}),
            ),
            422,
            "p256dh",
        ),
        (
            with(
                good["endpoint"].as_str().unwrap(),
                json!({"p256dh": good["keys"]["p256dh"], "auth": "AA"}),
            ),
            422,
            "auth",
        ),
        (json!({"endpoint": good["endpoint"]}), 400, ""),
    ];
    for (body, status, says) in refused {
        let (answered, problem) =
            server.call(Method::PUT, "wei", "/v1/push/subscriptions", body.clone()).await;
        assert_eq!(answered, status, "{body}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(says), "{problem}");
    }
    let anonymous =
        server.http.put(server.url("/v1/push/subscriptions")).json(&good).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // Nothing refused was kept: a burst reaches no endpoint but the one registered next.
    receiver.expect_vapid_key(&vapid_key(&server).await);
    subscribe(&server, "wei", good.clone()).await;
    subscribe(&server, "wei", good.clone()).await;
    let conversation = server.open_conversation("job-checked", "carla", "wei").await;
    server.send("carla", conversation, "hi").await;
    assert!(receiver.until(Duration::from_secs(15), |r| r.pushes("phone").len() == 1).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.calls("phone"), 1, "registering twice keeps one subscription");
    // Removing it stops the pushes.
    let (status, _) = server
        .call(
            Method::DELETE,
            "wei",
            "/v1/push/subscriptions",
            json!({"endpoint": good["endpoint"]}),
        )
        .await;
    assert_eq!(status, 204);
    server.send("carla", conversation, "hi again").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.calls("phone"), 1, "no push after the subscription was removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notifier_killed_before_the_deadline_notifies_after_it_comes_back() {
    let Setup { receiver, mut server, _secrets } = wei_subscribed("3s").await;
    let conversation = server.open_conversation("job-crash", "carla", "wei").await;
    server.send("carla", conversation, "before the crash").await;
    if support::on_cluster() {
        server.crash_and_restart_role(Role::Notifier);
    } else {
        server.crash_and_restart();
    }
    // On the cluster the group first notices the killed member is gone (its session).
    assert!(receiver.until(Duration::from_secs(40), |r| !r.pushes("wei-phone").is_empty()).await);
    assert!(
        receiver
            .until(Duration::from_secs(10), |r| !webhooks_of(r, "message.unread").is_empty())
            .await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pushes = receiver.pushes("wei-phone");
    let id = &pushes[0].payload["id"];
    assert!(pushes.iter().all(|push| push.payload["id"] == *id), "duplicates carry one id");
    assert!(webhooks_of(&receiver, "message.unread").iter().all(|hook| hook["webhook_id"] == *id));
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_webhook_receiver_slows_no_push_and_its_events_are_parked_for_redelivery() {
    let receiver = Receiver::start().await;
    receiver.answer(WEBHOOK, &[(500, None); 200]);
    let secrets = tempfile::tempdir().unwrap();
    let server =
        Server::start_shaped(shape(&receiver, "1s", &secrets).with("CHAT_WEBHOOK_RETRY_FOR", "2s"));
    receiver.expect_vapid_key(&vapid_key(&server).await);
    subscribe(&server, "wei", receiver.subscription("wei-phone")).await;
    let conversation = server.open_conversation("job-dead-hook", "carla", "wei").await;
    server.send("carla", conversation, "are you there?").await;
    // The push does not wait for the webhook's retries.
    assert!(receiver.until(Duration::from_secs(10), |r| r.pushes("wei-phone").len() == 1).await);
    assert!(receiver.webhooks().is_empty());

    // Both events (the conversation, the unread message) end up parked.
    let webhooks = |args: &[&str]| {
        let output = server
            .command("webhooks")
            .args(args)
            .args(["--data-dir", &server.data_dir.path().display().to_string()])
            .env("CHAT_WEBHOOK_URL", format!("{}/webhook", receiver.origin))
            .env("CHAT_WEBHOOK_SECRET_FILE", secrets.path().join("webhook-secret"))
            .output()
            .expect("chat webhooks runs");
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let mut listed = String::new();
    for _ in 0..100 {
        listed = webhooks(&["list"]).1;
        if listed.contains("2 parked") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(listed.contains("2 parked"), "{listed}");
    let push_id = receiver.pushes("wei-phone")[0].payload["id"].as_str().unwrap().to_owned();
    assert!(listed.contains(&push_id) && listed.contains("message.unread"), "{listed}");
    assert!(listed.contains("conversation.started"), "{listed}");

    // Redelivering to a receiver still down says so and keeps them parked.
    let (ok, output) = webhooks(&["redeliver", "--all"]);
    assert!(!ok && output.contains("2 still parked"), "{output}");
    assert!(webhooks(&["list"]).1.contains("2 parked"));

    // Once the receiver is back, an operator redelivers them, with their ids.
    receiver.recover(WEBHOOK);
    let (ok, output) = webhooks(&["redeliver", "--all"]);
    assert!(ok && output.contains("2 redelivered"), "{output}");
    let hooks = receiver.webhooks();
    assert!(hooks.iter().any(|hook| hook.id == push_id), "{hooks:?}");
    assert!(webhooks(&["list"]).1.contains("0 parked"));
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());

    // The dead-letter topic, read from outside, holds only what AsyncAPI publishes for it.
    if let Some(names) = &server.cluster {
        let channel = format!("deadLetters={}.dead-letters", names.topic);
        let checked = support::analytics("validate_topics.py", names, &["--channel", &channel]);
        let report = String::from_utf8_lossy(&checked.stdout);
        assert!(checked.status.success(), "{report}{}", String::from_utf8_lossy(&checked.stderr));
        assert!(report.contains(" deadLetter)"), "parked and redelivered records in {report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_reaches_the_moderators_as_a_signed_webhook_and_deleted_messages_are_not_pushed() {
    // The deletion must be in the log before the burst is due: seconds of margin.
    let Setup { receiver, server, _secrets } = wei_subscribed("4s").await;
    let conversation = server.open_conversation("job-report", "carla", "wei").await;
    let rude = server.send("carla", conversation, "pay me outside the site").await;
    // Taken back before the notification is due: nothing is pushed for it.
    let regret = server.send("carla", conversation, "my phone is 555-0100").await;
    let path = format!("/v1/conversations/{conversation}/messages/{regret}");
    assert_eq!(server.call(Method::DELETE, "carla", &path, Value::Null).await.0, 204);

    let report = json!({"reason": "off_platform", "detail": "asked to pay outside"});
    let path = format!("/v1/conversations/{conversation}/messages/{rude}/report");
    let (status, accepted) = server.post("wei", &path, report).await;
    assert_eq!(status, 202, "{accepted}");
    assert!(
        receiver
            .until(Duration::from_secs(15), |r| r
                .webhooks()
                .iter()
                .any(|h| h.body["type"] == "message.reported"))
            .await
    );
    let reports = webhooks_of(&receiver, "message.reported");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let data = &reports[0]["data"];
    assert_eq!(
        (data["message_id"].as_u64(), &data["reporter_id"], &data["sender_id"]),
        (Some(rude), &json!("wei"), &json!("carla"))
    );
    assert_eq!(
        (&data["reason"], &data["detail"]),
        (&json!("off_platform"), &json!("asked to pay outside"))
    );
    let position = accepted["position"].as_u64().unwrap();
    assert_eq!(reports[0]["webhook_id"], format!("{conversation}-report-{position}"));

    assert!(receiver.until(Duration::from_secs(15), |r| !r.pushes("wei-phone").is_empty()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pushes = receiver.pushes("wei-phone");
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(
        pushes[0].payload["text"], "pay me outside the site",
        "the deleted one is not shown"
    );
    assert_eq!(pushes[0].payload["count"], 1);
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
}
