"""The AsyncAPI 3.0 document of Concerto's events, built from this library:
`python -m concerto_contracts.asyncapi [PATH]` writes it (by default docs/contracts/asyncapi.yaml).

What it says comes from the code: the topics (`Topics`), the events and who publishes them
(`EVENT_TYPES`: an event's context publishes it on its topic), their payloads (`schemas()`), the
CloudEvents binary-mode headers (`envelope.encode`), the dead-letter headers (the consumer's
`_dead_letter`), and who consumes what (`CONSUMERS`, checked against the services by a test).
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

from concerto_contracts.events import (
    EVENT_TYPES,
    CompensationRequested,
    DomainEvent,
    InventoryReserved,
    InventoryUnavailable,
    OrderCancelled,
    OrderConfirmed,
    OrderReadyToShip,
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    ShipmentDispatched,
    ShipmentScheduled,
    StockLevelChanged,
    TierChanged,
)
from concerto_contracts.schemas import schemas
from concerto_contracts.topics import Topics

DEFAULT_PATH = Path("docs/contracts/asyncapi.yaml")
KAFKA_BINDING = "0.5.0"

# Which events each service's consumer handles: the keys of its `handlers` map
# (services/<name>/src/concerto_<name>/messaging/handlers.py). Written out because the contracts
# must not import the services; test_contracts_asyncapi.py checks it against them.
CONSUMERS: dict[str, tuple[type[DomainEvent], ...]] = {
    "order": (
        PaymentCompleted, PaymentFailed, InventoryReserved, InventoryUnavailable, ShipmentScheduled,
        ShipmentDispatched, CompensationRequested, StockLevelChanged, TierChanged,
    ),
    "payment": (OrderConfirmed, OrderCancelled),
    "fulfillment": (PaymentCompleted, OrderCancelled, OrderReadyToShip),
    "loyalty": (PaymentCompleted, PaymentRefunded),
    # The saga monitor reads every event about an order (a stock level is about a sku).
    "monitor": tuple(cls for cls in EVENT_TYPES.values() if "order_id" in cls.model_fields),
}  # fmt: skip

# The monitor's reader of every dead-letter topic (concerto_monitor.adapters.dead_letters).
DEAD_LETTER_READER = "monitor-dead-letters"


def consumer_group(service: str) -> str:
    """As concerto_runtime.service names it; the group's dead letters go to `<group>.dlq`."""
    return f"{service}-service"


# --- headers ---------------------------------------------------------------------------------

# CloudEvents 1.0, Kafka binary content mode: each attribute is a `ce_` header (envelope.encode).
CLOUDEVENT_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary content mode: one `ce_` header per attribute, "
    "`datacontenttype` as `content-type`. Header values are UTF-8 bytes.",
    "properties": {
        "ce_id": {"type": "string", "description": "The event's id (a UUID): consumers' inboxes de-duplicate on it."},
        "ce_type": {"type": "string", "description": "The event type, `concerto.<context>.<Name>.v<N>`."},
        "ce_source": {"type": "string", "description": "Who published it, `/concerto/<service>`."},
        "ce_subject": {"type": "string", "description": "What the event is about: the order id (the sku for a stock level)."},
        "ce_time": {"type": "string", "format": "date-time", "description": "When it was published (RFC 3339, UTC)."},
        "ce_specversion": {"type": "string", "const": "1.0"},
        "content-type": {"type": "string", "const": "application/json"},
        "ce_correlationid": {"type": "string", "description": "Extension: the business flow, the same for every event of an order."},
        "ce_causationid": {"type": "string", "description": "Extension, optional: the id of the event that caused this one."},
        "ce_traceparent": {"type": "string", "description": "Extension, optional: W3C trace context of the publishing span."},
        "ce_partitionkey": {"type": "string", "description": "Extension: the Kafka key again (the order id, or the sku)."},
    },
    "required": [
        "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "ce_specversion", "content-type",
        "ce_correlationid", "ce_partitionkey",
    ],
}  # fmt: skip

# What EventConsumer._dead_letter (concerto_messaging.consumer) adds to the original headers.
DEAD_LETTER_HEADERS = {
    "dlq_reason": {
        "type": "string",
        "enum": ["undecodable", "rejected"],
        "description": "`undecodable`: not one of our events (decode failed); `rejected`: its handler raised InvalidEvent.",
    },
    "dlq_error": {"type": "string", "maxLength": 2000, "description": "Why, for a person (cut at 2000 characters)."},
    "dlq_consumer_group": {"type": "string", "description": "The consumer group that gave up on it."},
    "dlq_original_topic": {"type": "string", "description": "Where it was read, and where a redrive puts it back."},
    "dlq_original_partition": {"type": "string", "pattern": "^[0-9]+$"},
    "dlq_original_offset": {"type": "string", "pattern": "^[0-9]+$"},
}

CORRELATION_ID = {
    "description": "Every event of one order's saga carries the correlation id it started with.",
    "location": "$message.header#/ce_correlationid",
}


# --- building blocks -------------------------------------------------------------------------


def _summary(cls: type) -> str | None:
    """The docstring's first sentence, on one line."""
    if not (cls.__doc__ or "").strip():
        return None
    text = " ".join(inspect.cleandoc(cls.__doc__).split())
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0]


def _title(cls: type) -> str:
    """`OrderReadyToShip` -> `Order ready to ship`."""
    words = re.findall(r"[A-Z][a-z0-9]*", cls.__name__)
    return " ".join([words[0], *(word.lower() for word in words[1:])])


def _consumers_of(cls: type[DomainEvent]) -> list[str]:
    return [consumer_group(service) for service, handled in CONSUMERS.items() if cls in handled]


def _rewrite_refs(node, old: str, new: str):
    if isinstance(node, dict):
        return {k: (v.replace(old, new, 1) if k == "$ref" else _rewrite_refs(v, old, new)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(item, old, new) for item in node]
    return node


def _payloads() -> tuple[dict[str, dict], dict[str, dict]]:
    """Each event's JSON Schema, and the definitions they share (Money, LineItem, ...).

    pydantic puts the definitions under `$defs` and refers to them as `#/$defs/X`. Inside an
    AsyncAPI document a ref is resolved against the whole document, so the definitions move to
    `components.schemas` and the refs follow. The `$id` goes too: it would make the refs
    resolve against the event type instead of the document."""
    payloads, shared = {}, {}
    for event_type, schema in schemas().items():
        schema = _rewrite_refs(schema, "#/$defs/", "#/components/schemas/")
        for name, definition in schema.pop("$defs", {}).items():
            if shared.setdefault(name, definition) != definition:
                raise ValueError(f"two events define {name} differently: give one of them another name")
        schema.pop("$id", None)
        payloads[event_type] = schema
    return payloads, shared


def _message(event_type: str, cls: type[DomainEvent]) -> dict:
    if cls is StockLevelChanged:
        key = "The sku: one sku's stock levels stay in order on one partition."
    else:
        key = "The order id: every event of one order lands on one partition, in order."
    consumers = ", ".join(f"`{group}`" for group in _consumers_of(cls)) or "nobody yet"
    message = {
        "name": cls.__name__,
        "title": _title(cls),
        "summary": _summary(cls),
        "description": f"Published by the {cls.context} service on `{cls.topic}`; consumed by {consumers}.",
        "contentType": "application/json",
        # The common CloudEvents headers, with this event's own `ce_type`.
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventHeaders"},
                {"type": "object", "properties": {"ce_type": {"type": "string", "const": event_type}}},
            ]
        },
        "payload": {"$ref": f"#/components/schemas/{event_type}"},
        "correlationId": CORRELATION_ID,
        "bindings": {"kafka": {"key": {"type": "string", "description": key}, "bindingVersion": KAFKA_BINDING}},
    }
    return {name: value for name, value in message.items() if value is not None}


DEAD_LETTER_MESSAGE = {
    "name": "DeadLetter",
    "title": "Dead letter",
    "summary": "A record a consumer group gave up on, as it was read, with why in `dlq_*` headers.",
    "description": "The original record unchanged: the same key, the same value (bytes, which may not even be JSON when "
    "the reason is `undecodable`) and its original headers (usually the CloudEvents `ce_*` headers of the event), "
    "followed by the `dlq_*` headers. Only failures that can never pass are dead-lettered; anything else holds the "
    "partition and is tried again.",
    "headers": {
        "type": "object",
        "properties": {**CLOUDEVENT_HEADERS["properties"], **DEAD_LETTER_HEADERS},
        "required": list(DEAD_LETTER_HEADERS),
    },
    "payload": {"description": "The original record's value, byte for byte."},
    "correlationId": CORRELATION_ID,
    "bindings": {
        "kafka": {"key": {"type": "string", "description": "The original record's key."}, "bindingVersion": KAFKA_BINDING}
    },
}


def _ref(*path: str) -> dict:
    return {"$ref": "#/" + "/".join(path)}


def _group_binding(group: str) -> dict:
    return {"kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": KAFKA_BINDING}}


# --- the document ----------------------------------------------------------------------------


def document() -> dict:
    payloads, shared = _payloads()
    channels, operations = {}, {}

    # A channel's id is its topic's name: readable in refs, and unique by definition.
    for topic in Topics.DOMAIN:
        published = {t: cls for t, cls in EVENT_TYPES.items() if cls.topic == topic}
        context = next(iter(published.values())).context
        keyed_by = "the order id (a stock level: its sku)" if StockLevelChanged in published.values() else "the order id"
        channels[topic] = {
            "address": topic,
            "title": f"{context.capitalize()} events",
            "description": f"Every event the {context} context publishes, as CloudEvents in binary mode, keyed by {keyed_by}.",
            "messages": {t: _ref("components", "messages", t) for t in published},
        }
        operations[f"{context}.publish"] = {
            "action": "send",
            "title": f"The {context} service publishes",
            "description": "Through its outbox: an event is sent after the transaction that decided it commits.",
            "channel": _ref("channels", topic),
            "messages": [_ref("channels", topic, "messages", t) for t in published],
        }

    # A consumer group subscribes to whole topics and skips the types it has no handler for: one
    # receive operation per topic it reads, listing what it handles there.
    for service, handled in CONSUMERS.items():
        group = consumer_group(service)
        for topic in Topics.DOMAIN:
            here = [cls.event_type() for cls in EVENT_TYPES.values() if cls in handled and cls.topic == topic]
            if here:
                operations[f"{group}.receive.{topic}"] = {
                    "action": "receive",
                    "title": f"{group} reads {topic}",
                    "channel": _ref("channels", topic),
                    "messages": [_ref("channels", topic, "messages", t) for t in here],
                    "bindings": _group_binding(group),
                }
        dead_letters = Topics.dead_letter(group)
        channels[dead_letters] = {
            "address": dead_letters,
            "title": f"{group} dead letters",
            "description": f"What `{group}` could never process. The monitor reads it; an operator redrives a dead letter "
            "(`POST /api/v1/admin/dead-letters/{id}/redrive`) onto its original topic once the cause is fixed.",
            "messages": {"DeadLetter": _ref("components", "messages", "DeadLetter")},
        }
        operations[f"{group}.deadLetter"] = {
            "action": "send",
            "title": f"{group} parks what it cannot process",
            "channel": _ref("channels", dead_letters),
            "messages": [_ref("channels", dead_letters, "messages", "DeadLetter")],
        }
        operations[f"{DEAD_LETTER_READER}.receive.{dead_letters}"] = {
            "action": "receive",
            "title": f"The monitor collects {group}'s dead letters",
            "channel": _ref("channels", dead_letters),
            "messages": [_ref("channels", dead_letters, "messages", "DeadLetter")],
            "bindings": _group_binding(DEAD_LETTER_READER),
        }

    doc = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Concerto domain events",
            "version": version("concerto-contracts"),
            "description": "The events Concerto's bounded contexts publish to each other on Kafka: one topic per "
            "publishing context, every event a CloudEvent 1.0 in binary mode (attributes in `ce_*` headers, JSON data "
            "in the value, the order id as the key). Generated from `concerto_contracts`: "
            "`python -m concerto_contracts.asyncapi`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The local development broker (no TLS, no authentication).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {"CloudEventHeaders": CLOUDEVENT_HEADERS, **shared, **payloads},
            "messages": {
                **{event_type: _message(event_type, cls) for event_type, cls in EVENT_TYPES.items()},
                "DeadLetter": DEAD_LETTER_MESSAGE,
            },
        },
    }
    # A plain-JSON copy of its own: it shares nothing with the constants above, so a caller may change it.
    return json.loads(json.dumps(doc))


# --- YAML ------------------------------------------------------------------------------------


def to_yaml(doc: dict) -> str:
    """Keys in the order the document builds them (not sorted: `asyncapi` and `info` come first),
    which is fixed by the code, so a re-export gives a clean diff."""
    class Dumper(yaml.SafeDumper):  # our own, so the representer below changes no one else's
        pass

    def text(dumper, value: str):
        # Docstrings keep their line breaks as readable `|` blocks rather than "...\n..." strings.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


def to_json(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def export(path: Path = DEFAULT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(document()))
    return path


if __name__ == "__main__":
    print(export(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH))
