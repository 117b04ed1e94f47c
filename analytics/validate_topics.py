#!/usr/bin/env python3
"""Reads chat topics from the beginning to their current end, from outside (confluent-kafka,
no Rust), and validates every record against what the AsyncAPI document publishes for the
topic's channel: a record must match at least one of the channel's message payloads.

    python3 analytics/validate_topics.py --brokers 127.0.0.1:9092 \
        --channel events=chat.events --channel signals=chat.signals \
        --channel deadLetters=chat.events.dead-letters

Prints one line per channel; exits 1 if any record matches no published message, 2 on
usage or connection errors.
"""

import argparse
import json
import pathlib
import sys
from collections import Counter

import jsonschema
from confluent_kafka import KafkaException
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from chatlog import ReadError, read_topic

DOCUMENT = "urn:chat:asyncapi"


def message_validators(asyncapi, channel):
    """A validator per message of `channel`, by message name. AsyncAPI 3.0 payloads are
    draft-07 schemas whose references point into the document's components."""
    registry = Registry().with_resource(
        DOCUMENT, Resource.from_contents(asyncapi, default_specification=DRAFT7)
    )
    messages = asyncapi["channels"][channel]["messages"]
    validators = {}
    for name, message in messages.items():
        pointer = message["$ref"].removeprefix("#")
        validators[name] = jsonschema.Draft7Validator(
            {"$ref": f"{DOCUMENT}#{pointer}/payload"},
            registry=registry,
            format_checker=jsonschema.FormatChecker(),
        )
    return validators


def matching_message(validators, value):
    """The name of the first message `value` is valid as, or None."""
    for name, validator in validators.items():
        if validator.is_valid(value):
            return name
    return None


def main():
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--channel", action="append", required=True, metavar="CHANNEL=TOPIC")
    parser.add_argument("--asyncapi", default=str(here.parent / "schemas/generated/asyncapi.json"))
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    asyncapi = json.loads(pathlib.Path(args.asyncapi).read_text())
    failures, lines = [], []
    for pairing in args.channel:
        channel, _, topic = pairing.partition("=")
        if channel not in asyncapi["channels"] or not topic:
            print(f"validate_topics: no channel {channel!r} or no topic in {pairing!r}", file=sys.stderr)
            return 2
        validators = message_validators(asyncapi, channel)
        counts = Counter()
        try:
            for record in read_topic(args.brokers, topic, args.timeout):
                try:
                    value = json.loads(record.value) if record.value is not None else None
                except ValueError as error:
                    failures.append(f"{topic} {record.where()}: not JSON ({error})")
                    continue
                name = matching_message(validators, value)
                if name is None:
                    failures.append(f"{topic} {record.where()}: matches no message of {channel}: "
                                    f"{json.dumps(value)[:200]}")
                    continue
                counts[name] += 1
        except (ReadError, KafkaException) as error:
            print(f"validate_topics: {topic}: {error}", file=sys.stderr)
            return 2
        summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
        lines.append(f"{channel} ({topic}): {sum(counts.values())} valid ({summary})")

    for line in lines:
        print(line)
    if failures:
        print(f"validate_topics: {len(failures)} records match no published message:", file=sys.stderr)
        for failure in failures[:20]:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
