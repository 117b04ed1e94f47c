//! Generation of the published contract documents from the types in this crate.
//!
//! The files under `schemas/generated/` are checked in; `tests/generated.rs` fails when they
//! differ from what this module produces, and rewrites them when run with
//! `CHAT_UPDATE_SCHEMAS=1`. Event and WebSocket frame schemas are JSON Schema 2020-12; the
//! AsyncAPI document embeds draft-07 schemas, the dialect AsyncAPI 3.0 understands.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use crate::envelope::Envelope;
use crate::events::{
    ChatEvent, ConversationBlocked, ConversationStarted, ConversationUnblocked, MessageDeleted,
    MessageEdited, MessageReported, MessageSent, MessagesRead,
};
use crate::native::{ClientFrame, ServerFrame, close};
use crate::notify::DeadLetter;
use crate::seed::{SeedErrorFrame, SeedInbound, SeedMessageFrame};
use crate::signals::{Signal, SignalBatch};

/// A generated document and the path it is checked in at, relative to `schemas/generated/`.
#[derive(Debug)]
pub struct Document {
    pub path: String,
    pub content: Value,
}

impl Document {
    pub fn pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.content).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A self-contained JSON Schema 2020-12 document for `T`.
pub fn schema_2020_12<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>().to_value()
}

/// A schema for `T` in the OpenAPI 3.1 flavour: definitions go to `components`, referenced
/// as `#/components/schemas/...`. Returns the schema and the definitions it needs.
pub fn schema_for_openapi<T: JsonSchema>(definitions: &mut Map<String, Value>) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let schema: Schema = generator.subschema_for::<T>();
    for (name, definition) in generator.take_definitions(true) {
        definitions.insert(name, definition);
    }
    schema.to_value()
}

fn schema_draft07<T: JsonSchema>(definitions: &mut Map<String, Value>) -> Value {
    let mut settings = SchemaSettings::draft07();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let schema = generator.subschema_for::<T>();
    for (name, definition) in generator.take_definitions(true) {
        definitions.insert(name, definition);
    }
    schema.to_value()
}

/// The envelope of one event type: the CloudEvents attributes with `type` fixed and `data`
/// described by the event's own schema.
fn event_document<T: JsonSchema>(event_type: &str, description: &str) -> Document {
    let mut data = schema_2020_12::<T>();
    let mut defs = data
        .as_object_mut()
        .and_then(|object| object.remove("$defs"))
        .and_then(|defs| defs.as_object().cloned())
        .unwrap_or_default();
    if let Some(object) = data.as_object_mut() {
        object.remove("$schema");
        object.remove("title");
    }
    let data_name = T::schema_name().into_owned();
    defs.insert(data_name.clone(), data);
    let content = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:chat:event:{event_type}"),
        "title": event_type,
        "description": description,
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "subject", "data"],
        "properties": {
            "specversion": { "const": "1.0" },
            "id": { "type": "string", "minLength": 1 },
            "source": { "type": "string", "minLength": 1 },
            "type": { "const": event_type },
            "time": { "type": "string", "format": "date-time" },
            "subject": { "type": "string", "pattern": "^[1-9][0-9]*$",
                         "description": "the conversation id, in decimal; also the record key" },
            "datacontenttype": { "const": "application/json" },
            "traceparent": { "type": "string",
                             "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$" },
            "data": { "$ref": format!("#/$defs/{data_name}") }
        },
        "$defs": defs
    });
    Document { path: format!("events/{event_type}.json"), content }
}

fn frame_document<T: JsonSchema>(name: &str) -> Document {
    Document { path: format!("ws/{name}.json"), content: schema_2020_12::<T>() }
}

/// Every JSON Schema document: events, signals, WebSocket frames, and what notifications
/// carry (webhook events, push payloads).
pub fn json_schemas() -> Vec<Document> {
    vec![
        event_document::<ConversationStarted>(
            ChatEvent::CONVERSATION_STARTED,
            "A job's conversation exists between its client and its worker.",
        ),
        event_document::<MessageSent>(
            ChatEvent::MESSAGE_SENT,
            "A message was accepted. Its id is (offset + 1) * 1024 + partition of this record.",
        ),
        event_document::<MessagesRead>(
            ChatEvent::MESSAGES_READ,
            "A participant has read every message up to and including up_to.",
        ),
        event_document::<MessageEdited>(
            ChatEvent::MESSAGE_EDITED,
            "The sender replaced the text of a message of the conversation.",
        ),
        event_document::<MessageDeleted>(
            ChatEvent::MESSAGE_DELETED,
            "A message is deleted for everyone: a tombstone in history, no longer unread.",
        ),
        event_document::<MessageReported>(
            ChatEvent::MESSAGE_REPORTED,
            "A participant reported a message of the other side to the moderators.",
        ),
        event_document::<ConversationBlocked>(
            ChatEvent::CONVERSATION_BLOCKED,
            "A participant blocked the conversation: the other side can send nothing.",
        ),
        event_document::<ConversationUnblocked>(
            ChatEvent::CONVERSATION_UNBLOCKED,
            "The participant who blocked the conversation lifted the block.",
        ),
        Document { path: "events/envelope.json".into(), content: schema_2020_12::<Envelope>() },
        Document { path: "signals/signal.json".into(), content: schema_2020_12::<Signal>() },
        Document {
            path: "signals/signal-batch.json".into(),
            content: schema_2020_12::<SignalBatch>(),
        },
        frame_document::<ClientFrame>("native-client-frame"),
        frame_document::<ServerFrame>("native-server-frame"),
        frame_document::<SeedInbound>("seed-inbound"),
        frame_document::<SeedMessageFrame>("seed-message-frame"),
        frame_document::<SeedErrorFrame>("seed-error-frame"),
        Document {
            path: "notify/webhook-event.json".into(),
            content: schema_2020_12::<crate::notify::WebhookEvent>(),
        },
        Document {
            path: "notify/push-payload.json".into(),
            content: schema_2020_12::<crate::notify::PushPayload>(),
        },
        Document {
            path: "notify/dead-letter.json".into(),
            content: schema_2020_12::<DeadLetter>(),
        },
    ]
}

/// The AsyncAPI 3.0 document: the Kafka topics and both WebSocket endpoints.
pub fn asyncapi() -> Document {
    let mut schemas = Map::new();
    let envelope = schema_draft07::<Envelope>(&mut schemas);
    let started = schema_draft07::<ConversationStarted>(&mut schemas);
    let sent = schema_draft07::<MessageSent>(&mut schemas);
    let read = schema_draft07::<MessagesRead>(&mut schemas);
    let edited = schema_draft07::<MessageEdited>(&mut schemas);
    let deleted = schema_draft07::<MessageDeleted>(&mut schemas);
    let reported = schema_draft07::<MessageReported>(&mut schemas);
    let blocked = schema_draft07::<ConversationBlocked>(&mut schemas);
    let unblocked = schema_draft07::<ConversationUnblocked>(&mut schemas);
    let signal = schema_draft07::<Signal>(&mut schemas);
    let signal_batch = schema_draft07::<SignalBatch>(&mut schemas);
    let dead_letter = schema_draft07::<DeadLetter>(&mut schemas);
    let client_frame = schema_draft07::<ClientFrame>(&mut schemas);
    let server_frame = schema_draft07::<ServerFrame>(&mut schemas);
    let seed_in = schema_draft07::<SeedInbound>(&mut schemas);
    let seed_out = schema_draft07::<SeedMessageFrame>(&mut schemas);
    let seed_error = schema_draft07::<SeedErrorFrame>(&mut schemas);
    let event_message = |name: &str, summary: &str, data: &Value| {
        json!({
            "name": name,
            "title": name,
            "summary": summary,
            "contentType": "application/cloudevents+json",
            "payload": { "allOf": [envelope, { "properties": {
                "type": { "const": name }, "data": data } }] },
            "bindings": { "kafka": { "key": { "type": "string",
                "description": "conversation id in decimal" }, "bindingVersion": "0.5.0" } }
        })
    };
    let close_codes = format!(
        "Close codes: {} reconnect and resume (restart/drain); {} frame too big; {} internal \
         error; {} resume not servable yet, retry; {} malformed handshake parameters; {} \
         unauthenticated; {} forbidden (a cookie from a foreign origin); {} no such conversation \
         (also for a conversation the caller is not a participant of, so that its existence is \
         not revealed); {} slow consumer, reconnect and \
         resume; {} rate limited; 1001 idle (no pong); 1003 binary frame.",
        close::RESTART,
        close::TOO_BIG,
        close::INTERNAL,
        close::TRY_AGAIN_LATER,
        close::BAD_REQUEST,
        close::UNAUTHENTICATED,
        close::FORBIDDEN,
        close::NOT_FOUND,
        close::SLOW_CONSUMER,
        close::RATE_LIMITED,
    );
    let content = json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "chat events and WebSocket API",
            "version": "1.0.0",
            "description": format!(
                "Job conversations on an event log. Events are CloudEvents 1.0 in structured \
                 JSON mode, keyed by conversation id; all events of a conversation are in one \
                 partition, in order. Message ids are derived from log positions: \
                 (offset + 1) * 1024 + partition. WebSocket clients authenticate with \
                 ?token=<jwt> or a chat_token cookie. {close_codes}")
        },
        "servers": {
            "kafka": { "host": "127.0.0.1:9092", "protocol": "kafka",
                       "description": "local development cluster" },
            "websocket": { "host": "127.0.0.1:8080", "protocol": "ws",
                           "description": "chat dev" }
        },
        "channels": {
            "events": {
                "address": "chat.events",
                "servers": [{ "$ref": "#/servers/kafka" }],
                "description": "The durable log. Readers must skip unknown event types.",
                "messages": {
                    "conversationStarted": { "$ref": "#/components/messages/conversationStarted" },
                    "messageSent": { "$ref": "#/components/messages/messageSent" },
                    "messagesRead": { "$ref": "#/components/messages/messagesRead" },
                    "messageEdited": { "$ref": "#/components/messages/messageEdited" },
                    "messageDeleted": { "$ref": "#/components/messages/messageDeleted" },
                    "messageReported": { "$ref": "#/components/messages/messageReported" },
                    "conversationBlocked": { "$ref": "#/components/messages/conversationBlocked" },
                    "conversationUnblocked": {
                        "$ref": "#/components/messages/conversationUnblocked" }
                }
            },
            "signals": {
                "address": "chat.signals",
                "servers": [{ "$ref": "#/servers/kafka" }],
                "description": "Ephemeral signals between nodes: typing, presence, inbox updates. \
                                A record holds one signal or a batch of them, in order.",
                "messages": {
                    "signal": { "$ref": "#/components/messages/signal" },
                    "signalBatch": { "$ref": "#/components/messages/signalBatch" }
                }
            },
            "deadLetters": {
                "address": "chat.events.dead-letters",
                "servers": [{ "$ref": "#/servers/kafka" }],
                "description": "Webhook events the receiver did not take within the retry \
                                window, and their redeliveries (the events topic's name with \
                                .dead-letters appended), keyed by conversation id.",
                "messages": { "deadLetter": { "$ref": "#/components/messages/deadLetter" } }
            },
            "native": {
                "address": "/v1/ws",
                "servers": [{ "$ref": "#/servers/websocket" }],
                "description": "One connection for many conversations and the user's inbox.",
                "messages": {
                    "clientFrame": { "$ref": "#/components/messages/clientFrame" },
                    "serverFrame": { "$ref": "#/components/messages/serverFrame" }
                },
                "bindings": { "ws": { "method": "GET", "bindingVersion": "0.1.0" } }
            },
            "seed": {
                "address": "/ws/chat/{conversationId}/",
                "servers": [{ "$ref": "#/servers/websocket" }],
                "description": "The seed's protocol. ?since=<message id> replays every later \
                                message first, then continues live.",
                "parameters": { "conversationId": { "description": "conversation id" } },
                "messages": {
                    "seedInbound": { "$ref": "#/components/messages/seedInbound" },
                    "seedMessage": { "$ref": "#/components/messages/seedMessage" },
                    "seedError": { "$ref": "#/components/messages/seedError" }
                },
                "bindings": { "ws": { "method": "GET", "bindingVersion": "0.1.0" } }
            }
        },
        "operations": {
            "consumeEvents": { "action": "receive", "channel": { "$ref": "#/channels/events" },
                "summary": "Analytics and projections read the log.",
                "bindings": { "kafka": { "groupId": { "type": "string" }, "bindingVersion": "0.5.0" } } },
            "consumeSignals": { "action": "receive", "channel": { "$ref": "#/channels/signals" } },
            "consumeDeadLetters": { "action": "receive",
                "channel": { "$ref": "#/channels/deadLetters" },
                "summary": "chat webhooks lists and redelivers parked events." },
            "sendNative": { "action": "receive", "channel": { "$ref": "#/channels/native" },
                "summary": "The server receives client frames.",
                "messages": [{ "$ref": "#/channels/native/messages/clientFrame" }] },
            "pushNative": { "action": "send", "channel": { "$ref": "#/channels/native" },
                "summary": "The server pushes server frames.",
                "messages": [{ "$ref": "#/channels/native/messages/serverFrame" }] },
            "sendSeed": { "action": "receive", "channel": { "$ref": "#/channels/seed" },
                "messages": [{ "$ref": "#/channels/seed/messages/seedInbound" }] },
            "pushSeed": { "action": "send", "channel": { "$ref": "#/channels/seed" },
                "messages": [{ "$ref": "#/channels/seed/messages/seedMessage" },
                             { "$ref": "#/channels/seed/messages/seedError" }] }
        },
        "components": {
            "messages": {
                "conversationStarted": event_message(ChatEvent::CONVERSATION_STARTED,
                    "A job's conversation exists.", &started),
                "messageSent": event_message(ChatEvent::MESSAGE_SENT,
                    "A message was accepted.", &sent),
                "messagesRead": event_message(ChatEvent::MESSAGES_READ,
                    "A participant read up to a message.", &read),
                "messageEdited": event_message(ChatEvent::MESSAGE_EDITED,
                    "The sender replaced a message's text.", &edited),
                "messageDeleted": event_message(ChatEvent::MESSAGE_DELETED,
                    "A message was deleted for everyone.", &deleted),
                "messageReported": event_message(ChatEvent::MESSAGE_REPORTED,
                    "A participant reported a message to the moderators.", &reported),
                "conversationBlocked": event_message(ChatEvent::CONVERSATION_BLOCKED,
                    "A participant blocked the conversation.", &blocked),
                "conversationUnblocked": event_message(ChatEvent::CONVERSATION_UNBLOCKED,
                    "A participant lifted their block.", &unblocked),
                "signal": { "name": "signal", "contentType": "application/json", "payload": signal },
                "signalBatch": { "name": "signalBatch", "contentType": "application/json",
                                 "payload": signal_batch },
                "deadLetter": { "name": "deadLetter", "contentType": "application/json",
                                "payload": dead_letter },
                "clientFrame": { "name": "clientFrame", "contentType": "application/json",
                                 "payload": client_frame },
                "serverFrame": { "name": "serverFrame", "contentType": "application/json",
                                 "payload": server_frame },
                "seedInbound": { "name": "seedInbound", "contentType": "application/json",
                                 "payload": seed_in },
                "seedMessage": { "name": "seedMessage", "contentType": "application/json",
                                 "payload": seed_out },
                "seedError": { "name": "seedError", "contentType": "application/json",
                               "payload": seed_error }
            },
            "schemas": schemas
        }
    });
    Document { path: "asyncapi.json".into(), content }
}
