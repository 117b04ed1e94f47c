#!/usr/bin/env python3
"""Reads a chat event topic from the beginning to its current end, the way an analytics
consumer would (confluent-kafka, no Rust), and validates every event against the published
JSON Schemas in schemas/generated/events/.

    python3 analytics/validate_events.py --brokers 127.0.0.1:9092 --topic chat.events

Checks, per record: the value is a CloudEvents envelope whose `type` has a schema and
validates against it; the `subject` equals the record key (the conversation id); and the
message id derived from the position, (offset + 1) * 1024 + partition, is below 2^53.
Prints one summary line; exits 1 if any record fails, 2 on usage or connection errors.
"""

import argparse
import json
import pathlib
import sys
from collections import Counter

import jsonschema
from confluent_kafka import KafkaException

from chatlog import MAX_SAFE_INTEGER, ReadError, read_topic


def load_schemas(directory):
    schemas = {}
    for path in sorted(pathlib.Path(directory).glob("chat.*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        schemas[schema["title"]] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
    return schemas


def main():
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--schemas", default=str(here.parent / "schemas/generated/events"))
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    schemas = load_schemas(args.schemas)
    if not schemas:
        print(f"validate_events: no schemas in {args.schemas}", file=sys.stderr)
        return 2
    by_type, failures, seen = Counter(), [], 0
    try:
        for record in read_topic(args.brokers, args.topic, args.timeout):
            seen += 1
            where = record.where()
            try:
                event = record.event()
            except ValueError as error:
                failures.append(f"{where}: not a JSON object ({error})")
                continue
            validator = schemas.get(event.get("type"))
            if validator is None:
                failures.append(f"{where}: no schema for type {event.get('type')!r}")
                continue
            errors = sorted(validator.iter_errors(event), key=lambda e: list(e.path))
            failures.extend(f"{where}: {'/'.join(map(str, e.path))}: {e.message}" for e in errors[:3])
            if event.get("subject") != record.key:
                failures.append(f"{where}: subject {event.get('subject')!r} is not the key {record.key!r}")
            if record.message_id > MAX_SAFE_INTEGER:
                failures.append(f"{where}: position exceeds the message id range")
            by_type[event["type"]] += 1
    except (ReadError, KafkaException) as error:
        print(f"validate_events: {error}", file=sys.stderr)
        return 2

    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(by_type.items()))
    if failures:
        print(f"validate_events: {len(failures)} problems in {seen} events:", file=sys.stderr)
        for failure in failures[:20]:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"validated {seen} events ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
