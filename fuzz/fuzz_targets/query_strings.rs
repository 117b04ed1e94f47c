//! Query strings: the history and inbox parameters (parsed as axum's `Query` parses them),
//! the inbox cursor, and a WebSocket handshake's `token` and `since`. Nothing panics, and
//! what parses renders back to a query string that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::MessageId;
use schemas::handshake::HandshakeQuery;
use schemas::http::{HistoryQuery, InboxCursor, InboxQuery};

fn pairs(fields: [(&str, Option<String>); 2]) -> String {
    let present = fields.into_iter().filter_map(|(name, value)| Some((name, value?)));
    serde_urlencoded::to_string(present.collect::<Vec<_>>()).expect("pairs render")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(history) = serde_urlencoded::from_str::<HistoryQuery>(text) {
        let rendered = pairs([
            ("before", history.before.map(|id| id.to_string())),
            ("limit", history.limit.map(|limit| limit.to_string())),
        ]);
        assert_eq!(serde_urlencoded::from_str::<HistoryQuery>(&rendered).ok(), Some(history));
    }
    if let Ok(inbox) = serde_urlencoded::from_str::<InboxQuery>(text) {
        if let Some(cursor) = inbox.cursor.as_deref().and_then(InboxCursor::decode) {
            assert_eq!(InboxCursor::decode(&cursor.encode()), Some(cursor));
        }
        let rendered = pairs([
            ("cursor", inbox.cursor.clone()),
            ("limit", inbox.limit.map(|limit| limit.to_string())),
        ]);
        assert_eq!(serde_urlencoded::from_str::<InboxQuery>(&rendered).ok(), Some(inbox));
    }
    let handshake = HandshakeQuery::parse(Some(text));
    if let Some(since) = handshake.since.as_deref()
        && let Ok(id) = since.parse::<MessageId>()
    {
        assert_eq!(id.to_string().parse::<MessageId>().ok(), Some(id));
    }
});
