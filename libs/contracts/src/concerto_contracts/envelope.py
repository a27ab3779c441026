"""CloudEvents 1.0 in Kafka binary content mode: attributes in `ce_*` headers, JSON data in
the value, the order id as the key. The cloudevents SDK does the mapping; this module adds
the typed side: our event classes and the correlation/causation extensions."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from concerto_contracts.events import DomainEvent, event_class
from concerto_contracts.values import TOLERANT

_FORMAT = JSONFormat()


class UndecodableEvent(ValueError):
    """A message that can never be processed, however often it is retried."""


@dataclass(frozen=True)
class Envelope:
    """A domain event with the CloudEvent attributes it travelled with."""

    id: str
    type: str
    source: str
    time: datetime
    correlation_id: str
    causation_id: str | None
    traceparent: str | None
    event: DomainEvent

    @property
    def key(self) -> str:
        return self.event.key


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode(
    event: DomainEvent,
    *,
    source: str,
    correlation_id: str,
    causation_id: str | None = None,
    traceparent: str | None = None,
    event_id: str | None = None,
) -> KafkaRecord:
    attributes = {
        "id": event_id or str(uuid.uuid4()),
        "type": event.event_type(),
        "source": source,
        "subject": event.key,
        "time": datetime.now(timezone.utc),
        "datacontenttype": "application/json",
        "correlationid": correlation_id,
        "partitionkey": event.key,
    }
    if causation_id:
        attributes["causationid"] = causation_id
    if traceparent:
        attributes["traceparent"] = traceparent
    data = json.loads(event.model_dump_json())
    message = kafka.to_binary(CloudEvent(attributes=attributes, data=data), _FORMAT)
    return KafkaRecord(
        topic=event.topic,
        key=event.key.encode(),
        value=message.value,
        headers=list(message.headers.items()),
    )


def decode(headers: list[tuple[str, bytes]] | tuple, key: bytes | None, value: bytes | None) -> Envelope:
    """Raises UndecodableEvent for anything that is not one of our valid events."""
    if not any(name.lower() == "ce_id" for name, _ in headers):
        # The SDK would invent an id, and every redelivery would then slip past the inbox.
        raise UndecodableEvent("not a binary-mode CloudEvent: missing ce_id")
    try:
        message = kafka.KafkaMessage(headers=dict(headers), key=key, value=value or b"")
        cloud_event = kafka.from_binary(message, _FORMAT)
    except Exception as exc:  # the SDK raises several types for a malformed message
        raise UndecodableEvent(f"not a binary-mode CloudEvent: {exc}") from exc
    attributes = cloud_event.get_attributes()
    cls = event_class(attributes["type"])
    if cls is None:
        raise UndecodableEvent(f"unknown event type {attributes['type']!r}")
    if "correlationid" not in attributes:
        raise UndecodableEvent("missing correlationid extension")
    try:
        event = cls.model_validate(cloud_event.get_data(), context=TOLERANT)  # unknown fields ignored
    except ValidationError as exc:
        raise UndecodableEvent(f"invalid {cls.__name__} data: {exc}") from exc
    return Envelope(
        id=attributes["id"],
        type=attributes["type"],
        source=attributes["source"],
        time=attributes["time"],
        correlation_id=attributes["correlationid"],
        causation_id=attributes.get("causationid"),
        traceparent=attributes.get("traceparent"),
        event=event,
    )
