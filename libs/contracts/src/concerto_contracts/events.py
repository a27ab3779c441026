"""Every cross-context event, version 1.

An event's CloudEvent `type` is `concerto.<context>.<Name>.v1`; its Kafka key is the order id
(or the sku for stock levels). A breaking change means a new class with `.v2`, never an edit;
a compatible one (a new optional field) is an edit, released with `python -m
concerto_contracts.schemas docs/contracts`, which refuses the other kind (ADR 15).
"""

from __future__ import annotations

from datetime import date, datetime
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


class MonitorEvent(DomainEvent):
    context: ClassVar[str] = "monitor"
    topic: ClassVar[str] = Topics.MONITOR


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


class OrderReadyToShip(OrderEvent):
    """The order context's word that the order can no longer be cancelled: fulfillment hands
    the parcel to the carrier only after it (ADR 5). Without it, a cancellation accepted just
    before the order learnt of ShipmentScheduled could reach fulfillment after dispatch."""

    order_id: str
    shipment_id: str


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


class RefundRecordedByHand(Frozen):
    """An operator's word that the money went back outside the payment gateway (a bank transfer,
    a refund in the provider's dashboard): who said so, when, and why."""

    operator: str
    recorded_at: datetime
    reason: str
    reference: str | None = None  # the transfer's or the provider's own reference, if any


class PaymentRefunded(PaymentEvent):
    order_id: str
    payment_id: str
    refund_id: str
    customer_id: str
    amount: Money
    currency: CurrencyCode
    reason: str
    gateway: str | None = None
    # Added after v1, the compatible way (ADR 15): set when no gateway made the refund and an
    # operator recorded it as made by hand; None for every refund a gateway made.
    recorded_by_hand: RefundRecordedByHand | None = None


class PaymentRefundFailed(PaymentEvent):
    """The payment gateway refused the refund for good (a 4xx: retrying the same request cannot
    help): the money is still with the customer's card issuer, and an operator decides, retrying
    the refund or recording it as made by hand."""

    order_id: str
    payment_id: str
    customer_id: str
    amount: Money
    currency: CurrencyCode
    gateway: str
    reason: str  # why the gateway refused, for a person (never card data)


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
    # Added after v1 was released, the compatible way (ADR 15): optional, so events published
    # before it (and carriers without an estimate) read as None, and older consumers ignore it.
    estimated_delivery: date | None = None


class FulfillmentCancelled(FulfillmentEvent):
    """Fulfillment's compensation is done: the order will not ship, and what was reserved for
    it (nothing, if it was cancelled before its stock was reserved) is back in stock."""

    order_id: str
    reason: str
    warehouse: str | None = None
    released_items: list[LineItem] = []


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


# --- monitor ---------------------------------------------------------------------------


class SagaTimedOut(MonitorEvent):
    """An alert: an order's saga waited too long for an expected event."""

    order_id: str
    step: str  # the saga step that is overdue, e.g. "reservation"
    missing_events: list[str]  # any one of these would have moved the saga on
    waiting_since: datetime
    deadline: datetime
    compensation_requested: bool  # False past the pivot: an operator has to decide
    suggested_actions: list[str]


class CompensationRequested(MonitorEvent):
    """The monitor asks the order context to roll the order back (it decides: before the pivot
    it cancels, and every context then undoes its own part)."""

    order_id: str
    reason: str  # "saga_timeout"
    step: str
    missing_events: list[str]


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.event_type(): cls
    for cls in (
        OrderConfirmed,
        OrderCancelled,
        OrderReadyToShip,
        OrderCompleted,
        PaymentCompleted,
        PaymentFailed,
        PaymentRefunded,
        PaymentRefundFailed,
        InventoryReserved,
        InventoryUnavailable,
        ShipmentScheduled,
        ShipmentDispatched,
        FulfillmentCancelled,
        StockLevelChanged,
        PointsAwarded,
        PointsReversed,
        TierChanged,
        SagaTimedOut,
        CompensationRequested,
    )
}


def event_class(event_type: str) -> type[DomainEvent] | None:
    return EVENT_TYPES.get(event_type)
