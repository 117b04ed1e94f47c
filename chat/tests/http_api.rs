//! The HTTP API: conversations per job, sends, reads, exact unread counts, inbox order and
//! pagination, history pagination, idempotent sends, and every kind of bad input.

#![allow(clippy::unwrap_used)]

use testkit as support;

use serde_json::{Value, json};
use support::{Role, SECRET, Server, service_token, token};

#[tokio::test(flavor = "multi_thread")]
async fn one_conversation_per_job_and_only_the_service_opens_them() {
    let server = Server::start();
    let first = server.open_conversation("job-1", "carla", "wei").await;
    assert!(first > 0 && first < (1 << 53));
    assert_eq!(server.open_conversation("job-1", "carla", "wei").await, first);
    let response = server
        .http
        .put(server.url("/v1/jobs/job-1/conversation"))
        .bearer_auth(service_token())
        .json(&json!({"client_id": "carla", "worker_id": "someone-else"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let as_user = server
        .http
        .put(server.url("/v1/jobs/job-2/conversation"))
        .bearer_auth(token("carla"))
        .json(&json!({"client_id": "carla", "worker_id": "wei"}))
        .send()
        .await
        .unwrap();
    assert_eq!(as_user.status(), 403);
    let (status, conversation) = server.get("wei", &format!("/v1/conversations/{first}")).await;
    assert_eq!(status, 200);
    assert_eq!(conversation["job_id"], "job-1");
    assert_eq!(conversation["worker"]["id"], "wei");
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_counts_are_exact_after_sends_and_reads() {
    let server = Server::start();
    let conversation = server.open_conversation("job-unread", "carla", "wei").await;
    let mut from_wei = Vec::new();
    for index in 0..5 {
        from_wei.push(server.send("wei", conversation, &format!("w{index}")).await);
    }
    let own = server.send("carla", conversation, "c0").await;
    let item =
        server.inbox_item_when("carla", conversation, |item| item["last_message_id"] == own).await;
    assert_eq!(item["unread_count"], 5);
    assert_eq!(item["last_message_text"], "c0");
    assert_eq!(item["job_id"], "job-unread");
    let worker_item =
        server.inbox_item_when("wei", conversation, |item| item["last_message_id"] == own).await;
    assert_eq!(worker_item["unread_count"], 1);

    let (status, mark) = server
        .post(
            "carla",
            &format!("/v1/conversations/{conversation}/read"),
            json!({"up_to": from_wei[1]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(mark["up_to"], from_wei[1]);
    let item = server
        .inbox_item_when("carla", conversation, |item| item["last_read_id"] == from_wei[1])
        .await;
    assert_eq!(item["unread_count"], 3, "reading up to the second leaves exactly three");

    // Reading backwards changes nothing (the answer is the mark in force); a mark beyond
    // the log or in another conversation's partition is refused; reading everything
    // leaves zero.
    let read_path = format!("/v1/conversations/{conversation}/read");
    let (status, backwards) = server.post("carla", &read_path, json!({"up_to": from_wei[0]})).await;
    assert_eq!((status, backwards["up_to"].as_u64()), (200, Some(from_wei[1])));
    let (status, _) = server.post("carla", &read_path, json!({"up_to": own + 1024 * 1000})).await;
    assert_eq!(status, 422, "a mark past the end of the log must be refused");
    let (status, _) = server.post("carla", &read_path, json!({"up_to": own + 1})).await;
    assert_eq!(status, 422, "a mark in another partition must be refused");
    server
        .post("carla", &format!("/v1/conversations/{conversation}/read"), json!({"up_to": own}))
        .await;
    let item =
        server.inbox_item_when("carla", conversation, |item| item["last_read_id"] == own).await;
    assert_eq!(item["unread_count"], 0);
    let history = server.history("wei", conversation).await;
    assert!(history.iter().filter(|m| m["sender_id"] == "wei").all(|m| m["is_read"] == true));
    assert_eq!(history.last().unwrap()["is_read"], false, "wei has not read carla's message");
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_is_most_recent_first_and_pages() {
    let server = Server::start();
    let mut conversations = Vec::new();
    for index in 0..5 {
        conversations.push(
            server
                .open_conversation(&format!("job-inbox-{index}"), "carla", &format!("w{index}"))
                .await,
        );
    }
    // Activity order: 2, 0, 4 (newest last); 1 and 3 have no messages.
    let mut last = 0;
    for index in [2, 0, 4] {
        last = server.send("carla", conversations[index], "ping").await;
    }
    server.inbox_item_when("carla", conversations[4], |item| item["last_message_id"] == last).await;
    let (_, first) = server.get("carla", "/v1/conversations?limit=2").await;
    let ids = |page: &Value| -> Vec<u64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["conversation_id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&first), vec![conversations[4], conversations[0]]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) =
        server.get("carla", &format!("/v1/conversations?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second)[0], conversations[2]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let (_, third) =
        server.get("carla", &format!("/v1/conversations?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&first).len() + ids(&second).len() + ids(&third).len(), 5);
    assert!(third["next_cursor"].is_null());
    let item = &first["items"][0];
    assert!(item["last_message_at"].as_str().unwrap().ends_with('Z'));
    let (_, stranger) = server.get("nobody", "/v1/conversations").await;
    assert_eq!(stranger["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_backwards_without_gaps() {
    let server = Server::start();
    let conversation = server.open_conversation("job-history", "carla", "wei").await;
    let mut sent = Vec::new();
    for index in 0..120 {
        let user = if index % 2 == 0 { "carla" } else { "wei" };
        sent.push(server.send(user, conversation, &format!("m{index}")).await);
    }
    server
        .inbox_item_when("carla", conversation, |item| {
            item["last_message_id"] == *sent.last().unwrap()
        })
        .await;
    let (_, newest) =
        server.get("carla", &format!("/v1/conversations/{conversation}/messages?limit=50")).await;
    let page: Vec<u64> =
        newest["messages"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(page, sent[70..]);
    assert_eq!(newest["next_before"], sent[70]);
    let all: Vec<u64> = server
        .history("wei", conversation)
        .await
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(all, sent, "history must hold every message once, in send order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_send_with_the_same_key_is_one_message() {
    let server = Server::start();
    let conversation = server.open_conversation("job-idem", "carla", "wei").await;
    let path = format!("/v1/conversations/{conversation}/messages");
    let body = json!({"text": "exactly once", "idempotency_key": "k-123"});
    let (first_status, first) = server.post("carla", &path, body.clone()).await;
    let (again_status, again) = server.post("carla", &path, body.clone()).await;
    assert_eq!((first_status, again_status), (201, 200));
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(first["sent_at"], again["sent_at"]);

    // Concurrent retries of another key: one message, one id for all.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = server.url(&path);
        let http = server.http.clone();
        tasks.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(token("carla"))
                .json(&json!({"text": "storm", "idempotency_key": "k-storm"}))
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "concurrent retries produced several messages: {ids:?}");
    let last = server.send("carla", conversation, "after").await;
    server.inbox_item_when("wei", conversation, |item| item["last_message_id"] == last).await;
    let texts: Vec<Value> =
        server.history("wei", conversation).await.iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, vec![json!("exactly once"), json!("storm"), json!("after")]);
    let item =
        server.inbox_item_when("wei", conversation, |item| item["last_message_id"] == last).await;
    assert_eq!(item["unread_count"], 3);
}

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("urn:chat:problem:"));
    assert!(!body["detail"].as_str().unwrap().is_empty());
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_problem_and_changes_nothing() {
    let server = Server::start();
    let conversation = server.open_conversation("job-bad", "carla", "wei").await;
    let other = server.open_conversation("job-other", "zoe", "yan").await;
    let messages = server.url(&format!("/v1/conversations/{conversation}/messages"));
    let send = |bearer: String, body: String| {
        server
            .http
            .post(messages.clone())
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let carla = token("carla");

    let (status, body) = problem(send(carla.clone(), "{\"text\": ".into()).await.unwrap()).await;
    assert_eq!((status, body["type"].as_str()), (400, Some("urn:chat:problem:invalid_json")));
    assert_eq!(
        problem(send(carla.clone(), r#"{"text": ["a"]}"#.into()).await.unwrap()).await.0,
        400
    );
    assert_eq!(
        problem(send(carla.clone(), r#"{"txt": "typo"}"#.into()).await.unwrap()).await.0,
        400
    );
    assert_eq!(
        problem(send(carla.clone(), r#"{"text": "x", "type": "VIDEO"}"#.into()).await.unwrap())
            .await
            .0,
        400
    );
    let (status, body) =
        problem(send(carla.clone(), json!({"text": "x".repeat(4097)}).to_string()).await.unwrap())
            .await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("4096"));
    assert_eq!(
        problem(send(carla.clone(), json!({"text": "   "}).to_string()).await.unwrap()).await.0,
        422
    );
    let image_without_file = json!({"text": "", "type": "IMAGE"}).to_string();
    assert_eq!(problem(send(carla.clone(), image_without_file).await.unwrap()).await.0, 422);
    let huge = json!({"text": "y".repeat(70 * 1024)}).to_string();
    assert_eq!(problem(send(carla.clone(), huge).await.unwrap()).await.0, 413);

    // Who may do what.
    assert_eq!(
        problem(send(token("mallory"), json!({"text": "hi"}).to_string()).await.unwrap()).await.0,
        404
    );
    let unknown = server.url("/v1/conversations/999999/messages");
    let response = server
        .http
        .post(unknown)
        .bearer_auth(&carla)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 404);
    let malformed = server.url("/v1/conversations/abc/messages");
    let response = server
        .http
        .post(malformed)
        .bearer_auth(&carla)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 422);
    // Someone else's conversation answers exactly as one that does not exist.
    let (status, refusal) =
        server.get("carla", &format!("/v1/conversations/{other}/messages")).await;
    assert_eq!(status, 404);
    assert_eq!(refusal["detail"], format!("no conversation {other}"));

    // Tokens: missing, garbage, forged, expired, alg none.
    let response =
        server.http.post(messages.clone()).json(&json!({"text": "hi"})).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(problem(response).await.0, 401);
    assert_eq!(
        problem(send("garbage".into(), json!({"text": "hi"}).to_string()).await.unwrap()).await.0,
        401
    );
    let forged =
        auth::mint_hs256(b"a-completely-different-secret-32-bytes!!", "carla", None, false, 60)
            .unwrap();
    assert_eq!(
        problem(send(forged, json!({"text": "hi"}).to_string()).await.unwrap()).await.0,
        401
    );
    let expired = expired_token();
    let (status, body) =
        problem(send(expired, json!({"text": "hi"}).to_string()).await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("expired"));
    assert_eq!(
        problem(send(alg_none_token(), json!({"text": "hi"}).to_string()).await.unwrap()).await.0,
        401
    );

    // Queries.
    let (status, _) = server.get("carla", "/v1/conversations?cursor=nonsense").await;
    assert_eq!(status, 422);
    let (status, _) = server.get("carla", "/v1/conversations?limit=0").await;
    assert_eq!(status, 422);
    let (status, _) =
        server.get("carla", &format!("/v1/conversations/{conversation}/messages?before=x")).await;
    assert_eq!(status, 400);
    let (status, _) = server
        .post("carla", &format!("/v1/conversations/{conversation}/read"), json!({"up_to": -1}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .post("carla", &format!("/v1/conversations/{conversation}/read"), json!({"up_to": 0}))
        .await;
    assert_eq!(status, 422);
    let response = server
        .http
        .delete(server.url("/v1/conversations"))
        .bearer_auth(&carla)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 405);
    let response = server.http.get(server.url("/v1/nowhere")).send().await.unwrap();
    assert_eq!(problem(response).await.0, 404);

    // None of it wrote anything.
    let last = server.send("carla", conversation, "the only message").await;
    server.inbox_item_when("wei", conversation, |item| item["last_message_id"] == last).await;
    assert_eq!(server.history("wei", conversation).await.len(), 1);
}

fn expired_token() -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let claims = json!({"sub": "carla", "exp": jsonwebtoken::get_current_timestamp() - 3600});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes()).unwrap())
        .unwrap()
}

fn alg_none_token() -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = engine.encode(format!(
        r#"{{"sub":"carla","exp":{}}}"#,
        jsonwebtoken::get_current_timestamp() + 60
    ));
    format!("{header}.{claims}.")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_is_the_checked_in_one_and_every_path_is_routed() {
    let server = Server::start();
    let served: Value =
        server.http.get(server.url("/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let checked_in: Value =
        serde_json::from_str(include_str!("../../schemas/generated/openapi.json")).unwrap();
    assert_eq!(served, checked_in);
    for (path, operations) in served["paths"].as_object().unwrap() {
        let concrete = path.replace("{job_id}", "job-route").replace("{id}", "1");
        // Paths with servers of their own (the probes) live on the internal listener.
        let url = if operations.get("servers").is_some() {
            server.internal_url(Role::Ingest, 0, &concrete)
        } else {
            server.url(&concrete)
        };
        let methods = operations.as_object().unwrap().keys().filter(|key| *key != "servers");
        for method in methods {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .http
                .request(method.clone(), &url)
                .bearer_auth(service_token())
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = status == 405 || (status == 404 && body["detail"] == "no such resource");
            assert!(!unrouted, "{method} {path} is documented but not routed ({status})");
        }
    }
}
