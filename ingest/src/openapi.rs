//! The OpenAPI 3.1 document of the HTTP API, served at `/v1/openapi.json` and checked in at
//! `schemas/generated/openapi.json` (a test fails when the two drift). Schemas come from the
//! same types the handlers use, through schemars.

use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use schemas::Attachment;
use schemas::generate::schema_for_openapi;
use schemas::http::{
    Conversation, EditMessageRequest, Health, InboxPage, MarkReadRequest, Me,
    MessageChangeAccepted, MessagePage, OpenConversationRequest, Problem, ReadMark, ReportRequest,
    SendMessageRequest, SentMessage,
};
use schemas::notify::{PushSubscription, RemovePushSubscription, VapidPublicKey};

struct Builder {
    definitions: Map<String, Value>,
}

impl Builder {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        schema_for_openapi::<T>(&mut self.definitions)
    }

    fn body<T: JsonSchema>(&mut self) -> Value {
        json!({ "required": true, "content": { "application/json": { "schema": self.schema::<T>() } } })
    }

    fn ok<T: JsonSchema>(&mut self, description: &str) -> Value {
        json!({ "description": description,
                "content": { "application/json": { "schema": self.schema::<T>() } } })
    }

    fn problem(&mut self, description: &str) -> Value {
        json!({ "description": description,
                "content": { "application/problem+json": { "schema": self.schema::<Problem>() } } })
    }
}

fn path_id(description: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": description,
            "schema": { "type": "integer", "minimum": 1, "maximum": 9007199254740991_u64 } })
}

fn query(name: &str, description: &str, schema: &Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description,
            "schema": schema })
}

pub fn document() -> Value {
    let mut b = Builder { definitions: Map::new() };
    let unauthenticated = b.problem("missing, expired or invalid token");
    let forbidden = b.problem("only the service role may do this");
    let not_found = b.problem(
        "no such conversation, or one the caller is not a participant of (the same answer, so \
         that a conversation's existence is not revealed)",
    );
    let invalid = b.problem("malformed JSON, wrong types or unknown members");
    let unprocessable = b.problem("well-formed but not acceptable (limits, blank text...)");
    let too_large = b.problem("body over 64 KiB");
    let unavailable = b.problem("backend unavailable; retrying is safe");
    let errors = json!({
        "400": invalid, "401": unauthenticated, "403": forbidden, "404": not_found,
        "413": too_large, "422": unprocessable, "503": unavailable
    });
    let with_errors = |mut responses: Value| {
        if let (Some(target), Some(source)) = (responses.as_object_mut(), errors.as_object()) {
            for (status, response) in source {
                target.entry(status.clone()).or_insert_with(|| response.clone());
            }
        }
        responses
    };

    let open_body = b.body::<OpenConversationRequest>();
    let conversation_created = b.ok::<Conversation>("the conversation was created");
    let conversation_existing = b.ok::<Conversation>("the job already had this conversation");
    let conflict = b.problem("the job's conversation has other participants");
    let conversation_ok = b.ok::<Conversation>("the conversation");
    let send_body = b.body::<SendMessageRequest>();
    let sent = b.ok::<SentMessage>("durable in the log under this id");
    let duplicate = b.ok::<SentMessage>("the idempotency key named an earlier send");
    let history = b.ok::<MessagePage>("a page of history, oldest first");
    let edit_body = b.body::<EditMessageRequest>();
    let edited = b.ok::<MessageChangeAccepted>("the edit is durable in the log");
    let not_editable = b.problem(
        "not the caller's message, or past the edit window (CHAT_EDIT_WINDOW, 15 minutes by \
         default)",
    );
    let not_deletable = b.problem("not the caller's message (the service role deletes any)");
    let deleted_already = b.problem("the message was deleted");
    let message_id = json!({ "name": "message_id", "in": "path", "required": true,
        "schema": { "type": "integer", "minimum": 1, "maximum": 9007199254740991_u64 } });
    let block_state = b.ok::<Conversation>(
        "the conversation as the caller sees it now (blocked, and blocked_by when it is the \
         caller's block)",
    );
    let blocked = b.problem("the other participant blocked the conversation (type blocked)");
    let report_body = b.body::<ReportRequest>();
    let reported = b.ok::<MessageChangeAccepted>(
        "the report is durable in the log (the jobs system gets a message.reported webhook)",
    );
    let read_body = b.body::<MarkReadRequest>();
    let read = b.ok::<ReadMark>("the read mark is in the log");
    let inbox = b.ok::<InboxPage>("the caller's conversations, most recent activity first");
    let me = b.ok::<Me>("the caller");
    let health = b.ok::<Health>("alive");
    let ready = b.ok::<Health>("this process should get traffic");
    let not_ready = b.problem("draining, or (a projector) outside its consumer group");
    // The probes live on each role's internal listener, beside `/metrics`.
    let internal = json!([{
        "url": "http://{internal}",
        "description": "the role's internal listener (--internal-listen): the cluster's network only",
        "variables": { "internal": { "default": "127.0.0.1:9080" } }
    }]);
    let uploaded = b.ok::<Attachment>(
        "kept; put this object in a message's attachment (the server describes it from what \
         it stored)",
    );
    let unsupported = b.problem(
        "the bytes are of a type that cannot be sent (images PNG/JPEG/GIF/WebP, PDF, ZIP and \
         plain text can)",
    );
    let upload_too_large = b.problem(
        "over the attachment limit (CHAT_MAX_ATTACHMENT_BYTES, type too_large), or a full \
         storage quota of the conversation or the uploader (type quota_exceeded)",
    );
    let upload_busy = b.problem(
        "too many uploads are being received or images decoded on this node; Retry-After says \
         when to try again",
    );
    let uploads_limited = b.problem("over the per-user upload rate; Retry-After says when");
    let downloads_limited =
        b.problem("too many downloads of this user (or this node) in flight; retry shortly");
    let file = json!({ "description": "the file, streamed, with its sniffed Content-Type, \
        X-Content-Type-Options: nosniff, a sandboxing Content-Security-Policy, and \
        Content-Disposition inline for previewed images, attachment otherwise (images keep no \
        metadata but their orientation; the file name ends in the sniffed type's extension)",
        "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } });
    let upload_id = json!({ "name": "upload_id", "in": "path", "required": true,
        "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } });
    let bearer = json!([{ "bearer": [] }]);
    let vapid = b.ok::<VapidPublicKey>("the key to pass to pushManager.subscribe");
    let no_push = b.problem("Web Push is not set up on this server (no VAPID key)");
    let subscription_body = b.body::<PushSubscription>();
    let removal_body = b.body::<RemovePushSubscription>();
    let bad_subscription = b.problem(
        "the endpoint is not https or not on the server's allowed push services, or the keys \
         are not a P-256 point and a 16-byte secret; nothing was stored",
    );
    let kept = json!({ "description": "kept (a registered endpoint is refreshed, and taken \
        from any other user; past 10 per user the oldest is dropped)" });
    let removed =
        json!({ "description": "the caller has no subscription to this endpoint (any more)" });

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "chat HTTP API",
            "version": "1.0.0",
            "description": "Job conversations between a client and a worker. Every error is \
                            RFC 9457 problem+json. Message ids increase in log order within a \
                            conversation and are below 2^53."
        },
        "servers": [{ "url": "http://127.0.0.1:8080" }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": b.definitions
        },
        "paths": {
            "/v1/jobs/{job_id}/conversation": { "put": {
                "operationId": "openConversation",
                "summary": "Create the job's conversation, or return the existing one (service role)",
                "security": bearer,
                "parameters": [{ "name": "job_id", "in": "path", "required": true,
                                 "schema": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$" } }],
                "requestBody": open_body,
                "responses": with_errors(json!({ "201": conversation_created,
                    "200": conversation_existing, "409": conflict }))
            }},
            "/v1/conversations": { "get": {
                "operationId": "inbox",
                "summary": "The caller's inbox, most recent activity first",
                "security": bearer,
                "parameters": [
                    query("cursor", "next_cursor of the previous page", &json!({ "type": "string" })),
                    query("limit", "items per page (default 20)",
                          &json!({ "type": "integer", "minimum": 1, "maximum": 200 }))
                ],
                "responses": with_errors(json!({ "200": inbox }))
            }},
            "/v1/conversations/{id}": { "get": {
                "operationId": "conversation",
                "summary": "A conversation's job and participants",
                "security": bearer,
                "parameters": [path_id("conversation id")],
                "responses": with_errors(json!({ "200": conversation_ok }))
            }},
            "/v1/conversations/{id}/messages": {
                "post": {
                    "operationId": "sendMessage",
                    "summary": "Send a message; answered once it is durable",
                    "security": bearer,
                    "parameters": [path_id("conversation id")],
                    "requestBody": send_body,
                    "responses": with_errors(json!({ "201": sent, "200": duplicate, "403": blocked }))
                },
                "get": {
                    "operationId": "history",
                    "summary": "History, paginated backwards from the newest message",
                    "security": bearer,
                    "parameters": [
                        path_id("conversation id"),
                        query("before", "next_before of the previous page",
                              &json!({ "type": "integer", "minimum": 0 })),
                        query("limit", "messages per page (default 50)",
                              &json!({ "type": "integer", "minimum": 1, "maximum": 200 }))
                    ],
                    "responses": with_errors(json!({ "200": history }))
                }
            },
            "/v1/conversations/{id}/messages/{message_id}": {
                "patch": {
                    "operationId": "editMessage",
                    "summary": "Replace the text of one of the caller's messages",
                    "security": bearer,
                    "parameters": [path_id("conversation id"), message_id],
                    "requestBody": edit_body,
                    "responses": with_errors(json!({ "200": edited, "403": not_editable,
                        "409": deleted_already }))
                },
                "delete": {
                    "operationId": "deleteMessage",
                    "summary": "Delete a message for everyone (its sender, or the service role); \
                                its files are removed",
                    "security": bearer,
                    "parameters": [path_id("conversation id"), message_id],
                    "responses": with_errors(json!({ "204": { "description":
                        "deleted (or deleted already)" }, "403": not_deletable }))
                }
            },
            "/v1/conversations/{id}/block": {
                "put": {
                    "operationId": "blockConversation",
                    "summary": "Block the conversation: the other side's sends are refused",
                    "security": bearer,
                    "parameters": [path_id("conversation id")],
                    "responses": with_errors(json!({ "200": block_state }))
                },
                "delete": {
                    "operationId": "unblockConversation",
                    "summary": "Lift the caller's block",
                    "security": bearer,
                    "parameters": [path_id("conversation id")],
                    "responses": with_errors(json!({ "200": block_state }))
                }
            },
            "/v1/conversations/{id}/messages/{message_id}/report": { "post": {
                "operationId": "reportMessage",
                "summary": "Report a message of the other side to the moderators (participants)",
                "security": bearer,
                "parameters": [path_id("conversation id"), message_id],
                "requestBody": report_body,
                "responses": with_errors(json!({ "202": reported }))
            }},
            "/v1/conversations/{id}/read": { "post": {
                "operationId": "markRead",
                "summary": "Mark every message up to and including up_to as read",
                "security": bearer,
                "parameters": [path_id("conversation id")],
                "requestBody": read_body,
                "responses": with_errors(json!({ "200": read }))
            }},
            "/v1/conversations/{id}/attachments": { "post": {
                "operationId": "uploadAttachment",
                "summary": "Upload a file (the raw request body), participants only",
                "security": bearer,
                "parameters": [path_id("conversation id"),
                    query("name", "the file name people see (cut to its last path segment)",
                          &json!({ "type": "string", "maxLength": 256 }))],
                "requestBody": { "required": true, "content": { "application/octet-stream":
                    { "schema": { "type": "string", "format": "binary" } } } },
                "responses": with_errors(json!({ "201": uploaded, "413": upload_too_large,
                    "415": unsupported, "429": uploads_limited, "503": upload_busy }))
            }},
            "/v1/conversations/{id}/attachments/{upload_id}": { "get": {
                "operationId": "downloadAttachment",
                "summary": "A file of the conversation, participants only",
                "security": bearer,
                "parameters": [path_id("conversation id"), upload_id],
                "responses": with_errors(json!({ "200": file, "429": downloads_limited }))
            }},
            "/v1/conversations/{id}/attachments/{upload_id}/thumbnail": { "get": {
                "operationId": "downloadThumbnail",
                "summary": "An image's thumbnail (at most 320 pixels on its longer side)",
                "security": bearer,
                "parameters": [path_id("conversation id"), upload_id],
                "responses": with_errors(json!({ "200": file, "429": downloads_limited }))
            }},
            "/v1/push/vapid-public-key": { "get": {
                "operationId": "vapidPublicKey",
                "summary": "The server's VAPID public key (no token needed: it is public)",
                "responses": { "200": vapid, "404": no_push }
            }},
            "/v1/push/subscriptions": {
                "put": {
                    "operationId": "putPushSubscription",
                    "summary": "Register the browser's PushSubscription for the caller",
                    "security": bearer,
                    "requestBody": subscription_body,
                    "responses": with_errors(json!({ "204": kept, "404": no_push,
                        "422": bad_subscription }))
                },
                "delete": {
                    "operationId": "deletePushSubscription",
                    "summary": "Remove one of the caller's subscriptions",
                    "security": bearer,
                    "requestBody": removal_body,
                    "responses": with_errors(json!({ "204": removed, "404": no_push }))
                }
            },
            "/v1/me": { "get": {
                "operationId": "me", "summary": "Who the token says the caller is",
                "security": bearer, "responses": with_errors(json!({ "200": me }))
            }},
            "/v1/openapi.json": { "get": {
                "operationId": "openapi", "summary": "This document",
                "responses": { "200": { "description": "OpenAPI 3.1 document" } }
            }},
            "/healthz": { "servers": internal, "get": {
                "operationId": "health",
                "summary": "Liveness, on the internal listener (never the public one)",
                "responses": { "200": health }
            }},
            "/readyz": { "servers": internal, "get": {
                "operationId": "ready",
                "summary": "Readiness, on the internal listener: 503 while the process drains (or a projector is outside its group), never for a shared backend's blip",
                "responses": { "200": ready, "503": not_ready }
            }}
        }
    })
}
