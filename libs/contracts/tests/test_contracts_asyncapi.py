"""The AsyncAPI document: valid against the AsyncAPI 3.0.0 JSON Schema shipped in the repo, the
same as the checked-in copy, complete, and true to what the code puts on the wire."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
import types
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from concerto_contracts import EVENT_TYPES, Topics, encode
from concerto_contracts.asyncapi import (
    CONSUMERS,
    DEAD_LETTER_READER,
    consumer_group,
    document,
    export,
    to_json,
    to_yaml,
)

ROOT = Path(__file__).resolve().parents[3]
CHECKED_IN = ROOT / "docs" / "contracts" / "asyncapi.yaml"
SPEC = ROOT / "docs" / "contracts" / "specs" / "asyncapi-3.0.0.schema.json"
HINT = "regenerate it: `.venv/bin/python -m concerto_contracts.asyncapi` (from the repository root)"


@pytest.fixture(scope="module")
def doc() -> dict:
    return document()


@pytest.fixture(scope="module")
def spec_validator() -> jsonschema.protocols.Validator:
    spec = json.loads(SPEC.read_text())
    cls = jsonschema.validators.validator_for(spec)  # draft-07, as its $schema says
    cls.check_schema(spec)
    return cls(spec)


# --- valid AsyncAPI 3.0.0 ----------------------------------------------------------------------


def test_the_document_is_valid_asyncapi_3(doc, spec_validator):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in spec_validator.iter_errors(doc)]
    assert not errors, "\n".join(errors)


def _broken(doc: dict, how: str) -> dict:
    broken = copy.deepcopy(doc)
    if how == "asyncapi-2-publish":
        next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2's word
    elif how == "channel-address-not-a-string":
        broken["channels"][Topics.ORDER]["address"] = 42
    elif how == "unknown-channel-field":
        broken["channels"][Topics.ORDER]["topic"] = Topics.ORDER
    elif how == "asyncapi-2-version":
        broken["asyncapi"] = "2.6.0"
    elif how == "operation-without-channel":
        del next(iter(broken["operations"].values()))["channel"]
    elif how == "bad-kafka-binding-version":
        next(iter(broken["components"]["messages"].values()))["bindings"]["kafka"]["bindingVersion"] = "9.9.9"
    return broken


@pytest.mark.parametrize(
    "how",
    [
        "asyncapi-2-publish",
        "channel-address-not-a-string",
        "unknown-channel-field",
        "asyncapi-2-version",
        "operation-without-channel",
        "bad-kafka-binding-version",
    ],
)
def test_the_check_refuses_a_broken_document(doc, spec_validator, how):
    # Guards the guard: the validation above is worth something only if it can fail.
    assert spec_validator.is_valid(doc)
    assert not spec_validator.is_valid(_broken(doc, how))


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return [value if key == "$ref" else ref for key, value in node.items() for ref in ([value] if key == "$ref" else _refs(value))]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_every_ref_points_into_the_document(doc):
    # The specification's schema does not follow refs: a dangling one would pass it.
    refs = set(_refs(doc))
    assert refs and all(ref.startswith("#/") for ref in refs), refs
    for ref in sorted(refs):
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} points nowhere"
            node = node[part]
    assert not any("$defs" in ref for ref in refs)


# --- the checked-in copy -----------------------------------------------------------------------


def test_the_checked_in_document_is_what_the_code_generates(doc):
    assert CHECKED_IN.exists(), f"{CHECKED_IN} is missing: {HINT}"
    assert CHECKED_IN.read_text() == to_yaml(doc), f"{CHECKED_IN.relative_to(ROOT)} is stale: {HINT}"


def test_export_writes_yaml_that_reads_back_as_the_document(doc, tmp_path):
    path = export(tmp_path / "contracts" / "asyncapi.yaml")
    assert yaml.safe_load(path.read_text()) == doc
    assert json.loads(to_json(doc)) == doc
    assert to_yaml(document()) == path.read_text(), "two exports differ: the order is not stable"


# --- complete ------------------------------------------------------------------------------------


def test_every_event_is_a_message_with_its_payload_headers_key_and_correlation_id(doc):
    messages, schemas = doc["components"]["messages"], doc["components"]["schemas"]
    for event_type, cls in EVENT_TYPES.items():
        message = messages[event_type]
        assert message["name"] == cls.__name__
        assert message["contentType"] == "application/json"
        assert message["payload"] == {"$ref": f"#/components/schemas/{event_type}"}
        assert schemas[event_type]["title"] == cls.__name__
        assert message["correlationId"]["location"] == "$message.header#/ce_correlationid"
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["bindings"]["kafka"]["bindingVersion"]
        if cls.__doc__:
            assert message["summary"] in " ".join(cls.__doc__.split())
        # ...and the event's topic's channel carries it.
        assert doc["channels"][cls.topic]["messages"][event_type] == {"$ref": f"#/components/messages/{event_type}"}


def test_every_topic_and_every_dead_letter_topic_is_a_channel(doc):
    addresses = {channel["address"] for channel in doc["channels"].values()}
    dead_letters = {Topics.dead_letter(consumer_group(service)) for service in CONSUMERS}
    assert addresses == set(Topics.DOMAIN) | dead_letters
    assert all(re.fullmatch(Topics.DEAD_LETTER_PATTERN, topic) for topic in dead_letters)
    assert dead_letters == {"order-service.dlq", "payment-service.dlq", "fulfillment-service.dlq", "loyalty-service.dlq", "monitor-service.dlq"}


def _operations(doc: dict, action: str, channel: str) -> dict[str, set[str]]:
    """Operation id -> the event types it names, for one action on one channel."""
    return {
        name: {ref["$ref"].rsplit("/", 1)[1] for ref in operation["messages"]}
        for name, operation in doc["operations"].items()
        if operation["action"] == action and operation["channel"] == {"$ref": f"#/channels/{channel}"}
    }


def test_each_context_sends_its_events_and_each_group_receives_what_it_handles(doc):
    for topic in Topics.DOMAIN:
        sent = _operations(doc, "send", topic)
        assert len(sent) == 1, sent
        assert set(*sent.values()) == {t for t, cls in EVENT_TYPES.items() if cls.topic == topic}
    for service, handled in CONSUMERS.items():
        group = consumer_group(service)
        received = set()
        for topic in Topics.DOMAIN:
            for name, types_ in _operations(doc, "receive", topic).items():
                if doc["operations"][name]["bindings"]["kafka"]["groupId"]["enum"] == [group]:
                    received |= types_
        assert received == {cls.event_type() for cls in handled}, group
        dead_letters = Topics.dead_letter(group)
        assert len(_operations(doc, "send", dead_letters)) == 1
        assert len(_operations(doc, "receive", dead_letters)) == 1


# --- true to the wire ------------------------------------------------------------------------------


def _validator(doc: dict, pointer: str) -> jsonschema.protocols.Validator:
    """A validator for the schema at `pointer`, its refs resolved inside the document (as an
    AsyncAPI tool resolves them)."""
    registry = Registry().with_resource("urn:asyncapi", Resource.from_contents(doc, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:asyncapi#{pointer}"}, registry=registry, format_checker=jsonschema.FormatChecker()
    )


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_what_encode_puts_on_the_wire_matches_the_message(doc, samples, event_type):
    event = samples[EVENT_TYPES[event_type]]
    message = f"/components/messages/{event_type}"
    for record in (
        encode(event, source="/concerto/test", correlation_id="corr-1"),
        encode(event, source="/concerto/test", correlation_id="corr-1", causation_id="cause-1", traceparent="00-ab-cd-01"),
    ):
        headers = {name: value.decode() for name, value in record.headers}
        _validator(doc, f"{message}/headers").validate(headers)
        _validator(doc, f"{message}/payload").validate(json.loads(record.value))
        assert record.topic == doc["channels"][record.topic]["address"]
    # The headers schema names each header encode writes, and nothing it does not.
    declared = set(doc["components"]["schemas"]["CloudEventHeaders"]["properties"])
    assert set(headers) == declared
    other_type = next(t for t in EVENT_TYPES if t != event_type)
    assert not _validator(doc, f"{message}/headers").is_valid({**headers, "ce_type": other_type})
    assert not _validator(doc, f"{message}/headers").is_valid({k: v for k, v in headers.items() if k != "ce_correlationid"})


async def test_the_dead_letter_message_describes_what_the_consumer_sends(doc, samples):
    from concerto_messaging import consumer

    record = encode(next(iter(samples.values())), source="/concerto/test", correlation_id="corr-1")
    sent = []

    async def send_and_wait(topic, *, key, value, headers):
        sent.append((topic, key, value, headers))

    group = consumer_group("loyalty")
    # A real consumer (its Kafka client connects only when it starts) with a producer that records.
    parking = consumer.EventConsumer(
        group_id=group, topics=[], handlers={}, sessions=None, bootstrap_servers="127.0.0.1:9",
        producer=types.SimpleNamespace(send_and_wait=send_and_wait),
    )  # fmt: skip
    read = types.SimpleNamespace(topic=record.topic, partition=3, offset=17, key=record.key, value=record.value, headers=record.headers)
    try:
        await parking._dead_letter(read, reason="rejected", error="InvalidEvent: no")
    finally:
        await parking._consumer.stop()  # never started; closes its client

    [(topic, key, value, headers)] = sent
    assert (topic, key, value) == (Topics.dead_letter(group), record.key, record.value)
    as_text = {name: raw.decode() for name, raw in headers}
    _validator(doc, "/components/messages/DeadLetter/headers").validate(as_text)
    declared = doc["components"]["messages"]["DeadLetter"]["headers"]
    assert {name for name in as_text if name.startswith("dlq_")} == set(declared["required"])
    # Every reason the consumer gives is one the document names.
    reasons = set(re.findall(r'reason="(\w+)"', inspect.getsource(consumer)))
    assert reasons == set(declared["properties"]["dlq_reason"]["enum"])


# --- who consumes what: the table against the services ---------------------------------------------


def _service_definitions() -> dict:
    """Every service with a ServiceDefinition: services/<name>/src/concerto_<name>/service.py."""
    found = {}
    for path in sorted(ROOT.glob("services/*/src/concerto_*/service.py")):
        definition = importlib.import_module(f"{path.parent.name}.service").definition
        found[definition.name] = definition
    return found


def test_the_consumers_table_matches_the_services_handlers():
    definitions = _service_definitions()
    assert definitions, "no service found"
    # Building the handler map only defines closures: no runtime is touched.
    consuming = {
        name: {cls.event_type() for cls in definition.handlers(types.SimpleNamespace())}
        for name, definition in definitions.items()
    }
    consuming = {name: handled for name, handled in consuming.items() if handled}
    assert consuming == {service: {cls.event_type() for cls in handled} for service, handled in CONSUMERS.items()}
    # ...and each publishes on its context's topic, which the send operations assume.
    for name, definition in definitions.items():
        assert list(definition.publishes) == [getattr(Topics, name.upper())], name


def test_the_group_names_follow_the_runtime():
    from concerto_monitor.adapters import dead_letters
    from concerto_runtime import service

    assert 'group = f"{definition.name}-service"' in inspect.getsource(service.create_app)
    assert consumer_group("order") == "order-service"
    assert DEAD_LETTER_READER == dead_letters.GROUP
