"""CloudEvents binary-mode envelope: what goes on the wire and what comes back from it."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone

import pytest

from concerto_contracts import EVENT_TYPES, KafkaRecord, Topics, UndecodableEvent, decode, encode, event_class
from concerto_contracts.events import OrderCancelled, OrderConfirmed, StockLevelChanged

SOURCE = "urn:concerto:test"


def test_samples_cover_every_event_type(samples):
    # A new event in the contract must get a sample here, so the round trip below covers it.
    assert {cls.event_type() for cls in samples} == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_round_trip_keeps_attributes_and_data(samples, event_type):
    cls = EVENT_TYPES[event_type]
    event = samples[cls]
    event_id, correlation_id, causation_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    before = datetime.now(timezone.utc)

    record = encode(
        event,
        source=SOURCE,
        correlation_id=correlation_id,
        causation_id=causation_id,
        traceparent=traceparent,
        event_id=event_id,
    )
    headers = dict(record.headers)
    envelope = decode(record.headers, record.key, record.value)

    assert envelope.id == event_id
    assert envelope.type == event_type
    assert envelope.source == SOURCE
    assert envelope.correlation_id == correlation_id
    assert envelope.causation_id == causation_id
    assert envelope.traceparent == traceparent
    assert before <= envelope.time <= datetime.now(timezone.utc)
    assert envelope.event == event
    assert type(envelope.event) is cls
    # The subject travels as ce_subject and is the entity the event is about, like the key.
    assert headers["ce_subject"] == envelope.key.encode()
    assert record.topic == cls.topic


def test_causation_and_traceparent_are_optional(samples):
    event = samples[OrderCancelled]
    record = encode(event, source=SOURCE, correlation_id="corr-1")
    names = [name for name, _ in record.headers]
    assert "ce_causationid" not in names
    assert "ce_traceparent" not in names

    envelope = decode(record.headers, record.key, record.value)
    assert envelope.causation_id is None
    assert envelope.traceparent is None
    assert envelope.correlation_id == "corr-1"
    uuid.UUID(envelope.id)  # a generated id is a UUID


def test_each_encode_gets_a_new_event_id(samples):
    event = samples[OrderCancelled]
    first = dict(encode(event, source=SOURCE, correlation_id="c").headers)["ce_id"]
    second = dict(encode(event, source=SOURCE, correlation_id="c").headers)["ce_id"]
    assert first != second


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_key_is_order_id_or_sku(samples, event_type):
    cls = EVENT_TYPES[event_type]
    event = samples[cls]
    record = encode(event, source=SOURCE, correlation_id="c")
    expected = event.sku if cls is StockLevelChanged else event.order_id
    assert record.key == expected.encode()
    assert event.key == expected
    assert dict(record.headers)["ce_partitionkey"] == expected.encode()


def test_stock_level_changed_is_keyed_by_sku(samples):
    record = encode(samples[StockLevelChanged], source=SOURCE, correlation_id="c")
    assert record.key == b"CON-BATON"
    assert record.topic == Topics.FULFILLMENT


def test_binary_mode_headers_and_json_value(samples):
    event = samples[OrderCancelled]
    record = encode(event, source=SOURCE, correlation_id="corr-1", causation_id="cause-1")

    assert isinstance(record, KafkaRecord)
    names = [name for name, _ in record.headers]
    assert len(names) == len(set(names)), names
    assert all(isinstance(value, bytes) for _, value in record.headers)
    # Binary content mode: every attribute is a ce_ header, datacontenttype is content-type.
    assert all(name.startswith("ce_") or name == "content-type" for name in names), names
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/json"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"concerto.order.OrderCancelled.v1"
    assert headers["ce_source"] == SOURCE.encode()
    assert headers["ce_correlationid"] == b"corr-1"
    assert headers["ce_causationid"] == b"cause-1"
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", headers["ce_time"]), headers["ce_time"]
    # ...and the value is the event's data alone, not a structured-mode envelope.
    data = json.loads(record.value)
    assert "specversion" not in data
    assert OrderCancelled.model_validate(data) == event


def _good(samples) -> KafkaRecord:
    return encode(samples[OrderCancelled], source=SOURCE, correlation_id="corr-1")


def _without(headers, *names):
    return [(name, value) for name, value in headers if name not in names]


def _replace(headers, name, value):
    return [(n, value if n == name else v) for n, v in headers]


def test_decode_accepts_headers_as_tuple_like_aiokafka(samples):
    record = _good(samples)
    assert decode(tuple(record.headers), record.key, record.value).event == samples[OrderCancelled]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda r: (r.headers, r.key, b"not json"), id="garbage-value"),
        pytest.param(lambda r: (r.headers, r.key, b"\x00\xff\xfe"), id="binary-garbage-value"),
        pytest.param(lambda r: (r.headers, r.key, None), id="no-value"),
        pytest.param(lambda r: ([], r.key, r.value), id="no-headers"),
        pytest.param(lambda r: ([("content-type", b"application/json")], r.key, r.value), id="no-ce-headers"),
        pytest.param(lambda r: (_without(r.headers, "ce_type"), r.key, r.value), id="missing-ce_type"),
        pytest.param(lambda r: (_without(r.headers, "ce_source"), r.key, r.value), id="missing-ce_source"),
        pytest.param(lambda r: (_replace(r.headers, "ce_time", b"yesterday"), r.key, r.value), id="bad-ce_time"),
        pytest.param(lambda r: (_replace(r.headers, "ce_id", b"\xff\xfe"), r.key, r.value), id="non-utf8-header"),
        pytest.param(
            lambda r: (_replace(r.headers, "ce_type", b"concerto.order.OrderExploded.v1"), r.key, r.value),
            id="unknown-type",
        ),
        pytest.param(
            lambda r: (_replace(r.headers, "ce_type", b"concerto.order.OrderCancelled.v2"), r.key, r.value),
            id="unknown-version",
        ),
        pytest.param(lambda r: (r.headers, r.key, b'{"order_id": "ord-1"}'), id="invalid-data-missing-fields"),
        pytest.param(
            lambda r: (r.headers, r.key, r.value.replace(b'"EUR"', b'"euro"')),
            id="invalid-data-bad-currency",
        ),
        pytest.param(lambda r: (r.headers, r.key, b"[1, 2, 3]"), id="invalid-data-not-object"),
        pytest.param(lambda r: (_without(r.headers, "ce_correlationid"), r.key, r.value), id="missing-correlationid"),
    ],
)
def test_decode_rejects_what_can_never_be_processed(samples, mangle):
    record = _good(samples)
    assert decode(record.headers, record.key, record.value)  # the unmangled record is fine
    headers, key, value = mangle(record)
    with pytest.raises(UndecodableEvent):
        decode(headers, key, value)


def test_decode_ignores_fields_it_does_not_know_while_building_an_event_refuses_them(samples):
    """Consumers read tolerantly, producers stay strict: a field a newer producer adds (at the
    top or inside a value) never breaks an older consumer, and our own code cannot publish a
    field the contract does not have."""
    event = samples[OrderConfirmed]
    record = encode(event, source=SOURCE, correlation_id="corr-1")
    document = json.loads(record.value)
    document["gift_wrap"] = True
    document["order"]["customer"]["nickname"] = "Ada"

    decoded = decode(record.headers, record.key, json.dumps(document).encode())

    assert decoded.event == event
    with pytest.raises(ValueError, match="gift_wrap"):
        OrderConfirmed.model_validate({**json.loads(record.value), "gift_wrap": True})


def test_undecodable_event_explains_why(samples):
    record = _good(samples)
    with pytest.raises(UndecodableEvent, match="unknown event type"):
        decode(_replace(record.headers, "ce_type", b"concerto.order.Nope.v1"), record.key, record.value)
    with pytest.raises(UndecodableEvent, match="correlationid"):
        decode(_without(record.headers, "ce_correlationid"), record.key, record.value)
    with pytest.raises(UndecodableEvent, match="invalid OrderCancelled data"):
        decode(record.headers, record.key, b'{"order_id": "ord-1"}')
    # It is a ValueError, so generic callers treat it as bad input.
    assert issubclass(UndecodableEvent, ValueError)


TYPE_PATTERN = re.compile(r"concerto\.(order|payment|fulfillment|loyalty|monitor)\.([A-Z][A-Za-z]+)\.v1")


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_type_names_context_class_and_version(event_type):
    cls = EVENT_TYPES[event_type]
    match = TYPE_PATTERN.fullmatch(event_type)
    assert match, f"{event_type} is not concerto.<context>.<Name>.v1"
    context, name = match.groups()
    assert name == cls.__name__
    assert context == cls.context
    assert cls.event_type() == event_type
    assert event_class(event_type) is cls
    # Each context publishes on its own topic.
    assert cls.topic == getattr(Topics, context.upper())


def test_event_class_of_unknown_type_is_none():
    assert event_class("concerto.order.OrderConfirmed.v2") is None
    assert event_class("") is None


def test_dead_letter_topic_is_per_consumer_group():
    assert Topics.dead_letter("loyalty") == "loyalty.dlq"
