//! Properties of the contracts over generated input (the fuzz targets in `fuzz/` chase the
//! same invariants with coverage guidance): what parses renders back to itself, arrays
//! never pass for objects, close reasons always fit, and a log record decodes to the event
//! that was written.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use schemas::http::{MarkReadRequest, OpenConversationRequest, SendMessageRequest};
use schemas::native::{ClientFrame, close};
use schemas::seed::SeedInbound;
use schemas::{
    Attachment, ChatEvent, ConversationId, Envelope, MessageId, MessageSent, MessageType,
    Participant, Timestamp, UserId, object,
};

fn conversation() -> impl Strategy<Value = ConversationId> {
    (1_u64..(1 << 53)).prop_map(|id| ConversationId::new(id).unwrap())
}

fn message_id() -> impl Strategy<Value = MessageId> {
    (0_u64..(1 << 53)).prop_map(|id| MessageId::new(id).unwrap())
}

fn user() -> impl Strategy<Value = UserId> {
    "[A-Za-z0-9._:@-]{1,128}".prop_map(|id| UserId::new(id).unwrap())
}

fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Text),
        Just(MessageType::Image),
        Just(MessageType::File),
        Just(MessageType::System),
    ]
}

fn attachment() -> impl Strategy<Value = Option<Attachment>> {
    proptest::option::of((any::<String>(), any::<String>(), any::<String>(), any::<Option<u64>>()))
        .prop_map(|parts| {
            parts.map(|(url, name, mime_type, size)| Attachment {
                url,
                name,
                mime_type,
                size,
                ..Attachment::default()
            })
        })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (conversation(), proptest::option::of(message_id()))
            .prop_map(|(conversation_id, since)| ClientFrame::Subscribe { conversation_id, since }),
        conversation().prop_map(|conversation_id| ClientFrame::Unsubscribe { conversation_id }),
        (
            any::<Option<String>>(),
            conversation(),
            any::<String>(),
            message_type(),
            attachment(),
            any::<Option<String>>()
        )
            .prop_map(
                |(reference, conversation_id, text, message_type, attachment, idempotency_key)| {
                    ClientFrame::Send {
                        reference,
                        conversation_id,
                        text,
                        message_type,
                        attachment,
                        idempotency_key,
                    }
                }
            ),
        (any::<Option<String>>(), conversation(), message_id()).prop_map(
            |(reference, conversation_id, up_to)| ClientFrame::Read {
                reference,
                conversation_id,
                up_to
            }
        ),
        (conversation(), any::<bool>()).prop_map(|(conversation_id, is_typing)| {
            ClientFrame::Typing { conversation_id, is_typing }
        }),
        any::<Option<String>>().prop_map(|reference| ClientFrame::Ping { reference }),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn client_frames_render_and_parse_back_to_themselves(frame in client_frame()) {
        let rendered = serde_json::to_string(&frame).unwrap();
        prop_assert_eq!(object::from_str::<ClientFrame>(&rendered).unwrap(), frame);
    }

    #[test]
    fn http_bodies_render_and_parse_back_to_themselves(
        text in any::<String>(),
        message_type in message_type(),
        attachment in attachment(),
        idempotency_key in any::<Option<String>>(),
        client_id in user(),
        worker_id in user(),
        names in any::<(Option<String>, Option<String>)>(),
        up_to in message_id(),
    ) {
        let send = SendMessageRequest { text, message_type, attachment, idempotency_key };
        let rendered = serde_json::to_string(&send).unwrap();
        prop_assert_eq!(object::from_str::<SendMessageRequest>(&rendered).unwrap(), send);
        let (client_name, worker_name) = names;
        let open = OpenConversationRequest { client_id, worker_id, client_name, worker_name };
        let rendered = serde_json::to_string(&open).unwrap();
        prop_assert_eq!(object::from_str::<OpenConversationRequest>(&rendered).unwrap(), open);
        let read = MarkReadRequest { up_to };
        let rendered = serde_json::to_string(&read).unwrap();
        prop_assert_eq!(object::from_str::<MarkReadRequest>(&rendered).unwrap(), read);
    }

    #[test]
    fn no_array_passes_for_a_request(items in proptest::collection::vec(json_value(), 0..6)) {
        let text = serde_json::Value::from(items).to_string();
        prop_assert!(object::from_str::<ClientFrame>(&text).is_err());
        prop_assert!(object::from_str::<SeedInbound>(&text).is_err());
        prop_assert!(object::from_str::<SendMessageRequest>(&text).is_err());
        prop_assert!(object::from_str::<OpenConversationRequest>(&text).is_err());
        prop_assert!(object::from_str::<MarkReadRequest>(&text).is_err());
    }

    #[test]
    fn arbitrary_json_never_panics_a_parser(value in json_value()) {
        let text = value.to_string();
        let _ = object::from_str::<ClientFrame>(&text);
        let _ = object::from_str::<SeedInbound>(&text);
        let _ = object::from_str::<SendMessageRequest>(&text);
        let _ = Envelope::decode(text.as_bytes());
    }

    #[test]
    fn close_reasons_are_the_longest_prefix_that_fits(reason in any::<String>()) {
        let fitted = close::fit_reason(&reason);
        prop_assert!(fitted.len() <= close::MAX_REASON_BYTES);
        prop_assert!(reason.starts_with(fitted));
        let next = reason[fitted.len()..].chars().next();
        if let Some(next) = next {
            prop_assert!(fitted.len() + next.len_utf8() > close::MAX_REASON_BYTES);
        }
    }

    #[test]
    fn a_written_event_decodes_to_itself(
        conversation_id in conversation(),
        id in user(),
        name in any::<String>(),
        message_type in message_type(),
        text in any::<String>(),
        attachment in attachment(),
        idempotency_key in any::<Option<String>>(),
        millis in 0_i64..4_102_444_800_000,
    ) {
        let event = ChatEvent::MessageSent(MessageSent {
            conversation_id,
            sender: Participant { id, name },
            message_type,
            text,
            attachment,
            idempotency_key,
            sent_at: Timestamp::from_millis(millis),
        });
        let (envelope, decoded) = Envelope::decode(&Envelope::wrap(&event, "test").to_bytes()).unwrap();
        prop_assert_eq!(envelope.subject, conversation_id.to_string());
        prop_assert_eq!(decoded, Some(event));
    }
}
