"""The producer of ShipmentDispatched sets estimated_delivery, a field added after v1 was released
(ADR 15): the real dispatch_shipment activity on a real SQLite file (and on PostgreSQL when
`make test` starts one), the event read back from the outbox as a consumer would decode it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from concerto_contracts.envelope import decode
from concerto_contracts.events import ShipmentDispatched
from concerto_contracts.values import CustomerSnapshot, LineItem, OrderSnapshot, ShippingAddress, Totals
from concerto_fulfillment.adapters import db
from concerto_fulfillment.workflows.activities import FulfillmentActivities, shipment_id_for
from concerto_fulfillment.workflows.inputs import FulfillOrder
from concerto_messaging import UnitOfWork
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.tables import outbox
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import DATABASE_KINDS, fresh_database

FRIDAY_MORNING = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)


@pytest.fixture(params=DATABASE_KINDS)
async def sessions(request, tmp_path) -> AsyncIterator:
    async with fresh_database(request.param, tmp_path, messaging_metadata, db.tables) as engine:
        yield create_sessions(engine)


def fulfill_order() -> FulfillOrder:
    order_id = f"ord-{uuid.uuid4().hex[:10]}"
    return FulfillOrder(
        order=OrderSnapshot(
            order_id=order_id,
            customer=CustomerSnapshot(id="cust-dispatch", email_masked="a***@example.com"),
            items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=1, unit_price=Decimal("24.00"), weight_grams=50)],
            shipping_address=ShippingAddress(name="Ada", line1="1 Way", city="London", postal_code="N1 9GU", country="GB"),
            totals=Totals(
                subtotal=Decimal("24"), discount=Decimal("0"), tax=Decimal("4.8"), shipping=Decimal("4.99"), total=Decimal("33.79"), currency="EUR"
            ),
            channel="web",
        ),
        correlation_id=f"corr-{order_id}",
        payment_id=f"pay-{order_id}",
    )


async def dispatched_event(sessions, monkeypatch, carrier: str) -> ShipmentDispatched:
    """Dispatches a scheduled shipment with `carrier` on a Friday morning; the event it published."""
    request = fulfill_order()
    order_id = request.order.order_id
    async with sessions() as session, session.begin():
        await session.execute(
            db.shipments.insert().values(
                shipment_id=shipment_id_for(order_id), order_id=order_id, status="SCHEDULED", warehouse="LON-1",
                items=[item.model_dump(mode="json") for item in request.order.items], carrier=carrier, tracking_number="RP0123456789",
            )
        )
    monkeypatch.setattr(db, "now", lambda: FRIDAY_MORNING)
    runtime = SimpleNamespace(unit_of_work=lambda: UnitOfWork(sessions, source="/concerto/fulfillment"))

    assert await ActivityEnvironment().run(FulfillmentActivities(runtime).dispatch_shipment, request) is True

    async with sessions() as session:
        [row] = (await session.execute(select(outbox).where(outbox.c.event_type == ShipmentDispatched.event_type()))).all()
    envelope = decode([(name, value.encode()) for name, value in row.headers.items()], row.key, row.value)
    assert envelope.event.order_id == order_id and envelope.event.dispatched_at == FRIDAY_MORNING
    return envelope.event


async def test_fulfillment_dispatch_publishes_the_estimated_delivery(sessions, monkeypatch):
    event = await dispatched_event(sessions, monkeypatch, "royal-parcel")
    # Two working days after a Friday: the weekend does not count.
    assert event.estimated_delivery == date(2025, 3, 18)


async def test_fulfillment_dispatch_without_an_estimate_for_the_carrier_publishes_none(sessions, monkeypatch):
    event = await dispatched_event(sessions, monkeypatch, "pigeon-post")
    assert event.estimated_delivery is None
