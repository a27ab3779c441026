"""The published JSON Schemas: one per event, released only if compatible (ADR 15); and what
the events must never carry."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from concerto_contracts import EVENT_TYPES, envelope
from concerto_contracts.compatibility import check, released
from concerto_contracts.envelope import KafkaRecord, encode
from concerto_contracts.events import FulfillmentCancelled, FulfillmentEvent, OrderConfirmed, PaymentCompleted, ShipmentDispatched
from concerto_contracts.schemas import IncompatibleSchemas, export, schemas

DOCS = Path(__file__).resolve().parents[3] / "docs" / "contracts"
RELEASE = "run `.venv/bin/python -m concerto_contracts.schemas docs/contracts` (it refuses an incompatible change)"


def test_there_is_a_schema_per_event_type():
    assert set(schemas()) == set(EVENT_TYPES)
    for event_type, schema in schemas().items():
        assert schema["$id"] == event_type
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False


def test_a_field_with_a_default_is_not_required():
    # `required` is what a reader may rely on in every event of the type, old ones included; a
    # field given a default may be missing from events published before it was added.
    # (pydantic's json_schema_serialization_defaults_required would break this: keep it off.)
    schema = schemas()[FulfillmentCancelled.event_type()]
    assert "released_items" in schema["properties"] and "released_items" not in schema["required"]


# --- the gate: the code against the released schemas (docs/contracts) -------------------------


def test_the_code_is_compatible_with_the_released_schemas():
    assert DOCS.is_dir(), f"{DOCS} is missing: {RELEASE}"
    problems = check(released(DOCS), schemas())
    assert not problems, "breaking changes to released events:\n\n" + "\n\n".join(problems)


def test_every_compatible_change_is_released(tmp_path):
    # Byte for byte, so a release leaves a clean git diff and the docs never lag behind the code.
    written = export(tmp_path / "contracts")
    assert len(written) == len(EVENT_TYPES)
    for path in written:
        committed = DOCS / path.name
        assert committed.exists(), f"{path.name}: a new event type, not yet released: {RELEASE}"
        assert path.read_text() == committed.read_text(), (
            f"{path.name} differs from the code. A compatible change not yet released: {RELEASE}. "
            "An incompatible one: see test_the_code_is_compatible_with_the_released_schemas"
        )


COMPLETED, CANCELLED, PAID, FAILED, DISPATCHED = (
    "concerto.order.OrderCompleted.v1",
    "concerto.order.OrderCancelled.v1",
    "concerto.payment.PaymentCompleted.v1",
    "concerto.payment.PaymentFailed.v1",
    "concerto.fulfillment.ShipmentDispatched.v1",
)


def _changed(event_type: str, change) -> list[str]:
    """The gate's verdict on a copy of the released schemas with `change` applied to one."""
    old = released(DOCS)
    new = copy.deepcopy(old)
    change(new[event_type])
    return check(old, new)


def _only(problems: list[str], event_type: str, *words: str) -> str:
    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.startswith(f"{event_type}: ")
    for word in words:
        assert word in problem, problem
    # Both remedies, every time.
    assert "optional field with a default" in problem, problem
    assert event_type.removesuffix(".v1") + ".v2" in problem and 'version "v2"' in problem, problem
    return problem


def _remove_total(schema: dict) -> None:
    del schema["properties"]["total"]
    schema["required"].remove("total")


def test_gate_a_removed_field_breaks():
    problem = _only(_changed(COMPLETED, _remove_total), COMPLETED, "field 'total' was removed")
    assert problem.startswith("concerto.order.OrderCompleted.v1: field 'total' was removed.")


def test_gate_a_removed_field_of_a_nested_value_breaks():
    # Through $ref into $defs: PaymentCompleted.order is an OrderSnapshot, its customer a CustomerSnapshot.
    _only(_changed(PAID, lambda s: s["$defs"]["CustomerSnapshot"]["properties"].pop("tier")), PAID, "field 'order.customer.tier' was removed")


def test_gate_a_changed_type_breaks():
    def to_number(schema):
        schema["properties"]["total"]["type"] = "number"

    _only(_changed(COMPLETED, to_number), COMPLETED, "field 'total'", "changed type from string to number")


def test_gate_a_changed_format_breaks():
    def to_date(schema):
        schema["properties"]["dispatched_at"]["format"] = "date"

    _only(_changed(DISPATCHED, to_date), DISPATCHED, "field 'dispatched_at'", "string (date-time) to string (date)")


def test_gate_a_changed_type_in_an_array_of_values_breaks():
    def quantity_as_text(schema):
        schema["$defs"]["LineItem"]["properties"]["quantity"]["type"] = "string"

    _only(_changed(PAID, quantity_as_text), PAID, "field 'order.items[].quantity'", "integer to string")


def test_gate_a_ref_to_a_different_shape_breaks():
    def card_without_last4(schema):
        schema["$defs"]["BrandOnly"] = {"type": "object", "properties": {"brand": {"type": "string"}}, "required": ["brand"]}
        schema["properties"]["card"]["anyOf"][0] = {"$ref": "#/$defs/BrandOnly"}

    _only(_changed(FAILED, card_without_last4), FAILED, "field 'card.last4' was removed")


def test_gate_a_ref_to_a_renamed_definition_of_the_same_shape_passes():
    def rename(schema):
        schema["$defs"]["Card"] = schema["$defs"].pop("MaskedCard")
        schema["properties"]["card"]["anyOf"][0] = {"$ref": "#/$defs/Card"}

    assert _changed(FAILED, rename) == []


def test_gate_removing_null_breaks():
    def not_nullable(schema):
        schema["properties"]["card"] = schema["properties"]["card"]["anyOf"][0]

    _only(_changed(FAILED, not_nullable), FAILED, "field 'card' is no longer nullable")


def test_gate_allowing_null_breaks():
    def nullable(schema):
        schema["properties"]["reason"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Reason"}

    _only(_changed(FAILED, nullable), FAILED, "field 'reason' became nullable")


def test_gate_a_new_required_field_breaks():
    def gift_wrap(schema):
        schema["properties"]["gift_wrap"] = {"type": "boolean"}
        schema["required"].append("gift_wrap")

    _only(_changed(COMPLETED, gift_wrap), COMPLETED, "new required field 'gift_wrap'", "retained events lack it")


def test_gate_an_optional_field_made_required_breaks():
    _only(_changed(COMPLETED, lambda s: s["required"].append("tracking_number")), COMPLETED, "field 'tracking_number' became required")


def test_gate_a_required_field_made_optional_breaks():
    _only(_changed(COMPLETED, lambda s: s["required"].remove("customer_id")), COMPLETED, "field 'customer_id' is no longer required")


def _with_reasons(schema: dict, *reasons: str) -> None:
    schema["properties"]["reason"]["enum"] = list(reasons)


def test_gate_a_narrowed_enum_breaks():
    # No released event has an enum yet: give OrderCancelled.reason one, then narrow it.
    old = released(DOCS)
    _with_reasons(old[CANCELLED], "out_of_stock", "customer_cancelled", "payment_timeout")
    new = copy.deepcopy(old)
    _with_reasons(new[CANCELLED], "out_of_stock", "customer_cancelled")
    _only(check(old, new), CANCELLED, "field 'reason' narrowed its enum", "payment_timeout")


def test_gate_a_widened_enum_breaks_too():
    # Our consumers validate: a v1 consumer would refuse the new value (UndecodableEvent).
    old = released(DOCS)
    _with_reasons(old[CANCELLED], "out_of_stock")
    new = copy.deepcopy(old)
    _with_reasons(new[CANCELLED], "out_of_stock", "lost_in_transit")
    _only(check(old, new), CANCELLED, "field 'reason' widened its enum", "lost_in_transit")


def test_gate_a_changed_const_breaks():
    old = released(DOCS)
    old[COMPLETED]["properties"]["currency"]["const"] = "EUR"
    new = copy.deepcopy(old)
    new[COMPLETED]["properties"]["currency"]["const"] = "GBP"
    _only(check(old, new), COMPLETED, "field 'currency' changed its const")


def test_gate_a_changed_constraint_breaks():
    def four_letters(schema):
        schema["properties"]["currency"]["pattern"] = "^[A-Z]{4}$"

    _only(_changed(COMPLETED, four_letters), COMPLETED, "field 'currency' changed its constraint 'pattern'")


def test_gate_a_removed_event_type_breaks():
    old = released(DOCS)
    new = {event_type: schema for event_type, schema in old.items() if event_type != COMPLETED}
    _only(check(old, new), COMPLETED, "the event type was removed")


def test_gate_a_new_optional_field_passes():
    def gift_note(schema):
        schema["properties"]["gift_note"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Gift Note"}

    assert _changed(COMPLETED, gift_note) == []


def test_gate_a_new_event_type_and_new_words_pass():
    old = released(DOCS)
    new = copy.deepcopy(old)
    new["concerto.order.OrderCompleted.v2"] = copy.deepcopy(old[COMPLETED])
    new[COMPLETED]["description"] = "Deprecated: read concerto.order.OrderCompleted.v2."
    new[COMPLETED]["properties"]["total"]["title"] = "Total paid"
    assert check(old, new) == []


def test_release_refuses_an_incompatible_change_and_writes_nothing(tmp_path):
    directory = tmp_path / "contracts"
    export(directory)
    path = directory / f"{COMPLETED}.schema.json"
    schema = json.loads(path.read_text())
    schema["properties"]["gift_wrap"] = {"type": "boolean"}  # released once, now gone from the code
    path.write_text(json.dumps(schema))
    before = {p.name: p.read_text() for p in directory.iterdir()}

    with pytest.raises(IncompatibleSchemas) as refused:
        export(directory)

    [problem] = refused.value.problems
    assert problem.startswith(f"{COMPLETED}: field 'gift_wrap' was removed.")
    assert {p.name: p.read_text() for p in directory.iterdir()} == before


def test_release_writes_a_compatible_change(tmp_path):
    directory = tmp_path / "contracts"
    export(directory)
    path = directory / f"{COMPLETED}.schema.json"
    schema = json.loads(path.read_text())
    del schema["properties"]["tracking_number"]  # as if the code had just added it
    path.write_text(json.dumps(schema))

    export(directory)

    assert "tracking_number" in json.loads(path.read_text())["properties"]


# --- one event evolved the compatible way: ShipmentDispatched.estimated_delivery ----------------


class released_v1:  # noqa: N801 - a namespace, so the class keeps its name and so its event type
    class ShipmentDispatched(FulfillmentEvent):
        """ShipmentDispatched as v1 was first released: what a consumer built then still runs."""

        order_id: str
        shipment_id: str
        carrier: str
        tracking_number: str
        dispatched_at: datetime


DISPATCH = {
    "order_id": "ord-1", "shipment_id": "shp-1", "carrier": "royal-parcel", "tracking_number": "RP1",
    "dispatched_at": datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc),
}


def _record(event) -> KafkaRecord:
    return encode(event, source="/concerto/fulfillment", correlation_id="corr-1")


def test_the_released_v1_copy_is_what_was_released():
    old_type = released_v1.ShipmentDispatched.event_type()
    assert old_type == ShipmentDispatched.event_type() == DISPATCHED
    # The copy's schema is the released one without the new field, and the gate accepts the step from it.
    released_as_v1 = {old_type: {"$id": old_type, **released_v1.ShipmentDispatched.model_json_schema(mode="serialization")}}
    now = released(DOCS)[DISPATCHED]
    assert set(now["properties"]) - set(released_as_v1[old_type]["properties"]) == {"estimated_delivery"}
    assert check(released_as_v1, {old_type: now}) == []


def test_a_consumer_built_for_v1_reads_an_event_with_the_new_field(monkeypatch):
    record = _record(ShipmentDispatched(**DISPATCH, estimated_delivery=date(2025, 3, 18)))
    assert json.loads(record.value)["estimated_delivery"] == "2025-03-18"
    # Decoded by the real envelope.decode, with the v1 class in place of today's.
    monkeypatch.setattr(envelope, "event_class", lambda event_type: released_v1.ShipmentDispatched)

    old = envelope.decode(record.headers, record.key, record.value).event

    assert old == released_v1.ShipmentDispatched(**DISPATCH)
    # Only because it reads tolerantly: the published v1 schema and a strict read both refuse
    # the new field (`additionalProperties: false` describes what producers send, not readers).
    with pytest.raises(ValueError):
        released_v1.ShipmentDispatched.model_validate_json(record.value)
    v1_schema = released_v1.ShipmentDispatched.model_json_schema(mode="serialization")
    assert not jsonschema.Draft202012Validator(v1_schema).is_valid(json.loads(record.value))


def test_todays_consumer_reads_an_event_published_before_the_field():
    record = _record(released_v1.ShipmentDispatched(**DISPATCH))
    assert "estimated_delivery" not in json.loads(record.value)

    event = envelope.decode(record.headers, record.key, record.value).event

    assert isinstance(event, ShipmentDispatched) and event.estimated_delivery is None
    # A retained v1 event is valid under the schema released today, too.
    jsonschema.validate(json.loads(record.value), released(DOCS)[DISPATCHED])


# --- what the events must never carry ------------------------------------------------------


def _keys(value) -> set[str]:
    """Every object key anywhere in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {key for child in value.values() for key in _keys(child)}
    if isinstance(value, list):
        return {key for child in value for key in _keys(child)}
    return set()


def _sensitive(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return (
        "token" in name
        or "card_number" in name
        or "cardnumber" in name
        or name in {"pan", "cvv", "cvc", "number"}
        or ("email" in name and name != "email_masked")
    )


def test_sensitive_key_check_catches_what_it_should():
    # Guards the guard: the check below is only worth something if this holds.
    assert all(_sensitive(k) for k in ["token", "card_token", "card_number", "cardNumber", "email", "customer_email", "cvv"])
    assert not any(_sensitive(k) for k in ["email_masked", "payment_method_id", "last4", "brand", "card"])


@pytest.mark.parametrize("cls", [OrderConfirmed, PaymentCompleted], ids=lambda c: c.__name__)
def test_no_card_token_card_number_or_email_on_the_wire(samples, email, cls):
    event = samples[cls]
    document = json.loads(event.model_dump_json())
    keys = _keys(document)
    assert not {k for k in keys if _sensitive(k)}, keys
    assert "email_masked" in keys
    assert email not in event.model_dump_json()
    assert document["order"]["customer"]["email_masked"] == "a***@example.com"
    # The schema cannot admit such a field either (every object forbids extra properties).
    schema = schemas()[cls.event_type()]
    properties = {name for definition in [schema, *schema.get("$defs", {}).values()] for name in definition.get("properties", {})}
    assert not {p for p in properties if _sensitive(p)}, properties
    assert all(d.get("additionalProperties") is False for d in [schema, *schema.get("$defs", {}).values()] if d.get("type") == "object")


@pytest.mark.parametrize("cls", [OrderConfirmed, PaymentCompleted], ids=lambda c: c.__name__)
def test_events_refuse_a_smuggled_email_or_token(samples, cls):
    document = json.loads(samples[cls].model_dump_json())
    document["order"]["customer"]["email"] = "ada@example.com"
    with pytest.raises(ValueError):
        cls.model_validate(document)
    document = json.loads(samples[cls].model_dump_json())
    document["card_token"] = "tok_visa"
    with pytest.raises(ValueError):
        cls.model_validate(document)
