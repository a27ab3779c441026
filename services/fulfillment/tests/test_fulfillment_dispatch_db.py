"""The producer of ShipmentDispatched sets estimated_delivery, a field added after v1 was released
(ADR 15): the real dispatch_shipment activity on a real SQLite file (and on PostgreSQL when
`make test` starts one), the event read back from the outbox as a consumer would decode it."""

from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from concerto_contracts.envelope import decode
from concerto_contracts.events import ShipmentDispatched
from concerto_fulfillment.adapters import db
from concerto_fulfillment.workflows.activities import FulfillmentActivities, shipment_id_for
from concerto_fulfillment.workflows.inputs import FulfillOrder
from concerto_messaging import UnitOfWork
from concerto_messaging.tables import outbox

FRIDAY_MORNING = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)


async def dispatched_event(sessions, request: FulfillOrder, monkeypatch, carrier: str) -> ShipmentDispatched:
    """Dispatches `request`'s scheduled shipment with `carrier` on a Friday morning; the event it published."""
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


async def test_fulfillment_dispatch_publishes_the_estimated_delivery(fulfillment_sessions, order_of_one, monkeypatch):
    event = await dispatched_event(fulfillment_sessions, order_of_one("cust-dispatch"), monkeypatch, "royal-parcel")
    # Two working days after a Friday: the weekend does not count.
    assert event.estimated_delivery == date(2025, 3, 18)


async def test_fulfillment_dispatch_without_an_estimate_for_the_carrier_publishes_none(fulfillment_sessions, order_of_one, monkeypatch):
    event = await dispatched_event(fulfillment_sessions, order_of_one("cust-dispatch"), monkeypatch, "pigeon-post")
    assert event.estimated_delivery is None
