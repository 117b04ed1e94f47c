"""Reading the chat event topic the way an analytics consumer does: every partition from its
first record to the end it had when reading began, with confluent-kafka and no Rust.

See docs/EVENTS.md for what the records mean and the rules for counting them.
"""

import json
import os
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

MAX_SAFE_INTEGER = 2**53 - 1


class ReadError(Exception):
    """The topic could not be read to its end (missing, or the brokers stopped answering)."""


@dataclass
class Record:
    partition: int
    offset: int
    key: str
    value: bytes

    @property
    def message_id(self):
        """The id a `chat.message.sent.v1` at this position has everywhere else."""
        return (self.offset + 1) * 1024 + self.partition

    def where(self):
        return f"partition {self.partition} offset {self.offset}"

    def event(self):
        """The CloudEvents envelope; ValueError when the value is missing or not a JSON
        object."""
        if self.value is None:
            raise ValueError("no value")
        event = json.loads(self.value)
        if not isinstance(event, dict):
            raise ValueError("not a JSON object")
        return event


def security_settings(environ=os.environ):
    """The client settings for a secured cluster, from the same `CHAT_KAFKA_*` variables the
    chat's roles read (`infra/local/status --env` prints them for the local cluster). The
    password comes from the file `CHAT_KAFKA_SASL_PASSWORD_FILE` names, never from a
    variable."""
    settings = {}
    protocol = environ.get("CHAT_KAFKA_SECURITY_PROTOCOL")
    if protocol:
        settings["security.protocol"] = protocol
    named = {
        "CHAT_KAFKA_SASL_MECHANISM": "sasl.mechanism",
        "CHAT_KAFKA_SASL_USERNAME": "sasl.username",
        "CHAT_KAFKA_SSL_CA_FILE": "ssl.ca.location",
        "CHAT_KAFKA_SSL_CERT_FILE": "ssl.certificate.location",
        "CHAT_KAFKA_SSL_KEY_FILE": "ssl.key.location",
    }
    for variable, name in named.items():
        if environ.get(variable):
            settings[name] = environ[variable]
    password_file = environ.get("CHAT_KAFKA_SASL_PASSWORD_FILE")
    if password_file:
        with open(password_file, encoding="utf-8") as file:
            settings["sasl.password"] = file.read().rstrip("\r\n")
    return settings


def read_topic(brokers, topic, timeout=30.0):
    """Yields every record of `topic`, in order within each partition, up to the end each
    partition had when reading began. Partitions interleave in no particular order."""
    consumer = Consumer({
        "bootstrap.servers": brokers,
        # A group of its own that never commits: reading moves nobody's offsets.
        "group.id": f"analytics-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **security_settings(),
    })
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise ReadError(f"no topic {topic}")
        ends = {}
        for partition in described.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            ends[partition] = high
        consumer.assign([TopicPartition(topic, partition, 0) for partition in ends])
        remaining = {partition for partition, end in ends.items() if end > 0}
        while remaining:
            message = consumer.poll(timeout)
            if message is None:
                raise ReadError(f"timed out with partitions {sorted(remaining)} unread")
            if message.error():
                raise KafkaException(message.error())
            partition, offset = message.partition(), message.offset()
            if offset >= ends[partition]:
                remaining.discard(partition)
                continue
            key = (message.key() or b"").decode("utf-8", "replace")
            yield Record(partition, offset, key, message.value())
            if offset + 1 >= ends[partition]:
                remaining.discard(partition)
    finally:
        consumer.close()
