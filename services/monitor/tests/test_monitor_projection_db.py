"""The saga projection on a real database: SQLite, and PostgreSQL when TEST_DATABASE_URL is set
(`make test` starts one). Events are recorded the way the monitor's consumer records them, in
a transaction each; what comes back out is what the timeline and SagaWatch read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, select
from temporalio.testing import ActivityEnvironment

from concerto_contracts import Envelope
from concerto_contracts.events import (
    InventoryReserved,
    OrderCancelled,
    OrderCompleted,
    OrderConfirmed,
    PaymentCompleted,
    ShipmentDispatched,
    ShipmentScheduled,
)
from concerto_contracts.http import SagaStatus
from concerto_contracts.values import CustomerSnapshot, LineItem, MaskedCard, OrderSnapshot, ShippingAddress, Totals
from concerto_messaging import UnitOfWork
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.tables import outbox
from concerto_monitor.adapters import db, repository
from concerto_monitor.domain.definition import ORDER_SAGA
from concerto_monitor.workflows.activities import WatchActivities
from concerto_monitor.workflows.inputs import WatchUpdate
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import DATABASE_KINDS, fresh_database

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(params=DATABASE_KINDS)
async def sessions(request, tmp_path) -> AsyncIterator:
    async with fresh_database(request.param, tmp_path, messaging_metadata, db.tables) as engine:
        yield create_sessions(engine)


def snapshot(order_id: str) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order_id,
        customer=CustomerSnapshot(id="cust-db", email_masked="a***@example.com"),
        items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=1, unit_price=Decimal("24.00"), weight_grams=50)],
        shipping_address=ShippingAddress(name="Ada", line1="1 Way", city="London", postal_code="N1 9GU", country="GB"),
        totals=Totals(subtotal=Decimal("24"), discount=Decimal("0"), tax=Decimal("4.8"), shipping=Decimal("4.99"), total=Decimal("33.79"), currency="EUR"),
        channel="web",
    )


class Journey:
    """One order's events as envelopes, each caused by the one before."""

    def __init__(self) -> None:
        self.order_id = f"ord-{uuid.uuid4().hex[:10]}"
        self.clock = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
        self.last_id: str | None = None

    def envelope(self, event) -> Envelope:
        self.clock += timedelta(milliseconds=100)
        event_id = str(uuid.uuid4())
        envelope = Envelope(
            id=event_id, type=event.event_type(), source=f"/concerto/{event.context}", time=self.clock,
            correlation_id="corr-db", causation_id=self.last_id, traceparent=TRACEPARENT, event=event,
        )
        self.last_id = event_id
        return envelope

    def happy_path(self) -> list[Envelope]:
        o, order = self.order_id, snapshot(self.order_id)
        card = MaskedCard(brand="visa", last4="4242")
        return [
            self.envelope(OrderConfirmed(order_id=o, order=order, payment_method_id="pm-1")),
            self.envelope(PaymentCompleted(order_id=o, payment_id=f"pay-{o}", amount=Decimal("33.79"), currency="EUR", card=card, gateway="cardpay", order=order)),
            self.envelope(InventoryReserved(order_id=o, warehouse="LON-1", items=order.items)),
            self.envelope(ShipmentScheduled(order_id=o, shipment_id="shp-1", warehouse="LON-1", carrier="royal-parcel", tracking_number="RP1")),
            self.envelope(ShipmentDispatched(order_id=o, shipment_id="shp-1", carrier="royal-parcel", tracking_number="RP1", dispatched_at=self.clock)),
            self.envelope(OrderCompleted(order_id=o, customer_id="cust-db", total=Decimal("33.79"), currency="EUR")),
        ]


async def record(sessions, envelope: Envelope):
    async with sessions() as session, session.begin():
        return await repository.record_event(session, ORDER_SAGA, envelope)


async def test_monitor_projection_follows_a_saga_to_completed_and_wakes_the_watch_only_for_earlier_deadlines(sessions):
    """Each event moves the saga on in the due-time index; SagaWatch's timer is set only when a
    deadline comes before the one it is set for (the payment's, then the reservation's)."""
    journey = Journey()
    began = datetime.now(timezone.utc)
    updates = [await record(sessions, envelope) for envelope in journey.happy_path()]

    assert [u is not None for u in updates] == [True, True, False, False, False, False]
    assert updates[1].version > updates[0].version
    # Each deadline counts from when the monitor saw the event the step follows.
    for update, step in zip(updates[:2], ("payment", "reservation")):
        seconds = next(s.deadline_seconds for s in ORDER_SAGA.steps if s.name == step)
        assert timedelta(0) <= update.deadline - began - timedelta(seconds=seconds) < timedelta(seconds=10)

    async with sessions() as session:
        row = await db.get_saga(session, journey.order_id)
        events = await db.events_of(session, journey.order_id)
    assert row.status == SagaStatus.COMPLETED and row.current_step == "OrderCompleted"
    assert row.customer_id == "cust-db" and row.payment_id == f"pay-{journey.order_id}"
    assert row.due_step is None and row.due_at is None  # ended: out of the due-time index
    assert row.started_at.tzinfo is not None  # timestamps come back aware, on both databases
    assert [e.type for e in sorted(events, key=lambda e: e.time)] == [
        "OrderConfirmed", "PaymentCompleted", "InventoryReserved", "ShipmentScheduled", "ShipmentDispatched", "OrderCompleted",
    ]
    assert {e.trace_id for e in events} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert not any(e.late for e in events)


async def test_monitor_projection_records_a_late_event_without_changing_an_ended_saga(sessions):
    """After COMPLETED, an OrderCancelled (say, redriven by mistake) is kept, flagged, ignored."""
    journey = Journey()
    for envelope in journey.happy_path():
        await record(sessions, envelope)
    late = journey.envelope(OrderCancelled(order_id=journey.order_id, customer_id="cust-db", reason="x", total=Decimal("1"), currency="EUR"))
    assert await record(sessions, late) is None

    async with sessions() as session:
        stored = await repository.load(session, ORDER_SAGA, journey.order_id)
        row = await db.get_saga(session, journey.order_id)
        events = {e.event_id: e for e in await db.events_of(session, journey.order_id)}
    assert stored.saga.status == SagaStatus.COMPLETED and row.status == SagaStatus.COMPLETED
    assert events[late.id].late is True
    assert row.current_step == "OrderCompleted"


async def test_monitor_projection_indexes_the_next_deadline_of_a_running_saga(sessions):
    """A saga waiting for its reservation is due when the reservation's deadline passes."""
    journey = Journey()
    confirmed, paid = journey.happy_path()[:2]
    await record(sessions, confirmed)
    await record(sessions, paid)
    async with sessions() as session:
        row = await db.get_saga(session, journey.order_id)
        later = row.due_at + timedelta(seconds=1)
        assert row.due_step == "reservation"
        assert await db.due_sagas(session, row.due_at - timedelta(seconds=1), 10) == []
        assert await db.due_sagas(session, later, 10) == [journey.order_id]
        assert await db.earliest_due(session) == row.due_at


async def test_monitor_projection_is_the_same_whatever_order_the_events_arrive_in(sessions):
    """One order's events travel on several topics: the saga must not depend on their order."""
    journey = Journey()
    for envelope in reversed(journey.happy_path()):
        await record(sessions, envelope)
    async with sessions() as session:
        row = await db.get_saga(session, journey.order_id)
    assert row.status == SagaStatus.COMPLETED


# --- SagaWatch's activity on the same database ----------------------------------------------


class OutboxOnly:
    """What WatchActivities needs of the service's Runtime: transactions that can publish (and
    no consumer: no watermark holds the deadlines back)."""

    consumer = None

    def __init__(self, sessions) -> None:
        self.sessions = sessions

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, source="/concerto/monitor")


async def published(sessions, order_id: str) -> list[str]:
    async with sessions() as session:
        rows = (await session.execute(select(outbox.c.event_type, outbox.c.key).order_by(outbox.c.id))).all()
    return [row.event_type.split(".")[2] for row in rows if row.key == order_id.encode()]


async def test_monitor_watch_activity_declares_a_silent_reservation_stuck_and_asks_for_compensation(sessions):
    """The reservation is overdue (its deadline is 0 s here): STUCK, SagaTimedOut and
    CompensationRequested in the outbox, and the timer set to the next deadline (none left)."""
    definition = ORDER_SAGA.with_deadlines({"reservation": 0})
    journey = Journey()
    for envelope in journey.happy_path()[:2]:  # confirmed and paid; then fulfillment is silent
        async with sessions() as session, session.begin():
            await repository.record_event(session, definition, envelope)

    update = await ActivityEnvironment().run(WatchActivities(OutboxOnly(sessions), definition).handle_due_sagas)

    async with sessions() as session:
        row = await db.get_saga(session, journey.order_id)
    assert row.status == SagaStatus.STUCK and row.timed_out == ["reservation"]
    assert await published(sessions, journey.order_id) == ["SagaTimedOut", "CompensationRequested"]
    assert update.deadline is None or update.deadline > datetime.now(timezone.utc)  # the reservation never fires twice
    again = await ActivityEnvironment().run(WatchActivities(OutboxOnly(sessions), definition).handle_due_sagas)
    assert again.version > update.version
    assert await published(sessions, journey.order_id) == ["SagaTimedOut", "CompensationRequested"]


async def test_monitor_watch_activity_past_the_pivot_alerts_without_compensation(sessions):
    """The order context is silent after the dispatch: STUCK, SagaTimedOut, no compensation."""
    definition = ORDER_SAGA.with_deadlines({"completion": 0})
    journey = Journey()
    for envelope in journey.happy_path()[:5]:  # everything up to ShipmentDispatched
        async with sessions() as session, session.begin():
            await repository.record_event(session, definition, envelope)

    await ActivityEnvironment().run(WatchActivities(OutboxOnly(sessions), definition).handle_due_sagas)

    async with sessions() as session:
        row = await db.get_saga(session, journey.order_id)
    assert row.status == SagaStatus.STUCK and row.timed_out == ["completion"]
    assert await published(sessions, journey.order_id) == ["SagaTimedOut"]


# --- what recording an event costs the database ------------------------------------------------


async def test_monitor_projection_records_an_event_in_four_statements(sessions):
    """One statement reads the saga with its events' arrivals (and locks its row), one adds the
    event, one saves the saga, one moves SagaWatch's timer only if the deadline is earlier; an
    event after which the saga waits for nothing does not touch the timer at all."""
    statements: list[str] = []
    engine = sessions.kw["bind"].sync_engine

    def note(connection, cursor, statement, parameters, context, executemany) -> None:
        if not statement.startswith(("BEGIN", "SELECT 1")):
            statements.append(statement.split(None, 1)[0].upper())

    journey = Journey()
    envelopes = journey.happy_path()
    event.listen(engine, "before_cursor_execute", note)
    try:
        for envelope in envelopes:
            statements.clear()
            await record(sessions, envelope)
            done = envelope is envelopes[-1]  # OrderCompleted: nothing left to wait for
            assert statements == (["SELECT", "INSERT", "UPDATE"] if done else ["SELECT", "INSERT", "INSERT" if envelope is envelopes[0] else "UPDATE", "INSERT"])
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def test_monitor_timer_moves_only_to_an_earlier_deadline_and_counts_each_move(sessions):
    """The consumer's setting (only_if_earlier): the first one creates the timer (version 1), a
    later deadline leaves it, an earlier one moves it (a newer version), no deadline leaves it;
    once the activity has cleared it, any deadline sets it again."""
    start = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)

    async def earlier(deadline):
        async with sessions() as session, session.begin():
            return await repository.set_timer(session, deadline, only_if_earlier=True)

    async def timer():
        async with sessions() as session:
            return (await session.execute(select(db.watch_timer))).one()

    assert await earlier(start + timedelta(minutes=5)) == WatchUpdate(version=1, deadline=start + timedelta(minutes=5))
    assert await earlier(start + timedelta(minutes=6)) is None
    assert await earlier(start + timedelta(minutes=5)) is None  # the same deadline is not earlier
    assert await earlier(None) is None
    assert await earlier(start + timedelta(minutes=1)) == WatchUpdate(version=2, deadline=start + timedelta(minutes=1))
    assert (await timer()).armed_at == start + timedelta(minutes=1)
    async with sessions() as session, session.begin():
        cleared = await repository.set_timer(session, None, only_if_earlier=False)
    assert cleared == WatchUpdate(version=3, deadline=None)
    assert await earlier(start + timedelta(hours=1)) == WatchUpdate(version=4, deadline=start + timedelta(hours=1))
    assert tuple(await timer()) == (1, start + timedelta(hours=1), 4)
