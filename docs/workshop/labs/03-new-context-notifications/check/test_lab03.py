"""Lab 3's checks: the notification context reacts to OrderCompleted (and OrderCancelled)
through the real consumer, inbox and database, and no producer had to change for it."""

from __future__ import annotations

import importlib
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from concerto_contracts import Topics
from concerto_contracts.envelope import KafkaRecord, decode, encode
from concerto_contracts.events import OrderCancelled, OrderCompleted
from concerto_messaging import EventConsumer
from concerto_messaging import metadata as messaging_metadata
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import fresh_database

TREE = Path(os.environ.get("LAB_TREE", "."))
# What a new consumer must never need to touch: the contexts that publish, and their contract.
PRODUCERS = ["services/order", "services/payment", "services/fulfillment", "services/loyalty", "libs/contracts"]
# A stand-in for the running service's Runtime: the handlers get their session from the consumer.
RUNTIME = SimpleNamespace(name="notification", source="/concerto/notification")

COMPLETED = OrderCompleted(order_id="ord-lab3", customer_id="cust-42", total=Decimal("52.66"), currency="EUR", tracking_number="RP1")
CANCELLED = OrderCancelled(order_id="ord-lab3-x", customer_id="cust-7", reason="payment_declined", total=Decimal("19.90"), currency="EUR")


def _module(name: str):
    where = TREE / "services" / "notification" / "src"
    assert where.is_dir(), f"{where} is missing: run `make lab 3` and work in .labs/lab-03"
    return importlib.import_module(name)


def _handlers() -> dict:
    definition = _module("concerto_notification.service").definition
    return definition.handlers(RUNTIME)


def _on_the_wire(event, offset: int = 0) -> ConsumerRecord:
    """The event as the order service's relay puts it on Kafka: a binary-mode CloudEvent."""
    record: KafkaRecord = encode(event, source="/concerto/order", correlation_id="corr-lab3")
    assert decode(record.headers, record.key, record.value).event == event  # the real envelope, both ways
    return ConsumerRecord(
        topic=record.topic, partition=0, offset=offset, timestamp=int(time.time() * 1000), timestamp_type=0,
        key=record.key, value=record.value, checksum=None, serialized_key_size=len(record.key),
        serialized_value_size=len(record.value), headers=record.headers,
    )  # fmt: skip


async def _deliver(tmp_path, *records: ConsumerRecord, times: int = 1) -> list:
    """Runs the records through the real EventConsumer (decode, inbox, handler, one transaction)
    on a SQLite file with the service's tables, `times` times over; returns the notifications."""
    db = _module("concerto_notification.adapters.db")
    async with fresh_database("sqlite", tmp_path, messaging_metadata, db.tables) as engine:
        sessions = create_sessions(engine)
        consumer = EventConsumer(
            group_id="notification-service", topics=[Topics.ORDER], handlers=_handlers(), sessions=sessions,
            producer=None, bootstrap_servers="127.0.0.1:1",  # never contacted: the records are handed over directly
        )  # fmt: skip
        for _ in range(times):
            for record in records:
                stopped = await consumer.process_batch([record])
                if stopped is not None:
                    event_type = dict(record.headers)["ce_type"].decode()
                    pytest.fail(f"the handler failed on {event_type}: {stopped.error!r}", pytrace=False)
        async with sessions() as session:
            return list((await session.execute(select(db.notifications))).all())


def test_the_service_handles_order_completed():
    handled = _handlers()
    assert OrderCompleted in handled, (
        "the notification service does not handle OrderCompleted yet: map OrderCompleted to your handler in "
        "handlers() (messaging/handlers.py) and pass handlers=handlers to the ServiceDefinition (service.py)"
    )


def test_the_service_handles_order_cancelled():
    assert OrderCancelled in _handlers(), "the notification service does not handle OrderCancelled yet: add a handler for it to handlers()"


async def test_an_order_completed_event_becomes_a_notification_for_its_customer(tmp_path):
    if OrderCompleted not in _handlers():
        pytest.fail("no OrderCompleted handler to run (see above)", pytrace=False)
    rows = await _deliver(tmp_path, _on_the_wire(COMPLETED))
    assert len(rows) == 1, f"one OrderCompleted should record one notification, found {len(rows)}: call db.record() in the handler"
    [row] = rows
    assert row.customer_id == "cust-42", f"the notification is for {row.customer_id!r}, not the order's customer 'cust-42': take event.customer_id"
    assert row.order_id == "ord-lab3" and row.kind == "completed", f"the notification should be kind 'completed' for order ord-lab3, got {row.kind!r} for {row.order_id!r}"
    assert row.total is not None and Decimal(row.total) == Decimal("52.66") and row.currency == "EUR", (
        f"the notification should carry the order's total 52.66 EUR (from the event), got {row.total} {row.currency}"
    )
    assert "52.66" in row.message, f"the message should tell the customer what they paid (messages.completed()), got {row.message!r}"


async def test_a_redelivered_event_is_told_once(tmp_path):
    if OrderCompleted not in _handlers():
        pytest.fail("no OrderCompleted handler to run (see above)", pytrace=False)
    rows = await _deliver(tmp_path, _on_the_wire(COMPLETED), times=2)
    assert len(rows) == 1, (
        f"the same OrderCompleted delivered twice recorded {len(rows)} notifications: write through the `session` "
        "the handler is given, so the notification commits with the consumer's inbox row"
    )


async def test_an_order_cancelled_event_becomes_a_notification(tmp_path):
    if OrderCancelled not in _handlers():
        pytest.fail("no OrderCancelled handler to run (see above)", pytrace=False)
    rows = await _deliver(tmp_path, _on_the_wire(CANCELLED))
    assert len(rows) == 1, f"one OrderCancelled should record one notification, found {len(rows)}"
    [row] = rows
    assert (row.customer_id, row.kind) == ("cust-7", "cancelled"), (
        f"an OrderCancelled should record kind 'cancelled' for the event's customer cust-7, got {row.kind!r} for {row.customer_id!r}"
    )
    assert "payment declined" in row.message, f"the message should say why (messages.cancelled(order_id, event.reason)), got {row.message!r}"


def test_no_producer_changed():
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", *PRODUCERS], cwd=TREE, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    changed = sorted({line[3:] for line in changed if line.strip()})
    assert not changed, (
        f"you changed {', '.join(changed)}: a new consumer must not need the producers or their contract to change. "
        "The order service publishes OrderCompleted for whoever listens, and the event already carries the customer "
        "and the total; undo those changes in .labs/lab-03 (git checkout -- <path>; delete a file you added there)"
    )
