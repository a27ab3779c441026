"""Lab 5's checks: TierChanged evolved without breaking a reader. The gate passes against what
was released, the new field is released (schema and AsyncAPI document), a consumer built for the
released v1 reads what loyalty now publishes, and the order service reads old and new events."""

from __future__ import annotations

import json
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from concerto_contracts import Topics, asyncapi, envelope
from concerto_contracts.compatibility import check, released
from concerto_contracts.envelope import encode
from concerto_contracts.events import LoyaltyEvent, TierChanged
from concerto_contracts.schemas import schemas
from concerto_messaging import EventConsumer, UnitOfWork
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.tables import outbox
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import fresh_database

TREE = Path(os.environ.get("LAB_TREE", "."))
CONTRACTS = TREE / "docs" / "contracts"
TIER_CHANGED = "concerto.loyalty.TierChanged.v1"
RELEASE = (
    "release it from .labs/lab-05 with this copy's code first on the path: "
    "PYTHONPATH=$(ls -d libs/*/src | paste -sd:) ../../.venv/bin/python -m concerto_contracts.schemas docs/contracts"
)


class released_v1:  # noqa: N801 - a namespace, so the class keeps its name and so its event type
    class TierChanged(LoyaltyEvent):
        """TierChanged as v1 was released: what the consumers deployed today were built with."""

        customer_id: str
        order_id: str
        old_tier: str
        new_tier: str


def _as_released_at_the_start() -> dict[str, dict]:
    """The schemas as released when the lab began (the starting point's commit), whatever has
    been written to docs/contracts since: the gate must pass against those."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", "HEAD", "docs/contracts/"], cwd=TREE, capture_output=True, text=True, check=True
    ).stdout.split()
    found = {}
    for name in names:
        if name.endswith(".schema.json"):
            text = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=TREE, capture_output=True, text=True, check=True).stdout
            found[Path(name).name.removesuffix(".schema.json")] = json.loads(text)
    return found


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _wire(record) -> ConsumerRecord:
    return ConsumerRecord(
        topic=record.topic, partition=0, offset=0, timestamp=int(time.time() * 1000), timestamp_type=0,
        key=record.key, value=record.value, checksum=None, serialized_key_size=len(record.key),
        serialized_value_size=len(record.value), headers=record.headers,
    )  # fmt: skip


def test_the_gate_passes_against_what_was_released():
    problems = check(_as_released_at_the_start(), schemas())
    assert not problems, "the compatibility gate refuses the change (as released at the start of the lab): " + " | ".join(problems)


def test_the_new_field_is_released():
    schema = released(CONTRACTS).get(TIER_CHANGED, {})
    assert "tier" in schema.get("properties", {}), f"the released TierChanged schema has no `tier` yet: {RELEASE}"
    assert "tier" not in schema["required"], "`tier` is required in the released schema: events published before it lack it, make it optional"
    assert "new_tier" in schema["required"], "`new_tier` must stay in TierChanged v1, required, as released: v1 consumers rely on it"
    current = schemas()[TIER_CHANGED]
    assert schema == json.loads(json.dumps(current)), f"docs/contracts/{TIER_CHANGED}.schema.json differs from the code: {RELEASE}"


def test_the_asyncapi_document_is_regenerated():
    path = CONTRACTS / "asyncapi.yaml"
    assert path.read_text() == asyncapi.to_yaml(asyncapi.document()), (
        "docs/contracts/asyncapi.yaml is stale: regenerate it from .labs/lab-05 with "
        "PYTHONPATH=$(ls -d libs/*/src | paste -sd:) ../../.venv/bin/python -m concerto_contracts.asyncapi"
    )


async def test_a_consumer_built_for_v1_reads_what_loyalty_now_publishes(tmp_path, monkeypatch):
    # The real producer: loyalty's activity awards 600 points (silver from 500), committing the
    # account change and its events to the outbox, as in production.
    from concerto_loyalty.adapters import db as loyalty_db
    from concerto_loyalty.workflows.activities import LoyaltyActivities
    from concerto_loyalty.workflows.inputs import AccountChange

    async with fresh_database("sqlite", tmp_path, messaging_metadata, loyalty_db.tables) as engine:
        sessions = create_sessions(engine)
        runtime = SimpleNamespace(name="loyalty", unit_of_work=lambda: UnitOfWork(sessions, source="/concerto/loyalty"))
        change = AccountChange(kind="award", customer_id="cust-5", order_id="ord-5", correlation_id="corr-5", amount=Decimal("600"))
        try:
            await ActivityEnvironment().run(LoyaltyActivities(runtime).apply_change, change)
        except Exception as exc:  # the producer's own validation: say what it refused
            pytest.fail(f"loyalty's apply_change failed when the customer reached silver (publishing TierChanged): {_one_line(exc)}", pytrace=False)
        async with sessions() as session:
            rows = (await session.execute(select(outbox).where(outbox.c.event_type == TIER_CHANGED))).all()
    assert len(rows) == 1, f"loyalty should publish one TierChanged when a customer reaches silver, found {len(rows)}"
    [row] = rows
    headers = [(name, value.encode()) for name, value in row.headers.items()]

    published = json.loads(row.value)
    assert published.get("tier") == "silver", f"loyalty should fill the new field `tier` in TierChanged, it sent {published}"
    # Decoded by the real envelope.decode, with the released v1 class in place of today's.
    monkeypatch.setattr(envelope, "event_class", lambda event_type: released_v1.TierChanged)
    try:
        old = envelope.decode(headers, row.key, row.value).event
    except envelope.UndecodableEvent as exc:
        pytest.fail(f"a consumer built for the released TierChanged cannot read what loyalty now publishes: {_one_line(exc)}", pytrace=False)
    assert old.new_tier == "silver", f"a v1 consumer reads new_tier {old.new_tier!r} instead of 'silver': loyalty should keep filling new_tier"


async def _order_tier_after(tmp_path, event, hint: str = "") -> str | None:
    """Runs the order service's real handlers (through the real consumer and inbox) on a SQLite
    database with its tables; returns the customer's tier as its projection then holds it."""
    from concerto_order.adapters import db as order_db
    from concerto_order.messaging.handlers import handlers

    record = encode(event, source="/concerto/loyalty", correlation_id="corr-5")
    async with fresh_database("sqlite", tmp_path, messaging_metadata, order_db.tables) as engine:
        sessions = create_sessions(engine)
        consumer = EventConsumer(
            group_id="order-service", topics=[Topics.LOYALTY], handlers=handlers(SimpleNamespace()), sessions=sessions,
            producer=None, bootstrap_servers="127.0.0.1:1",  # never contacted: the record is handed over directly
        )  # fmt: skip
        stopped = await consumer.process_batch([_wire(record)])
        if stopped is not None:
            cause = stopped.error.__cause__ or stopped.error
            pytest.fail(f"the order service could not handle the TierChanged{hint}: {_one_line(cause)}", pytrace=False)
        async with sessions() as session:
            return await session.scalar(select(order_db.customer_tiers.c.tier).where(order_db.customer_tiers.c.customer_id == "cust-5"))


async def test_the_order_service_reads_a_tier_changed_published_before_the_change(tmp_path, monkeypatch):
    # Retained on Kafka and published by a loyalty instance not yet redeployed: no `tier` in it.
    old_event = released_v1.TierChanged(customer_id="cust-5", order_id="ord-5", old_tier="standard", new_tier="silver")
    record = encode(old_event, source="/concerto/loyalty", correlation_id="corr-5")
    assert "tier" not in json.loads(record.value)
    try:
        envelope.decode(record.headers, record.key, record.value)
    except envelope.UndecodableEvent as exc:
        pytest.fail(f"today's code cannot decode a TierChanged published before the change (it would be dead-lettered): {_one_line(exc)}", pytrace=False)
    tier = await _order_tier_after(tmp_path, old_event, " published before the change (its `tier` is None: fall back to new_tier)")
    assert tier == "silver", f"after an old TierChanged (new_tier only) the order service holds tier {tier!r}, not 'silver': fall back to new_tier when `tier` is missing"


async def test_the_order_service_reads_tier_when_present(tmp_path):
    # Producers fill both names alike; once every consumer reads `tier`, a v2 can drop new_tier.
    # Different values here show which one the consumer reads.
    try:
        event = TierChanged.model_validate({"customer_id": "cust-5", "order_id": "ord-5", "old_tier": "silver", "new_tier": "silver", "tier": "gold"})
    except ValueError as exc:
        pytest.fail(f"TierChanged should carry both new_tier (as released) and the new optional `tier`: {_one_line(exc)}", pytrace=False)
    tier = await _order_tier_after(tmp_path, event)
    assert tier == "gold", f"the order service took tier {tier!r} from the event instead of its `tier` field: read `tier` when the event carries it"
