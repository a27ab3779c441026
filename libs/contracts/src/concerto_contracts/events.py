"""Every cross-context event, version 1.

An event's CloudEvent `type` is `concerto.<context>.<Name>.v1`; its Kafka key is the order id
(or the sku for stock levels). A breaking change means a new class with `.v2`, never an edit.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from concerto_contracts.topics import Topics
from concerto_contracts.values import (
    CurrencyCode,
    Frozen,
    LineItem,
    MaskedCard,
    Money,
    OrderSnapshot,
)


class DomainEvent(Frozen):
    context: ClassVar[str]
    topic: ClassVar[str]
    version: ClassVar[str] = "v1"

    @classmethod
    def event_type(cls) -> str:
        return f"concerto.{cls.context}.{cls.__name__}.{cls.version}"

    @property
    def key(self) -> str:
        return self.order_id  # type: ignore[attr-defined]


class OrderEvent(DomainEvent):
    context: ClassVar[str] = "order"
    topic: ClassVar[str] = Topics.ORDER


class PaymentEvent(DomainEvent):
    context: ClassVar[str] = "payment"
    topic: ClassVar[str] = Topics.PAYMENT


class FulfillmentEvent(DomainEvent):
    context: ClassVar[str] = "fulfillment"
    topic: ClassVar[str] = Topics.FULFILLMENT


class LoyaltyEvent(DomainEvent):
    context: ClassVar[str] = "loyalty"
    topic: ClassVar[str] = Topics.LOYALTY


# --- order -----------------------------------------------------------------------------


class OrderConfirmed(OrderEvent):
    order_id: str
    order: OrderSnapshot
    # A reference into the payment context's vault: the card token itself never leaves it.
    payment_method_id: str


class OrderCancelled(OrderEvent):
    order_id: str
    customer_id: str
    reason: str
    total: Money
    currency: CurrencyCode


class OrderCompleted(OrderEvent):
    order_id: str
    customer_id: str
    total: Money
    currency: CurrencyCode
    tracking_number: str | None = None


# --- payment ---------------------------------------------------------------------------


class PaymentCompleted(PaymentEvent):
    order_id: str
    payment_id: str
    amount: Money
    currency: CurrencyCode
    card: MaskedCard
    gateway: str
    # Carried forward so fulfillment and loyalty never call back to order.
    order: OrderSnapshot


class PaymentFailed(PaymentEvent):
    order_id: str
    payment_id: str
    amount: Money
    currency: CurrencyCode
    reason: str
    card: MaskedCard | None = None
    gateway: str | None = None


class PaymentRefunded(PaymentEvent):
    order_id: str
    payment_id: str
    refund_id: str
    customer_id: str
    amount: Money
    currency: CurrencyCode
    reason: str
    gateway: str | None = None


# --- fulfillment -----------------------------------------------------------------------


class InventoryReserved(FulfillmentEvent):
    order_id: str
    warehouse: str
    items: list[LineItem]


class InventoryUnavailable(FulfillmentEvent):
    order_id: str
    customer_id: str
    unavailable_skus: list[str]
    payment_id: str | None = None


class ShipmentScheduled(FulfillmentEvent):
    order_id: str
    shipment_id: str
    warehouse: str
    carrier: str
    tracking_number: str


class ShipmentDispatched(FulfillmentEvent):
    order_id: str
    shipment_id: str
    carrier: str
    tracking_number: str
    dispatched_at: datetime


class StockLevelChanged(FulfillmentEvent):
    sku: str
    available: int = Field(ge=0)

    @property
    def key(self) -> str:
        return self.sku


# --- loyalty ---------------------------------------------------------------------------


class PointsAwarded(LoyaltyEvent):
    customer_id: str
    order_id: str
    points: int
    balance: int
    tier: str


class PointsReversed(LoyaltyEvent):
    customer_id: str
    order_id: str
    points: int
    balance: int
    tier: str


class TierChanged(LoyaltyEvent):
    customer_id: str
    order_id: str
    old_tier: str
    new_tier: str


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.event_type(): cls
    for cls in (
        OrderConfirmed,
        OrderCancelled,
        OrderCompleted,
        PaymentCompleted,
        PaymentFailed,
        PaymentRefunded,
        InventoryReserved,
        InventoryUnavailable,
        ShipmentScheduled,
        ShipmentDispatched,
        StockLevelChanged,
        PointsAwarded,
        PointsReversed,
        TierChanged,
    )
}


def event_class(event_type: str) -> type[DomainEvent] | None:
    return EVENT_TYPES.get(event_type)
