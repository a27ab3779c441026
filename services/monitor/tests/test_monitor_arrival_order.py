"""Issue 18: whatever order a saga's events reach the monitor in (they travel on four topics),
and however often, the saga ends as the causal order leaves it: the same status, the same events
recorded once each. Property test (hypothesis) over arrival orders, with redeliveries and any
batching, through the real EventConsumer, the monitor's handlers and repository on a real SQLite
database, with Temporal's test server for SagaWatch's signals; for a saga that completes and
one cancelled after its payment."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from concerto_contracts.events import (
    FulfillmentCancelled, InventoryReserved, OrderCancelled, OrderCompleted, OrderConfirmed, PaymentCompleted,
    PaymentRefunded, PointsAwarded, PointsReversed, ShipmentDispatched, ShipmentScheduled,
)  # fmt: skip
from concerto_contracts.values import MaskedCard
from concerto_monitor.adapters import db, repository
from concerto_monitor.domain.definition import ORDER_SAGA
from concerto_monitor.messaging import handlers as monitor_handlers
from concerto_runtime.arrivals import context_under_test, deliver, every_arrival_ends_as_caused, on_the_wire, order_of_batons

ITEM = order_of_batons("ord-x").items[0]


def forward(order_id: str) -> list:
    order = order_of_batons(order_id)
    money = {"amount": Decimal("33.79"), "currency": "EUR"}
    return [
        OrderConfirmed(order_id=order_id, order=order, payment_method_id="pm-1"),
        PaymentCompleted(order_id=order_id, payment_id=f"pay-{order_id}", card=MaskedCard(brand="visa", last4="4242"), gateway="cardpay", order=order, **money),
        InventoryReserved(order_id=order_id, warehouse="LON", items=[ITEM]),
        PointsAwarded(customer_id="cust-42", order_id=order_id, points=33, balance=33, tier="standard"),
    ]  # fmt: skip


def completed(order_id: str) -> list:
    shipment = {"order_id": order_id, "shipment_id": f"shp-{order_id}", "carrier": "dhl", "tracking_number": "TRK1"}
    return [
        *forward(order_id),
        ShipmentScheduled(**shipment, warehouse="LON"),
        ShipmentDispatched(**shipment, dispatched_at=datetime.now(timezone.utc)),
        OrderCompleted(order_id=order_id, customer_id="cust-42", total=Decimal("33.79"), currency="EUR", tracking_number="TRK1"),
    ]


def cancelled_after_payment(order_id: str) -> list:
    return [
        *forward(order_id),
        OrderCancelled(order_id=order_id, customer_id="cust-42", reason="customer_request", total=Decimal("33.79"), currency="EUR"),
        PaymentRefunded(
            order_id=order_id, payment_id=f"pay-{order_id}", refund_id=f"re-{order_id}", customer_id="cust-42",
            amount=Decimal("33.79"), currency="EUR", reason="customer_request", gateway="cardpay",
        ),  # fmt: skip
        FulfillmentCancelled(order_id=order_id, reason="customer_request", warehouse="LON", released_items=[ITEM]),
        PointsReversed(customer_id="cust-42", order_id=order_id, points=33, balance=0, tier="standard"),
    ]


@pytest.fixture
def monitor(tmp_path):
    handlers = lambda client: monitor_handlers.handlers(SimpleNamespace(temporal=client), ORDER_SAGA)  # noqa: E731
    with context_under_test(tmp_path, db.tables, group_id="monitor-service", handlers=handlers) as context:
        yield context


@pytest.mark.parametrize(
    ("story", "status"), [(completed, "COMPLETED"), (cancelled_after_payment, "COMPENSATED")], ids=["completed", "cancelled-after-payment"]
)
def test_a_saga_ends_the_same_whatever_order_its_events_arrive_in(monitor, story, status):
    names = [type(event).__name__ for event in story("ord-x")]

    async def outcome(arrival) -> dict:
        order_id = f"ord-{uuid.uuid4().hex[:12]}"
        records = [on_the_wire(event, source=f"/concerto/{event.context}", correlation_id=order_id) for event in story(order_id)]
        await deliver(monitor.consumer, records, arrival)
        async with monitor.sessions() as session:
            stored = await repository.load(session, ORDER_SAGA, order_id)
        return {
            "status": stored.saga.status.value,
            "seen": sorted(stored.saga.seen),
            "events recorded": sorted(event.type for event in stored.events),
        }

    caused = every_arrival_ends_as_caused(monitor, outcome, names, examples=30)
    assert caused == {"status": status, "seen": sorted(names), "events recorded": sorted(names)}
