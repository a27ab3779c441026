"""The published JSON Schemas, and what the events must never carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from concerto_contracts import EVENT_TYPES
from concerto_contracts.events import OrderConfirmed, PaymentCompleted
from concerto_contracts.schemas import export, schemas

DOCS = Path(__file__).resolve().parents[3] / "docs" / "contracts"
HINT = "run `python -m concerto_contracts.schemas docs/contracts`"


def _committed() -> dict[str, dict]:
    return {
        path.name.removesuffix(".schema.json"): json.loads(path.read_text())
        for path in sorted(DOCS.glob("*.schema.json"))
    }


def test_there_is_a_schema_per_event_type():
    assert set(schemas()) == set(EVENT_TYPES)
    for event_type, schema in schemas().items():
        assert schema["$id"] == event_type
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False


def test_committed_schemas_match_the_code():
    assert DOCS.is_dir(), f"{DOCS} is missing: {HINT}"
    committed = _committed()
    generated = {event_type: json.loads(json.dumps(schema)) for event_type, schema in schemas().items()}

    missing = sorted(set(generated) - set(committed))
    stale = sorted(set(committed) - set(generated))
    assert not missing, f"no committed schema for {missing}: {HINT}"
    assert not stale, f"committed schemas for events that no longer exist {stale}: {HINT}"
    changed = sorted(event_type for event_type in generated if generated[event_type] != committed[event_type])
    assert not changed, f"committed schemas differ from the code for {changed}: {HINT}"


def test_export_writes_what_is_committed(tmp_path):
    # Byte for byte, so a re-export leaves a clean git diff.
    written = export(tmp_path / "contracts")
    assert len(written) == len(EVENT_TYPES)
    for path in written:
        committed = DOCS / path.name
        assert committed.exists(), f"{path.name} is not committed: {HINT}"
        assert path.read_text() == committed.read_text(), f"{path.name} differs: {HINT}"


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
