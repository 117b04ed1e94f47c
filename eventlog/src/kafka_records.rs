//! Records to and from Kafka messages: the conversation id is the message key, headers
//! are UTF-8 strings, and the broker's partition and offset are the record's position.

use rdkafka::message::{BorrowedMessage, Header as KafkaHeader, Headers, Message, OwnedHeaders};
use schemas::{ConversationId, Position, Timestamp};

use crate::kafka_config::unavailable;
use crate::{Header, LogError, Record};

pub(crate) fn position_of(
    delivery: &rdkafka::producer::future_producer::Delivery,
) -> Result<Position, LogError> {
    Ok(Position {
        partition: u32::try_from(delivery.partition).map_err(unavailable)?,
        offset: u64::try_from(delivery.offset).map_err(unavailable)?,
    })
}

pub(crate) fn owned_headers(headers: &[Header]) -> OwnedHeaders {
    headers.iter().fold(OwnedHeaders::new_with_capacity(headers.len()), |owned, (key, value)| {
        owned.insert(KafkaHeader { key, value: Some(value.as_bytes()) })
    })
}

/// A consumed message as a [`Record`]; `None` for messages that are not ours (no
/// conversation key), which readers skip.
pub(crate) fn record_from(message: &BorrowedMessage<'_>) -> Option<Record> {
    let key = std::str::from_utf8(message.key()?).ok()?.parse::<ConversationId>().ok()?;
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|header| {
                    let value = std::str::from_utf8(header.value?).ok()?;
                    Some((header.key.to_owned(), value.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Record {
        position: Position {
            partition: u32::try_from(message.partition()).ok()?,
            offset: u64::try_from(message.offset()).ok()?,
        },
        key,
        value: message.payload().unwrap_or_default().to_vec(),
        headers,
        timestamp: Timestamp::from_millis(message.timestamp().to_millis().unwrap_or(0)),
    })
}
