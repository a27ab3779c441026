"""One valid instance of every event in the contract, for the contracts tests."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from concerto_contracts import events
from concerto_contracts.events import DomainEvent
from concerto_contracts.values import (
    CustomerSnapshot,
    LineItem,
    MaskedCard,
    OrderSnapshot,
    ShippingAddress,
    Totals,
    mask_email,
)

ORDER_ID = "ord-7f3a"
CUSTOMER_ID = "cust-42"
EMAIL = "ada.lovelace@example.com"


def _snapshot() -> OrderSnapshot:
    item = LineItem(sku="CON-BATON", name="Baton", quantity=2, unit_price=Decimal("19.90"), weight_grams=120)
    return OrderSnapshot(
        order_id=ORDER_ID,
        customer=CustomerSnapshot(id=CUSTOMER_ID, tier="gold", first_order=True, email_masked=mask_email(EMAIL)),
        items=[item],
        shipping_address=ShippingAddress(name="Ada Lovelace", line1="1 Analytical St", city="London", postal_code="N1", country="GB"),
        totals=Totals(
            subtotal=Decimal("39.80"),
            discount=Decimal("0.00"),
            tax=Decimal("7.96"),
            shipping=Decimal("4.90"),
            total=Decimal("52.66"),
            currency="EUR",
        ),
        channel="web",
        promotion_codes=["WELCOME"],
    )


def _samples() -> dict[type[DomainEvent], DomainEvent]:
    snapshot = _snapshot()
    card = MaskedCard(brand="visa", last4="4242")
    money = {"currency": "EUR"}
    item = snapshot.items[0]
    loyalty = {"customer_id": CUSTOMER_ID, "order_id": ORDER_ID}
    built = [
        events.OrderConfirmed(order_id=ORDER_ID, order=snapshot, payment_method_id="pm-123"),
        events.OrderCancelled(order_id=ORDER_ID, customer_id=CUSTOMER_ID, reason="payment declined", total=Decimal("52.66"), **money),
        events.OrderReadyToShip(order_id=ORDER_ID, shipment_id="shp-1"),
        events.OrderCompleted(order_id=ORDER_ID, customer_id=CUSTOMER_ID, total=Decimal("52.66"), tracking_number="TRK1", **money),
        events.PaymentCompleted(
            order_id=ORDER_ID, payment_id="pay-1", amount=Decimal("52.66"), card=card, gateway="fake", order=snapshot, **money
        ),
        events.PaymentFailed(order_id=ORDER_ID, payment_id="pay-1", amount=Decimal("52.66"), reason="declined", card=card, **money),
        events.PaymentRefunded(
            order_id=ORDER_ID, payment_id="pay-1", refund_id="ref-1", customer_id=CUSTOMER_ID, amount=Decimal("52.66"), reason="oos", **money
        ),
        events.PaymentRefundFailed(
            order_id=ORDER_ID, payment_id="pay-1", customer_id=CUSTOMER_ID, amount=Decimal("52.66"), gateway="cardpay",
            reason="cardpay answered HTTP 400", **money
        ),
        events.InventoryReserved(order_id=ORDER_ID, warehouse="AMS-1", items=[item]),
        events.InventoryUnavailable(order_id=ORDER_ID, customer_id=CUSTOMER_ID, unavailable_skus=["CON-BATON"], payment_id="pay-1"),
        events.ShipmentScheduled(order_id=ORDER_ID, shipment_id="shp-1", warehouse="AMS-1", carrier="DHL", tracking_number="TRK1"),
        events.ShipmentDispatched(
            order_id=ORDER_ID, shipment_id="shp-1", carrier="DHL", tracking_number="TRK1",
            dispatched_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        ),
        events.FulfillmentCancelled(order_id=ORDER_ID, reason="saga_timeout", warehouse="AMS-1", released_items=[item]),
        events.StockLevelChanged(sku="CON-BATON", available=7),
        events.PointsAwarded(points=52, balance=152, tier="gold", **loyalty),
        events.PointsReversed(points=52, balance=100, tier="standard", **loyalty),
        events.TierChanged(old_tier="standard", new_tier="gold", **loyalty),
        events.SagaTimedOut(
            order_id=ORDER_ID, step="reservation", missing_events=["InventoryReserved", "InventoryUnavailable"],
            waiting_since=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc), deadline=datetime(2025, 1, 2, 3, 4, 35, tzinfo=timezone.utc),
            compensation_requested=True, suggested_actions=["Check the fulfillment service."],
        ),
        events.CompensationRequested(
            order_id=ORDER_ID, reason="saga_timeout", step="reservation", missing_events=["InventoryReserved", "InventoryUnavailable"]
        ),
    ]
    return {type(event): event for event in built}


@pytest.fixture(scope="session")
def samples() -> dict[type[DomainEvent], DomainEvent]:
    return _samples()


@pytest.fixture(scope="session")
def email() -> str:
    return EMAIL
