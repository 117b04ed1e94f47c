#!/usr/bin/env python3
"""Counts each conversation's messages and each participant's unread messages from the event
log alone, by the rules in docs/EVENTS.md, the numbers the inbox shows.

    python3 analytics/conversation_stats.py --brokers 127.0.0.1:9092 --topic chat.events

Prints one JSON object per conversation, by id: `conversation_id`, `job_id`, `messages`
(duplicates of an idempotency key not counted; deleted ones are, as tombstones),
`duplicates`, `last_message_id` (the latest not deleted), and per
participant `unread` and `last_read_id`. Exits 2 when the topic cannot be read. The test
`chat/tests/cluster.rs` holds its output to what the projections answer over HTTP.
"""

import argparse
import bisect
import json
import sys
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from chatlog import ReadError, read_topic


@dataclass
class Conversation:
    conversation_id: int
    job_id: str
    participants: tuple
    # Message ids in log order with their senders; the first message of each key.
    messages: list = field(default_factory=list)
    first_with_key: dict = field(default_factory=dict)
    duplicates: int = 0
    last_read: dict = field(default_factory=dict)
    # Messages deleted for everyone: still messages, but neither unread nor the latest.
    deleted: set = field(default_factory=set)

    def send(self, message_id, data):
        key = data.get("idempotency_key")
        if key is not None:
            if key in self.first_with_key:
                self.duplicates += 1
                return
            self.first_with_key[key] = message_id
        self.messages.append((message_id, data["sender"]["id"]))

    def delete(self, data):
        message_id = data["message_id"]
        sender = next((s for m, s in self.messages if m == message_id), None)
        if sender is None or message_id in self.deleted:
            return
        if data.get("moderation") or data["deleted_by"] == sender:
            self.deleted.add(message_id)

    def latest_standing(self):
        return next((m for m, _ in reversed(self.messages) if m not in self.deleted), None)

    def read(self, data):
        reader = data["reader_id"]
        latest = self.latest_standing()
        if reader not in self.participants or latest is None:
            return
        # The mark lands on the last message at or before `up_to`, never past the latest
        # message still standing, and never moves back.
        up_to = min(data["up_to"], latest)
        through = bisect.bisect_right(self.messages, (up_to, "\uffff"))
        if through and self.messages[through - 1][0] > self.last_read.get(reader, 0):
            self.last_read[reader] = self.messages[through - 1][0]

    def summary(self):
        return {
            "conversation_id": self.conversation_id,
            "job_id": self.job_id,
            "messages": len(self.messages),
            "duplicates": self.duplicates,
            "last_message_id": self.latest_standing(),
            "participants": {
                user: {
                    "unread": sum(
                        1
                        for message_id, sender in self.messages
                        if message_id > self.last_read.get(user, 0)
                        and sender != user
                        and message_id not in self.deleted
                    ),
                    "last_read_id": self.last_read.get(user, 0),
                }
                for user in self.participants
            },
        }


def fold(records):
    """The conversations of `records`, and how many records were skipped as malformed
    (`validate_events.py` says what is wrong with them)."""
    conversations, malformed = {}, 0
    for record in records:
        try:
            apply(conversations, record)
        except (ValueError, KeyError, TypeError, AttributeError):
            malformed += 1
    return conversations, malformed


def apply(conversations, record):
    event = record.event()
    kind, data = event.get("type"), event.get("data") or {}
    if kind == "chat.conversation.started.v1":
        conversation_id = data["conversation_id"]
        if conversation_id not in conversations:
            participants = (data["client"]["id"], data["worker"]["id"])
            conversations[conversation_id] = Conversation(conversation_id, data["job_id"], participants)
        return
    conversation = conversations.get(data.get("conversation_id"))
    if conversation is None:
        return
    if kind == "chat.message.sent.v1":
        conversation.send(record.message_id, data)
    elif kind == "chat.messages.read.v1":
        conversation.read(data)
    elif kind == "chat.message.deleted.v1":
        conversation.delete(data)
    # Edits change a message's text, which no count here depends on.
    # Any other type is newer than this reader: skipped, as the contract asks.


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    try:
        conversations, malformed = fold(read_topic(args.brokers, args.topic, args.timeout))
    except (ReadError, KafkaException) as error:
        print(f"conversation_stats: {error}", file=sys.stderr)
        return 2
    if malformed:
        print(f"conversation_stats: skipped {malformed} malformed records", file=sys.stderr)
    for conversation_id in sorted(conversations):
        print(json.dumps(conversations[conversation_id].summary(), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
