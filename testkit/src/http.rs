//! The HTTP API as the tests call it: as a user (their token), answers as JSON.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::Server;
use crate::{service_token, token};

impl Server {
    pub async fn open_conversation(&self, job: &str, client: &str, worker: &str) -> u64 {
        let response = self
            .http
            .put(self.url(&format!("/v1/jobs/{job}/conversation")))
            .bearer_auth(service_token())
            .json(&json!({ "client_id": client, "worker_id": worker,
                           "client_name": client.to_uppercase(), "worker_name": worker.to_uppercase() }))
            .send()
            .await
            .expect("the HTTP API answers");
        assert!(response.status().is_success(), "open failed: {}", response.status());
        let body: Value = response.json().await.expect("the answer is JSON");
        body["conversation_id"].as_u64().expect("the answer names the conversation")
    }

    /// Sends over HTTP and returns the answer's message id.
    pub async fn send(&self, user: &str, conversation: u64, text: &str) -> u64 {
        let (status, body) = self
            .post(
                user,
                &format!("/v1/conversations/{conversation}/messages"),
                json!({ "text": text }),
            )
            .await;
        assert_eq!(status, 201, "send failed: {body}");
        body["id"].as_u64().expect("the answer names the message")
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, user, path, body).await
    }

    /// Any method with a JSON body, as `user`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        user: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token(user))
            .json(&body)
            .send()
            .await
            .expect("the HTTP API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, user: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token(user))
            .send()
            .await
            .expect("the HTTP API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every message of the conversation, oldest first, walking history pages backwards.
    pub async fn history(&self, user: &str, conversation: u64) -> Vec<Value> {
        let mut all = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let query = before.map(|id| format!("&before={id}")).unwrap_or_default();
            let (status, page) = self
                .get(user, &format!("/v1/conversations/{conversation}/messages?limit=50{query}"))
                .await;
            assert_eq!(status, 200, "history failed: {page}");
            let mut messages =
                page["messages"].as_array().expect("a history page lists messages").clone();
            messages.extend(all);
            all = messages;
            match page["next_before"].as_u64() {
                Some(next) => before = Some(next),
                None => return all,
            }
        }
    }

    /// The caller's inbox item for `conversation`, once the projection shows `ready`.
    pub async fn inbox_item_when(
        &self,
        user: &str,
        conversation: u64,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, page) = self.get(user, "/v1/conversations?limit=200").await;
            assert_eq!(status, 200);
            let item = page["items"]
                .as_array()
                .expect("an inbox page lists items")
                .iter()
                .find(|item| item["conversation_id"] == conversation)
                .cloned();
            if let Some(item) = item
                && ready(&item)
            {
                return item;
            }
            assert!(Instant::now() < deadline, "inbox never became ready: {page}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
