"""Lab 6's checks: the saga monitor, driven by the participant's saga definition, notices a silent
context, compensates before the pivot and only alerts after it.

Real parts, no running stack: the monitor's own projection (repository.record_event) on a SQLite
file, its SagaWatch workflow and its real handle_due_sagas activity on Temporal's time-skipping
test server, and the alerts read back from the monitor's outbox (what its relay would send to
Kafka). The monitor's clock is the test server's, so "30 seconds later" costs nothing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio import activity

from concerto_contracts import Envelope
from concerto_contracts.events import (
    CompensationRequested,
    InventoryReserved,
    OrderConfirmed,
    PaymentCompleted,
    ShipmentScheduled,
)
from concerto_contracts.values import CustomerSnapshot, LineItem, MaskedCard, OrderSnapshot, ShippingAddress, Totals
from concerto_messaging import UnitOfWork
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.tables import outbox
from concerto_monitor.adapters import db, repository
from concerto_monitor.domain.definition import ORDER_SAGA
from concerto_monitor.workflows.activities import WatchActivities
from concerto_monitor.workflows.saga_watch import SagaWatch
from concerto_runtime import create_worker, signal_with_start
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import fresh_database, time_skipping_environment

STEPS = {step.name: step for step in ORDER_SAGA.steps}


# --- the saga definition itself -------------------------------------------------------------


def test_the_reservation_has_a_deadline():
    reservation = STEPS["reservation"]
    assert reservation.deadline_seconds is not None, (
        "the reservation step has no deadline: the monitor does not wait for InventoryReserved, so a silent "
        "fulfillment goes unnoticed (give it one, 30 s as in docs/saga.md)"
    )
    assert 0 < reservation.deadline_seconds <= 120, (
        f"the reservation's deadline is {reservation.deadline_seconds} s: a few tens of seconds is what a reservation takes at worst"
    )


def test_the_dispatch_is_the_pivot():
    dispatch, completion = STEPS["dispatch"], STEPS["completion"]
    assert dispatch.pivot, "the dispatch step is not marked as the pivot (pivot=True): ShipmentDispatched is the point of no return"
    assert not dispatch.compensable, (
        "the dispatch step is compensable: a timeout after ShipmentScheduled would ask for a refund while the parcel may still leave"
    )
    assert not completion.compensable, "the completion step (after ShipmentDispatched, past the pivot) is compensable: nothing after the pivot is"


def test_the_cancellation_is_expected_after_a_compensation_request():
    rows = [step for step in ORDER_SAGA.steps if step.name == "cancellation" and "CompensationRequested" in step.follows]
    assert rows, (
        "no cancellation step follows CompensationRequested: the monitor asks the order context to roll back, "
        "then never checks that it did (an OrderCancelled is owed by order)"
    )
    assert rows[0].compensation and rows[0].deadline_seconds, "the cancellation after CompensationRequested is a compensation step with a deadline"


# --- the monitor at work --------------------------------------------------------------------


class ServerClock:
    """The monitor's clock (db.now) set to the time-skipping server's: inside the activity its
    scheduled time, outside it the time the test last read from the server."""

    def __init__(self) -> None:
        self.outside: datetime | None = None

    def __call__(self) -> datetime:
        try:
            return activity.info().current_attempt_scheduled_time
        except RuntimeError:  # not in an activity
            return self.outside


class OutboxOnly:
    """What WatchActivities needs of the monitor's Runtime: transactions that can publish (and no
    consumer, so no watermark holds a deadline back)."""

    consumer = None

    def __init__(self, sessions) -> None:
        self.sessions = sessions

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, source="/concerto/monitor")


class Order:
    """One order's events, as the contexts publish them, each caused by the one before."""

    def __init__(self) -> None:
        self.id = f"ord-lab6-{uuid.uuid4().hex[:8]}"
        self.previous: str | None = None
        item = LineItem(sku="CON-BATON", name="Conductor's baton", quantity=2, unit_price=Decimal("24.00"), weight_grams=50)
        self.snapshot = OrderSnapshot(
            order_id=self.id,
            customer=CustomerSnapshot(id="cust-42", email_masked="a***@example.com"),
            items=[item],
            shipping_address=ShippingAddress(name="Ada Lovelace", line1="12 Analytical Way", city="London", postal_code="N1 9GU", country="GB"),
            totals=Totals(subtotal=Decimal("48"), discount=Decimal("0"), tax=Decimal("9.6"), shipping=Decimal("4.99"), total=Decimal("62.59"), currency="EUR"),
            channel="web",
        )  # fmt: skip

    def envelope(self, event, source: str | None = None) -> Envelope:
        event_id = str(uuid.uuid4())
        envelope = Envelope(
            id=event_id, type=event.event_type(), source=source or f"/concerto/{event.context}", time=datetime.now().astimezone(),
            correlation_id=f"corr-{self.id}", causation_id=self.previous, traceparent=None, event=event,
        )  # fmt: skip
        self.previous = event_id
        return envelope

    def confirmed(self):
        return self.envelope(OrderConfirmed(order_id=self.id, order=self.snapshot, payment_method_id="pm-lab6"))

    def paid(self):
        card = MaskedCard(brand="visa", last4="4242")
        return self.envelope(PaymentCompleted(
            order_id=self.id, payment_id=f"pay-{self.id}", amount=Decimal("62.59"), currency="EUR", card=card, gateway="cardpay", order=self.snapshot,
        ))  # fmt: skip

    def reserved(self):
        return self.envelope(InventoryReserved(order_id=self.id, warehouse="LON-1", items=self.snapshot.items))

    def scheduled(self):
        return self.envelope(ShipmentScheduled(order_id=self.id, shipment_id="shp-1", warehouse="LON-1", carrier="royal-parcel", tracking_number="RP1"))

    def compensation_requested(self):
        return self.envelope(CompensationRequested(
            order_id=self.id, reason="saga_timeout", step="reservation", missing_events=["InventoryReserved", "InventoryUnavailable"],
        ))  # fmt: skip


class Monitor:
    """The monitor's consumer and its SagaWatch, on a fresh database and the test server."""

    def __init__(self, env, sessions, clock: ServerClock, task_queue: str) -> None:
        self.env, self.sessions, self.clock, self.task_queue = env, sessions, clock, task_queue
        self.watch = None  # the SagaWatch last started or signalled

    async def read(self, *envelopes: Envelope) -> None:
        """Records each event as the monitor's consumer does, and sets SagaWatch's timer earlier
        when a deadline comes before it (starting a watch if none runs)."""
        for envelope in envelopes:
            self.clock.outside = await self.env.get_current_time()
            async with self.sessions() as session, session.begin():
                update = await repository.record_event(session, ORDER_SAGA, envelope)
            if update is not None:
                self.watch = await signal_with_start(
                    self.env.client, SagaWatch.run, [None], id=f"saga-watch-{self.task_queue}", task_queue=self.task_queue,
                    signal="watch", signal_args=[update],
                )  # fmt: skip

    async def let_time_run(self) -> None:
        """Lets the server's time run until the watch has nothing left to wait for (it fires at
        each deadline, then ends); a watch that waits for nothing ends at once."""
        if self.watch is not None:
            await asyncio.wait_for(self.watch.result(), timeout=30)

    async def alerts(self, order_id: str) -> list[dict]:
        async with self.sessions() as session:
            rows = (await session.execute(select(outbox.c.event_type, outbox.c.key, outbox.c.value).order_by(outbox.c.id))).all()
        return [
            {"type": row.event_type.split(".")[2], **json.loads(row.value)} for row in rows if row.key == order_id.encode()
        ]

    async def status(self, order_id: str) -> str:
        async with self.sessions() as session:
            return (await db.get_saga(session, order_id)).status


def run_monitor(tmp_path: Path, monkeypatch, story):
    """Runs `story(monitor)` against a monitor of its own; returns what it returns."""
    clock = ServerClock()
    monkeypatch.setattr(db, "now", clock)

    async def main():
        async with time_skipping_environment() as env, fresh_database("sqlite", tmp_path, messaging_metadata, db.tables) as engine:
            sessions = create_sessions(engine)
            task_queue = f"lab6-{uuid.uuid4().hex[:8]}"
            activities = WatchActivities(OutboxOnly(sessions), ORDER_SAGA)
            async with create_worker(env.client, task_queue, [SagaWatch], [activities.handle_due_sagas]):
                return await story(Monitor(env, sessions, clock, task_queue))

    return asyncio.run(main())


def types(alerts: list[dict]) -> list[str]:
    return [alert["type"] for alert in alerts]


def test_a_silent_fulfillment_times_out_and_the_monitor_asks_for_compensation(tmp_path, monkeypatch):
    order = Order()

    async def story(monitor: Monitor):
        await monitor.read(order.confirmed(), order.paid())  # then fulfillment says nothing
        await monitor.let_time_run()
        return await monitor.alerts(order.id), await monitor.status(order.id)

    alerts, status = run_monitor(tmp_path, monkeypatch, story)
    assert alerts, (
        "fulfillment stayed silent after PaymentCompleted, however long the test waited, and the monitor published nothing: "
        "the reservation step needs a deadline"
    )
    assert types(alerts) == ["SagaTimedOut", "CompensationRequested"], f"a silent fulfillment before the pivot: SagaTimedOut then CompensationRequested, not {types(alerts)}"
    assert alerts[0]["step"] == "reservation", f"the saga should time out at the reservation, not at {alerts[0]['step']}"
    assert status == "STUCK", f"the saga should be STUCK at the reservation, not {status}"


def test_a_silent_order_context_after_a_compensation_request_is_noticed_too(tmp_path, monkeypatch):
    order = Order()

    async def story(monitor: Monitor):
        await monitor.read(order.confirmed(), order.paid())
        await monitor.let_time_run()
        # The monitor reads its own CompensationRequested back from Kafka; the order context is silent too.
        await monitor.read(order.compensation_requested())
        await monitor.let_time_run()
        return await monitor.alerts(order.id)

    alerts = run_monitor(tmp_path, monkeypatch, story)
    later = [alert for alert in alerts[2:] if alert["type"] == "SagaTimedOut"]
    assert later, (
        "the monitor asked the order context to roll back (CompensationRequested), the order context stayed silent "
        "and the monitor said nothing: the cancellation step should be expected after CompensationRequested too"
    )
    assert later[0]["step"] == "cancellation", f"the second alert should be about the cancellation, not {later[0]['step']}"
    assert "CompensationRequested" not in types(alerts[2:]), "compensation was already requested: asking again does not help, an operator must look"


def test_a_silent_fulfillment_past_the_pivot_alerts_without_compensation(tmp_path, monkeypatch):
    order = Order()

    async def story(monitor: Monitor):
        await monitor.read(order.confirmed(), order.paid(), order.reserved(), order.scheduled())  # then no dispatch
        await monitor.let_time_run()
        return await monitor.alerts(order.id), await monitor.status(order.id)

    alerts, status = run_monitor(tmp_path, monkeypatch, story)
    assert types(alerts)[:1] == ["SagaTimedOut"], f"fulfillment went silent after ShipmentScheduled: the monitor should alert (SagaTimedOut), not {types(alerts)}"
    assert alerts[0]["step"] == "dispatch", f"the saga should time out at the dispatch, not at {alerts[0]['step']}"
    assert "CompensationRequested" not in types(alerts) and alerts[0]["compensation_requested"] is False, (
        "fulfillment went silent after ShipmentScheduled and the monitor asked for compensation: past the pivot the parcel may "
        "already be on its way, so it must only alert and leave the saga STUCK for an operator (dispatch: the pivot, not compensable)"
    )
    assert status == "STUCK", f"the saga should be STUCK at the dispatch, for an operator, not {status}"
