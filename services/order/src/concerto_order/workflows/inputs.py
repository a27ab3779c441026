"""What OrderWorkflow and its activities pass each other (serialised by the pydantic converter)."""

from __future__ import annotations

from pydantic import BaseModel

from concerto_contracts.http import Address, Customer, OrderItemRequest, OrderStatus, PaymentView, ShipmentView
from concerto_contracts.values import OrderSnapshot

TASK_QUEUE = "order"


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


class PlaceOrder(BaseModel):
    order_id: str
    correlation_id: str
    customer: Customer
    items: list[OrderItemRequest]
    shipping_address: Address
    payment_method_id: str
    promotion_codes: list[str] = []
    channel: str = "web"
    # How long the order waits for each milestone before it gives up and cancels.
    payment_deadline_seconds: int = 15 * 60
    fulfillment_deadline_seconds: int = 24 * 60 * 60


class Pricing(BaseModel):
    snapshot: OrderSnapshot | None = None
    rejection: str | None = None


class ConfirmOrder(BaseModel):
    order_id: str
    correlation_id: str
    snapshot: OrderSnapshot
    payment_method_id: str


class RecordProgress(BaseModel):
    order_id: str
    status: OrderStatus
    payment: PaymentView | None = None
    shipment: ShipmentView | None = None
    # Set when recording ShipmentScheduled: the order can no longer be cancelled, so it tells
    # fulfillment (OrderReadyToShip) that the parcel may leave.
    ready_to_ship: bool = False
    correlation_id: str | None = None


class CloseOrder(BaseModel):
    """Completes or cancels an order; `reason` is set for a cancellation."""

    order_id: str
    correlation_id: str
    causation_id: str | None = None
    reason: str | None = None


class EventReceived(BaseModel):
    """A domain event from another context, handed to the order's workflow as a signal."""

    event_id: str
    name: str  # the event class name, e.g. "PaymentCompleted"
    data: dict


class OrderOutcome(BaseModel):
    status: OrderStatus
    cancellation_reason: str | None = None
