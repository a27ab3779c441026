"""Stock never goes below zero, however many reservations arrive at once: on a real SQLite file
and on PostgreSQL (`make test` starts one). 50 orders of one unit each for 10 units in stock, all
reserved concurrently through the real activity, each in its own transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from temporalio.testing import ActivityEnvironment

from concerto_fulfillment.adapters import db
from concerto_fulfillment.domain.model import WAREHOUSES
from concerto_fulfillment.workflows.activities import FulfillmentActivities, StockContended
from concerto_fulfillment.workflows.inputs import FulfillOrder
from concerto_messaging import UnitOfWork
from concerto_messaging.tables import outbox

SKU, IN_STOCK, ORDERS = "CON-BATON", 10, 50


@pytest.fixture
async def sessions(fulfillment_sessions) -> AsyncIterator:
    async with fulfillment_sessions() as session, session.begin():
        # All the units in one warehouse, none anywhere else: every reservation wants them.
        await session.execute(
            db.stock.insert(), [{"warehouse": w.code, "sku": SKU, "available": IN_STOCK if i == 0 else 0} for i, w in enumerate(WAREHOUSES)]
        )
    yield fulfillment_sessions


async def reserve_as_temporal_would(activities: FulfillmentActivities, request: FulfillOrder):
    """The activity, tried again when it fails as Temporal would retry it."""
    while True:
        try:
            return await ActivityEnvironment().run(activities.reserve_stock, request)
        except StockContended:
            await asyncio.sleep(0)  # let the others finish; no time involved


async def test_fifty_concurrent_reservations_for_ten_units_reserve_exactly_ten(sessions, order_of_one):
    runtime = SimpleNamespace(unit_of_work=lambda: UnitOfWork(sessions, source="/concerto/fulfillment"))
    activities = FulfillmentActivities(runtime)

    outcomes = await asyncio.gather(*(reserve_as_temporal_would(activities, order_of_one("cust-stock")) for _ in range(ORDERS)))

    assert sum(o.reserved for o in outcomes) == IN_STOCK
    async with sessions() as session:
        available = await session.scalar(select(func.sum(db.stock.c.available)).where(db.stock.c.sku == SKU))
        shipments = await session.scalar(select(func.count()).select_from(db.shipments))
        announced = await session.execute(select(outbox.c.event_type, func.count()).group_by(outbox.c.event_type))
    assert available == 0, "every unit reserved once, none twice"
    assert shipments == IN_STOCK
    events = dict(announced.all())
    assert events["concerto.fulfillment.InventoryReserved.v1"] == IN_STOCK
    assert events["concerto.fulfillment.InventoryUnavailable.v1"] == ORDERS - IN_STOCK
