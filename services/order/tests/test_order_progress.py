"""An order's status only moves forward: a progress step retried late (its first attempt's
answer lost, say) must not take an order back. On a real SQLite file, through the activity."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select
from temporalio.testing import ActivityEnvironment

from concerto_contracts.http import OrderStatus, ShipmentView
from concerto_messaging import UnitOfWork
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.tables import outbox
from concerto_order.adapters import db
from concerto_order.domain.model import may_move_to
from concerto_order.workflows.activities import OrderActivities
from concerto_order.workflows.inputs import RecordProgress
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import fresh_database


def test_a_status_may_only_be_reached_from_the_ones_before_it():
    assert may_move_to(OrderStatus.PAID) == [OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.PAID]
    assert OrderStatus.SHIPPED not in may_move_to(OrderStatus.FULFILLING)
    assert may_move_to(OrderStatus.PENDING) == [OrderStatus.PENDING]


@pytest.fixture
async def order(tmp_path):
    async with fresh_database("sqlite", tmp_path, messaging_metadata, db.tables) as engine:
        sessions = create_sessions(engine)
        async with sessions() as session, session.begin():
            await session.execute(
                insert(db.orders).values(
                    order_id="ord-1", customer_id="cust-1", status=OrderStatus.CONFIRMED, correlation_id="corr-1",
                    request_fingerprint="f", submission={}, items=[],
                )
            )
        yield SimpleNamespace(sessions=sessions, activities=OrderActivities(SimpleNamespace(unit_of_work=lambda: UnitOfWork(sessions, source="/concerto/order"))))


async def status_of(order) -> str:
    async with order.sessions() as session:
        return (await db.get_order(session, "ord-1")).status


async def test_a_late_progress_step_does_not_take_the_order_back(order):
    record = ActivityEnvironment().run

    await record(order.activities.record_progress, RecordProgress(order_id="ord-1", status=OrderStatus.PAID))
    await record(order.activities.record_progress, RecordProgress(order_id="ord-1", status=OrderStatus.SHIPPED))
    assert await status_of(order) == OrderStatus.SHIPPED

    await record(order.activities.record_progress, RecordProgress(order_id="ord-1", status=OrderStatus.PAID))  # late

    assert await status_of(order) == OrderStatus.SHIPPED


async def test_recording_the_scheduled_shipment_tells_fulfillment_the_parcel_may_leave(order):
    """Past the pivot the order says so (OrderReadyToShip, through the outbox): fulfillment
    dispatches only then, so a cancellation the order accepted can never race the parcel."""
    shipment = ShipmentView(shipment_id="shp-ord-1", carrier="royal-parcel", tracking_number="RP1", warehouse="LON-1")
    record = ActivityEnvironment().run

    await record(order.activities.record_progress, RecordProgress(order_id="ord-1", status=OrderStatus.FULFILLING, shipment=shipment))
    await record(
        order.activities.record_progress,
        RecordProgress(order_id="ord-1", status=OrderStatus.FULFILLING, shipment=shipment, ready_to_ship=True, correlation_id="corr-1"),
    )

    async with order.sessions() as session:
        published = (await session.execute(select(outbox.c.event_type, outbox.c.key))).all()
    assert published == [("concerto.order.OrderReadyToShip.v1", b"ord-1")]
